"""Fakes of the views and builders shared by the risk engine tests (this module holds no tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tradeloop.core.clock import SimClock
from tradeloop.core.fixed import parse as P
from tradeloop.model.book import OrderBook
from tradeloop.model.commands import AmendOrder, SubmitOrder
from tradeloop.model.data import BookDeltas
from tradeloop.model.enums import LiquiditySide, OrderType, Side, TimeInForce, TradingState
from tradeloop.model.events import (
    OrderAccepted,
    OrderFilled,
    OrderInitialized,
    OrderSubmitted,
    RiskAlert,
    TradingStateChanged,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.order import Order
from tradeloop.trading.risk import NS_PER_DAY, RiskEngine
from tradeloop.trading.risk_config import RiskConfig
from tradeloop.trading.views import BookView, OrderView, PortfolioView

BTC = InstrumentId("binance", "BTCUSDT")
ETH = InstrumentId("binance", "ETHUSDT")
BYBIT_BTC = InstrumentId("bybit", "BTCUSDT")
UNKNOWN = InstrumentId("binance", "DOGEUSDT")

T0 = 1_700_000_000 * 10**9  # 2023-11-14 22:13:20 UTC
NEXT_MIDNIGHT = (T0 // NS_PER_DAY + 1) * NS_PER_DAY
MS = 1_000_000


def _btc(iid: InstrumentId) -> Instrument:
    return Instrument(
        id=iid,
        base="BTC",
        quote="USDT",
        tick_size=P("0.01"),
        lot_size=P("0.00001"),
        min_qty=P("0.0001"),
        max_qty=P("9"),
        min_notional=P("5"),
    )


INSTRUMENTS = {
    BTC: _btc(BTC),
    BYBIT_BTC: _btc(BYBIT_BTC),
    ETH: Instrument(id=ETH, base="ETH", quote="USDT", tick_size=P("0.01"), lot_size=P("0.0001")),
}


# -- fakes of the three views ----------------------------------------------------------------------


class FakePortfolio:
    def __init__(self) -> None:
        self.positions: dict[InstrumentId, int] = {}
        self.marks: dict[InstrumentId, int] = {}
        self.gross = 0
        self.equity_value = 0

    def position_qty(self, instrument_id: InstrumentId) -> int:
        return self.positions.get(instrument_id, 0)

    def mark(self, instrument_id: InstrumentId) -> int | None:
        return self.marks.get(instrument_id)

    def gross_exposure(self) -> int:
        return self.gross

    def equity(self) -> int:
        return self.equity_value


class FakeOrders:
    def __init__(self) -> None:
        self.orders: list[Order] = []
        self._n = 0

    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[Order]:
        return [o for o in self.orders if o.is_open and (instrument_id is None or o.instrument_id == instrument_id)]

    def add(self, side: Side, qty: str, price: str | None, iid: InstrumentId = BTC, filled: str = "0") -> Order:
        """An accepted (working) order, optionally partly filled."""
        self._n += 1
        coid = f"o{self._n}"
        kind = OrderType.LIMIT if price is not None else OrderType.MARKET
        order = Order(
            OrderInitialized(
                ts=T0,
                instrument_id=iid,
                client_order_id=coid,
                strategy_id="s",
                side=side,
                qty=P(qty),
                price=P(price) if price is not None else None,
                order_type=kind,
                time_in_force=TimeInForce.GTC,
                post_only=False,
                reduce_only=False,
            )
        )
        order.apply(OrderSubmitted(ts=T0, instrument_id=iid, client_order_id=coid))
        order.apply(OrderAccepted(ts=T0, instrument_id=iid, client_order_id=coid, venue_order_id=f"v{coid}"))
        if P(filled):
            order.apply(
                OrderFilled(
                    ts=T0,
                    instrument_id=iid,
                    client_order_id=coid,
                    venue_order_id=f"v{coid}",
                    trade_id=f"t{coid}",
                    side=side,
                    last_qty=P(filled),
                    last_price=P(price or "60000"),
                    fee=0,
                    fee_currency="USDT",
                    liquidity=LiquiditySide.MAKER,
                )
            )
        self.orders.append(order)
        return order


class FakeBooks:
    def __init__(self) -> None:
        self.books: dict[InstrumentId, OrderBook] = {}

    def book(self, instrument_id: InstrumentId) -> OrderBook | None:
        return self.books.get(instrument_id)

    def set(self, iid: InstrumentId, bid: str, ask: str) -> OrderBook:
        book = OrderBook(iid)
        book.apply_snapshot(
            BookDeltas(iid, T0, T0, 0, 1, bids=[(P(bid), P("1"))], asks=[(P(ask), P("1"))], snapshot=True)
        )
        self.books[iid] = book
        return book


# The fakes satisfy the Protocols (checked by mypy on these assignments).
_pv: type[PortfolioView] = FakePortfolio
_ov: type[OrderView] = FakeOrders
_bv: type[BookView] = FakeBooks


@dataclass
class Env:
    engine: RiskEngine
    clock: SimClock
    portfolio: FakePortfolio
    orders: FakeOrders
    books: FakeBooks
    emitted: list[TradingStateChanged | RiskAlert] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)

    def alerts(self) -> list[RiskAlert]:
        return [e for e in self.emitted if isinstance(e, RiskAlert)]

    def state_changes(self) -> list[TradingStateChanged]:
        return [e for e in self.emitted if isinstance(e, TradingStateChanged)]


LOOSE: dict[str, Any] = {
    "max_open_orders_per_instrument": None,
    "max_open_orders_total": None,
    "order_rate_max": 1000,
}
"""Limits that are on by default, loosened so that a test only meets the check it is about."""


def make(**overrides: Any) -> Env:
    config = RiskConfig(**{**LOOSE, **overrides})
    clock = SimClock(T0)
    portfolio, orders, books = FakePortfolio(), FakeOrders(), FakeBooks()
    books.set(BTC, "60000", "60010")  # mid 60005
    books.set(BYBIT_BTC, "60000", "60010")
    books.set(ETH, "3000", "3001")
    emitted: list[TradingStateChanged | RiskAlert] = []
    cancels: list[str] = []
    engine = RiskEngine(config, clock, INSTRUMENTS, portfolio, orders, books, emitted.append, cancels.append)
    return Env(engine, clock, portfolio, orders, books, emitted, cancels)


def buy(qty: str, price: str | None = "60000", iid: InstrumentId = BTC) -> SubmitOrder:
    return submit(Side.BUY, qty, price, iid)


def sell(qty: str, price: str | None = "60010", iid: InstrumentId = BTC) -> SubmitOrder:
    return submit(Side.SELL, qty, price, iid)


def submit(side: Side, qty: str, price: str | None, iid: InstrumentId) -> SubmitOrder:
    return SubmitOrder(
        ts=T0,
        strategy_id="s",
        instrument_id=iid,
        side=side,
        qty=P(qty),
        price=P(price) if price is not None else None,
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
    )


def amend(order: Order, price: str | None = None, qty: str | None = None) -> AmendOrder:
    return AmendOrder(
        ts=T0,
        strategy_id="s",
        instrument_id=order.instrument_id,
        client_order_id=order.client_order_id,
        price=P(price) if price is not None else None,
        qty=P(qty) if qty is not None else None,
    )


def state(engine: RiskEngine) -> TradingState:
    """The engine's state (a call, so mypy does not carry narrowing across engine calls)."""
    return engine.state


def denied_by(reason: str | None, check: str) -> bool:
    return reason is not None and reason.startswith(check + ": ")
