"""The failover runner in-process, against the real Redis and a local venue simulator: the secondary
waits without touching anything, a primary that loses its lease stops at once without canceling (its
orders are the new primary's now) and says so in its exit code, a deliberate stop cancels and frees the
lease, a session that cannot start frees the lease too; and the refusals of a node that cannot be one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from tests.integration.test_live_session import live_config, running_simulator
from tests.services import require_redis, unique_name
from tradeloop.coordination.lease import FailoverLease, lease_keys
from tradeloop.core.config import ConfigError
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.runtime.config import JournalSection
from tradeloop.runtime.failover import (
    EXIT_FAILED,
    EXIT_LEASE_LOST,
    EXIT_OK,
    FailoverNode,
    FailoverSettings,
    default_node_id,
    resolve_redis_url,
)
from tradeloop.runtime.live_config import LiveConfig
from tradeloop.venues.simulator.fencing import Fencing

VENUE = "okx"


@pytest.fixture
def prefix() -> Iterator[str]:
    url = require_redis()
    name = unique_name("tltest_fonode")
    yield name

    async def cleanup() -> None:
        client = aioredis.Redis.from_url(url)
        keys = [k async for k in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    asyncio.run(cleanup())


def settings(prefix: str, node: str, **kw: Any) -> FailoverSettings:
    return FailoverSettings(redis_url=require_redis(), node_id=node, lease_name="pair", key_prefix=prefix, **kw)


def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **live: Any) -> LiveConfig:
    cfg = live_config(monkeypatch, VENUE, **live)
    return msgspec.structs.replace(cfg, node_tag="FN", journal=JournalSection(path=str(tmp_path / "pair.journal")))


def test_a_primary_that_loses_its_lease_stops_without_canceling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prefix: str
) -> None:
    cfg = config(monkeypatch, tmp_path)

    async def scenario() -> None:
        async with running_simulator(VENUE) as sim:
            sim.core.fence = Fencing("FN")
            node = FailoverNode(cfg, settings(prefix, "a"), endpoint=sim.base_url, handle_signals=False)
            running = asyncio.create_task(node.run())
            for _ in range(300):
                if sim.core.open_orders():
                    break
                await asyncio.sleep(0.02)
            assert node.role == "primary" and sim.core.open_orders(), "the primary never quoted"
            assert sim.core.fence.highest == node.lease.token
            # The key is taken away (another node's takeover after an eviction): the next renewal sees it.
            client = aioredis.Redis.from_url(require_redis())
            await client.delete(lease_keys(prefix, "pair")[0])
            await client.aclose()
            result = await asyncio.wait_for(running, 10)
            assert result.exit_code == EXIT_LEASE_LOST and node.role == "lost"
            assert "no longer holds this node's value" in result.reason
            assert sim.core.open_orders(), "a node that lost the lease canceled orders it no longer owns"
            assert node.session is not None and node.session.keep_orders
            # Its gate refuses from now on, whatever is asked.
            inst = next(iter(sim.core.instruments.values()))
            probe = SubmitOrder(
                ts=0, strategy_id="t", instrument_id=InstrumentId(VENUE, inst.id.symbol),
                client_order_id="FN0000011", side=Side.BUY, qty=inst.min_qty, price=inst.tick_size,
            )  # fmt: skip
            assert node._gate(probe) is not None and node.gate_refusals >= 1

    asyncio.run(scenario())


def test_a_deliberate_stop_cancels_and_frees_the_lease_for_the_secondary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prefix: str
) -> None:
    cfg = config(monkeypatch, tmp_path)

    async def scenario() -> None:
        async with running_simulator(VENUE) as sim:
            a = FailoverNode(cfg, settings(prefix, "a"), endpoint=sim.base_url, duration_s=1.5, handle_signals=False)
            b = FailoverNode(cfg, settings(prefix, "b"), endpoint=sim.base_url, duration_s=1.0, handle_signals=False)
            first = await asyncio.wait_for(a.run(), 20)
            assert first.exit_code == EXIT_OK and first.reason == "duration reached"
            assert sim.core.open_orders() == [] and first.summary is not None
            assert a.session is not None and a.session.orders_left == {VENUE: 0}
            assert await b.lease.holder() is None  # released, not left to expire
            second = await asyncio.wait_for(b.run(), 20)
            assert second.exit_code == EXIT_OK and second.token is not None and first.token is not None
            assert second.token > first.token
            assert b.session is not None and b.session.recovered is not None  # it continued a's journal

    asyncio.run(scenario())


def test_a_secondary_stops_without_taking_the_lease(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prefix: str
) -> None:
    cfg = config(monkeypatch, tmp_path)

    async def scenario() -> None:
        holder = FailoverLease(require_redis(), "pair", "other", key_prefix=prefix)
        try:
            assert await holder.try_acquire() is not None
            node = FailoverNode(cfg, settings(prefix, "b"), endpoint="http://127.0.0.1:9", handle_signals=False)
            waiting = asyncio.create_task(node.run())
            await asyncio.sleep(0.3)
            assert not waiting.done() and node.role == "secondary"
            node.stop("signal SIGTERM")
            result = await asyncio.wait_for(waiting, 2)
            assert result.exit_code == EXIT_OK and "secondary" in result.reason and result.token is None
            assert await holder.holder() == ("other", holder.token)
            assert not (tmp_path / "pair.journal").exists()  # a secondary does not touch the journal
        finally:
            await holder.release()
            await holder.close()

    asyncio.run(scenario())


def test_a_session_that_cannot_start_frees_the_lease(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prefix: str
) -> None:
    cfg = config(monkeypatch, tmp_path, start_timeout_s=1.0)

    async def scenario() -> None:
        node = FailoverNode(cfg, settings(prefix, "a"), endpoint="http://127.0.0.1:9", handle_signals=False)
        result = await asyncio.wait_for(node.run(), 30)
        assert result.exit_code == EXIT_FAILED and "LiveStartError" in result.reason and result.token is not None
        probe = FailoverLease(require_redis(), "pair", "probe", key_prefix=prefix)
        try:
            assert await probe.holder() is None
        finally:
            await probe.close()

    asyncio.run(scenario())


def test_nodes_that_cannot_be_one_half_of_a_pair_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = config(monkeypatch, tmp_path)
    in_memory = msgspec.structs.replace(cfg, journal=JournalSection())
    with pytest.raises(ConfigError, match="needs a journal both nodes share"):
        FailoverNode(in_memory, settings("p", "a"))
    with pytest.raises(ConfigError, match="node id"):
        FailoverNode(cfg, settings("p", "a b"))
    with pytest.raises(ConfigError, match="renew_every_ms"):
        FailoverNode(cfg, settings("p", "a", ttl_ms=1000, renew_every_ms=900))
    with pytest.raises(ConfigError, match="is not set"):
        monkeypatch.delenv(f"TL_TEST_{VENUE.upper()}_API_KEY")
        FailoverNode(cfg, settings("p", "a"))
    with pytest.raises(ValueError, match="lost_grace_s"):
        settings("p", "a", lost_grace_s=0)


def test_redis_urls_can_come_from_secret_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_TEST_REDIS_URL", "redis://:pw-from-env@127.0.0.1:6379/3")
    assert resolve_redis_url("env:TL_TEST_REDIS_URL") == "redis://:pw-from-env@127.0.0.1:6379/3"
    assert resolve_redis_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigError, match="expected a redis:// URL") as info:
        resolve_redis_url("http://user:topsecret1@host")
    assert "topsecret1" not in str(info.value)
    with pytest.raises(ConfigError, match="TL_NOT_SET"):
        resolve_redis_url("env:TL_NOT_SET")
    node_id = default_node_id()
    assert node_id and all(c.isalnum() or c in "_.-" for c in node_id)
