"""Kraken public market data: v1 and v2 WebSocket frames -> normalized ``BookDeltas`` / ``Trade``.

Books carry no sequence numbers; each update carries a CRC32 of the best 10 levels per side,
written with the pair's price and size precision, ``.`` removed and leading zeros stripped, asks
(best first) then bids (best first). :func:`checksum_of_levels` computes it from level strings;
:meth:`KrakenPrecisions.book_checksum` from a book, with the precisions each parser learns (v1: from
the snapshot's own strings; v2: from the ``instrument`` channel or :meth:`KrakenPrecisions.set`).
After each update the book must be cut to the subscribed depth (Kraken sends no delete for levels
pushed out of range); the book manager does that with ``depth_limits``.

v1 (replay of older recordings): ``[channelID, {"as": [...], "bs": [...]}, "book-N", "XBT/USD"]`` is a
snapshot; ``[channelID, {"a": [...]}, {"b": [...], "c": "123"}, "book-N", pair]`` an update (one or
two level dicts; the checksum in the last). Levels are ``[price, volume, time(, "r")]``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec

from tradeloop.core import fixed
from tradeloop.core.fastparse import checksum_text_digits, parse_fixed, parse_levels
from tradeloop.core.textmemo import TextMemo
from tradeloop.core.timestamps import rfc3339_to_ns
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, Level, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.kraken.schemas import BookMessage, InstrumentPair, TickerMessage, TradeMessage
from tradeloop.venues.kraken.spec import CHECKSUM_DEPTH, V1_QTY_DECIMALS, VENUE, from_v1_pair

__all__ = ["KrakenPrecisions", "KrakenV1Parser", "KrakenV2Parser", "MarketItem", "ParseError", "checksum_of_levels"]

MarketItem = BookDeltas | Trade | Quote


class ParseError(ValueError):
    """A frame that is not valid Kraken market data (the message names the channel)."""


def _checksum_part(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def checksum_of_levels(asks: Sequence[tuple[str, str]], bids: Sequence[tuple[str, str]]) -> int:
    """Kraken's CRC32 (unsigned) over the best 10 asks then the best 10 bids, from formatted strings."""
    parts = [_checksum_part(p) + _checksum_part(q) for p, q in asks[:CHECKSUM_DEPTH]]
    parts += [_checksum_part(p) + _checksum_part(q) for p, q in bids[:CHECKSUM_DEPTH]]
    return zlib.crc32("".join(parts).encode())


class KrakenPrecisions:
    """Price and size decimals per instrument, as the checksum needs them."""

    __slots__ = ("_dp",)

    def __init__(self) -> None:
        self._dp: dict[InstrumentId, tuple[int, int]] = {}

    def set(self, instrument_id: InstrumentId, price_decimals: int, qty_decimals: int) -> None:
        self._dp[instrument_id] = (price_decimals, qty_decimals)

    def get(self, instrument_id: InstrumentId) -> tuple[int, int] | None:
        return self._dp.get(instrument_id)

    def book_checksum(self, book: OrderBook) -> int:
        """The checksum Kraken would send for ``book``; -1 (never a CRC32) when the precisions are unknown."""
        dp = self._dp.get(book.instrument_id)
        if dp is None:
            return -1
        pdp, qdp = dp
        if _TEXT_IN_C is not None:
            bid_keys, bids, ask_keys, asks = book.sorted_sides()
            text = _TEXT_IN_C(ask_keys, asks, bid_keys, bids, CHECKSUM_DEPTH, pdp, qdp)
            if text is not None:
                return zlib.crc32(text)
        # Written once per (decimals, value) and remembered: the same top levels come back every update.
        price, size = _parts(pdp), _parts(qdp)
        parts = [price(p) + size(q) for p, q in book.top_asks(CHECKSUM_DEPTH)]
        parts += [price(p) + size(q) for p, q in book.top_bids(CHECKSUM_DEPTH)]
        return zlib.crc32("".join(parts).encode())


_TEXT_IN_C: Final = checksum_text_digits
"""The accelerator's writer of exactly the checksum text from the book's sides (``None`` without it)."""
_PARTS: dict[int, TextMemo] = {}


