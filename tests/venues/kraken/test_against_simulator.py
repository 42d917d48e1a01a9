"""The Kraken connector end to end against its local simulator (real sockets on 127.0.0.1).

Market data: books equal the simulator's after updates; a dropped connection invalidates the book
and resubscribes; a corrupted checksum and a lost update (Kraken has no sequence ids, so the
checksum is what catches it) are resynced; malformed frames are counted. Execution: post-only
limit, cancel, IOC fill, native amend, cancel-all, query by client id (with fills recovered over
REST when the stream did not deliver them), venue refusals and a rate-limit reply that is retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock
from tradeloop.data.book_manager import BookManager
from tradeloop.model import topics
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, Quote, Trade
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.security.credentials import Credentials
from tradeloop.venues.kraken import connector, spec
from tradeloop.venues.kraken.execution import KrakenExecutionClient
from tradeloop.venues.kraken.market_data import KrakenMarketData
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.rest import RestConfig

P = fixed.parse
BTC = InstrumentId("kraken", "BTC/USD")
INST = next(i for i in spec.instruments() if i.id == BTC)
TICK = INST.tick_size
MID = P("60000")
REST = RestConfig(timeout_s=2.0, connect_timeout_s=1.0)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20.0))


async def until(condition: Callable[[], bool], what: str, timeout: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def static_book(ts: int) -> BookDeltas:
    bids = [(MID - k * TICK, P("0.5") * (k + 1)) for k in range(15)]
    asks = [(MID + (k + 1) * TICK, P("0.5") * (k + 1)) for k in range(15)]
    return BookDeltas(BTC, ts, ts, 1, 1, bids, asks, snapshot=True)


@dataclass
class Env:
    clock: LiveClock
    core: SimulatorCore
    sim: VenueSimulator
    md: KrakenMarketData
    manager: BookManager
    items: list[Any] = field(default_factory=list)
    statuses: list[BookStatus] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    venue_events: list[Event] = field(default_factory=list)
    execution: KrakenExecutionClient | None = None

    def move(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        ts = self.clock.now_ns()
        self.core.apply_market(BookDeltas(BTC, ts, ts, -1, -1, bids, asks))

    def in_sync(self) -> bool:
        book = self.manager.book(BTC)
        venue = self.core.book(BTC)
        return bool(
            book and book.valid and book.top_bids(20) == venue.top_bids(20) and book.top_asks(20) == venue.top_asks(20)
        )

    def of(self, kind: type[Event], cid: str) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and getattr(e, "client_order_id", None) == cid]


@asynccontextmanager
async def environment(*, execution: bool = False) -> AsyncIterator[Env]:
    clock = LiveClock()
    core = SimulatorCore("kraken", [INST], balances={"USD": P("100000"), "BTC": P("1")}, clock=clock)
    core.apply_market(static_book(clock.now_ns()))
    sim = VenueSimulator(core, connector.CONNECTOR.dialect(), connector.test_credentials())
    await sim.start()
    urls = connector.local_urls(sim.base_url)
    bus = MessageBus()
    holder: dict[str, Env] = {}
    own: list[str] = []

    def on_item(item: Any) -> None:
        env = holder["env"]
        env.items.append(item)
        if isinstance(item, BookDeltas):
            env.manager.on_deltas(item)
        elif isinstance(item, BookStatus) and not item.valid:
            own.append(item.reason)
            env.manager.invalidate(item.instrument_id, item.reason)

    md = KrakenMarketData([BTC], on_item, clock, urls, depth=25)
    manager = BookManager(
        bus, clock, {"kraken": md.sequence_rule}, {"kraken": md.checksum_fn}, depth_limits={"kraken": 25}
    )
    env = Env(clock, core, sim, md, manager)
    holder["env"] = env

    def on_status(status: BookStatus) -> None:
        env.statuses.append(status)
        if not status.valid and status.reason not in own:
            md.resync(status.instrument_id, status.reason)

    bus.subscribe(topics.BOOK_STATUS, on_status)
    core.add_private_listener(env.venue_events.append)
    try:
        await md.start()
        if execution:
            env.execution = KrakenExecutionClient(
                connector.test_credentials(), {BTC: INST}, clock, env.events.append, urls,
                rest_config=REST, rate_limit_patience_s=3.0,
            )  # fmt: skip
            await env.execution.start()
        await until(env.in_sync, "the first snapshot")
        yield env
    finally:
        if env.execution is not None:
            await env.execution.stop()
        await md.stop()
        await sim.stop()


def test_books_follow_the_simulator_and_recover_from_faults() -> None:
    async def main() -> None:
        async with environment() as env:
            # Updates inside the range, a delete that pulls a level in from below, a new best level.
            env.move([(MID, P("2")), (MID - 3 * TICK, 0)], [(MID + 2 * TICK, P("0.1"))])
            env.move([(MID, P("3"))], [(MID + TICK, 0)])
            env.move([(MID - 40 * TICK, P("1"))], [(MID + 40 * TICK, P("1"))])  # below the subscribed 25
            await until(env.in_sync, "books equal after updates")
            book = env.manager.book(BTC)
            assert book is not None and book.checksums_verified >= 4 and len(book.bids) <= 25
            ts = env.clock.now_ns()
            env.core.apply_market(Trade(BTC, ts, ts, MID + 2 * TICK, P("0.05"), Side.BUY, "x1"))
            await until(lambda: any(isinstance(i, Trade) for i in env.items), "a public trade")
            trade = next(i for i in env.items if isinstance(i, Trade))
            assert (trade.price, trade.qty, trade.aggressor) == (MID + 2 * TICK, P("0.05"), Side.BUY)
            quotes = [i for i in env.items if isinstance(i, Quote)]
            assert quotes and quotes[-1].bid == MID and quotes[-1].bid_qty == P("3")

            # The server drops every socket: invalid, then resubscribed and resynced.
            since = len(env.statuses)
            env.sim.faults.drop_connections()
            await until(lambda: any(not s.valid for s in env.statuses[since:]), "invalid after the drop")
            env.move([(MID - TICK, P("7"))], [])
            await until(lambda: env.statuses[-1].valid and env.in_sync(), "resynced after reconnect")
            assert env.statuses[-1].reason == "resynced" and env.md.counters.reconnects == 1

            # A wrong checksum: the client resubscribes that book.
            since = len(env.statuses)
            env.sim.faults.corrupt_checksum()
            env.move([(MID - 2 * TICK, P("4"))], [])
            await until(lambda: env.sim.faults.consumed["corrupt_checksum"] == 1, "the corrupted update")
            await until(lambda: env.statuses[-1].valid and len(env.statuses) > since + 1, "resynced after checksum")
            assert any(not s.valid and s.reason.startswith("checksum") for s in env.statuses[since:])
            await until(env.in_sync, "books equal after the checksum resync")

            # A lost update (no sequence ids on Kraken): the next checksum catches it.
            since = len(env.statuses)
            env.sim.faults.skip_sequence()
            env.move([(MID, P("9"))], [])
            env.move([(MID - TICK, P("8"))], [])
            await until(
                lambda: env.statuses[-1].valid and len(env.statuses) > since + 1, "resynced after a lost update"
            )
            await until(env.in_sync, "books equal after the lost update")
            assert env.md.counters.resyncs_requested >= 2

            # Malformed frames: counted, the feed goes on.
            env.sim.faults.send_malformed(
                b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"pri'
            )
            await until(lambda: env.md.counters.malformed == 1, "the malformed frame counted")
            env.move([(MID - 5 * TICK, P("1.25"))], [])
            await until(env.in_sync, "books equal after the malformed frame")
            assert env.md.counters.malformed == 1 and env.md.counters.reconnects == 1

    run(main())


def _submit(cid: str, side: Side, qty: str, price: int | None, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        ts=0, strategy_id="t", instrument_id=BTC, side=side, qty=P(qty), price=price,
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET, client_order_id=cid, **kw,
    )  # fmt: skip


def test_orders_through_the_simulator() -> None:
    async def main() -> None:
        async with environment(execution=True) as env:
            ex = env.execution
            assert ex is not None and ex.stream_live
            await until(lambda: any(isinstance(e, AccountSnapshot) for e in env.events), "the balances snapshot")

            # Post-only limit rests; cancel.
            ex.submit(_submit("maker1", Side.BUY, "0.01", MID - 5 * TICK, post_only=True))
            await until(lambda: env.of(OrderAccepted, "maker1"), "maker1 accepted")
            view = env.core.order("maker1")
            assert view is not None and env.of(OrderAccepted, "maker1")[0].venue_order_id == view.venue_order_id
            assert len(env.of(OrderAccepted, "maker1")) == 1  # REST reply and stream: reported once
            ex.cancel(CancelOrder(ts=0, strategy_id="t", instrument_id=BTC, client_order_id="maker1"))
            await until(lambda: env.of(OrderCanceled, "maker1"), "maker1 canceled")
            assert env.core.open_orders() == []

            # Post-only that would cross: refused.
            ex.submit(_submit("cross1", Side.BUY, "0.01", MID + TICK, post_only=True))
            await until(lambda: env.of(OrderRejected, "cross1"), "cross1 refused")
            assert env.of(OrderRejected, "cross1")[0].reason is RejectReason.POST_ONLY_WOULD_CROSS

            # IOC crossing the ask: the simulator's fill, once, with its fee in USD.
            long_id = "taker0123456789abcd"  # 19 characters: travels as a 32-hex cl_ord_id
            ex.submit(_submit(long_id, Side.BUY, "0.3", MID + TICK, time_in_force=TimeInForce.IOC))
            await until(lambda: env.of(OrderFilled, long_id), "the IOC fill")
            await asyncio.sleep(0.1)
            venue_fills = [e for e in env.venue_events if isinstance(e, OrderFilled) and e.client_order_id == long_id]
            fills = env.of(OrderFilled, long_id)
            assert [(f.trade_id, f.last_qty, f.last_price, f.fee, f.fee_currency, f.liquidity) for f in fills] == [
                (v.trade_id, v.last_qty, v.last_price, v.fee, "USD", LiquiditySide.TAKER) for v in venue_fills
            ]
            assert sum(f.last_qty for f in fills) == P("0.3") and fills[0].last_price == MID + TICK

            # Native amend, then cancel-all of two orders.
            ex.submit(_submit("rest1", Side.BUY, "0.01", MID - 5 * TICK))
            ex.submit(_submit("rest2", Side.SELL, "0.01", MID + 9 * TICK))
            await until(lambda: env.of(OrderAccepted, "rest1") and env.of(OrderAccepted, "rest2"), "two resting")
            ex.amend(
                AmendOrder(ts=0, strategy_id="t", instrument_id=BTC, client_order_id="rest1", price=MID - 6 * TICK)
            )
            await until(lambda: env.of(OrderAmended, "rest1"), "rest1 amended")
            await asyncio.sleep(0.1)
            (amended,) = env.of(OrderAmended, "rest1")
            assert (amended.price, amended.qty) == (MID - 6 * TICK, P("0.01"))
            venue_view = env.core.order("rest1")
            assert venue_view is not None and venue_view.price == MID - 6 * TICK
            ex.cancel_all(CancelAllOrders(ts=0, strategy_id="t"))
            await until(lambda: env.of(OrderCanceled, "rest1") and env.of(OrderCanceled, "rest2"), "cancel-all")
            assert env.core.open_orders() == []

            # Query by client id: known and unknown.
            ex.query(QueryOrder(ts=0, instrument_id=BTC, client_order_id=long_id))
            ex.query(QueryOrder(ts=0, instrument_id=BTC, client_order_id="never1"))
            await until(lambda: env.of(OrderStatusReport, long_id) and env.of(OrderStatusReport, "never1"), "reports")
            report = env.of(OrderStatusReport, long_id)[0]
            assert report.status in (OrderStatus.FILLED, OrderStatus.EXPIRED) and report.filled_qty == P("0.3")
            assert env.of(OrderStatusReport, "never1")[0].status is None
            assert len(env.of(OrderFilled, long_id)) == len(fills)  # the query re-sent nothing already known

            # Venue refusals and a retried rate limit.
            env.sim.faults.reject_next("EOrder:Insufficient funds")
            ex.submit(_submit("poor1", Side.BUY, "0.01", MID - 5 * TICK))
            await until(lambda: env.of(OrderRejected, "poor1"), "poor1 refused")
            assert env.of(OrderRejected, "poor1")[0].reason is RejectReason.INSUFFICIENT_BALANCE
            assert env.core.order("poor1") is None
            env.sim.faults.rate_limit_next(1)
            ex.submit(_submit("limited1", Side.BUY, "0.01", MID - 7 * TICK))
            await until(lambda: env.of(OrderAccepted, "limited1"), "accepted after the rate limit")
            assert env.sim.faults.consumed["rate_limit_next"] == 1 and not env.of(OrderRejected, "limited1")

            # Reconciliation reads match the simulator.
            balances = await ex.fetch_balances()
            assert [(b.currency, b.total, b.locked) for b in balances.balances] == [
                (b.currency, b.total, b.locked) for b in env.core.balances().balances
            ]
            (open_report,) = await ex.fetch_open_orders()
            assert (open_report.client_order_id, open_report.price, open_report.status) == (
                "limited1", MID - 7 * TICK, OrderStatus.ACCEPTED,
            )  # fmt: skip

            # A client whose stream is not running recovers the fills over REST.
            quiet: list[Event] = []
            other = KrakenExecutionClient(
                connector.test_credentials(), {BTC: INST}, env.clock, quiet.append,
                connector.local_urls(env.sim.base_url), rest_config=REST,
            )  # fmt: skip
            try:
                other.query(QueryOrder(ts=0, instrument_id=BTC, client_order_id=long_id))
                await until(lambda: any(isinstance(e, OrderStatusReport) for e in quiet), "the quiet client's report")
                recovered = [e for e in quiet if isinstance(e, OrderFilled)]
                assert [(f.trade_id, f.last_qty, f.fee) for f in recovered] == [
                    (f.trade_id, f.last_qty, f.fee) for f in fills
                ]
                assert isinstance(quiet[-1], OrderStatusReport)
            finally:
                await other.stop()

            # A wrong secret: refused, nothing reaches the book.
            key, secret, _, _ = connector.test_credentials().reveal_all()
            assert secret is not None
            wrong = Credentials("kraken", "wrong", key, secret[1] + secret[0] + secret[2:])
            bad: list[Event] = []
            forged = KrakenExecutionClient(
                wrong, {BTC: INST}, env.clock, bad.append, connector.local_urls(env.sim.base_url), rest_config=REST
            )
            try:
                forged.submit(_submit("forged1", Side.BUY, "0.01", MID - 5 * TICK))
                await until(lambda: any(isinstance(e, OrderRejected) for e in bad), "the forged order refused")
                assert env.core.order("forged1") is None
            finally:
                await forged.stop()

    run(main())
