"""Binance USD-M (``binance_usdm``) connectors against the USD-M dialect of the local simulator:
routed streams (``/public`` books with the ``pu`` chain, ``/market`` trades), ``/fapi/v1`` orders
(post-only as ``GTX``, native modify), and the listen-key user stream (``ORDER_TRADE_UPDATE``)."""

from __future__ import annotations

import asyncio

import pytest

from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.model import topics
from tradeloop.model.book import SequenceRule
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, MarketData, Trade
from tradeloop.model.enums import LiquiditySide, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderEventBase,
    OrderFilled,
    OrderRejected,
)
from tradeloop.venues.binance.connector import CONNECTOR_USDM
from tradeloop.venues.binance.execution import BinanceExecutionClient
from tradeloop.venues.binance.market_data import BinanceMarketData
from tradeloop.venues.binance.spec import BinanceMarket
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.backoff import BackoffSpec
from tradeloop.venues.transport.rest import RestConfig
from tradeloop.venues.transport.ws import WsSpec

P = fixed.parse
INST = CONNECTOR_USDM.instruments()[0]
IID = INST.id
TICK = INST.tick_size
MID = P("60000")


async def until(cond: object, what: str, timeout: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_usdm_books_trades_and_orders() -> None:
    async def scenario() -> None:
        clock = LiveClock()
        core = SimulatorCore("binance_usdm", [INST], balances={"USDT": P("100000")}, clock=clock)
        ts = clock.now_ns()
        bids = [(MID - k * TICK, P("0.5") * (k + 1)) for k in range(10)]
        asks = [(MID + (k + 1) * TICK, P("0.5") * (k + 1)) for k in range(10)]
        core.apply_market(BookDeltas(IID, ts, ts, 1, 1, bids, asks, snapshot=True))
        sim = VenueSimulator(core, CONNECTOR_USDM.dialect(), CONNECTOR_USDM.test_credentials())
        await sim.start()
        urls = CONNECTOR_USDM.local_urls(sim.base_url)
        bus = MessageBus()
        books = BookManager(bus, clock, {"binance_usdm": SequenceRule.PREV_LINK})
        hub = MarketDataHub(bus, books)
        trades: list[Trade] = []
        statuses: list[BookStatus] = []
        bus.subscribe(topics.TRADES, trades.append)
        bus.subscribe(topics.BOOK_STATUS, statuses.append)

        def on_item(item: MarketData) -> None:
            hub.on_data(item)

        quick = WsSpec(url=urls.ws_public, stale_after_s=5.0, backoff=BackoffSpec(base_s=0.05, cap_s=0.2))
        md = BinanceMarketData([IID], on_item, clock, urls, ws_spec=quick)
        assert md.sequence_rule is SequenceRule.PREV_LINK
        events: list[Event] = []
        ex = BinanceExecutionClient(
            CONNECTOR_USDM.test_credentials(),
            {IID: INST},
            clock,
            events.append,
            urls,
            rest_config=RestConfig(timeout_s=1.0),
            market=BinanceMarket.USDM,
        )

        def of(cid: str, kind: type) -> list[Event]:
            return [
                e for e in events if isinstance(e, OrderEventBase) and e.client_order_id == cid and isinstance(e, kind)
            ]

        def equal() -> bool:
            book = books.book(IID)
            venue = core.book(IID)
            return bool(book is not None and book.valid and book.bids == venue.bids and book.asks == venue.asks)

        try:
            await asyncio.wait_for(ex.start(), 5)
            await asyncio.wait_for(md.start(), 5)
            await until(equal, "the first USD-M book")

            # Diffs chained by pu keep the book equal; a skipped update breaks the chain -> resync.
            ts = clock.now_ns()
            core.apply_market(BookDeltas(IID, ts, ts, 2, 2, [(MID - 30 * TICK, P("1"))], [(MID + TICK, 0)]))
            await until(equal, "the book after a diff")
            sim.faults.skip_sequence(1)
            for n in (3, 4):
                ts = clock.now_ns()
                core.apply_market(BookDeltas(IID, ts, ts, n, n, [(MID - (30 + n) * TICK, P("1"))], []))
            await until(lambda: any(not s.valid and s.reason.startswith("sequence gap") for s in statuses), "the gap")
            await until(lambda: equal() and statuses[-1].valid, "the book resynced from a new snapshot")
            assert sim.faults.consumed["skip_sequence"] == 1

            # Trades arrive on the /market connection.
            ts = clock.now_ns()
            core.apply_market(Trade(IID, ts, ts, MID + 2 * TICK, P("0.1"), Side.BUY, "x1"))
            await until(lambda: trades, "a trade from the /market stream")
            assert (trades[0].price, trades[0].aggressor) == (MID + 2 * TICK, Side.BUY)

            # Post-only (GTX) rests; modify moves it in place; cancel.
            qty = P("0.004")
            ex.submit(
                SubmitOrder(
                    ts=0,
                    strategy_id="t",
                    instrument_id=IID,
                    side=Side.BUY,
                    qty=qty,
                    price=MID - 5 * TICK,
                    post_only=True,
                    client_order_id="GTX1",
                )
            )
            await until(lambda: of("GTX1", OrderAccepted), "GTX1 accepted")
            ex.amend(AmendOrder(ts=0, strategy_id="t", instrument_id=IID, client_order_id="GTX1", price=MID - 7 * TICK))
            await until(lambda: of("GTX1", OrderAmended), "GTX1 modified")
            assert [(o.price, o.qty) for o in core.open_orders()] == [(MID - 7 * TICK, qty)]
            ex.cancel(CancelOrder(ts=0, strategy_id="t", instrument_id=IID, client_order_id="GTX1"))
            await until(lambda: of("GTX1", OrderCanceled), "GTX1 canceled")

            # A crossing post-only is refused; an IOC fills through the listen-key stream.
            ex.submit(
                SubmitOrder(
                    ts=0,
                    strategy_id="t",
                    instrument_id=IID,
                    side=Side.BUY,
                    qty=qty,
                    price=MID + 3 * TICK,
                    post_only=True,
                    client_order_id="GTX2",
                )
            )
            await until(lambda: of("GTX2", OrderRejected), "GTX2 refused")
            assert of("GTX2", OrderRejected)[0].reason is RejectReason.POST_ONLY_WOULD_CROSS  # type: ignore[attr-defined]
            ex.submit(
                SubmitOrder(
                    ts=0,
                    strategy_id="t",
                    instrument_id=IID,
                    side=Side.BUY,
                    qty=qty,
                    price=MID + 3 * TICK,
                    time_in_force=TimeInForce.IOC,
                    client_order_id="IOC1",
                )
            )
            await until(lambda: of("IOC1", OrderFilled), "IOC1 filled")
            (fill,) = of("IOC1", OrderFilled)
            assert isinstance(fill, OrderFilled) and fill.last_qty == qty and fill.last_price == MID + 2 * TICK
            assert fill.liquidity is LiquiditySide.TAKER and fill.fee_currency == "USDT"
        finally:
            await md.stop()
            await ex.stop()
            await sim.stop()

    asyncio.run(asyncio.wait_for(scenario(), 20))
