"""OKX v5 public WebSocket messages as msgspec structs (lenient: unused fields are ignored)."""

from __future__ import annotations

import msgspec

__all__ = ["BookData", "BookPush", "EventReply", "PushArg", "TickerData", "TickerPush", "TradeData", "TradePush"]


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
