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
    "AggTradeEvent",
    "BookTickerEvent",
    "CombinedStream",
    "DepthSnapshot",
    "DepthUpdate",
    "RawLevel",
    "StreamEnvelope",
    "TradeEvent",
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
