"""A live node with ``[redis]``: its hot state mirrored to Redis for other processes, and its venue's
rate budget shared there (the two-process limit test is ``test_shared_budget_processes.py``)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from redis.asyncio import Redis

from tests.integration.test_live_session import first_instrument, live_config, running_simulator
from tests.services import require_redis, unique_name
from tests.unit.coordination.redis_helpers import delete_prefix
from tradeloop.coordination.mirror import read_mirror
from tradeloop.core import fixed
from tradeloop.runtime.config import RedisSection
from tradeloop.runtime.live import LiveSession

VENUE = "okx"


def test_a_live_node_mirrors_its_state_and_shares_its_rate_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    url = require_redis()
    prefix = unique_name("tllive")
    config = live_config(monkeypatch, VENUE)
    config = msgspec.structs.replace(
        config,
        redis=RedisSection(url=url, prefix=prefix, mirror=True, mirror_interval_ms=50, shared_budgets=True),
    )
    inst = first_instrument(VENUE)

    async def scenario() -> None:
        try:
            async with running_simulator(VENUE) as sim:
                session = LiveSession(
                    config, endpoint=sim.base_url, duration_s=2.0, keep_orders=True, handle_signals=False
                )
                await session.run()
                engine = session.engine
                assert engine is not None
                view = await read_mirror(url, prefix, config.node_tag)
                open_orders = {o.client_order_id for o in engine.oms.open_orders()}
                assert open_orders, "the node left no working order to mirror"
                assert set(view.orders) == open_orders
                for cid in open_orders:
                    order = engine.oms.order(cid)
                    assert order is not None and view.orders[cid].filled_qty == fixed.to_str(order.filled_qty)
                assert view.positions[str(inst.id)].qty == fixed.to_str(engine.portfolio.position_qty(inst.id))
                balance = view.balances[f"{VENUE}:{inst.quote}"]
                assert balance.total == fixed.to_str(engine.portfolio.balance(VENUE, inst.quote))
                redis = Redis.from_url(url)
                try:
                    windows = [k async for k in redis.scan_iter(match=f"{prefix}:rl:*")]
                finally:
                    await redis.aclose()
                assert windows, "the venue's rate windows are not in Redis"
        finally:
            await delete_prefix(url, prefix)

    asyncio.run(scenario())
