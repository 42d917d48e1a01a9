"""msgspec structs of the Binance public market-data messages tradeloop reads.

Venue messages are decoded leniently: fields tradeloop does not use are ignored, so a new field
on Binance's side never breaks the feed. Fields tradeloop relies on are required, so a frame
missing one fails loudly with the field's name. Field names are Binance's own one-letter keys
(``U`` first update id, ``u`` last update id, ``pu`` previous ``u``, ``E`` event time ms, ``T``
transaction time ms, ...). Prices and sizes stay strings here; ``parse.py`` turns them into
fixed-point nanos.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

__all__ = [
    "AccountBalance",
    "AccountPosition",
    "AccountReply",
    "AccountTrade",
    "AggTradeEvent",
    "AmendReply",
    "BookTickerEvent",
    "CancelReplaceError",
    "CancelReplaceReply",
    "CombinedStream",
    "DepthSnapshot",
    "DepthUpdate",
    "ErrorReply",
    "EventType",
    "ExecutionReport",
    "FuturesBalance",
    "FuturesOrderUpdate",
    "OrderFill",
    "OrderReply",
    "PositionBalance",
    "RawLevel",
    "ServerTime",
    "StreamEnvelope",
    "TradeEvent",
    "UserEventHead",
]

T = TypeVar("T")

RawLevel = tuple[str, str]
"""``[price, size]`` as Binance writes them (decimal strings)."""


class CombinedStream(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """A combined-stream frame ``{"stream": "btcusdt@depth@100ms", "data": {...}}`` with typed data."""

    stream: str
    data: T


class StreamEnvelope(msgspec.Struct, frozen=True, gc=False):
    """Any frame, decoded just far enough to route it.

    Combined-stream frames fill ``stream`` and keep ``data`` undecoded; a REST depth snapshot
    fills ``lastUpdateId``; a raw-stream event (``/ws/<stream>``) fills ``e`` (futures
    ``bookTicker`` has ``e``; spot ``bookTicker`` has none but has ``A``); a subscription ack has
    ``id`` and none of these.
    """

    stream: str = ""
    data: msgspec.Raw = msgspec.Raw()
    lastUpdateId: int = -1
    e: str = ""
    A: str = ""


class DepthUpdate(msgspec.Struct, frozen=True, gc=False):
    """Diff depth event ``<symbol>@depth[@100ms]``: absolute sizes, ``0`` deletes a level.

    ``U``..``u`` is the range of update ids in this event; futures also send ``pu``, the ``u`` of
    the previous event on this stream (``-1`` here when absent, i.e. spot).
    """

    E: int
    s: str
    U: int
    u: int
    b: list[RawLevel]
    a: list[RawLevel]
    pu: int = -1
    T: int = 0
    e: str = "depthUpdate"


class DepthSnapshot(msgspec.Struct, frozen=True, gc=False):
    """REST ``GET /api/v3/depth`` (spot) or ``/fapi/v1/depth`` (futures, which adds ``E`` and ``T``)."""

    lastUpdateId: int
    bids: list[RawLevel]
    asks: list[RawLevel]
    E: int = 0
    T: int = 0


class TradeEvent(msgspec.Struct, frozen=True, gc=False):
    """Trade event ``<symbol>@trade``. ``m`` true: the buyer was the maker, so the taker sold.

    Futures add ``X``, the order type behind the trade (``MARKET``, ``INSURANCE_FUND``, ...).
    """

    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    E: int = 0
    X: str = ""
    e: str = "trade"


class AggTradeEvent(msgspec.Struct, frozen=True, gc=False):
    """Aggregate trade event ``<symbol>@aggTrade``: trades ``f``..``l`` of one taker at one price."""

    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool
    E: int = 0
    e: str = "aggTrade"


class BookTickerEvent(msgspec.Struct, frozen=True, gc=False):
    """Best bid/ask ``<symbol>@bookTicker``. Spot sends only ``u,s,b,B,a,A``; futures add ``e,E,T``."""

    u: int
    s: str
    b: str
    B: str
    a: str
    A: str
    E: int = 0
    T: int = 0


# -- trading: REST replies and user-data-stream events ------------------------------------------
# Decimal fields stay strings; ``orders.py`` / ``private.py`` turn them into nanos. Optional fields
# default so one struct reads spot and USD-M replies (USD-M has ``avgPrice``/``cumQuote``, no ``fills``).


class ErrorReply(msgspec.Struct, frozen=True):
    """``{"code": -2010, "msg": "..."}``: every Binance error body."""

    code: int
    msg: str = ""


class OrderFill(msgspec.Struct, frozen=True):
    """One entry of ``fills`` in a ``FULL`` order reply (always taker: it matched on arrival)."""

    price: str
    qty: str
    commission: str
    commissionAsset: str
    tradeId: int


class OrderReply(msgspec.Struct, frozen=True):
    """An order as place / cancel / query / openOrders return it."""

    symbol: str
    orderId: int
    clientOrderId: str
    status: str
    side: str = ""
    type: str = ""
    timeInForce: str = ""
    price: str = "0"
    origQty: str = "0"
    executedQty: str = "0"
    cummulativeQuoteQty: str = "0"
    cumQuote: str = "0"
    origClientOrderId: str = ""
    transactTime: int = 0
    updateTime: int = 0
    fills: list[OrderFill] = []


class CancelReplaceReply(msgspec.Struct, frozen=True):
    """``POST /api/v3/order/cancelReplace``: both halves' outcomes (HTTP 200, 400 or 409)."""

    cancelResult: str = ""
    newOrderResult: str = ""
    cancelResponse: msgspec.Raw = msgspec.Raw()
    newOrderResponse: msgspec.Raw = msgspec.Raw()
    """Empty, or ``null``, when the new order was not attempted."""


