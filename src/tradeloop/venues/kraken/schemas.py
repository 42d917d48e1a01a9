"""Kraken WebSocket v2 public messages as msgspec structs (lenient: unused fields are ignored).

v2 sends prices and sizes as JSON numbers; they are decoded as ``Decimal`` from the raw text, so
nothing passes through a float. (v1 frames are positional JSON arrays, decoded in ``parse``.)
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

__all__ = ["BookLevel", "BookMessage", "BookUpdate", "InstrumentPair", "TradeMessage", "V2Trade"]


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
