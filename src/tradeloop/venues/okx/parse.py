"""OKX public market data: raw frame bytes -> normalized ``BookDeltas`` / ``Trade`` / ``Quote``.

Mapping rules:

* ``books`` push -> ``BookDeltas``: ``action == "snapshot"`` is a snapshot. With sequence ids,
  ``first_seq = prevSeqId``, ``last_seq = seqId``, ``prev_seq = prevSeqId`` so the book's
  ``PREV_LINK`` rule holds OKX's chain (each ``prevSeqId`` equals the previous ``seqId``; the
  first update after a snapshot names the snapshot's ``seqId``). Frames recorded before OKX sent
  sequence ids carry ``-1`` and are checked by checksum alone.
* ``checksum`` -> ``BookDeltas.checksum`` unless it is 0 (production stopped computing it in 2026).
  :func:`book_checksum` recomputes it from a book.
* ``trades`` -> one ``Trade`` per element (``side`` is the taker's side); ``tickers`` and ``bbo-tbt`` ->
  ``Quote``.
* Sizes: OKX writes swap sizes in contracts. A parser given ``contract_values`` (``instId`` -> base
  per contract, nanos) turns them into base units exactly (book levels, trades, quotes); without it
  sizes are kept as sent (replay of recordings). :class:`OkxBookChecksum` divides them back, so the
  checksum is computed on OKX's own numbers.
* :meth:`OkxParser.parse_rest_book` reads a ``GET /api/v5/market/books`` reply (the snapshot of the
  2026 procedure, which carries ``seqId``).
* Subscription acks, login replies, ``pong`` and channels without market data give no items;
  ``{"event":"error"}`` raises :class:`ParseError` with OKX's code and message.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.core.fastparse import checksum_text_interleaved, levels_json_strings, parse_fixed, parse_levels
from tradeloop.core.textmemo import TextMemo
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, Level, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.okx.schemas import BookData, BookPush, BookReply, EventReply, TickerPush, TradePush
from tradeloop.venues.okx.spec import BBO_CHANNEL, BOOK_CHANNEL, CHECKSUM_DEPTH, TICKER_CHANNEL, TRADE_CHANNEL, VENUE

__all__ = ["MarketItem", "OkxBookChecksum", "OkxParser", "ParseError", "book_checksum", "checksum_of_levels"]

MarketItem = BookDeltas | Trade | Quote
_MS: Final = 1_000_000


class ParseError(ValueError):
    """A frame that is not valid OKX market data (the message names the channel)."""


class _Envelope(msgspec.Struct, frozen=True):
    event: str = ""
    arg: dict[str, str] | None = None
    action: str = ""


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_BOOK = msgspec.json.Decoder(BookPush)
_TRADES = msgspec.json.Decoder(TradePush)
_TICKERS = msgspec.json.Decoder(TickerPush)
_EVENT = msgspec.json.Decoder(EventReply)
_BOOK_REPLY = msgspec.json.Decoder(BookReply)
_SCALE: Final = fixed.SCALE
_LEVELS_IN_C: Final = levels_json_strings
"""The accelerator's parser of levels straight from JSON text (``None`` without it)."""


def _size(text: str, ct_val: int) -> int:
    """A size as sent, in base units: contracts x ``ct_val`` when ``ct_val`` is not 0 (exact or ``ValueError``)."""
    value = parse_fixed(text)
    if not ct_val:
        return value
    q, r = divmod(value * ct_val, _SCALE)
    if r:
        raise ValueError(f"{text} contracts of {fixed.to_str(ct_val)} are not a whole number of nanos")
    return q


def _levels(raw: list[list[str]], ct_val: int = 0) -> list[Level]:
    if not ct_val:
        return parse_levels(raw)  # sizes as sent: all in C when the accelerator is built
    out: list[Level] = []
    for level in raw:
        if len(level) < 2:
            raise ValueError(f"level {level!r} needs a price and a size")
        out.append((parse_fixed(level[0]), _size(level[1], ct_val)))
    return out


