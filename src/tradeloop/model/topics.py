"""The bus topics every component agrees on."""

from __future__ import annotations

from typing import Final

from tradeloop.core.bus import Topic
from tradeloop.model.book import OrderBook
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder, TradingCommand
from tradeloop.model.data import BookDeltas, BookStatus, Quote, Trade
from tradeloop.model.events import (
    AccountSnapshot,
    OrderEvent,
    OrderEventBase,
    RiskAlert,
    StrategyAlert,
    TradingStateChanged,
)

BOOK_DELTAS: Final = Topic[BookDeltas]("md.deltas", BookDeltas)
"""Normalized deltas and snapshots from venue parsers, before the book manager applies them."""
BOOK: Final = Topic[OrderBook]("md.book", OrderBook)
"""An order book right after a batch was applied and checked (valid books only)."""
BOOK_STATUS: Final = Topic[BookStatus]("md.book_status", BookStatus)
TRADES: Final = Topic[Trade]("md.trade", Trade)
QUOTES: Final = Topic[Quote]("md.quote", Quote)

COMMANDS: Final[Topic[TradingCommand]] = Topic(
    "cmd", (SubmitOrder, CancelOrder, CancelAllOrders, AmendOrder, QueryOrder)
)
"""Commands from strategies and operators, to the OMS."""
ORDER_EVENTS: Final[Topic[OrderEvent]] = Topic("evt.order", (OrderEventBase,))
"""Order events after the OMS applied them to its orders."""
RISK_EVENTS: Final[Topic[TradingStateChanged | RiskAlert]] = Topic("evt.risk", (TradingStateChanged, RiskAlert))
ACCOUNT_EVENTS: Final = Topic[AccountSnapshot]("evt.account", AccountSnapshot)
STRATEGY_ALERTS: Final = Topic[StrategyAlert]("evt.strategy_alert", StrategyAlert)