class CancelReplaceError(msgspec.Struct, frozen=True):
    """The error body of a failed cancel-replace: ``{"code":-2021,"msg":..,"data":{...}}``."""

    code: int
    msg: str = ""
    data: CancelReplaceReply | None = None


class AmendReply(msgspec.Struct, frozen=True):
    """``PUT /api/v3/order/amend/keepPriority``: ``{"transactTime", "executionId", "amendedOrder": {...}}``."""

    amendedOrder: OrderReply


class AccountBalance(msgspec.Struct, frozen=True):
    asset: str
    free: str
    locked: str


class AccountReply(msgspec.Struct, frozen=True):
    """``GET /api/v3/account`` (only ``balances`` is read)."""

    balances: list[AccountBalance]


class FuturesBalance(msgspec.Struct, frozen=True):
    """One entry of USD-M ``GET /fapi/v2/balance``."""

    asset: str
    balance: str
    availableBalance: str = "0"


class AccountTrade(msgspec.Struct, frozen=True):
    """``GET /api/v3/myTrades`` (spot) / ``/fapi/v1/userTrades`` (USD-M: ``maker``, ``buyer``)."""

    symbol: str
    id: int
    orderId: int
    price: str
    qty: str
    commission: str
    commissionAsset: str
    time: int = 0
    isBuyer: bool | None = None
    isMaker: bool | None = None
    buyer: bool | None = None
    maker: bool | None = None


class ServerTime(msgspec.Struct, frozen=True):
    serverTime: int


class ExecutionReport(msgspec.Struct, frozen=True):
    """Spot user-data ``executionReport``; USD-M ``ORDER_TRADE_UPDATE.o`` uses the same letters.

    ``c`` is the client id of this execution (of the cancel request on a cancel), ``C`` the order's
    original client id on cancels, ``x`` the execution type, ``X`` the order status, ``i`` the order
    id, ``l``/``L`` last fill qty/price, ``z`` cumulative filled, ``n``/``N`` fee and its asset,
    ``t`` trade id (-1 when none), ``m`` maker.
    """

    s: str
    c: str
    S: str
    o: str
    x: str
    X: str
    i: int
    q: str = "0"
    p: str = "0"
    f: str = ""
    C: str | None = ""
    r: str = "NONE"
    l: str = "0"  # noqa: E741 - Binance's field name
    z: str = "0"
    L: str = "0"
    n: str | None = "0"
    N: str | None = None
    T: int = 0
    t: int = -1
    m: bool = False
    E: int = 0
    e: str = "executionReport"


class PositionBalance(msgspec.Struct, frozen=True):
    a: str
    f: str
    l: str  # noqa: E741 - Binance's field name


class AccountPosition(msgspec.Struct, frozen=True):
    """Spot ``outboundAccountPosition``: free and locked of every asset that changed."""

    B: list[PositionBalance]
    E: int = 0
    e: str = "outboundAccountPosition"


class UserEventHead(msgspec.Struct, frozen=True):
    """Enough of any user-data frame to route it: a WS API reply (``id``, ``status``), an event
    wrapped as ``{"subscriptionId", "event"}``, or a bare event (``e``)."""

    id: str | int | None = None
    status: int = 0
    event: msgspec.Raw = msgspec.Raw()
    e: str = ""
    result: msgspec.Raw = msgspec.Raw()
    error: ErrorReply | None = None


class EventType(msgspec.Struct, frozen=True):
    e: str = ""


class FuturesOrderUpdate(msgspec.Struct, frozen=True):
    """USD-M ``ORDER_TRADE_UPDATE`` (the order is in ``o``)."""

    o: ExecutionReport
    E: int = 0
    e: str = "ORDER_TRADE_UPDATE"
