"""The OKX connectors end to end against the OKX simulator dialect on a real VenueSimulator (loopback).

Books (classic snapshot + updates, and the 2026 REST-snapshot procedure), faults (disconnect, skipped
sequence, corrupted checksum, malformed frames), and the order lifecycle through the execution client
(post-only, cancel, IOC fill, amend, cancel-all, query, rejections, rate limits, a held reply, swaps
in contracts). Each test runs its own simulator; the file takes a few seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.model import topics
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, MarketData, Quote, Trade
from tradeloop.model.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
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
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.okx.book_sync import BookProcedure
from tradeloop.venues.okx.connector import CONNECTOR, local_urls
from tradeloop.venues.okx.execution import OkxExecutionClient
from tradeloop.venues.okx.instruments import instruments_by_symbol
from tradeloop.venues.okx.market_data import OkxMarketData
from tradeloop.venues.okx.simulator import OkxDialect
from tradeloop.venues.okx.spec import HEARTBEAT, SEQUENCE_RULE, WS_PUBLIC
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.backoff import BackoffSpec
from tradeloop.venues.transport.rest import RestConfig
from tradeloop.venues.transport.ws import WsSpec

P = fixed.parse
SPECS = instruments_by_symbol()
BTC = SPECS["BTC-USDT"].instrument()
ETH = SPECS["ETH-USDT"].instrument()
SWAP = SPECS["BTC-USDT-SWAP"].instrument()
CREDS = CONNECTOR.test_credentials()
REST = RestConfig(timeout_s=1.0, connect_timeout_s=1.0, max_budget_wait_s=3.0)


def static_book(inst: Instrument, mid: str) -> BookDeltas:
    tick, m = inst.tick_size, P(mid)
    bids = [(m - k * tick, P("0.5") + k * inst.lot_size * 1000) for k in range(15)]
    asks = [(m + (k + 1) * tick, P("0.5") + k * inst.lot_size * 1000) for k in range(15)]
    return BookDeltas(inst.id, 0, 0, 1, 1, bids, asks, snapshot=True)


@dataclass
class Rig:
    core: SimulatorCore
    sim: VenueSimulator
    dialect: OkxDialect
    md: OkxMarketData
    ex: OkxExecutionClient
    manager: BookManager
    clock: LiveClock
    items: list[MarketData] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    venue_events: list[Event] = field(default_factory=list)
    published: list[BookStatus] = field(default_factory=list)
    """What the engine's book manager published (``resynced`` once a book is rebuilt)."""
    n: int = 0

    def move(self, inst: Instrument, count: int = 1) -> None:
        """``count`` book updates of ``inst`` below the touch (add, then change, then delete levels)."""
        base = self.core.book(inst.id).top_bids(1)[0][0] - 20 * inst.tick_size
        for _ in range(count):
            self.n += 1
            ts = self.clock.now_ns()
            price = base - (self.n % 7) * inst.tick_size
            qty = 0 if self.n % 5 == 0 else inst.lot_size * (100 + self.n)
            self.core.apply_market(BookDeltas(inst.id, ts, ts, self.n, self.n, [(price, qty)], []))

    def equal(self, inst: Instrument) -> bool:
        book = self.manager.book(inst.id)
        venue = self.core.book(inst.id)
        return bool(
            book and book.valid and book.top_bids(20) == venue.top_bids(20) and book.top_asks(20) == venue.top_asks(20)
        )

    def statuses(self, inst: Instrument) -> list[BookStatus]:
        return [i for i in self.items if isinstance(i, BookStatus) and i.instrument_id == inst.id]

    def of(self, cid: str) -> list[Event]:
        return [e for e in self.events if isinstance(e, OrderEventBase) and e.client_order_id == cid]

    def submit(self, cid: str, side: Side, qty: str, price: str | None, inst: Instrument = BTC, **kw: Any) -> None:
        self.ex.submit(
            SubmitOrder(
                ts=self.clock.now_ns(),
                strategy_id="t",
                instrument_id=inst.id,
                side=side,
                qty=P(qty),
                price=P(price) if price else None,
                client_order_id=cid,
                **kw,
            )
        )


