"""The Coinbase connector end to end against the local simulator speaking Coinbase's dialect
(127.0.0.1, real sockets, JWTs verified by the simulator): books, recovery from a dropped connection
and a skipped sequence number, malformed frames; orders placed, amended, cancelled, filled, queried,
refused with Coinbase's own errors, and retried after a rate-limit reply."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest

from tests.secret_scan import register_test_secret
from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock
from tradeloop.data.book_manager import BookManager
from tradeloop.model import topics
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, MarketData, Trade
from tradeloop.model.enums import LiquiditySide, OrderStatus, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.runtime.simulator_feed import run_synthetic
from tradeloop.venues.coinbase.connector import CONNECTOR
from tradeloop.venues.coinbase.execution import CoinbaseExecutionClient
from tradeloop.venues.coinbase.market_data import CoinbaseMarketData
from tradeloop.venues.coinbase.simulator import CoinbaseDialect
from tradeloop.venues.coinbase.spec import INSTRUMENTS, SEQUENCE_RULE, VENUE
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.local import default_balances
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.rest import RestConfig

BTC = next(i for i in INSTRUMENTS if i.id.symbol == "BTC-USD")
P = fixed.parse


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def simulator(clock: LiveClock) -> tuple[SimulatorCore, VenueSimulator]:
    core = SimulatorCore(VENUE, [BTC], balances=default_balances([BTC]), clock=clock)
    creds = CONNECTOR.test_credentials()
    pem = creds.private_key_pem
    assert pem is not None
    register_test_secret(pem.reveal())
    sim = VenueSimulator(core, CONNECTOR.dialect(), creds)
    await sim.start()
    return core, sim


def test_books_follow_the_simulator_and_recover_from_drops_gaps_and_garbage() -> None:
    async def main() -> None:
        clock = LiveClock()
        core, sim = await simulator(clock)
        bus = MessageBus()
        books = BookManager(bus, clock, {VENUE: SEQUENCE_RULE})
        statuses: list[BookStatus] = []
        bus.subscribe(topics.BOOK_STATUS, statuses.append)

        def on_item(item: MarketData) -> None:
            if isinstance(item, BookDeltas):
                books.on_deltas(item)
            elif isinstance(item, BookStatus) and not item.valid:
                books.invalidate(item.instrument_id, item.reason)

        md = CONNECTOR.market_data([BTC.id], on_item, clock, CONNECTOR.local_urls(sim.base_url))
        assert isinstance(md, CoinbaseMarketData)
        feed: list[asyncio.Task[None]] = []
        seeds = iter(range(11, 100))

        def start_feed() -> None:
            feed.append(asyncio.get_running_loop().create_task(run_synthetic(core, seed=next(seeds), speed=3.0)))

        async def stop_feed() -> None:
            while feed:
                task = feed.pop()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        def in_sync() -> bool:
            ours, theirs = books.book(BTC.id), core.book(BTC.id)
            return (
                ours is not None
                and ours.valid
                and ours.top_bids(10) == theirs.top_bids(10)
                and (ours.top_asks(10) == theirs.top_asks(10))
            )

        async def settled(what: str) -> None:
            """Let the market move, stop it, and expect the client's book to equal the simulator's."""
            moved = core.market_items
            await until(lambda: core.market_items > moved + 30, f"the market to move ({what})")
            await stop_feed()
            await until(in_sync, f"books equal {what}", timeout=3.0)
            start_feed()

        start_feed()
        try:
            await md.start()
            await until(lambda: books.is_valid(BTC.id), "the first snapshot")
            await settled("after a stream of updates")
            assert md.counters.malformed == 0 and md.counters.items > 10

            # Dropped connection: invalid at once, valid again from the new subscription's snapshot.
            n = len(statuses)
            sim.faults.drop_connections()
            await until(lambda: any(not s.valid for s in statuses[n:]), "the book invalidated by the drop")
            await until(lambda: books.is_valid(BTC.id) and statuses[-1].reason == "resynced", "the resync")
            assert md.counters.reconnects == 1
            await settled("after the reconnect")

            # A skipped sequence number: the gap is seen, level2 resubscribed, the book rebuilt.
            n = len(statuses)
            sim.faults.skip_sequence(1)
            await until(lambda: md.sequence_gaps == 1, "the gap")
            assert sim.faults.consumed["skip_sequence"] == 1
            await until(lambda: any(not s.valid for s in statuses[n:]), "the book invalidated by the gap")
            await until(lambda: books.is_valid(BTC.id) and statuses[-1].reason == "resynced", "the resync")
            assert md.counters.reconnects == 1  # same connection: only level2 was resubscribed
            await settled("after the gap")

            # Garbage is counted and skipped; the feed goes on.
            items = md.counters.items
            sim.faults.send_malformed(b'{"channel":"l2_data","sequence_num":"x"')
            await until(lambda: md.counters.malformed == 1, "the malformed frame counted")
            await until(lambda: md.counters.items > items + 10, "items after the bad frame")
            assert books.is_valid(BTC.id) and md.counters.reconnects == 1
        finally:
            await stop_feed()
            await md.stop()
            await sim.stop()

    run(main())


def _submit(cid: str, side: Side, qty: int, price: int | None, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        ts=0, strategy_id="t", instrument_id=BTC.id, side=side, qty=qty, price=price, client_order_id=cid, **kw
    )


def test_orders_through_the_rest_api_and_the_user_channel() -> None:
    async def main() -> None:
        clock = LiveClock()
        core, sim = await simulator(clock)
        mid = P("60000")
        core.apply_market(
            BookDeltas(
                BTC.id,
                0,
                0,
                1,
                1,
                [(mid - P("0.01") * k, P("0.5")) for k in range(5)],
                [(mid + P("0.01") * (k + 1), P("0.5")) for k in range(5)],
                snapshot=True,
            )
        )
        venue_fills: list[OrderFilled] = []
        core.add_private_listener(lambda e: venue_fills.append(e) if isinstance(e, OrderFilled) else None)
        events: list[Event] = []
        client = CONNECTOR.execution(
            CONNECTOR.test_credentials(),
            {BTC.id: BTC},
            clock,
            events.append,
            CONNECTOR.local_urls(sim.base_url),
            rest_config=RestConfig(timeout_s=2.0),
        )
        assert isinstance(client, CoinbaseExecutionClient)

        def of(cid: str, kind: type[Event]) -> list[Any]:
            return [e for e in events if isinstance(e, kind) and getattr(e, "client_order_id", None) == cid]

        try:
            await client.start()
            # Post-only limit rests: accepted once (REST reply and user channel agree).
            client.submit(_submit("po1", Side.BUY, P("0.01"), mid - P("1"), post_only=True))
            await until(lambda: bool(of("po1", OrderAccepted)), "po1 accepted")
            await asyncio.sleep(0.1)
            assert len(of("po1", OrderAccepted)) == 1
            assert [o.client_order_id for o in core.open_orders()] == ["po1"]

            # Native amend (orders/edit), then cancel (batch_cancel).
            client.amend(
                AmendOrder(ts=0, strategy_id="t", instrument_id=BTC.id, client_order_id="po1", price=mid - P("2"))
            )
            await until(lambda: bool(of("po1", OrderAmended)), "po1 amended")
            assert core.open_orders()[0].price == mid - P("2") and of("po1", OrderAmended)[0].qty == P("0.01")
            client.cancel(CancelOrder(ts=0, strategy_id="t", instrument_id=BTC.id, client_order_id="po1"))
            await until(lambda: bool(of("po1", OrderCanceled)), "po1 canceled")
            await asyncio.sleep(0.1)
            assert len(of("po1", OrderCanceled)) == 1 and core.open_orders() == []

            # A post-only order that would cross is refused with Coinbase's code, mapped.
            client.submit(_submit("po2", Side.BUY, P("0.01"), mid + P("0.01"), post_only=True))
            await until(lambda: bool(of("po2", OrderRejected)), "po2 refused")
            assert of("po2", OrderRejected)[0].reason is RejectReason.POST_ONLY_WOULD_CROSS

            # IOC through two levels: one venue fill per level, reported with the venue's prices and fees.
            client.submit(_submit("ioc1", Side.BUY, P("0.7"), mid + P("0.02"), time_in_force=TimeInForce.IOC))
            await until(lambda: len(of("ioc1", OrderFilled)) == 2, "ioc1 filled on two levels")
            ours = [(f.last_qty, f.last_price, f.fee, f.liquidity) for f in of("ioc1", OrderFilled)]
            theirs = [(f.last_qty, f.last_price, f.fee, f.liquidity) for f in venue_fills]
            assert (
                ours
                == theirs
                == [
                    (P("0.5"), mid + P("0.01"), theirs[0][2], LiquiditySide.TAKER),
                    (P("0.2"), mid + P("0.02"), theirs[1][2], LiquiditySide.TAKER),
                ]
            )
            assert sum(f.fee for f in of("ioc1", OrderFilled)) == sum(f.fee for f in venue_fills) > 0

            # An IOC that cannot fill at all expires.
            client.submit(_submit("ioc2", Side.SELL, P("0.01"), mid + P("5"), time_in_force=TimeInForce.IOC))
            await until(lambda: bool(of("ioc2", OrderExpired)), "ioc2 expired")

            # Cancel-all: list OPEN + batch_cancel.
            for k, cid in enumerate(("r1", "r2", "r3")):
                client.submit(_submit(cid, Side.BUY, P("0.001"), mid - P("3") - k * P("0.01")))
            await until(lambda: len(core.open_orders()) == 3, "three resting orders")
            client.cancel_all(CancelAllOrders(ts=0, strategy_id="t", instrument_id=BTC.id))
            await until(lambda: all(of(c, OrderCanceled) for c in ("r1", "r2", "r3")), "all canceled")
            assert core.open_orders() == []

            # Query by client id: known (its fills are not re-sent), and never seen.
            fills_before = len([e for e in events if isinstance(e, OrderFilled)])
            for cid in ("ioc1", "nope1"):
                client.query(QueryOrder(ts=0, instrument_id=BTC.id, client_order_id=cid))
            await until(lambda: bool(of("ioc1", OrderStatusReport) and of("nope1", OrderStatusReport)), "reports")
            report = of("ioc1", OrderStatusReport)[0]
            assert (report.status, report.filled_qty) == (OrderStatus.FILLED, P("0.7"))
            assert of("nope1", OrderStatusReport)[0].status is None
            assert len([e for e in events if isinstance(e, OrderFilled)]) == fills_before

            # Coinbase's own refusal, injected.
            sim.faults.reject_next("INSUFFICIENT_FUND")
            client.submit(_submit("poor1", Side.BUY, P("0.001"), mid - P("4")))
            await until(lambda: bool(of("poor1", OrderRejected)), "poor1 refused")
            assert of("poor1", OrderRejected)[0].reason is RejectReason.INSUFFICIENT_BALANCE
            assert core.order("poor1") is None

            # A 429 is waited out and the same order re-sent: accepted exactly once.
            sim.faults.rate_limit_next(1)
            client.submit(_submit("rl1", Side.BUY, P("0.001"), mid - P("4")))
            await until(lambda: bool(of("rl1", OrderAccepted)), "rl1 accepted after the 429")
            assert sim.faults.consumed["rate_limit_next"] == 1 and not of("rl1", OrderRejected)
            assert [o.client_order_id for o in core.open_orders()] == ["rl1"]

            balances = await client.fetch_balances()
            venue = {b.currency: (b.total, b.locked) for b in core.balances().balances}
            assert {b.currency: (b.total, b.locked) for b in balances.balances} == venue
            assert [r.client_order_id for r in await client.fetch_open_orders()] == ["rl1"]
            assert client.malformed == 0 and sim.dialect.auth_failures == 0  # type: ignore[attr-defined]
        finally:
            await client.stop()
            await sim.stop()

    run(main())


def test_clock_skew_and_silent_sockets_are_refused_as_coinbase_does() -> None:
    async def main() -> None:
        clock = LiveClock()
        core = SimulatorCore(VENUE, [BTC], balances=default_balances([BTC]), clock=clock)
        sim = VenueSimulator(core, CoinbaseDialect(subscribe_within_s=0.3), CONNECTOR.test_credentials())
        await sim.start()
        urls = CONNECTOR.local_urls(sim.base_url)
        events: list[Event] = []
        skewed = CoinbaseExecutionClient(CONNECTOR.test_credentials(), {BTC.id: BTC}, clock, events.append, urls)
        skewed.clock_offset_ns = -600 * 10**9  # JWT issued 10 minutes ago: expired for the venue
        try:
            skewed.submit(_submit("late1", Side.BUY, P("0.001"), P("50000")))
            await until(lambda: bool(events), "the skewed order refused")
            assert isinstance(events[0], OrderRejected)
            assert events[0].reason is RejectReason.TIMESTAMP_OUTSIDE_WINDOW and core.order("late1") is None
            async with aiohttp.ClientSession() as session, session.ws_connect(urls.ws_public) as ws:
                msg = await asyncio.wait_for(ws.receive(), 3)  # nothing subscribed: the venue hangs up
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        finally:
            await skewed.stop()
            await sim.stop()

    run(main())


def test_a_fill_missed_while_the_user_socket_was_down_is_reported_once_after_reconnect() -> None:
    async def main() -> None:
        clock = LiveClock()
        core, sim = await simulator(clock)
        mid = P("60000")
        core.apply_market(BookDeltas(BTC.id, 0, 0, 1, 1, [(mid, P("1"))], [(mid + P("1"), P("1"))], snapshot=True))
        events: list[Event] = []
        urls = CONNECTOR.local_urls(sim.base_url)
        client = CoinbaseExecutionClient(CONNECTOR.test_credentials(), {BTC.id: BTC}, clock, events.append, urls)
        try:
            await client.start()
            client.submit(_submit("m1", Side.BUY, P("0.004"), mid - P("1")))
            await until(lambda: any(isinstance(e, OrderAccepted) for e in events), "m1 accepted")
            sim.faults.drop_connections()
            await until(lambda: sim.connection_count == 0, "the user socket dropped")
            ts = clock.now_ns()  # filled while nobody listens: the venue's update reaches no socket
            core.apply_market(Trade(BTC.id, ts, ts, mid - P("1"), P("0.003"), Side.SELL, "t1"))
            await until(lambda: any(isinstance(e, OrderFilled) for e in events), "the missed fill", timeout=8.0)
            await asyncio.sleep(0.2)
            fills = [e for e in events if isinstance(e, OrderFilled)]
            assert [(f.last_qty, f.last_price, f.liquidity) for f in fills] == [
                (P("0.003"), mid - P("1"), LiquiditySide.MAKER)
            ]
        finally:
            await client.stop()
            await sim.stop()

    run(main())
