"""The hot-state mirror against a real Redis: a node on the simulated venue trades, and the Redis hashes
follow its positions, open orders and balances; bursts are coalesced; an outage never reaches the engine."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.integration.helpers import IID, START, P, book_snapshot, feed, make_engine, settle, trade
from tests.services import require_redis, unique_name
from tests.unit.coordination.redis_helpers import TcpProxy, closed_port_url, delete_prefix
from tradeloop.coordination.mirror import (
    MirrorCorrupt,
    MirrorNotFound,
    MirrorReader,
    MirrorView,
    StateMirror,
    read_mirror,
)
from tradeloop.coordination.redis_keys import mirror_keys
from tradeloop.core import fixed
from tradeloop.model.enums import Side
from tradeloop.runtime.backtest import BacktestEngine

SEC = 1_000_000_000


def run(body: Callable[[str, str], Awaitable[Any]]) -> Any:
    url = require_redis()
    prefix = unique_name("tlmir")

    async def main() -> Any:
        try:
            return await body(url, prefix)
        finally:
            await delete_prefix(url, prefix)

    return asyncio.run(main())


async def until(check: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def next_write(mirror: StateMirror) -> None:
    seen = mirror.writes
    await until(lambda: mirror.writes > seen)


def assert_mirrors(view: MirrorView, engine: BacktestEngine) -> None:
    """The view equals the engine's state, field by field (built here from the engine, not the renderer)."""
    p = engine.portfolio
    assert {k: (v.qty, v.mark) for k, v in view.positions.items()} == {
        str(iid): (fixed.to_str(pos.qty), fixed.to_str(p.marks[iid]) if iid in p.marks else None)
        for iid, pos in p.positions.items()
    }
    assert {k: (v.instrument, v.side, v.price, v.qty, v.filled_qty, v.status) for k, v in view.orders.items()} == {
        o.client_order_id: (
            str(o.instrument_id),
            o.side.value,
            fixed.to_str(o.price) if o.price is not None else None,
            fixed.to_str(o.qty),
            fixed.to_str(o.filled_qty),
            o.status.value,
        )
        for o in engine.open_orders()
    }
    assert {k: (b.venue, b.currency, b.total, b.wallet) for k, b in view.balances.items()} == {
        f"{venue}:{ccy}": (venue, ccy, fixed.to_str(total), fixed.to_str(p.wallet_balance(venue, ccy)))
        for (venue, ccy), total in p.balances.items()
    }


def test_the_mirror_follows_orders_fills_and_cancels() -> None:
    async def body(url: str, prefix: str) -> None:
        engine = make_engine()
        feed(engine, [book_snapshot(START)])
        mirror = StateMirror(engine, url, prefix, "node1", interval_s=0.02)
        await mirror.start()
        try:
            await until(lambda: mirror.writes >= 1)
            first = await read_mirror(url, prefix, "node1")
            assert_mirrors(first, engine)
            assert first.positions[str(IID)].qty == "2" and first.orders == {}
            assert first.balances["simA:USDT"].total == "100000"

            resting = [engine.ctx.submit(IID, Side.BUY, P("0.1"), P(px)) for px in ("99.00", "98.50")]
            engine.ctx.submit(IID, Side.BUY, P("0.5"), P("100.10"))  # crosses the ask: fills at once
            settle(engine, engine.clock.now_ns() + SEC)
            await next_write(mirror)
            view = await read_mirror(url, prefix, "node1")
            assert_mirrors(view, engine)
            assert sorted(view.orders) == sorted(resting)
            assert view.positions[str(IID)].qty == "2.5"
            assert view.seq > first.seq and view.updated_ns == engine.clock.now_ns()
            assert view.written_unix_ns <= time.time_ns()

            engine.ctx.cancel(resting[0])
            feed(engine, [trade(engine.clock.now_ns() + SEC, "98.50", "0.1", Side.SELL)])  # fills the other
            await next_write(mirror)
            view = await read_mirror(url, prefix, "node1")
            assert_mirrors(view, engine)
            assert view.orders == {}  # the cancel and the fill removed both fields
            assert view.positions[str(IID)].qty == "2.6"
            client = Redis.from_url(url)
            assert await client.hlen(mirror_keys(prefix, "node1").orders) == 0
            await client.aclose()
        finally:
            await mirror.stop()
        # stop() wrote the final state.
        assert_mirrors(await read_mirror(url, prefix, "node1"), engine)

    run(body)


