"""OKX public market data: raw frame bytes -> normalized ``BookDeltas`` / ``Trade`` / ``Quote``.

Mapping rules:

* ``books`` push -> ``BookDeltas``: ``action == "snapshot"`` is a snapshot. With sequence ids,
  ``first_seq = prevSeqId``, ``last_seq = seqId``, ``prev_seq = prevSeqId`` so the book's
  ``PREV_LINK`` rule holds OKX's chain (each ``prevSeqId`` equals the previous ``seqId``; the
  first update after a snapshot names the snapshot's ``seqId``). Frames recorded before OKX sent
  sequence ids carry ``-1`` and are checked by checksum alone.
* ``checksum`` -> ``BookDeltas.checksum`` unless it is 0 (production stopped computing it in 2026).
  :func:`book_checksum` recomputes it from a book.
* ``trades`` -> one ``Trade`` per element (``side`` is the taker's side); ``tickers`` -> ``Quote``.
* Subscription acks, login replies, ``pong`` and channels without market data give no items;
  ``{"event":"error"}`` raises :class:`ParseError` with OKX's code and message.
"""

from __future__ import annotations

import zlib
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.core.fastparse import parse_fixed
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, Level, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.okx.schemas import BookData, BookPush, EventReply, TickerPush, TradePush
from tradeloop.venues.okx.spec import BOOK_CHANNEL, CHECKSUM_DEPTH, TICKER_CHANNEL, TRADE_CHANNEL, VENUE

__all__ = ["MarketItem", "OkxParser", "ParseError", "book_checksum", "checksum_of_levels"]

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


def _levels(raw: list[list[str]]) -> list[Level]:
    out: list[Level] = []
    for level in raw:
        if len(level) < 2:
            raise ValueError(f"level {level!r} needs a price and a size")
        out.append((parse_fixed(level[0]), parse_fixed(level[1])))
    return out


def book_to_deltas(data: BookData, instrument_id: InstrumentId, snapshot: bool, ts_recv: int) -> BookDeltas:
    """One ``books`` data element as a snapshot or a delta batch (pure)."""
    seq = data.seqId if data.seqId is not None else -1
    prev = data.prevSeqId if data.prevSeqId is not None and data.prevSeqId >= 0 else -1
    return BookDeltas(
        instrument_id=instrument_id,
        ts_event=int(data.ts) * _MS,
        ts_recv=ts_recv,
        first_seq=seq if snapshot or prev < 0 else prev,
        last_seq=seq,
        bids=_levels(data.bids),
        asks=_levels(data.asks),
        snapshot=snapshot,
        prev_seq=prev,
        checksum=data.checksum if data.checksum else None,
    )


def checksum_of_levels(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX's CRC32: ``bidPx:bidSz:askPx:askSz:...`` over the top 25 of each side, as signed int32.

    When one side is shorter the other side's remaining levels continue alone.
    """
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.extend(bids[i])
        if i < len(asks):
            parts.extend(asks[i])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def book_checksum(book: OrderBook) -> int:
    """The checksum OKX would send for ``book`` (its numbers written without trailing zeros, as OKX does)."""
    to_str = fixed.to_str
    bids = [(to_str(p), to_str(q)) for p, q in book.top_bids(CHECKSUM_DEPTH)]
    asks = [(to_str(p), to_str(q)) for p, q in book.top_asks(CHECKSUM_DEPTH)]
    return checksum_of_levels(bids, asks)


class OkxParser:
    """Parses OKX v5 public frames; instrument ids are ``okx:<instId>``."""

    __slots__ = ("_ids", "venue")

    def __init__(self, venue: str = VENUE) -> None:
        self.venue = venue
        self._ids: dict[str, InstrumentId] = {}

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
                return [book_to_deltas(d, iid, snapshot, ts_recv) for d in book.data]
            if channel == TRADE_CHANNEL:
                return [
                    self._trade(t.instId, t.tradeId, t.px, t.sz, t.side, t.ts, ts_recv)
                    for t in _TRADES.decode(payload).data
                ]
            if channel == TICKER_CHANNEL:
                return [
                    self._quote(t.instId, t.bidPx, t.bidSz, t.askPx, t.askSz, t.ts, ts_recv)
                    for t in _TICKERS.decode(payload).data
                ]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ParseError(f"okx {channel} frame: {exc}") from exc
        return []

    def _trade(self, inst_id: str, trade_id: str, px: str, sz: str, side: str, ts: str, ts_recv: int) -> Trade:
        if side not in ("buy", "sell"):
            raise ValueError(f"trade side {side!r}")
        return Trade(
            instrument_id=self.instrument_id(inst_id),
            ts_event=int(ts) * _MS,
            ts_recv=ts_recv,
            price=parse_fixed(px),
            qty=parse_fixed(sz),
            aggressor=Side.BUY if side == "buy" else Side.SELL,
            trade_id=trade_id,
        )

    def _quote(self, inst_id: str, bid: str, bid_sz: str, ask: str, ask_sz: str, ts: str, ts_recv: int) -> Quote:
        return Quote(
            instrument_id=self.instrument_id(inst_id),
            ts_event=int(ts) * _MS,
            ts_recv=ts_recv,
            bid=parse_fixed(bid),
            bid_qty=parse_fixed(bid_sz),
            ask=parse_fixed(ask),
            ask_qty=parse_fixed(ask_sz),
        )
