"""Bybit v5 messages as msgspec structs (lenient: unused fields are ignored): public WebSocket, REST
replies, private stream, instrument specs."""

from __future__ import annotations

import msgspec

__all__ = [
    "BookData",
    "BookMessage",
    "CoinRow",
    "ExecutionList",
    "ExecutionRow",
    "ExecutionTopic",
    "LinearInstruments",
    "OrderList",
    "OrderRow",
    "OrderTopic",
    "Reply",
    "SpotInstruments",
    "TradeData",
    "TradeMessage",
    "WalletList",
    "WalletRow",
    "WalletTopic",
]


class BookData(msgspec.Struct, frozen=True):
    s: str
    b: list[list[str]]
    a: list[list[str]]
    u: int
    seq: int = -1


class BookMessage(msgspec.Struct, frozen=True):
    topic: str
    type: str
    ts: int
    data: BookData
    cts: int = 0


class TradeData(msgspec.Struct, frozen=True):
    T: int
    s: str
    S: str
    v: str
    p: str
    i: str


class TradeMessage(msgspec.Struct, frozen=True):
    topic: str
    ts: int
    data: list[TradeData]


# ---- REST replies and the private stream (lenient: fields tradeloop does not use are ignored) ------------


class Reply(msgspec.Struct, frozen=True):
    """Every REST v5 reply: ``retCode`` 0 means the request was accepted (not that it took effect)."""

    retCode: int
    retMsg: str = ""
    result: msgspec.Raw = msgspec.Raw(b"{}")
    time: int = 0


class OrderRow(msgspec.Struct, frozen=True):
    """One order as the ``order`` stream and ``/v5/order/realtime|history`` report it."""

    symbol: str
    orderId: str
    orderStatus: str
    orderLinkId: str = ""
    category: str = ""
    side: str = ""
    orderType: str = ""
    timeInForce: str = ""
    price: str = ""
    qty: str = ""
    cumExecQty: str = "0"
    cancelType: str = ""
    rejectReason: str = ""
    updatedTime: str = ""


class ExecutionRow(msgspec.Struct, frozen=True):
    """One execution (fill) as the ``execution`` stream and ``/v5/execution/list`` report it."""

    symbol: str
    orderId: str
    execId: str
    execPrice: str
    execQty: str
    side: str
    orderLinkId: str = ""
    category: str = ""
    execFee: str = "0"
    feeCurrency: str = ""
    execType: str = "Trade"
    isMaker: bool = False
    execTime: str = "0"


class CoinRow(msgspec.Struct, frozen=True):
    coin: str
    walletBalance: str = "0"
    locked: str = "0"
    totalOrderIM: str = "0"


class WalletRow(msgspec.Struct, frozen=True):
    coin: list[CoinRow]
    accountType: str = ""


class OrderList(msgspec.Struct, frozen=True):
    rows: list[OrderRow] = msgspec.field(name="list")
    nextPageCursor: str | None = ""


class ExecutionList(msgspec.Struct, frozen=True):
    rows: list[ExecutionRow] = msgspec.field(name="list")
    nextPageCursor: str | None = ""


class WalletList(msgspec.Struct, frozen=True):
    rows: list[WalletRow] = msgspec.field(name="list")


class OrderTopic(msgspec.Struct, frozen=True):
    topic: str
    data: list[OrderRow]
    creationTime: int = 0


class ExecutionTopic(msgspec.Struct, frozen=True):
    topic: str
    data: list[ExecutionRow]
    creationTime: int = 0


class WalletTopic(msgspec.Struct, frozen=True):
    topic: str
    data: list[WalletRow]
    creationTime: int = 0


class SpotLotFilter(msgspec.Struct, frozen=True):
    basePrecision: str
    minOrderQty: str = "0"
    maxOrderQty: str = "0"
    maxLimitOrderQty: str = ""
    minOrderAmt: str = "0"


class LinearLotFilter(msgspec.Struct, frozen=True):
    qtyStep: str
    minOrderQty: str = "0"
    maxOrderQty: str = "0"
    minNotionalValue: str = "0"


class PriceFilter(msgspec.Struct, frozen=True):
    tickSize: str


class SpotInstrument(msgspec.Struct, frozen=True):
    symbol: str
    baseCoin: str
    quoteCoin: str
    status: str
    lotSizeFilter: SpotLotFilter
    priceFilter: PriceFilter


class LinearInstrument(msgspec.Struct, frozen=True):
    symbol: str
    baseCoin: str
    quoteCoin: str
    status: str
    lotSizeFilter: LinearLotFilter
    priceFilter: PriceFilter
    contractType: str = ""
    settleCoin: str = ""


class SpotInstruments(msgspec.Struct, frozen=True):
    rows: list[SpotInstrument] = msgspec.field(name="list")


class LinearInstruments(msgspec.Struct, frozen=True):
    rows: list[LinearInstrument] = msgspec.field(name="list")
