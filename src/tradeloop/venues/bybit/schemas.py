"""Bybit v5 public WebSocket messages as msgspec structs (lenient: unused fields are ignored)."""

from __future__ import annotations

import msgspec

__all__ = ["BookData", "BookMessage", "TradeData", "TradeMessage"]


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
