"""Binance public market data: raw frame bytes -> normalized ``BookDeltas`` / ``Trade`` / ``Quote``.

The conversions from decoded schema structs to domain objects are pure functions
(:func:`depth_update_to_deltas`, :func:`snapshot_to_deltas`, :func:`trade_to_domain`,
:func:`agg_trade_to_domain`, :func:`book_ticker_to_quote`). :class:`BinanceParser` adds what a
stream needs around them: routing by stream name and a cache of instrument ids.

Decoding is single-pass on the hot path. A combined-stream frame starts with
``{"stream":"<name>"``; the parser reads the name straight from the bytes, looks up its route
(cached per stream name) and decodes the whole frame once with a decoder typed for that stream
(``CombinedStream[DepthUpdate]``, ...). Frames of any other shape (REST snapshot, raw
``/ws/<stream>`` events, acks, reordered keys) take a slower path through :class:`StreamEnvelope`.

Mapping rules: ``ts_event`` is the venue's transaction time ``T`` when sent, else the event time
``E`` (milliseconds, turned into ns), else ``ts_recv``. A depth diff becomes
``BookDeltas(first_seq=U, last_seq=u, prev_seq=pu or -1)``; a REST snapshot
``BookDeltas(snapshot=True, first_seq=last_seq=lastUpdateId)``. A trade with ``m`` true (buyer is
maker) has aggressor SELL. Frames that carry no market data (subscription acks, unknown streams
such as klines or partial-depth ``depth5``) give ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from tradeloop.core.fastparse import parse_fixed, parse_levels
from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.binance.schemas import (
    AggTradeEvent,
    BookTickerEvent,
    CombinedStream,
    DepthSnapshot,
    DepthUpdate,
    StreamEnvelope,
    TradeEvent,
)
from tradeloop.venues.binance.spec import VENUE_SPOT

__all__ = [
    "BinanceParser",
    "MarketItem",
    "ParseError",
    "agg_trade_to_domain",
    "book_ticker_to_quote",
    "depth_update_to_deltas",
    "snapshot_to_deltas",
    "trade_to_domain",
]

MarketItem = BookDeltas | Trade | Quote
"""What the parser produces."""

_MS: Final = 1_000_000
_PREFIX: Final = b'{"stream":"'
_PREFIX_LEN: Final = len(_PREFIX)
_MAX_ROUTES: Final = 4096


class ParseError(ValueError):
    """A frame that is not valid Binance market data; the message says what is wrong."""


# -- pure conversions ---------------------------------------------------------------------------


def depth_update_to_deltas(msg: DepthUpdate, instrument_id: InstrumentId, ts_recv: int) -> BookDeltas:
    """A diff depth event as ``BookDeltas`` (``first_seq=U``, ``last_seq=u``, ``prev_seq=pu`` or -1)."""
    return BookDeltas(
        instrument_id,
        (msg.T or msg.E) * _MS,
        ts_recv,
        msg.U,
        msg.u,
        parse_levels(msg.b),
        parse_levels(msg.a),
        False,
        msg.pu,
    )


def snapshot_to_deltas(msg: DepthSnapshot, instrument_id: InstrumentId, ts_recv: int) -> BookDeltas:
    """A REST depth snapshot as a snapshot ``BookDeltas`` at sequence ``lastUpdateId``."""
    ts = msg.T or msg.E
    return BookDeltas(
        instrument_id,
        ts * _MS if ts else ts_recv,
        ts_recv,
        msg.lastUpdateId,
        msg.lastUpdateId,
        parse_levels(msg.bids),
        parse_levels(msg.asks),
        True,
    )


def trade_to_domain(msg: TradeEvent, instrument_id: InstrumentId, ts_recv: int) -> Trade:
    """A trade event as ``Trade``; ``m`` (buyer is maker) means the aggressor sold."""
    return Trade(
        instrument_id,
        msg.T * _MS,
        ts_recv,
        parse_fixed(msg.p),
        parse_fixed(msg.q),
        Side.SELL if msg.m else Side.BUY,
        str(msg.t),
    )


def agg_trade_to_domain(msg: AggTradeEvent, instrument_id: InstrumentId, ts_recv: int) -> Trade:
    """An aggregate trade as one ``Trade`` (its id is the aggregate id ``a``)."""
    return Trade(
        instrument_id,
        msg.T * _MS,
        ts_recv,
        parse_fixed(msg.p),
        parse_fixed(msg.q),
        Side.SELL if msg.m else Side.BUY,
        str(msg.a),
    )


def book_ticker_to_quote(msg: BookTickerEvent, instrument_id: InstrumentId, ts_recv: int) -> Quote:
    """A book ticker as ``Quote`` (``seq`` is the book update id ``u``)."""
    ts = msg.T or msg.E
    return Quote(
        instrument_id,
        ts * _MS if ts else ts_recv,
        ts_recv,
        parse_fixed(msg.b),
        parse_fixed(msg.B),
        parse_fixed(msg.a),
        parse_fixed(msg.A),
        msg.u,
    )


# -- routing tables (data) ----------------------------------------------------------------------

Convert = Callable[[Any, InstrumentId, int], MarketItem | None]


def _ignore(msg: Any, instrument_id: InstrumentId, ts_recv: int) -> None:
    return None


# channel (stream name after "<symbol>@", up to the next "@") -> (name, data type, conversion)
_CHANNELS: Final[dict[str, tuple[str, type[Any], Convert]]] = {
    "depth": ("depthUpdate", DepthUpdate, depth_update_to_deltas),
    "trade": ("trade", TradeEvent, trade_to_domain),
    "aggTrade": ("aggTrade", AggTradeEvent, agg_trade_to_domain),
    "bookTicker": ("bookTicker", BookTickerEvent, book_ticker_to_quote),
}
# raw-stream event type ("e") -> channel
_EVENTS: Final[dict[str, str]] = {name: channel for channel, (name, _, _) in _CHANNELS.items()}


def _frame_decoder(data_type: type[Any]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(CombinedStream[data_type])  # type: ignore[valid-type]


_FRAME_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    channel: _frame_decoder(tp) for channel, (_, tp, _) in _CHANNELS.items()
}
_DATA_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    channel: msgspec.json.Decoder(tp) for channel, (_, tp, _) in _CHANNELS.items()
}
_IGNORED_FRAME: Final = msgspec.json.Decoder(CombinedStream[msgspec.Raw])
_ENVELOPE: Final = msgspec.json.Decoder(StreamEnvelope)
_SNAPSHOT: Final = msgspec.json.Decoder(DepthSnapshot)

_Route = tuple[str, "msgspec.json.Decoder[Any]", Convert, InstrumentId]
"""(label, frame decoder, conversion, instrument id); ignored streams convert to ``None``."""


class BinanceParser:
    """Parses Binance public market-data frames for one venue (``binance`` spot, ``binance_usdm``...).

    ``symbol`` names the instrument of REST depth snapshots, which carry no symbol; when it is
    not given, the parser uses the symbol of the one depth stream it has seen (and raises if it
    has seen none or several).
    """

    __slots__ = ("_depth_symbols", "_ids", "_routes", "symbol", "venue")

    def __init__(self, venue: str = VENUE_SPOT, symbol: str | None = None) -> None:
        self.venue = venue
        self.symbol = symbol.upper() if symbol else None
        self._routes: dict[bytes, _Route] = {}
        self._ids: dict[str, InstrumentId] = {}
        self._depth_symbols: set[str] = set()

    def instrument_id(self, symbol: str) -> InstrumentId:
        """The (cached) id of ``symbol`` on this parser's venue; Binance symbols are upper case."""
        iid = self._ids.get(symbol)
        if iid is None:
            iid = self._ids[symbol] = InstrumentId(self.venue, symbol.upper())
        return iid

    def parse(self, payload: bytes, ts_recv: int) -> MarketItem | None:
        """Turn one frame into a domain object, or ``None`` for frames without market data.

        Raises :class:`ParseError` if the frame is not valid JSON, lacks a required field, has a
        field of the wrong type or a price/size that is not an exact decimal.
        """
        if payload.startswith(_PREFIX):
            end = payload.find(b'"', _PREFIX_LEN)
            if end > 0:
                name = payload[_PREFIX_LEN:end]
                route = self._routes.get(name)
                if route is None:
                    route = self._route(name.decode("utf-8", "replace"), name)
                label, decoder, convert, iid = route
                try:
                    return convert(decoder.decode(payload).data, iid, ts_recv)
                except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                    raise ParseError(f"binance {label} frame on {name.decode('utf-8', 'replace')}: {exc}") from exc
        return self._parse_other(payload, ts_recv)

    def parse_snapshot(self, payload: bytes, ts_recv: int, symbol: str | None = None) -> BookDeltas:
        """Parse a REST depth snapshot body for ``symbol`` (default: see the class docstring)."""
        try:
            msg = _SNAPSHOT.decode(payload)
            return snapshot_to_deltas(msg, self.instrument_id(symbol or self._snapshot_symbol()), ts_recv)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            if isinstance(exc, ParseError):
                raise
            raise ParseError(f"binance depth snapshot: {exc}") from exc

    # -- internals --------------------------------------------------------------------------

    def _route(self, name: str, key: bytes) -> _Route:
        symbol, _, rest = name.partition("@")
        channel = rest.partition("@")[0]
        entry = _CHANNELS.get(channel)
        route: _Route
        if not symbol or entry is None:
            route = (channel or "unknown", _IGNORED_FRAME, _ignore, self.instrument_id(symbol or "?"))
        else:
            symbol = symbol.upper()
            if channel == "depth":
                self._depth_symbols.add(symbol)
            route = (entry[0], _FRAME_DECODERS[channel], entry[2], self.instrument_id(symbol))
        if len(self._routes) < _MAX_ROUTES:
            self._routes[key] = route
        return route

    def _snapshot_symbol(self) -> str:
        if self.symbol:
            return self.symbol
        if len(self._depth_symbols) == 1:
            return next(iter(self._depth_symbols))
        seen = sorted(self._depth_symbols) or "none"
        raise ParseError(f"depth snapshot carries no symbol; depth streams seen: {seen} (pass symbol=)")

    def _parse_other(self, payload: bytes, ts_recv: int) -> MarketItem | None:
        try:
            env = _ENVELOPE.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"binance: not a valid frame: {exc}") from exc
        if env.stream:
            _, _, convert, iid = self._route(env.stream, env.stream.encode())
            if convert is _ignore:
                return None
            channel = env.stream.partition("@")[2].partition("@")[0]
            return self._decode_data(channel, bytes(env.data), iid, ts_recv)
        if env.lastUpdateId >= 0:
            return self.parse_snapshot(payload, ts_recv)
        if env.e:
            channel = _EVENTS.get(env.e, "")
            return self._decode_data(channel, payload, None, ts_recv) if channel else None
        if env.A:
            return self._decode_data("bookTicker", payload, None, ts_recv)
        return None  # subscription ack, error reply or anything else without market data

    def _decode_data(self, channel: str, data: bytes, iid: InstrumentId | None, ts_recv: int) -> MarketItem | None:
        label, _, convert = _CHANNELS[channel]
        try:
            msg = _DATA_DECODERS[channel].decode(data)
            if iid is None:
                iid = self.instrument_id(msg.s)
                if channel == "depth":
                    self._depth_symbols.add(iid.symbol)
            return convert(msg, iid, ts_recv)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ParseError(f"binance {label} event: {exc}") from exc