async def until(cond: Callable[[], bool], what: str, timeout: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def rig(
    insts: tuple[Instrument, ...] = (BTC,),
    *,
    ws_snapshot: bool = True,
    procedure: BookProcedure = BookProcedure.AUTO,
    md_spec: WsSpec | None = None,
) -> AsyncIterator[Rig]:
    clock = LiveClock()
    balances = {"USDT": P("100000"), "BTC": P("1"), "ETH": P("10")}
    core = SimulatorCore("okx", list(insts), balances=balances, clock=clock)
    for inst in insts:
        core.apply_market(static_book(inst, "60000" if inst.base == "BTC" else "3000"))
    dialect = OkxDialect(ws_snapshot=ws_snapshot)
    sim = VenueSimulator(core, dialect, CREDS)
    await sim.start()
    urls = local_urls(sim.base_url)
    bus = MessageBus()
    holder: list[Rig] = []

    def on_item(item: MarketData) -> None:
        holder[0].items.append(item)
        hub.on_data(item)

    md = OkxMarketData(
        [i.id for i in insts], on_item, clock, urls, procedure=procedure, snapshot_retry_s=0.05, ws_spec=md_spec
    )
    manager = BookManager(bus, clock, {"okx": SEQUENCE_RULE}, {"okx": md.checksum_fn})
    hub = MarketDataHub(bus, manager)
    events: list[Event] = []
    ex = OkxExecutionClient(CREDS, {i.id: i for i in insts}, clock, events.append, urls, rest_config=REST)
    r = Rig(core, sim, dialect, md, ex, manager, clock, events=events)
    holder.append(r)
    core.add_private_listener(r.venue_events.append)
    bus.subscribe(topics.BOOK_STATUS, r.published.append)
    try:
        await ex.start()
        await md.start()
        for inst in insts:
            if not ws_snapshot:
                r.move(inst)  # the REST procedure starts at the first update
            await until(lambda i=inst: r.equal(i), f"{inst.id} book in sync")  # type: ignore[misc]
        yield r
    finally:
        with suppress(Exception):
            await md.stop()
        with suppress(Exception):
            await ex.stop()
        await sim.stop()


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


def test_books_trades_and_bbo_follow_the_simulator() -> None:
    async def main() -> None:
        async with rig() as r:
            r.move(BTC, 60)
            await until(lambda: r.equal(BTC) and r.md.sync(BTC.id).book.last_seq == r.dialect.seq("BTC-USDT"), "sync")
            assert r.manager.book(BTC.id).checksums_verified >= 60  # type: ignore[union-attr]
            ts = r.clock.now_ns()
            r.core.apply_market(Trade(BTC.id, ts, ts, P("60000.1"), P("0.25"), Side.BUY, "T77"))
            await until(lambda: any(isinstance(i, Trade) for i in r.items), "a trade")
            (trade,) = [i for i in r.items if isinstance(i, Trade)]
            assert (trade.price, trade.qty, trade.trade_id) == (P("60000.1"), P("0.25"), "T77")
            quote = [i for i in r.items if isinstance(i, Quote)][-1]
            assert (quote.bid, quote.ask) == (r.core.book(BTC.id).best_bid(), r.core.book(BTC.id).best_ask())
            assert r.md.counters.malformed == 0 and not [s for s in r.statuses(BTC) if not s.valid]

    run(main())


def test_disconnect_invalidates_then_reconnects_and_resyncs() -> None:
    async def main() -> None:
        async with rig() as r:
            r.sim.faults.drop_connections()
            await until(lambda: any(not s.valid for s in r.statuses(BTC)), "the book marked invalid")
            r.move(BTC, 5)
            await until(lambda: r.equal(BTC), "the book resynced after the reconnect")
            assert r.md.counters.reconnects >= 1 and r.manager.counters(BTC.id).resyncs == 1
            r.submit("afterdrop1", Side.BUY, "0.01", "59990", post_only=True)  # the private stream is back too
            await until(lambda: any(isinstance(e, OrderAccepted) for e in r.of("afterdrop1")), "an acceptance")

    run(main())


def test_skipped_sequence_and_bad_checksum_resync_only_that_book() -> None:
    async def main() -> None:
        async with rig((BTC, ETH)) as r:
            for fault, expected in (("skip", "sequence gap"), ("corrupt", "checksum mismatch")):
                before = len(r.statuses(BTC))
                if fault == "skip":
                    r.sim.faults.skip_sequence(1)
                else:
                    r.sim.faults.corrupt_checksum(1)
                r.move(BTC, 2)
                await until(lambda b=before: any(not s.valid for s in r.statuses(BTC)[b:]), f"{fault} detected")  # type: ignore[misc]
                reasons = [s.reason for s in r.statuses(BTC)[before:] if not s.valid]
                assert reasons and reasons[0].startswith(expected), reasons
                r.move(BTC, 3)
                await until(lambda: r.equal(BTC), f"BTC resynced after {fault}")
                assert r.published[-1] == BookStatus(BTC.id, r.published[-1].ts, True, "resynced")
            r.move(ETH, 3)
            await until(lambda: r.equal(ETH), "ETH in sync")
            assert [s for s in r.statuses(ETH) if not s.valid] == [], "the other book was never touched"
            assert r.md.sync(BTC.id).failures == 2 and r.md.sync(ETH.id).failures == 0

    run(main())


def test_malformed_frames_are_counted_and_the_feed_continues() -> None:
    async def main() -> None:
        async with rig() as r:
            r.sim.faults.send_malformed(b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{')
            await until(lambda: r.md.counters.malformed == 1, "the malformed frame counted")
            r.sim.faults.send_malformed(
                b'{"arg":{"channel":"trades","instId":"DOGE-USDT"},"data":[{"instId":'
                b'"DOGE-USDT","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"}]}'
            )
            await until(lambda: r.md.counters.malformed == 2, "the unknown symbol counted")
            r.move(BTC, 10)
            await until(lambda: r.equal(BTC) and r.md.sync(BTC.id).book.last_seq == r.dialect.seq("BTC-USDT"), "sync")
            assert not [s for s in r.statuses(BTC) if not s.valid]

    run(main())


def test_order_lifecycle() -> None:
    async def main() -> None:
        async with rig() as r:
            r.submit("po1", Side.BUY, "0.01", "59990", post_only=True)
            await until(lambda: any(isinstance(e, OrderAccepted) for e in r.of("po1")), "po1 accepted")
            (acc,) = r.of("po1")
            assert isinstance(acc, OrderAccepted) and acc.venue_order_id == r.core.order("po1").venue_order_id  # type: ignore[union-attr]
            r.ex.cancel(CancelOrder(ts=0, strategy_id="t", instrument_id=BTC.id, client_order_id="po1"))
            await until(lambda: any(isinstance(e, OrderCanceled) for e in r.of("po1")), "po1 canceled")
            # IOC buy through the best ask: the simulator's fill, exactly
            r.submit("ioc1", Side.BUY, "0.2", "60000.1", time_in_force=TimeInForce.IOC)
            await until(lambda: any(isinstance(e, OrderFilled) for e in r.of("ioc1")), "ioc1 filled")
            (fill,) = [e for e in r.of("ioc1") if isinstance(e, OrderFilled)]
            (venue_fill,) = [e for e in r.venue_events if isinstance(e, OrderFilled) and e.client_order_id == "ioc1"]
            assert (fill.trade_id, fill.last_qty, fill.last_price, fill.fee, fill.liquidity) == (
                venue_fill.trade_id,
                venue_fill.last_qty,
                venue_fill.last_price,
                venue_fill.fee,
                venue_fill.liquidity,
            )
            assert fill.last_qty == P("0.2") and fill.fee > 0 and fill.fee_currency == "USDT"
            # amend a resting order
            r.submit("rest1", Side.BUY, "0.01", "59980")
            await until(lambda: any(isinstance(e, OrderAccepted) for e in r.of("rest1")), "rest1 accepted")
            r.ex.amend(
                AmendOrder(
                    ts=0,
                    strategy_id="t",
                    instrument_id=BTC.id,
                    client_order_id="rest1",
                    price=P("59970.5"),
                    qty=P("0.02"),
                )
            )
            await until(lambda: any(isinstance(e, OrderAmended) for e in r.of("rest1")), "rest1 amended")
            (amended,) = [e for e in r.of("rest1") if isinstance(e, OrderAmended)]
            assert (amended.price, amended.qty) == (P("59970.5"), P("0.02"))
            assert (r.core.order("rest1").price, r.core.order("rest1").qty) == (P("59970.5"), P("0.02"))  # type: ignore[union-attr]
            # cancel-all: orders-pending + cancel-batch-orders
            r.submit("rest2", Side.SELL, "0.01", "60050")
            await until(lambda: len(r.core.open_orders()) == 2, "two resting orders")
            r.ex.cancel_all(CancelAllOrders(ts=0, strategy_id="t"))
            await until(lambda: r.core.open_orders() == [], "everything canceled at the venue")
            await until(
                lambda: all(any(isinstance(e, OrderCanceled) for e in r.of(c)) for c in ("rest1", "rest2")),
                "cancels pushed",
            )
            # query by client id
            r.ex.query(QueryOrder(ts=0, instrument_id=BTC.id, client_order_id="ioc1"))
            r.ex.query(QueryOrder(ts=0, instrument_id=BTC.id, client_order_id="nosuch1"))
            await until(lambda: any(isinstance(e, OrderStatusReport) for e in r.of("nosuch1")), "reports")
            await until(lambda: any(isinstance(e, OrderStatusReport) for e in r.of("ioc1")), "reports")
            (report,) = [e for e in r.of("ioc1") if isinstance(e, OrderStatusReport)]
            assert (report.status, report.filled_qty, report.qty) == (OrderStatus.FILLED, P("0.2"), P("0.2"))
            assert [e for e in r.of("ioc1") if isinstance(e, OrderFilled)] == [fill], "no duplicate fill"
            (unknown,) = [e for e in r.of("nosuch1") if isinstance(e, OrderStatusReport)]
            assert unknown.status is None
            balances = await r.ex.fetch_balances()
            assert {b.currency: b.total for b in balances.balances} == {
                b.currency: b.total for b in r.core.balances().balances
            }

    run(main())


def test_rejections_rate_limits_and_a_held_reply() -> None:
    async def main() -> None:
        async with rig() as r:
            r.sim.faults.reject_next("51008")
            r.submit("poor1", Side.BUY, "0.01", "59990")
            await until(lambda: bool(r.of("poor1")), "poor1 answered")
            (rej,) = r.of("poor1")
            assert isinstance(rej, OrderRejected) and rej.reason is RejectReason.INSUFFICIENT_BALANCE
            r.sim.faults.rate_limit_next(1)
            r.submit("rl1", Side.BUY, "0.01", "59990")
            await until(lambda: any(isinstance(e, OrderAccepted) for e in r.of("rl1")), "rl1 accepted after a retry")
            assert r.sim.faults.consumed["rate_limit_next"] == 1 and len(r.core.open_orders()) == 1
            # a post-only order that would take: OKX accepts and cancels it (cancelSource 31)
            r.submit("cross1", Side.BUY, "0.01", "60000.1", post_only=True)
            await until(lambda: any(isinstance(e, OrderRejected | OrderCanceled) for e in r.of("cross1")), "cross1")
            last = r.of("cross1")[-1]
            assert (isinstance(last, OrderRejected) and last.reason is RejectReason.POST_ONLY_WOULD_CROSS) or (
                isinstance(last, OrderCanceled) and "post-only" in last.reason
            ), r.of("cross1")
            # a reply held past the client's timeout: nothing emitted, then the query resolves it
            r.sim.faults.delay_next_reply(1.5)
            r.submit("slow1", Side.BUY, "0.01", "59985")
            await asyncio.sleep(1.2)
            assert not [e for e in r.of("slow1") if not isinstance(e, OrderAccepted)]
            r.ex.query(QueryOrder(ts=0, instrument_id=BTC.id, client_order_id="slow1"))
            await until(lambda: any(isinstance(e, OrderStatusReport) for e in r.of("slow1")), "slow1 report")
            (report,) = [e for e in r.of("slow1") if isinstance(e, OrderStatusReport)]
            assert report.status is OrderStatus.ACCEPTED
            assert sum(1 for e in r.venue_events if isinstance(e, OrderAccepted) and e.client_order_id == "slow1") == 1
            # a command OKX cannot take is refused before anything is sent
            r.submit("mkt1", Side.BUY, "0.01", None, order_type=OrderType.MARKET, post_only=True)
            await until(lambda: bool(r.of("mkt1")), "mkt1 refused")
            assert isinstance(r.of("mkt1")[0], OrderRejected) and r.core.order("mkt1") is None

    run(main())


def test_rest_snapshot_procedure_of_2026() -> None:
    async def main() -> None:
        async with rig(ws_snapshot=False) as r:
            sync = r.md.sync(BTC.id)
            assert sync.ws_snapshots == 0 and sync.rest_snapshots == 1
            r.move(BTC, 20)
            await until(lambda: r.equal(BTC) and sync.book.last_seq == r.dialect.seq("BTC-USDT"), "sync")
            assert r.manager.book(BTC.id).checksums_verified == 0  # type: ignore[union-attr]  # checksum 0
            r.sim.faults.skip_sequence(1)
            r.move(BTC, 2)
            await until(lambda: sync.failures == 1, "the gap")
            r.move(BTC, 3)
            await until(lambda: r.equal(BTC) and sync.rest_snapshots == 2, "resynced from a new REST snapshot")
            assert r.published[-1].valid and r.published[-1].reason == "resynced"

    run(main())


def test_swap_orders_and_book_in_contracts() -> None:
    async def main() -> None:
        async with rig((SWAP,)) as r:
            r.move(SWAP, 10)
            await until(lambda: r.equal(SWAP), "swap book (base units) equal to the simulator's")
            assert r.manager.book(SWAP.id).checksums_verified >= 10  # type: ignore[union-attr]
            # 0.01 BTC = 1 contract of 0.01 BTC
            r.submit("sw1", Side.BUY, "0.01", "60000.1", inst=SWAP, time_in_force=TimeInForce.IOC)
            await until(lambda: any(isinstance(e, OrderFilled) for e in r.of("sw1")), "swap fill")
            (fill,) = [e for e in r.of("sw1") if isinstance(e, OrderFilled)]
            assert fill.last_qty == P("0.01") and fill.instrument_id == InstrumentId("okx", "BTC-USDT-SWAP")
            assert r.core.order("sw1").qty == P("0.01")  # type: ignore[union-attr]

    run(main())


def test_stalled_feed_is_caught_by_the_missing_pong_and_resynced() -> None:
    fast = msgspec.structs.replace(
        WS_PUBLIC,
        heartbeat=msgspec.structs.replace(HEARTBEAT, interval_s=0.15, pong_timeout_s=0.25),
        backoff=BackoffSpec(base_s=0.05, cap_s=0.2),
    )

    async def main() -> None:
        async with rig(md_spec=fast) as r:
            await asyncio.sleep(0.4)  # idle: text pings answered with pongs keep the connection
            ws = r.md.ws
            assert ws is not None and ws.counters.pings_sent >= 1 and ws.counters.pongs_received >= 1
            assert ws.counters.heartbeat_timeouts == 0
            r.sim.faults.stall_feed(0.8)
            r.move(BTC, 3)  # not sent: the feed is stalled
            await until(lambda: ws.counters.heartbeat_timeouts >= 1, "the missing pong noticed")
            await until(lambda: any(not s.valid for s in r.statuses(BTC)), "the book marked invalid")
            await asyncio.sleep(0.9)
            r.move(BTC, 3)
            await until(lambda: r.equal(BTC), "the book resynced once the feed is back", timeout=6.0)

    run(main())