def test_a_burst_of_events_is_one_write() -> None:
    async def body(url: str, prefix: str) -> None:
        engine = make_engine()
        feed(engine, [book_snapshot(START)])
        mirror = StateMirror(engine, url, prefix, "burst", interval_s=0.2, refresh_s=10.0)
        await mirror.start()
        try:
            await until(lambda: mirror.writes >= 1)
            before = mirror.writes
            cids = [engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99") - i * P("0.01")) for i in range(50)]
            settle(engine, engine.clock.now_ns() + SEC)  # 100+ order events, no await in between
            await next_write(mirror)
            await asyncio.sleep(0.5)  # two more intervals: nothing changed, nothing written
            assert mirror.writes == before + 1
            view = await read_mirror(url, prefix, "burst")
            working = {o.client_order_id for o in engine.open_orders()}
            assert len(working) >= 10 and working <= set(cids)  # the risk engine caps the open orders
            assert set(view.orders) == working
            assert_mirrors(view, engine)
        finally:
            await mirror.stop()

    run(body)


def test_marks_are_refreshed_without_order_events() -> None:
    async def body(url: str, prefix: str) -> None:
        engine = make_engine()
        feed(engine, [book_snapshot(START)])
        mirror = StateMirror(engine, url, prefix, "marks", interval_s=0.02, refresh_s=0.05)
        await mirror.start()
        try:
            await until(lambda: mirror.writes >= 1)
            assert (await read_mirror(url, prefix, "marks")).positions[str(IID)].mark == "100.05"
            feed(engine, [book_snapshot(engine.clock.now_ns() + SEC, seq=2, bid="101.00", ask="101.20")])
            await next_write(mirror)
            view = await read_mirror(url, prefix, "marks")
            assert view.positions[str(IID)].mark == "101.1"
            assert_mirrors(view, engine)
        finally:
            await mirror.stop()

    run(body)


def test_an_unreachable_redis_never_reaches_the_engine(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        engine = make_engine()
        feed(engine, [book_snapshot(START)])
        mirror = StateMirror(engine, closed_port_url(), "tlmir", "down", interval_s=0.01)
        await mirror.start()
        for i in range(5):
            engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00") - i * P("0.01"))
            settle(engine, engine.clock.now_ns() + SEC)
            await asyncio.sleep(0.03)
        await until(lambda: mirror.failures >= 2)
        assert len(engine.open_orders()) == 5  # trading went on
        started = time.monotonic()
        await mirror.stop()
        assert time.monotonic() - started < 3.0
        assert mirror.writes == 0

    with caplog.at_level(logging.WARNING, logger="tradeloop.coordination"):
        asyncio.run(body())
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_after_an_outage_the_whole_state_is_rewritten() -> None:
    async def body(url: str, prefix: str) -> None:
        engine = make_engine()
        feed(engine, [book_snapshot(START)])
        proxy = TcpProxy(url)
        await proxy.start()
        mirror = StateMirror(engine, proxy.url, prefix, "flaky", interval_s=0.02)
        await mirror.start()
        try:
            cids = [engine.ctx.submit(IID, Side.BUY, P("0.1"), P(px)) for px in ("99.00", "98.00")]
            settle(engine, engine.clock.now_ns() + SEC)
            await until(lambda: mirror.writes >= 1 and not mirror._dirty)
            assert sorted((await read_mirror(url, prefix, "flaky")).orders) == sorted(cids)
            await proxy.stop()
            engine.ctx.cancel(cids[0])  # happens while Redis is cut off
            settle(engine, engine.clock.now_ns() + SEC)
            await until(lambda: mirror.failures >= 1)
            stale = await read_mirror(url, prefix, "flaky")
            assert cids[0] in stale.orders
            await proxy.start()
            await until(lambda: mirror.writes >= 2 and not mirror._down, timeout_s=8.0)
            view = await read_mirror(url, prefix, "flaky")
            assert sorted(view.orders) == [cids[1]]  # the order canceled meanwhile is gone
            assert_mirrors(view, engine)
        finally:
            await mirror.stop()
            await proxy.stop()

    run(body)


def test_seq_grows_across_restarts_of_a_node() -> None:
    async def body(url: str, prefix: str) -> None:
        engine = make_engine()
        feed(engine, [book_snapshot(START)])
        first = StateMirror(engine, url, prefix, "n", interval_s=0.02)
        await first.start()
        await until(lambda: first.writes >= 1)
        await first.stop()
        seq = (await read_mirror(url, prefix, "n")).seq
        second = StateMirror(engine, url, prefix, "n", interval_s=0.02)
        await second.start()
        await until(lambda: second.writes >= 1)
        await second.stop()
        assert (await read_mirror(url, prefix, "n")).seq > seq

    run(body)


def test_reading_a_missing_or_damaged_mirror_says_what_is_wrong() -> None:
    async def body(url: str, prefix: str) -> None:
        with pytest.raises(MirrorNotFound, match="nobody"):
            await read_mirror(url, prefix, "nobody")
        engine = make_engine()
        feed(engine, [book_snapshot(START)])
        mirror = StateMirror(engine, url, prefix, "dmg", interval_s=0.02)
        await mirror.start()
        await until(lambda: mirror.writes >= 1)
        await mirror.stop()
        keys = mirror_keys(prefix, "dmg")
        client = Redis.from_url(url)
        await client.hset(keys.positions, "simA:BTCUSDT", b"{not json")
        reader = MirrorReader(url, prefix)
        with pytest.raises(MirrorCorrupt, match="positions field 'simA:BTCUSDT'"):
            await reader.read("dmg")
        await client.hset(keys.positions, "simA:BTCUSDT", b'{"instrument": "x", "qty": 5, "mark": null}')
        with pytest.raises(MirrorCorrupt, match="positions"):
            await reader.read("dmg")
        await client.hset(keys.meta, "seq", "many")
        with pytest.raises(MirrorCorrupt, match="seq"):
            await reader.read("dmg")
        await reader.aclose()
        await client.aclose()

    run(body)


def test_bad_settings_are_refused() -> None:
    engine = make_engine()
    with pytest.raises(ValueError, match="node"):
        StateMirror(engine, "redis://127.0.0.1:6379/0", "p", "a:b")
    with pytest.raises(ValueError, match="prefix"):
        StateMirror(engine, "redis://127.0.0.1:6379/0", "p q", "n")
    with pytest.raises(ValueError, match="interval_s"):
        StateMirror(engine, "redis://127.0.0.1:6379/0", "p", "n", interval_s=0)
    with pytest.raises(ValueError, match="refresh_s"):
        StateMirror(engine, "redis://127.0.0.1:6379/0", "p", "n", interval_s=1.0, refresh_s=0.5)
    with pytest.raises(ValueError, match="Redis URL"):
        StateMirror(engine, "postgresql://127.0.0.1/test", "p", "n")
