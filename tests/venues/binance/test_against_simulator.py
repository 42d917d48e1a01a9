"""The Binance connectors end to end against the Binance dialect of the local simulator (127.0.0.1).

A :class:`SimulatorCore` holds spot BTCUSDT with a fixed book; the market-data client feeds an
engine :class:`BookManager` (which answers its own invalid statuses with ``resync``), the execution
client reports into a list. Faults come from the simulator's fault plan.
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
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.model import topics
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, MarketData
from tradeloop.model.enums import LiquiditySide, OrderStatus, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderEventBase,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.binance.connector import CONNECTOR
from tradeloop.venues.binance.execution import BinanceExecutionClient
from tradeloop.venues.binance.market_data import BinanceMarketData
from tradeloop.venues.binance.spec import MSG_INSUFFICIENT_BALANCE
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.backoff import BackoffSpec
from tradeloop.venues.transport.rest import RestConfig
from tradeloop.venues.transport.ws import WsSpec

P = fixed.parse
INST: Instrument = CONNECTOR.instruments()[0]
IID = INST.id
TICK = INST.tick_size
MID = P("60000")
UNIT = P("0.01")


def static_book(ts: int) -> BookDeltas:
    bids = [(MID - k * TICK, UNIT * (k + 1)) for k in range(10)]
    asks = [(MID + (k + 1) * TICK, UNIT * (k + 1)) for k in range(10)]
    return BookDeltas(IID, ts, ts, 1, 1, bids, asks, snapshot=True)


@dataclass
class Rig:
    clock: LiveClock
    core: SimulatorCore
    sim: VenueSimulator
    md: BinanceMarketData
    ex: BinanceExecutionClient
    books: BookManager
    events: list[Event] = field(default_factory=list)
    statuses: list[BookStatus] = field(default_factory=list)
    seq: int = 1

    def move(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """A change of the venue's own book (the simulator's market)."""
        self.seq += 1
        ts = self.clock.now_ns()
        self.core.apply_market(BookDeltas(IID, ts, ts, self.seq, self.seq, bids, asks))

    def books_equal(self) -> bool:
        book = self.books.book(IID)
        venue = self.core.book(IID)
        return bool(book is not None and book.valid and book.bids == venue.bids and book.asks == venue.asks)

    def of(self, cid: str, kind: type[Event] | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if isinstance(e, OrderEventBase) and e.client_order_id == cid and (kind is None or isinstance(e, kind))
        ]

    def submit(self, cid: str, side: Side, qty: int, price: int | None, **kw: Any) -> None:
        self.ex.submit(
            SubmitOrder(
                ts=self.clock.now_ns(), strategy_id="t", instrument_id=IID, side=side, qty=qty, price=price,
                client_order_id=cid, **kw,
            )
        )  # fmt: skip


async def until(cond: Callable[[], bool], what: str, timeout: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    clock = LiveClock()
    core = SimulatorCore("binance", [INST], balances={"USDT": P("100000"), "BTC": P("1")}, clock=clock)
    core.apply_market(static_book(clock.now_ns()))
    sim = VenueSimulator(core, CONNECTOR.dialect(), CONNECTOR.test_credentials())
    await sim.start()
    urls = CONNECTOR.local_urls(sim.base_url)
    bus = MessageBus()
    hubs: list[MarketDataHub] = []

    def on_item(item: MarketData) -> None:
        hubs[0].on_data(item)

    quick = WsSpec(url=urls.ws_public, stale_after_s=5.0, backoff=BackoffSpec(base_s=0.05, cap_s=0.2))
    md = BinanceMarketData([IID], on_item, clock, urls, ws_spec=quick)
    books = BookManager(bus, clock, {"binance": md.sequence_rule})
    hubs.append(MarketDataHub(bus, books))
    events: list[Event] = []
    config = RestConfig(timeout_s=1.0, connect_timeout_s=1.0, max_budget_wait_s=3.0)
    ex = BinanceExecutionClient(
        CONNECTOR.test_credentials(), {IID: INST}, clock, events.append, urls, rest_config=config
    )
    r = Rig(clock, core, sim, md, ex, books, events)

    def on_status(status: BookStatus) -> None:
        r.statuses.append(status)
        if not status.valid and status.reason.startswith("sequence gap"):
            md.resync(IID, status.reason)

    bus.subscribe(topics.BOOK_STATUS, on_status)
    try:
        await asyncio.wait_for(ex.start(), 5)
        await asyncio.wait_for(md.start(), 5)
        await until(r.books_equal, "the first book")
        yield r
    finally:
        await md.stop()
        await ex.stop()
        await sim.stop()


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro(), 20)

    asyncio.run(main())


def test_book_follows_the_simulator_and_resyncs_after_faults() -> None:
    async def scenario() -> None:
        async with rig() as r:
            # Updates (a new level, a changed one, a removed one) reach the engine's book.
            r.move([(MID - 20 * TICK, UNIT)], [(MID + TICK, 0), (MID + 2 * TICK, 7 * UNIT)])
            await until(r.books_equal, "the book after updates")
            assert r.books.book(IID).best_ask() == MID + 2 * TICK  # type: ignore[union-attr]

            # A skipped update id: gap -> invalid -> one book resynced from a new snapshot.
            r.sim.faults.skip_sequence(1)
            r.move([(MID - 21 * TICK, UNIT)], [])
            r.move([(MID - 22 * TICK, UNIT)], [])
            await until(lambda: r.md.counters.resyncs_requested >= 1 and r.books_equal(), "the resync after a gap")
            assert r.sim.faults.consumed["skip_sequence"] == 1
            assert any(not s.valid and s.reason.startswith("sequence gap") for s in r.statuses)

            # Dropped connections: every book invalid until the new connection's snapshot.
            before = len(r.statuses)
            r.sim.faults.drop_connections()
            await until(lambda: any(not s.valid for s in r.statuses[before:]), "an invalid status on the loss")
            r.move([(MID - 23 * TICK, UNIT)], [])
            await until(lambda: r.md.counters.reconnects >= 1 and r.books_equal(), "the book after a reconnect")
            assert r.statuses[-1].valid

            # Malformed frames are counted and the feed goes on.
            r.sim.faults.send_malformed(b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","U":')
            await until(lambda: r.md.counters.malformed == 1, "the malformed frame counted")
            r.move([(MID - 24 * TICK, 2 * UNIT)], [])
            await until(r.books_equal, "the book after a malformed frame")
            assert r.md.counters.malformed == 1

    run(scenario)


def test_orders_end_to_end() -> None:
    async def scenario() -> None:
        async with rig() as r:
            qty = P("0.002")
            # Post-only limit rests: accepted (once, though the reply and the stream both say so).
            r.submit("PO1", Side.BUY, qty, MID - 5 * TICK, post_only=True)
            await until(lambda: r.of("PO1", OrderAccepted), "PO1 accepted")
            await asyncio.sleep(0.1)
            assert len(r.of("PO1", OrderAccepted)) == 1
            view = r.core.order("PO1")
            assert view is not None and view.price == MID - 5 * TICK and view.status is OrderStatus.ACCEPTED

            # Amend the price: cancel/replace at the venue, one OrderAmended here, same client id.
            r.ex.amend(
                AmendOrder(ts=0, strategy_id="t", instrument_id=IID, client_order_id="PO1", price=MID - 6 * TICK)
            )
            await until(lambda: r.of("PO1", OrderAmended), "PO1 amended")
            await asyncio.sleep(0.1)
            assert [(o.client_order_id, o.price, o.qty) for o in r.core.open_orders()] == [("PO1", MID - 6 * TICK, qty)]
            assert not r.of("PO1", OrderCanceled) and len(r.of("PO1", OrderAccepted)) == 1

            # Reduce the size at the same price: keep-priority amend.
            r.ex.amend(AmendOrder(ts=0, strategy_id="t", instrument_id=IID, client_order_id="PO1", qty=P("0.001")))
            await until(lambda: len(r.of("PO1", OrderAmended)) == 2, "PO1 amended down")
            assert r.core.open_orders()[0].qty == P("0.001")

            # Cancel.
            r.ex.cancel(CancelOrder(ts=0, strategy_id="t", instrument_id=IID, client_order_id="PO1"))
            await until(lambda: r.of("PO1", OrderCanceled), "PO1 canceled")
            assert r.core.open_orders() == []

            # IOC crossing the ask: filled at the simulator's fill, fee in USDT, taker.
            r.submit("IOC1", Side.BUY, qty, MID + 3 * TICK, time_in_force=TimeInForce.IOC)
            await until(lambda: r.of("IOC1", OrderFilled), "IOC1 filled")
            await asyncio.sleep(0.1)
            fills = [e for e in r.of("IOC1", OrderFilled) if isinstance(e, OrderFilled)]
            venue_fills = [f for f in fills_at_venue(r, "IOC1")]
            assert [(f.trade_id, f.last_qty, f.last_price) for f in fills] == venue_fills
            assert sum(f.last_qty for f in fills) == qty and fills[0].last_price == MID + TICK
            assert all(f.liquidity is LiquiditySide.TAKER and f.fee_currency == "USDT" and f.fee > 0 for f in fills)

            # Cancel-all.
            for n in (1, 2):
                r.submit(f"CA{n}", Side.BUY, qty, MID - (5 + n) * TICK)
            await until(lambda: len(r.core.open_orders()) == 2, "two resting orders")
            r.ex.cancel_all(CancelAllOrders(ts=0, strategy_id="t", instrument_id=IID))
            await until(lambda: r.of("CA1", OrderCanceled) and r.of("CA2", OrderCanceled), "both canceled")
            assert r.core.open_orders() == []

            # Query by client id: the filled IOC, and an order the venue never saw.
            r.ex.query(QueryOrder(ts=0, instrument_id=IID, client_order_id="IOC1"))
            r.ex.query(QueryOrder(ts=0, instrument_id=IID, client_order_id="NEVER1"))
            await until(lambda: r.of("IOC1", OrderStatusReport) and r.of("NEVER1", OrderStatusReport), "two reports")
            (done,) = r.of("IOC1", OrderStatusReport)
            assert isinstance(done, OrderStatusReport) and done.status is OrderStatus.FILLED and done.filled_qty == qty
            (unknown,) = r.of("NEVER1", OrderStatusReport)
            assert isinstance(unknown, OrderStatusReport) and unknown.status is None

            # The venue's insufficient-balance error arrives as its reason; nothing reaches the venue.
            r.sim.faults.reject_next(MSG_INSUFFICIENT_BALANCE)
            r.submit("POOR1", Side.BUY, qty, MID - 5 * TICK)
            await until(lambda: r.of("POOR1", OrderRejected), "POOR1 rejected")
            (poor,) = r.of("POOR1", OrderRejected)
            assert isinstance(poor, OrderRejected) and poor.reason is RejectReason.INSUFFICIENT_BALANCE
            assert r.core.order("POOR1") is None

            # A 429 is waited out and the same order sent again: accepted once.
            r.sim.faults.rate_limit_next(1)
            r.submit("RL1", Side.BUY, qty, MID - 5 * TICK)
            await until(lambda: r.of("RL1", OrderAccepted), "RL1 accepted after the rate limit", timeout=6.0)
            assert r.sim.faults.consumed["rate_limit_next"] == 1
            assert [o.client_order_id for o in r.core.open_orders()] == ["RL1"]
            assert not r.of("RL1", OrderRejected)

            balances = await r.ex.fetch_balances()
            venue = {b.currency: (b.total, b.locked) for b in r.core.balances().balances}
            assert {b.currency: (b.total, b.locked) for b in balances.balances} == venue
            (open_report,) = await r.ex.fetch_open_orders()
            assert open_report.client_order_id == "RL1" and open_report.status is OrderStatus.ACCEPTED

    run(scenario)


def fills_at_venue(r: Rig, cid: str) -> list[tuple[str, int, int]]:
    """The simulator's own fills of ``cid``, with the trade ids its dialect gave them."""
    rows = [f for rec in r.sim.dialect._records.values() if rec.cid == cid for f in rec.fills]  # type: ignore[attr-defined]
    return [(str(f["id"]), P(f["qty"]), P(f["price"])) for f in rows]