def _parts(decimals: int) -> TextMemo:
    """Checksum parts of values written with ``decimals`` (``to_str`` raises for a value that cannot be)."""
    memo = _PARTS.get(decimals)
    if memo is None:
        to_str = fixed.to_str
        memo = _PARTS[decimals] = TextMemo(lambda value: _checksum_part(to_str(value, decimals)))
    return memo


def _decimals(text: str) -> int:
    _, dot, frac = text.partition(".")
    return len(frac) if dot else 0


def _v1_levels(raw: Any) -> list[Level]:
    if not isinstance(raw, list):
        raise ValueError(f"levels must be a list, got {type(raw).__name__}")
    for level in raw:
        if not isinstance(level, list) or len(level) < 2 or not isinstance(level[0], str):
            raise ValueError(f"bad level {level!r}")
    return parse_levels(raw)  # the same parse of level[0] and level[1], in C when the accelerator is built


_V1_TRADE_SIDES: Final = {"b": Side.BUY, "s": Side.SELL}


class KrakenV1Parser:
    """Parses Kraken WebSocket v1 public frames (book and trade channels)."""

    __slots__ = ("_ids", "precisions", "venue")

    def __init__(self, venue: str = VENUE, precisions: KrakenPrecisions | None = None) -> None:
        self.venue = venue
        self.precisions = precisions or KrakenPrecisions()
        self._ids: dict[str, InstrumentId] = {}

    def instrument_id(self, v1_pair: str) -> InstrumentId:
        iid = self._ids.get(v1_pair)
        if iid is None:
            iid = self._ids[v1_pair] = InstrumentId(self.venue, from_v1_pair(v1_pair))
        return iid

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        """Every market-data item in one frame (empty for events such as heartbeats and acks)."""
        try:
            msg = msgspec.json.decode(payload)
        except msgspec.DecodeError as exc:
            raise ParseError(f"kraken: not valid JSON: {exc}") from exc
        if isinstance(msg, dict):
            if msg.get("event") == "error" or msg.get("status") == "error":
                raise ParseError(f"kraken error event: {msg.get('errorMessage', msg)}")
            return []
        if not isinstance(msg, list) or len(msg) < 4 or not isinstance(msg[-2], str) or not isinstance(msg[-1], str):
            raise ParseError(f"kraken: unexpected frame shape: {payload[:80]!r}")
        channel: str = msg[-2]
        try:
            iid = self.instrument_id(msg[-1])
            if channel.startswith("book"):
                return [self._book(msg[1:-2], iid, ts_recv)]
            if channel == "trade":
                return self._trades(msg[1], iid, ts_recv)
        except (ValueError, TypeError, KeyError) as exc:
            raise ParseError(f"kraken {channel} frame: {exc}") from exc
        return []

    def _book(self, parts: list[Any], iid: InstrumentId, ts_recv: int) -> BookDeltas:
        first = parts[0]
        if not isinstance(first, dict):
            raise ValueError("book payload is not an object")
        if "as" in first or "bs" in first:
            snap_asks: list[Any] = first.get("as", [])
            snap_bids: list[Any] = first.get("bs", [])
            sample = (snap_asks or snap_bids or [["0", "0"]])[0]
            self.precisions.set(iid, _decimals(sample[0]), max(_decimals(sample[1]), V1_QTY_DECIMALS))
            return self._deltas(
                iid, ts_recv, _v1_levels(snap_bids), _v1_levels(snap_asks), True, None, snap_asks, snap_bids
            )
        asks_raw: list[Any] = []
        bids_raw: list[Any] = []
        checksum: int | None = None
        for part in parts:
            if not isinstance(part, dict):
                raise ValueError("book payload is not an object")
            asks_raw += part.get("a", [])
            bids_raw += part.get("b", [])
            if "c" in part:
                checksum = int(part["c"])
        return self._deltas(
            iid, ts_recv, _v1_levels(bids_raw), _v1_levels(asks_raw), False, checksum, asks_raw, bids_raw
        )

    @staticmethod
    def _deltas(
        iid: InstrumentId,
        ts_recv: int,
        bids: list[Level],
        asks: list[Level],
        snapshot: bool,
        checksum: int | None,
        asks_raw: list[Any],
        bids_raw: list[Any],
    ) -> BookDeltas:
        times = [lv[2] for lv in asks_raw + bids_raw if len(lv) > 2 and isinstance(lv[2], str)]
        ts_event = parse_fixed(max(times)) if times else ts_recv  # "1618678123.481570" seconds -> ns
        return BookDeltas(iid, ts_event, ts_recv, -1, -1, bids, asks, snapshot=snapshot, checksum=checksum)

    def _trades(self, raw: Any, iid: InstrumentId, ts_recv: int) -> list[MarketItem]:
        if not isinstance(raw, list):
            raise ValueError("trades must be a list")
        out: list[MarketItem] = []
        for t in raw:
            side = _V1_TRADE_SIDES.get(t[3])
            if side is None:
                raise ValueError(f"trade side {t[3]!r}")
            out.append(Trade(iid, parse_fixed(t[2]), ts_recv, parse_fixed(t[0]), parse_fixed(t[1]), side))
        return out


