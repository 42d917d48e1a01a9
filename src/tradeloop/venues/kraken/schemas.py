"""Kraken WebSocket v2 messages and REST results as msgspec structs (lenient: unused fields are ignored).

v2 sends prices and sizes as JSON numbers; they are decoded as ``Decimal`` from the raw text, so
nothing passes through a float. (v1 frames are positional JSON arrays, decoded in ``parse``.)
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

__all__ = [
    "AddOrderResult",
    "AmendResult",
    "BalanceEntry",
    "BalancesMessage",
    "BookLevel",
    "BookMessage",
    "BookUpdate",
    "CountResult",
    "ExecFee",
    "Execution",
    "ExecutionsMessage",
    "InstrumentPair",
    "OrderDescr",
    "OrderInfo",
    "TickerData",
    "TickerMessage",
    "TokenResult",
    "TradeInfo",
    "TradeMessage",
    "V2Trade",
]


class BookLevel(msgspec.Struct, frozen=True):
    price: Decimal
    qty: Decimal


class BookUpdate(msgspec.Struct, frozen=True):
    symbol: str
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    checksum: int | None = None
    timestamp: str = ""


class BookMessage(msgspec.Struct, frozen=True):
    channel: str
    type: str
    data: list[BookUpdate]


class V2Trade(msgspec.Struct, frozen=True):
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    trade_id: int
    timestamp: str


class TradeMessage(msgspec.Struct, frozen=True):
    channel: str
    type: str
    data: list[V2Trade]


class InstrumentPair(msgspec.Struct, frozen=True):
    """One pair of the v2 ``instrument`` channel (the precisions the book checksum needs)."""

    symbol: str
    price_precision: int
    qty_precision: int
    price_increment: Decimal | None = None
    qty_increment: Decimal | None = None


class TickerData(msgspec.Struct, frozen=True):
    symbol: str
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    timestamp: str = ""


class TickerMessage(msgspec.Struct, frozen=True):
    """``ticker`` channel (subscribed with ``event_trigger: "bbo"``): best bid and ask."""

    channel: str
    type: str
    data: list[TickerData]


# -- private WebSocket (ws-auth) ----------------------------------------------------------------


class ExecFee(msgspec.Struct, frozen=True):
    asset: str
    qty: Decimal


class Execution(msgspec.Struct, frozen=True):
    """One ``executions`` event; which fields are present depends on ``exec_type``."""

    exec_type: str
    order_id: str
    cl_ord_id: str | None = None
    symbol: str | None = None
    side: str | None = None
    order_type: str | None = None
    order_qty: Decimal | None = None
    limit_price: Decimal | None = None
    order_status: str | None = None
    cum_qty: Decimal | None = None
    avg_price: Decimal | None = None
    time_in_force: str | None = None
    post_only: bool | None = None
    exec_id: str | None = None
    trade_id: int | None = None
    last_qty: Decimal | None = None
    last_price: Decimal | None = None
    liquidity_ind: str | None = None
    fees: list[ExecFee] = []
    reason: str | None = None
    timestamp: str = ""


class ExecutionsMessage(msgspec.Struct, frozen=True):
    channel: str
    type: str
    data: list[Execution]


class BalanceEntry(msgspec.Struct, frozen=True):
    """A ``balances`` snapshot entry (``balance``) or update (``balance`` after a ledger entry)."""

    asset: str
    balance: Decimal


class BalancesMessage(msgspec.Struct, frozen=True):
    channel: str
    type: str
    data: list[BalanceEntry]


# -- REST results (inside ``{"error": [...], "result": ...}``) ----------------------------------


class AddOrderResult(msgspec.Struct, frozen=True):
    txid: list[str] = []


class CountResult(msgspec.Struct, frozen=True):
    count: int = 0


class AmendResult(msgspec.Struct, frozen=True):
    amend_id: str = ""


class TokenResult(msgspec.Struct, frozen=True):
    token: str
    expires: int = 0


class OrderDescr(msgspec.Struct, frozen=True):
    pair: str = ""
    type: str = ""
    ordertype: str = ""
    price: str = "0"
    """Limit price (``0`` for market orders)."""


class OrderInfo(msgspec.Struct, frozen=True):
    """One order of ``QueryOrders`` / ``OpenOrders``."""

    status: str
    vol: str
    vol_exec: str = "0"
    descr: OrderDescr = OrderDescr()
    cl_ord_id: str | None = None
    reason: str | None = None
    trades: list[str] = []
    """Trade ids (``trades=true``)."""


class TradeInfo(msgspec.Struct, frozen=True):
    """One trade of ``QueryTrades`` / ``TradesHistory``; ``fee`` and ``cost`` are in the quote currency."""

    ordertxid: str
    pair: str
    type: str
    price: str
    vol: str
    fee: str = "0"
    maker: bool | None = None