def book_to_deltas(
    data: BookData, instrument_id: InstrumentId, snapshot: bool, ts_recv: int, ct_val: int = 0
) -> BookDeltas:
    """One ``books`` data element as a snapshot or a delta batch (pure); ``ct_val``: swap sizes to base."""
    ts_event = int(data.ts) * _MS
    return _deltas(
        data, instrument_id, snapshot, ts_recv, ts_event, _levels(data.bids, ct_val), _levels(data.asks, ct_val)
    )


def _deltas(
    data: BookData | _RawBookData,
    instrument_id: InstrumentId,
    snapshot: bool,
    ts_recv: int,
    ts_event: int,
    bids: list[Level],
    asks: list[Level],
) -> BookDeltas:
    seq = data.seqId if data.seqId is not None else -1
    prev = data.prevSeqId if data.prevSeqId is not None and data.prevSeqId >= 0 else -1
    return BookDeltas(
        instrument_id=instrument_id,
        ts_event=ts_event,
        ts_recv=ts_recv,
        first_seq=seq if snapshot or prev < 0 else prev,
        last_seq=seq,
        bids=bids,
        asks=asks,
        snapshot=snapshot,
        prev_seq=prev,
        checksum=data.checksum if data.checksum else None,
    )


class _RawBookData(msgspec.Struct, frozen=True):
    """:class:`BookData` with the level arrays left as JSON text (read by the accelerator)."""

    asks: msgspec.Raw
    bids: msgspec.Raw
    ts: str
    checksum: int | None = None
    seqId: int | None = None
    prevSeqId: int | None = None


class _RawBookFrame(msgspec.Struct, frozen=True):
    """A ``books`` push as the envelope and :class:`BookPush` together type it, levels as JSON text."""

    arg: dict[str, str]
    data: list[_RawBookData]
    action: str = "snapshot"
    event: str = ""


_RAW_BOOK: Final = msgspec.json.Decoder(_RawBookFrame)
_BOOKS_MARK: Final = b'"books"'


def _raw_levels(raw: msgspec.Raw, ct_val: int) -> list[Level] | None:
    """The levels of ``raw`` as :func:`_levels` reads them, or ``None`` when only the general path can
    tell (not plain strings, a decimal it refuses, contracts that are not whole nanos)."""
    assert _LEVELS_IN_C is not None
    try:
        levels = _LEVELS_IN_C(raw)
    except ValueError:
        return None
    if levels is None or not ct_val:
        return levels
    out: list[Level] = []
    for price, contracts in levels:
        q, r = divmod(contracts * ct_val, _SCALE)
        if r:
            return None
        out.append((price, q))
    return out


