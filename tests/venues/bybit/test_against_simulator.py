"""The Bybit connectors end to end against the Bybit dialect of the local simulator (127.0.0.1, real sockets).

Market data: the client's books (through the engine's book manager) equal the simulator's after
updates; a dropped connection invalidates the book until the resubscribed snapshot; a skipped ``u``
is detected by the client and resynced; malformed frames are counted and the feed goes on.
Execution: post-only accepted, cancel, IOC crossing filled with the simulator's fill, amend, cancel-all,
query by client id, an insufficient-balance refusal, a rate-limit reply waited out and re-sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, Trade
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.venues.base import MarketItem
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.connector import CONNECTOR
from tradeloop.venues.bybit.execution import BybitExecutionClient
from tradeloop.venues.bybit.market_data import BybitMarketData
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.simulator import SimulatorCore, VenueSimulator

P = fixed.parse
INST = spec.INSTRUMENTS[spec.VENUE_SPOT][0]
IID = INST.id
TIMEOUT = 5.0


def _level_book(ts: int) -> BookDeltas:
    bids = [(P("60000") - n * P("0.5"), P("0.2") + n * P("0.01")) for n in range(8)]
    asks = [(P("60000.5") + n * P("0.5"), P("0.3") + n * P("0.01")) for n in range(8)]
    return BookDeltas(IID, ts, ts, 1, 1, bids, asks, snapshot=True)


def _delta(seq: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> BookDeltas:
    return BookDeltas(IID, seq, seq, seq, seq, [(P(p), P(q)) for p, q in bids], [(P(p), P(q)) for p, q in asks])


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _run(scenario: Callable[[VenueSimulator], Awaitable[None]], **sim_kwargs: Any) -> None:
    async def main() -> None:
        core = SimulatorCore(
            spec.VENUE_SPOT,
            [INST],
            balances=sim_kwargs.get("balances", {"USDT": P("100000"), "BTC": P("2")}),
            sim_config=SimVenueConfig(maker_fee=P("0.001"), taker_fee=P("0.001")),
        )
        core.apply_market(_level_book(core.clock.now_ns()))
        sim = VenueSimulator(core, CONNECTOR.dialect(), CONNECTOR.test_credentials())
        await sim.start()
        try:
            await asyncio.wait_for(scenario(sim), 20)
        finally:
            await sim.stop()

    asyncio.run(main())


class _Skewed(LiveClock):
    """A local clock 10 s behind (the venue's is the real one)."""

    def now_ns(self) -> int:
        return super().now_ns() - 10_000_000_000


class _Feed:
    """The engine side of market data: the connector's items into a real book manager."""

    def __init__(self) -> None:
        self.clock = LiveClock()
        self.manager = BookManager(MessageBus(), self.clock, {spec.VENUE_SPOT: spec.SEQUENCE_RULE})
        self.hub = MarketDataHub(MessageBus(), self.manager)
        self.items: list[MarketItem] = []

    def on_item(self, item: MarketItem) -> None:
        self.items.append(item)
        self.hub.on_data(item)

    def valid(self) -> bool:
        book = self.manager.books().get(IID)
        return book is not None and book.valid

    def same_as(self, core: SimulatorCore) -> bool:
        book = self.manager.books().get(IID)
        venue = core.book(IID)
        return book is not None and book.valid and book.bids == venue.bids and book.asks == venue.asks


def test_market_data_books_equal_the_simulator_and_survive_drops_gaps_and_bad_frames() -> None:
    async def scenario(sim: VenueSimulator) -> None:
        feed = _Feed()
        md = CONNECTOR.market_data([IID], feed.on_item, feed.clock, CONNECTOR.local_urls(sim.base_url))
        assert isinstance(md, BybitMarketData) and md.sequence_rule is spec.SEQUENCE_RULE and md.checksum_fn is None
        await md.start()
        try:
            await _until(lambda: feed.same_as(sim.core), "the first snapshot")
            sim.core.apply_market(_delta(2, [("60000", "0.7"), ("60000.25", "0.1")], [("60000.5", "0")]))
            sim.core.apply_market(Trade(IID, 5, 5, P("60001"), P("0.05"), Side.BUY, "T1"))
            await _until(lambda: feed.same_as(sim.core), "the books to match after deltas")
            assert sim.core.book(IID).best_bid() == P("60000.25") and sim.core.book(IID).best_ask() == P("60001")
            await _until(lambda: any(isinstance(i, Trade) for i in feed.items), "the trade")
            trade = next(i for i in feed.items if isinstance(i, Trade))
            assert (trade.price, trade.qty, trade.aggressor, trade.trade_id) == (P("60001"), P("0.05"), Side.BUY, "T1")
            await _until(lambda: any(type(i).__name__ == "Quote" for i in feed.items), "a best bid/ask quote")

            # drop: the book goes invalid, the reconnect resubscribes and the fresh snapshot resyncs it
            sim.faults.drop_connections()
            await _until(lambda: not feed.valid(), "the book to be invalidated")
            sim.core.apply_market(_delta(3, [("59999", "1.5")], []))
            await _until(lambda: feed.same_as(sim.core), "the resync after the drop", 10)
            assert md.counters.reconnects == 1
            assert any(isinstance(i, BookStatus) and not i.valid and "connection lost" in i.reason for i in feed.items)

            # a skipped u: the client sees the gap, marks the book invalid and resubscribes that book
            sim.faults.skip_sequence()
            sim.core.apply_market(_delta(4, [("60000.25", "0")], []))
            sim.core.apply_market(_delta(5, [], [("60001", "0.9")]))
            await _until(lambda: md.counters.resyncs_requested == 1, "the gap to be detected")
            await _until(lambda: feed.same_as(sim.core), "the resync after the gap")
            assert sim.faults.consumed["skip_sequence"] == 1
            assert any(isinstance(i, BookStatus) and "sequence gap" in i.reason for i in feed.items)

            # a stalled feed holds market frames (and pongs), then delivers them in order
            sim.faults.stall_feed(0.4)
            sim.core.apply_market(_delta(7, [("59997", "3")], []))
            await asyncio.sleep(0.2)
            assert not feed.same_as(sim.core)
            await _until(lambda: feed.same_as(sim.core), "the held frames after the stall")

            # malformed frames are counted; the feed goes on
            sim.faults.send_malformed(b'{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"s":"BTCUSDT","b":[["x')
            await _until(lambda: md.counters.malformed == 1, "the malformed frame to be counted")
            sim.core.apply_market(_delta(6, [("59998", "2")], []))
            await _until(lambda: feed.same_as(sim.core), "the feed after the malformed frame")
            assert md.counters.malformed == 1 and feed.valid()
        finally:
            await md.stop()

    _run(scenario)


class _Client:
    def __init__(self, sim: VenueSimulator, order_entry: str = "websocket") -> None:
        self.events: list[Event] = []
        self.clock = LiveClock()
        client = CONNECTOR.execution(
            CONNECTOR.test_credentials(),
            {IID: INST},
            self.clock,
            self.events.append,
            CONNECTOR.local_urls(sim.base_url),
            order_entry=order_entry,
        )
        assert isinstance(client, BybitExecutionClient)
        self.client = client
        self.n = 0

    def submit(self, side: Side, qty: str, price: str | None, **kw: Any) -> str:
        self.n += 1
        cid = f"T{self.n}x"
        order_type = OrderType.MARKET if price is None else OrderType.LIMIT
        self.client.submit(
            SubmitOrder(
                ts=self.clock.now_ns(),
                strategy_id="s",
                instrument_id=IID,
                side=side,
                qty=P(qty),
                price=P(price) if price else None,
                order_type=order_type,
                client_order_id=cid,
                **kw,
            )
        )
        return cid

    def of(self, cid: str, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and getattr(e, "client_order_id", None) == cid]

    async def wait(self, cid: str, kind: type[Any], n: int = 1) -> Any:
        await _until(lambda: len(self.of(cid, kind)) >= n, f"{kind.__name__} of {cid}")
        return self.of(cid, kind)[n - 1]


@pytest.mark.parametrize("order_entry", ["rest", "websocket"])
def test_execution_lifecycle_through_rest_and_the_private_stream(order_entry: str) -> None:
    """Order ops over REST, or over the trade socket (then only cancel-all, queries and balances use REST)."""

    async def scenario(sim: VenueSimulator) -> None:
        c = _Client(sim, order_entry)
        await c.client.start()
        try:
            # post-only limit below the touch: accepted (confirmed on the order stream), then canceled
            cid = c.submit(Side.BUY, "0.01", "59990", post_only=True)
            accepted = await c.wait(cid, OrderAccepted)
            assert accepted.venue_order_id == sim.core.order(cid).venue_order_id  # type: ignore[union-attr]
            c.client.cancel(CancelOrder(ts=0, strategy_id="s", instrument_id=IID, client_order_id=cid))
            await c.wait(cid, OrderCanceled)
            assert sim.core.open_orders() == []

            # post-only that would cross: Bybit takes it and cancels it on the stream
            cid = c.submit(Side.BUY, "0.01", "60001", post_only=True)
            rejected = await c.wait(cid, OrderRejected)
            assert rejected.reason is RejectReason.POST_ONLY_WOULD_CROSS and not c.of(cid, OrderAccepted)

            # IOC crossing the ask: filled at the simulator's price and fee, rest expired
            cid = c.submit(Side.BUY, "0.7", "60001", time_in_force=TimeInForce.IOC)
            await c.wait(cid, OrderExpired)
            fills = c.of(cid, OrderFilled)
            venue_fills = [
                e
                for e in sim.core.query(QueryOrder(ts=0, instrument_id=IID, client_order_id=cid))
                if isinstance(e, OrderFilled)
            ]
            assert [(f.trade_id, f.last_qty, f.last_price, f.fee) for f in fills] == [
                (f.trade_id, f.last_qty, f.last_price, f.fee) for f in venue_fills
            ]
            assert sum(f.last_qty for f in fills) == P("0.3") + P("0.31")  # the two ask levels up to 60001
            assert fills[0].liquidity is LiquiditySide.TAKER and fills[0].fee_currency == "USDT"
            assert c.of(cid, OrderAccepted) and c.events.index(c.of(cid, OrderAccepted)[0]) < c.events.index(fills[0])
            await _until(lambda: any(isinstance(e, AccountSnapshot) for e in c.events), "a wallet update")

            # amend a resting order; then cancel-all
            cid = c.submit(Side.SELL, "0.02", "60100")
            await c.wait(cid, OrderAccepted)
            c.client.amend(
                AmendOrder(
                    ts=0, strategy_id="s", instrument_id=IID, client_order_id=cid, price=P("60090.5"), qty=P("0.03")
                )
            )
            amended = await c.wait(cid, OrderAmended)
            assert (amended.price, amended.qty) == (P("60090.5"), P("0.03"))
            assert sim.core.order(cid).price == P("60090.5")  # type: ignore[union-attr]
            other = c.submit(Side.BUY, "0.01", "59000")
            await c.wait(other, OrderAccepted)
            c.client.cancel_all(CancelAllOrders(ts=0, strategy_id="s"))
            await c.wait(cid, OrderCanceled)
            await c.wait(other, OrderCanceled)
            assert sim.core.open_orders() == []

            # query by client id: the venue's state, and None for an order it never saw
            c.client.query(QueryOrder(ts=0, instrument_id=IID, client_order_id=cid))
            report = await c.wait(cid, OrderStatusReport)
            assert (report.status, report.price, report.qty) == (OrderStatus.CANCELED, P("60090.5"), P("0.03"))
            c.client.query(QueryOrder(ts=0, instrument_id=IID, client_order_id="NEVERSENT1"))
            unknown = await c.wait("NEVERSENT1", OrderStatusReport)
            assert unknown.status is None and unknown.venue_order_id is None

            # Bybit's own refusal codes
            sim.faults.reject_next("170131")
            cid = c.submit(Side.BUY, "0.01", "59000")
            rejected = await c.wait(cid, OrderRejected)
            assert rejected.reason is RejectReason.INSUFFICIENT_BALANCE and "170131" in rejected.message

            # a rate-limit reply is waited out and the same order re-sent
            sim.faults.rate_limit_next()
            cid = c.submit(Side.BUY, "0.01", "59000")
            await c.wait(cid, OrderAccepted)
            ws = c.client.ws_orders
            retries = c.client.rest.counters.rate_limit_retries if ws is None else ws.retried
            assert sim.faults.consumed["rate_limit_next"] == 1 and retries == 1
            assert (ws is None) == (order_entry == "rest")
            rest_orders = {k for k in sim.dialect.requests if k.startswith("rest:")}  # type: ignore[attr-defined]
            expected = {f"rest:{spec.CANCEL_ALL}"} | ({f"rest:{spec.CREATE}"} if ws is None else set())
            assert rest_orders >= expected and (ws is None or rest_orders == expected)
            assert not c.of(cid, OrderRejected)

            # open orders and balances for reconciliation
            reports = await c.client.fetch_open_orders()
            assert [(r.client_order_id, r.status) for r in reports] == [(cid, OrderStatus.ACCEPTED)]
            snapshot = await c.client.fetch_balances()
            assert snapshot.balances == sim.core.balances().balances
        finally:
            await c.client.stop()

    _run(scenario)


def test_linear_perpetual_orders_use_the_linear_category_and_settle_coin() -> None:
    from tradeloop.venues.bybit.connector import CONNECTOR_LINEAR

    linear = spec.INSTRUMENTS[spec.VENUE_LINEAR][0]

    async def main() -> None:
        core = SimulatorCore(spec.VENUE_LINEAR, [linear], balances={"USDT": P("100000")})
        bids = [(P("60000") - n * P("0.5"), P("0.5")) for n in range(5)]
        asks = [(P("60000.5") + n * P("0.5"), P("0.5")) for n in range(5)]
        core.apply_market(BookDeltas(linear.id, 1, 1, 1, 1, bids, asks, snapshot=True))
        sim = VenueSimulator(core, CONNECTOR_LINEAR.dialect(), CONNECTOR_LINEAR.test_credentials())
        await sim.start()
        events: list[Event] = []
        clock = LiveClock()
        urls = CONNECTOR_LINEAR.local_urls(sim.base_url)
        client = CONNECTOR_LINEAR.execution(CONNECTOR_LINEAR.test_credentials(), {linear.id: linear}, clock,
                                            events.append, urls)  # fmt: skip
        assert isinstance(client, BybitExecutionClient) and client.category == "linear"
        await client.start()

        def of(cid: str, kind: type[Any]) -> list[Any]:
            return [e for e in events if isinstance(e, kind) and getattr(e, "client_order_id", None) == cid]

        def submit(cid: str, side: Side, qty: str, price: str, **kw: Any) -> None:
            client.submit(SubmitOrder(ts=0, strategy_id="s", instrument_id=linear.id, side=side, qty=P(qty),
                                      price=P(price), client_order_id=cid, **kw))  # fmt: skip

        try:
            submit("L1", Side.BUY, "0.01", "59990.5", post_only=True)
            await _until(lambda: bool(of("L1", OrderAccepted)), "L1 accepted")
            submit("L2", Side.SELL, "0.7", "60000", time_in_force=TimeInForce.IOC)
            await _until(lambda: bool(of("L2", OrderExpired)), "L2 done")
            assert sum(f.last_qty for f in of("L2", OrderFilled)) == P("0.5")
            assert [(p.instrument_id, p.qty) for p in core.positions()] == [(linear.id, -P("0.5"))]
            assert [r.client_order_id for r in await client.fetch_open_orders()] == ["L1"]
            client.cancel_all(CancelAllOrders(ts=0, strategy_id="s"))  # no symbol: by settle coin
            await _until(lambda: bool(of("L1", OrderCanceled)), "L1 canceled by cancel-all")
            assert core.open_orders() == []

            # a rate limit that outlasts the client's patience is a RATE_LIMITED rejection
            impatient = BybitExecutionClient(CONNECTOR_LINEAR.test_credentials(), {linear.id: linear}, clock,
                                             events.append, urls, rate_limit_patience_s=0.05)  # fmt: skip
            sim.faults.rate_limit_next()
            impatient.submit(SubmitOrder(ts=0, strategy_id="s", instrument_id=linear.id, side=Side.BUY, qty=P("0.01"),
                                         price=P("59000"), client_order_id="L3"))  # fmt: skip
            await _until(lambda: bool(of("L3", OrderRejected)), "L3 refused")
            assert of("L3", OrderRejected)[0].reason is RejectReason.RATE_LIMITED and core.order("L3") is None
            await impatient.stop()

            # a clock 10 s behind Bybit's: refused as outside the window until the offset is measured
            skewed = BybitExecutionClient(CONNECTOR_LINEAR.test_credentials(), {linear.id: linear}, _Skewed(),
                                          events.append, urls)  # fmt: skip
            skewed.submit(SubmitOrder(ts=0, strategy_id="s", instrument_id=linear.id, side=Side.BUY, qty=P("0.01"),
                                      price=P("59000"), client_order_id="L4"))  # fmt: skip
            await _until(lambda: bool(of("L4", OrderRejected)), "L4 refused")
            assert of("L4", OrderRejected)[0].reason is RejectReason.TIMESTAMP_OUTSIDE_WINDOW
            await _until(lambda: skewed.rest.clock_offset.has_estimate, "the offset re-measured after 10002")
            assert 9_900_000_000 < skewed.rest.clock_offset.offset_ns < 10_100_000_000
            skewed.submit(SubmitOrder(ts=0, strategy_id="s", instrument_id=linear.id, side=Side.BUY, qty=P("0.01"),
                                      price=P("59000"), client_order_id="L5"))  # fmt: skip
            await _until(lambda: core.order("L5") is not None, "L5 placed with the corrected clock")
            await skewed.stop()
        finally:
            await client.stop()
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 20))
