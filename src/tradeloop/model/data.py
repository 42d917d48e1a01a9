"""Normalized market data. Venue parsers produce these; nothing above the venue layer sees venue JSON.

Every price and size is fixed-point nanos (``tradeloop.core.fixed``).
"""

from __future__ import annotations

import msgspec

from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId

Level = tuple[int, int]
"""One book level: ``(price, size)``; size 0 in a delta deletes the level."""


class BookDeltas(msgspec.Struct, frozen=True, gc=False, tag=True):
    """A batch of absolute level updates, or a full snapshot when ``snapshot`` is true.

    Sequence numbers follow the venue: ``first_seq``..``last_seq`` is the range this batch covers,
    ``prev_seq`` the venue's declared previous ``last_seq`` when it sends one (-1 otherwise).
    ``checksum`` is the venue's checksum of the book after this batch, when it sends one.
    """

    instrument_id: InstrumentId
    ts_event: int
    ts_recv: int
    first_seq: int
    last_seq: int
    bids: list[Level]
    asks: list[Level]
    snapshot: bool = False
    prev_seq: int = -1
    checksum: int | None = None


class Trade(msgspec.Struct, frozen=True, gc=False, tag=True):
    """A public trade. ``aggressor`` is the taker's side."""

    instrument_id: InstrumentId
    ts_event: int
    ts_recv: int
    price: int
    qty: int
    aggressor: Side
    trade_id: str = ""


class Quote(msgspec.Struct, frozen=True, gc=False, tag=True):
    """Best bid and ask as the venue reports them (e.g. Binance ``bookTicker``)."""

    instrument_id: InstrumentId
    ts_event: int
    ts_recv: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int
    seq: int = -1


class BookStatus(msgspec.Struct, frozen=True, tag=True):
    """A book became invalid (gap, checksum mismatch, crossed) or valid again after a resync.

    Strategies must not price off a book while it is invalid.
    """

    instrument_id: InstrumentId
    ts: int
    valid: bool
    reason: str


MarketData = BookDeltas | Trade | Quote | BookStatus