def _dec(value: Decimal) -> int:
    return parse_fixed(format(value, "f"))


def _rfc3339_ns(text: str, default: int) -> int:
    return rfc3339_to_ns(text) if text else default


_BOOK: Final = msgspec.json.Decoder(BookMessage)
_TRADES: Final = msgspec.json.Decoder(TradeMessage)
_TICKER: Final = msgspec.json.Decoder(TickerMessage)


class KrakenV2Parser:
    """Parses Kraken WebSocket v2 public frames (``book``, ``trade``, ``ticker``, ``instrument``)."""

    __slots__ = ("_ids", "precisions", "venue")

    def __init__(self, venue: str = VENUE, precisions: KrakenPrecisions | None = None) -> None:
        self.venue = venue
        self.precisions = precisions or KrakenPrecisions()
        self._ids: dict[str, InstrumentId] = {}

    def instrument_id(self, symbol: str) -> InstrumentId:
        iid = self._ids.get(symbol)
        if iid is None:
            iid = self._ids[symbol] = InstrumentId(self.venue, symbol)
        return iid

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        try:
            head = msgspec.json.decode(payload, type=dict[str, Any])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"kraken v2: not a JSON object: {exc}") from exc
        if head.get("success") is False or head.get("error"):
            raise ParseError(f"kraken v2 error: {head.get('error')}")
        channel = head.get("channel", "")
        try:
            if channel == "book":
                msg = _BOOK.decode(payload)
                snapshot = msg.type == "snapshot"
                return [
                    BookDeltas(
                        self.instrument_id(u.symbol),
                        _rfc3339_ns(u.timestamp, ts_recv),
                        ts_recv,
                        -1,
                        -1,
                        [(_dec(lv.price), _dec(lv.qty)) for lv in u.bids],
                        [(_dec(lv.price), _dec(lv.qty)) for lv in u.asks],
                        snapshot=snapshot,
                        checksum=u.checksum,
                    )
                    for u in msg.data
                ]
            if channel == "trade":
                return [
                    Trade(
                        self.instrument_id(t.symbol),
                        _rfc3339_ns(t.timestamp, ts_recv),
                        ts_recv,
                        _dec(t.price),
                        _dec(t.qty),
                        Side.BUY if t.side == "buy" else Side.SELL,
                        str(t.trade_id),
                    )
                    for t in _TRADES.decode(payload).data
                ]
            if channel == "ticker":
                return [
                    Quote(
                        self.instrument_id(t.symbol),
                        _rfc3339_ns(t.timestamp, ts_recv),
                        ts_recv,
                        _dec(t.bid),
                        _dec(t.bid_qty),
                        _dec(t.ask),
                        _dec(t.ask_qty),
                    )
                    for t in _TICKER.decode(payload).data
                ]
            if channel == "instrument":
                pairs = head.get("data", {}).get("pairs", [])
                for pair in msgspec.convert(pairs, list[InstrumentPair]):
                    self.precisions.set(self.instrument_id(pair.symbol), pair.price_precision, pair.qty_precision)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ParseError(f"kraken v2 {channel} frame: {exc}") from exc
        return []
