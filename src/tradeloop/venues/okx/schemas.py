"""OKX v5 messages as msgspec structs (lenient: unused fields are ignored): public WebSocket pushes,
REST replies (order acks, order details, fills, balances, book snapshots) and private pushes."""

from __future__ import annotations

import msgspec

__all__ = [
    "AccountPush",
    "AckReply",
    "BalanceData",
    "BalanceDetail",
    "BalanceReply",
    "BookData",
    "BookPush",
    "BookReply",
    "EventReply",
    "FillData",
    "FillsReply",
    "OrderAck",
    "OrderData",
    "OrdersPush",
    "OrdersReply",
    "PushArg",
    "TickerData",
    "TickerPush",
    "TimeData",
    "TimeReply",
    "TradeData",
    "TradePush",
]


class PushArg(msgspec.Struct, frozen=True):
    channel: str
    instId: str = ""


class BookData(msgspec.Struct, frozen=True):
    """One ``books`` push. Levels are ``[px, sz, "0", numOrders]``; size ``"0"`` deletes the level.

    ``seqId`` / ``prevSeqId`` are absent from recordings made before OKX introduced them; ``checksum``
    is the CRC32 of the top 25 levels (always 0 on production since 2026-06).
    """

    asks: list[list[str]]
    bids: list[list[str]]
    ts: str
    checksum: int | None = None
    seqId: int | None = None
    prevSeqId: int | None = None


class BookPush(msgspec.Struct, frozen=True):
    arg: PushArg
    data: list[BookData]
    action: str = "snapshot"


class TradeData(msgspec.Struct, frozen=True):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str


class TradePush(msgspec.Struct, frozen=True):
    arg: PushArg
    data: list[TradeData]


class TickerData(msgspec.Struct, frozen=True):
    instId: str
    bidPx: str
    bidSz: str
    askPx: str
    askSz: str
    ts: str


class TickerPush(msgspec.Struct, frozen=True):
    arg: PushArg
    data: list[TickerData]


class EventReply(msgspec.Struct, frozen=True):
    """Subscription acks, login replies and errors: ``{"event": ..., "code": ..., "msg": ...}``."""

    event: str
    code: str = ""
    msg: str = ""
    arg: PushArg | None = None


class BookReply(msgspec.Struct, frozen=True):
    """``GET /api/v5/market/books``: one element with ``asks``, ``bids``, ``ts`` and ``seqId``."""

    code: str
    msg: str = ""
    data: list[BookData] = []


# -- trading (REST replies and the private ``orders`` / ``account`` channels) --------------------------


class OrderAck(msgspec.Struct, frozen=True):
    """One item of a place / cancel / amend reply: ``sCode`` "0" is success for that item."""

    ordId: str = ""
    clOrdId: str = ""
    sCode: str = ""
    sMsg: str = ""
    reqId: str = ""


class AckReply(msgspec.Struct, frozen=True):
    """Envelope of order requests: ``code`` "0" all ok, "1" all failed, "2" partly failed (check ``sCode``)."""

    code: str
    msg: str = ""
    data: list[OrderAck] = []


class OrderData(msgspec.Struct, frozen=True):
    """An order as ``GET /trade/order``, ``orders-pending`` and the ``orders`` channel describe it.

    Sizes are base units for spot and contracts for swaps. In the ``orders`` channel a fill is an
    update with ``tradeId`` and ``fillSz``; ``fillFee`` is negative when charged.
    """

    instId: str
    ordId: str = ""
    clOrdId: str = ""
    instType: str = ""
    px: str = ""
    sz: str = ""
    ordType: str = ""
    side: str = ""
    state: str = ""
    accFillSz: str = ""
    avgPx: str = ""
    fillPx: str = ""
    fillSz: str = ""
    tradeId: str = ""
    fillFee: str = ""
    fillFeeCcy: str = ""
    fillTime: str = ""
    execType: str = ""
    fee: str = ""
    feeCcy: str = ""
    cancelSource: str = ""
    amendResult: str = ""
    reqId: str = ""
    code: str = ""
    msg: str = ""
    cTime: str = ""
    uTime: str = ""


class OrdersReply(msgspec.Struct, frozen=True):
    code: str
    msg: str = ""
    data: list[OrderData] = []


class OrdersPush(msgspec.Struct, frozen=True):
    arg: PushArg
    data: list[OrderData]


class FillData(msgspec.Struct, frozen=True):
    """One fill of ``GET /api/v5/trade/fills`` (``fee`` negative when charged)."""

    instId: str
    tradeId: str
    ordId: str
    fillPx: str
    fillSz: str
    side: str
    clOrdId: str = ""
    execType: str = ""
    fee: str = ""
    feeCcy: str = ""
    fillTime: str = ""
    ts: str = ""


class FillsReply(msgspec.Struct, frozen=True):
    code: str
    msg: str = ""
    data: list[FillData] = []


class BalanceDetail(msgspec.Struct, frozen=True):
    """One currency of the trading account (amounts may carry more than 9 decimals)."""

    ccy: str
    cashBal: str = ""
    availBal: str = ""
    frozenBal: str = ""
    eq: str = ""


class BalanceData(msgspec.Struct, frozen=True):
    details: list[BalanceDetail] = []
    uTime: str = ""


class BalanceReply(msgspec.Struct, frozen=True):
    """``GET /api/v5/account/balance``."""

    code: str
    msg: str = ""
    data: list[BalanceData] = []


class AccountPush(msgspec.Struct, frozen=True):
    """The private ``account`` channel: the same data as the balance reply."""

    arg: PushArg
    data: list[BalanceData]


class TimeData(msgspec.Struct, frozen=True):
    ts: str


class TimeReply(msgspec.Struct, frozen=True):
    """``GET /api/v5/public/time``."""

    code: str
    msg: str = ""
    data: list[TimeData] = []