def checksum_of_levels(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX's CRC32: ``bidPx:bidSz:askPx:askSz:...`` over the top 25 of each side, as signed int32.

    When one side is shorter the other side's remaining levels continue alone.
    """
    return _crc_of_level_texts([f"{p}:{q}" for p, q in bids], [f"{p}:{q}" for p, q in asks])


def _crc_of_level_texts(bids: list[str], asks: list[str]) -> int:
    """:func:`checksum_of_levels` of levels already written as ``"px:sz"``."""
    n = min(len(bids), len(asks))
    parts = [text for pair in zip(bids[:n], asks[:n], strict=True) for text in pair]
    parts += bids[n:] or asks[n:]
    return _signed_crc(":".join(parts).encode())


def _signed_crc(text: bytes) -> int:
    crc = zlib.crc32(text)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


_TEXT_IN_C: Final = checksum_text_interleaved
"""The accelerator's writer of exactly this text from the book's sides (``None`` without it)."""
_TEXT: Final = TextMemo(fixed.to_str)
"""Prices and sizes as OKX writes them (no trailing zeros), remembered: the checksum writes the same
top levels on every update."""


def _level_texts(levels: list[Level], prices: TextMemo, sizes: TextMemo) -> list[str]:
    pget, pfill, sget, sfill = prices.texts.get, prices.fill, sizes.texts.get, sizes.fill
    return [f"{pget(p) or pfill(p)}:{sget(q) or sfill(q)}" for p, q in levels]


def book_checksum(book: OrderBook) -> int:
    """The checksum OKX would send for ``book`` (its numbers written without trailing zeros, as OKX does)."""
    if _TEXT_IN_C is not None:
        text = _TEXT_IN_C(*book.sorted_sides(), CHECKSUM_DEPTH)
        if text is not None:
            return _signed_crc(text)
    return _crc_of_level_texts(
        _level_texts(book.top_bids(CHECKSUM_DEPTH), _TEXT, _TEXT),
        _level_texts(book.top_asks(CHECKSUM_DEPTH), _TEXT, _TEXT),
    )


class OkxBookChecksum:
    """:func:`book_checksum` for books whose swap sizes were converted to base units: sizes of the
    instruments in ``contract_values`` are turned back into contracts (as OKX sent them) first."""

    __slots__ = ("_ct", "_sizes")

    def __init__(self, contract_values: Mapping[str, int] | None = None) -> None:
        self._ct = dict(contract_values or {})
        self._sizes = {symbol: _contracts_text(ct) for symbol, ct in self._ct.items() if ct}

    def __call__(self, book: OrderBook) -> int:
        sizes = self._sizes.get(book.instrument_id.symbol)
        if sizes is None:
            return book_checksum(book)
        return _crc_of_level_texts(
            _level_texts(book.top_bids(CHECKSUM_DEPTH), _TEXT, sizes),
            _level_texts(book.top_asks(CHECKSUM_DEPTH), _TEXT, sizes),
        )


def _contracts_text(ct: int) -> TextMemo:
    """Base sizes written as OKX's contracts of ``ct`` base each."""
    to_str = fixed.to_str
    return TextMemo(lambda qty: to_str(qty * _SCALE // ct))


class OkxParser:
    """Parses OKX v5 public frames; instrument ids are ``okx:<instId>``.

    ``contract_values`` (``instId`` -> base per contract, nanos) converts those instruments' sizes
    from contracts to base units.
    """

    __slots__ = ("_ct", "_ids", "venue")

    def __init__(self, venue: str = VENUE, contract_values: Mapping[str, int] | None = None) -> None:
        self.venue = venue
        self._ids: dict[str, InstrumentId] = {}
        self._ct = dict(contract_values or {})

    def instrument_id(self, inst_id: str) -> InstrumentId:
        iid = self._ids.get(inst_id)
        if iid is None:
            iid = self._ids[inst_id] = InstrumentId(self.venue, inst_id)
        return iid

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        """Every market-data item in one frame (an empty list for acks, pongs and other channels).

        Raises :class:`ParseError` for invalid JSON, missing or mistyped fields, inexact decimals
        and OKX error events.
        """
        if payload == b"pong":
            return []
        if _LEVELS_IN_C is not None and payload.find(_BOOKS_MARK, 0, 40) >= 0:
            items = self._books_fast(payload, ts_recv)
            if items is not None:
                return items
        try:
            env = _ENVELOPE.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"okx: not a valid frame: {exc}") from exc
        if env.event:
            if env.event == "error":
                reply = _EVENT.decode(payload)
                raise ParseError(f"okx error event: code {reply.code}: {reply.msg}")
            return []
        channel = env.arg.get("channel", "") if env.arg else ""
        try:
            if channel == BOOK_CHANNEL:
                book = _BOOK.decode(payload)
                iid = self.instrument_id(book.arg.instId)
                snapshot = book.action == "snapshot"
                ct = self._ct.get(book.arg.instId, 0)
                return [book_to_deltas(d, iid, snapshot, ts_recv, ct) for d in book.data]
            if channel == TRADE_CHANNEL:
                return [
                    self._trade(t.instId, t.tradeId, t.px, t.sz, t.side, t.ts, ts_recv)
                    for t in _TRADES.decode(payload).data
                ]
            if channel == BBO_CHANNEL:
                bbo = _BOOK.decode(payload)
                return [q for d in bbo.data if (q := self._bbo(bbo.arg.instId, d, ts_recv)) is not None]
            if channel == TICKER_CHANNEL:
                return [
                    self._quote(t.instId, t.bidPx, t.bidSz, t.askPx, t.askSz, t.ts, ts_recv)
                    for t in _TICKERS.decode(payload).data
                ]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ParseError(f"okx {channel} frame: {exc}") from exc
        return []

    def _books_fast(self, payload: bytes, ts_recv: int) -> list[MarketItem] | None:
        """A ``books`` push decoded once, its levels parsed from the JSON text in C: the items the
        general path gives, or ``None`` whenever that path must decide (it then also reports errors)."""
        try:
            frame = _RAW_BOOK.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        arg = frame.arg
        if frame.event or arg.get("channel") != BOOK_CHANNEL:
            return None
        inst_id = arg.get("instId", "")
        snapshot = frame.action == "snapshot"
        ct = self._ct.get(inst_id, 0)
        out: list[MarketItem] = []
        for d in frame.data:
            ts = d.ts
            if not ts.isdigit() or not ts.isascii():
                return None  # int() decides (signs, spaces, other digits)
            bids = _raw_levels(d.bids, ct)
            asks = _raw_levels(d.asks, ct) if bids is not None else None
            if asks is None or bids is None:
                return None
            out.append(_deltas(d, self.instrument_id(inst_id), snapshot, ts_recv, int(ts) * _MS, bids, asks))
        return out

    def parse_rest_book(self, payload: bytes, inst_id: str, ts_recv: int) -> BookDeltas:
        """A ``GET /api/v5/market/books`` reply as a snapshot whose ``last_seq`` is the reply's ``seqId``.

        Raises :class:`ParseError` for error replies, malformed bodies and replies without ``seqId``
        (which cannot be linked to the WebSocket updates).
        """
        try:
            reply = _BOOK_REPLY.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"okx market/books reply: {exc}") from exc
        if reply.code != "0" or not reply.data:
            raise ParseError(f"okx market/books reply: code {reply.code}: {reply.msg or 'no data'}")
        data = reply.data[0]
        if data.seqId is None:
            raise ParseError("okx market/books reply without seqId: cannot link it to the book updates")
        try:
            snap = book_to_deltas(data, self.instrument_id(inst_id), True, ts_recv, self._ct.get(inst_id, 0))
        except ValueError as exc:
            raise ParseError(f"okx market/books reply: {exc}") from exc
        return snap

    def _bbo(self, inst_id: str, data: BookData, ts_recv: int) -> Quote | None:
        if not data.bids or not data.asks:
            return None
        ct = self._ct.get(inst_id, 0)
        bid, ask = _levels(data.bids[:1], ct)[0], _levels(data.asks[:1], ct)[0]
        return Quote(
            instrument_id=self.instrument_id(inst_id),
            ts_event=int(data.ts) * _MS,
            ts_recv=ts_recv,
            bid=bid[0],
            bid_qty=bid[1],
            ask=ask[0],
            ask_qty=ask[1],
            seq=data.seqId if data.seqId is not None else -1,
        )

    def _trade(self, inst_id: str, trade_id: str, px: str, sz: str, side: str, ts: str, ts_recv: int) -> Trade:
        if side not in ("buy", "sell"):
            raise ValueError(f"trade side {side!r}")
        return Trade(
            instrument_id=self.instrument_id(inst_id),
            ts_event=int(ts) * _MS,
            ts_recv=ts_recv,
            price=parse_fixed(px),
            qty=_size(sz, self._ct.get(inst_id, 0)),
            aggressor=Side.BUY if side == "buy" else Side.SELL,
            trade_id=trade_id,
        )

    def _quote(self, inst_id: str, bid: str, bid_sz: str, ask: str, ask_sz: str, ts: str, ts_recv: int) -> Quote:
        return Quote(
            instrument_id=self.instrument_id(inst_id),
            ts_event=int(ts) * _MS,
            ts_recv=ts_recv,
            bid=parse_fixed(bid),
            bid_qty=_size(bid_sz, self._ct.get(inst_id, 0)),
            ask=parse_fixed(ask),
            ask_qty=_size(ask_sz, self._ct.get(inst_id, 0)),
        )
