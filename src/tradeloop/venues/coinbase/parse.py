"""Coinbase public market data: raw frame bytes -> normalized ``BookDeltas`` / ``Trade``.

Advanced Trade (live): every message has an envelope with the connection's ``sequence_num``, which
must rise by exactly one; :class:`ConnectionSequence` checks it and the parser counts gaps (the
market-data layer resubscribes ``level2`` on one, which brings a fresh snapshot). ``l2_data`` events
become snapshots or absolute deltas (``side`` ``bid``/``offer``, ``new_quantity`` 0 deletes);
``market_trades`` become trades.

Exchange ``ws-feed`` (replay of older recordings): ``snapshot`` and ``l2update`` for books, ``match``
for trades. A match's ``side`` is the maker's, so the aggressor is the other side. Matches and
tickers carry the product's own ``sequence``; :attr:`CoinbaseExchangeParser.sequence_regressions`
counts any that goes backwards.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tradeloop.core.fastparse import parse_fixed
from tradeloop.core.timestamps import rfc3339_to_ns
from tradeloop.model.data import BookDeltas, Level, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.coinbase.schemas import (
    AdvancedEnvelope,
    ExchangeL2Update,
    ExchangeMatch,
    ExchangeSnapshot,
    L2Event,
    TradeEvent,
)
from tradeloop.venues.coinbase.spec import BOOK_MESSAGE_CHANNEL, TRADE_CHANNEL, VENUE

__all__ = ["CoinbaseAdvancedParser", "CoinbaseExchangeParser", "ConnectionSequence", "MarketItem", "ParseError"]

MarketItem = BookDeltas | Trade


class ParseError(ValueError):
    """A frame that is not valid Coinbase market data (the message names the channel)."""


class ConnectionSequence:
    """The connection-wide ``sequence_num`` rule: each message is the previous plus one."""

    __slots__ = ("gaps", "last", "stale")

    def __init__(self) -> None:
        self.last = -1
        self.gaps = 0
        self.stale = 0

    def check(self, seq: int) -> bool:
        """``True`` if ``seq`` continues the sequence (or starts it); a jump counts a gap, a repeat is stale."""
        if self.last >= 0 and seq <= self.last:
            self.stale += 1
            return False
        ok = self.last < 0 or seq == self.last + 1
        if not ok:
            self.gaps += 1
        self.last = seq
        return ok

    def reset(self) -> None:
        """A new connection starts a new sequence."""
        self.last = -1


_SIDE_IS_BID: Final = {"bid": True, "buy": True, "offer": False, "ask": False, "sell": False}
_ENVELOPE: Final = msgspec.json.Decoder(AdvancedEnvelope)
_L2: Final = msgspec.json.Decoder(L2Event)
_TRADES: Final = msgspec.json.Decoder(TradeEvent)


class _Ids:
    __slots__ = ("_ids", "venue")

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._ids: dict[str, InstrumentId] = {}

    def __call__(self, product_id: str) -> InstrumentId:
        iid = self._ids.get(product_id)
        if iid is None:
            iid = self._ids[product_id] = InstrumentId(self.venue, product_id)
        return iid


class CoinbaseAdvancedParser:
    """Parses Advanced Trade market-data frames and checks the connection sequence."""

    __slots__ = ("instrument_id", "sequence")

    def __init__(self, venue: str = VENUE) -> None:
        self.instrument_id = _Ids(venue)
        self.sequence = ConnectionSequence()

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        try:
            env = _ENVELOPE.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if b'"type":"error"' in payload or b'"type": "error"' in payload:
                raise ParseError(f"coinbase error message: {payload[:200]!r}") from exc
            raise ParseError(f"coinbase: not a channel message: {exc}") from exc
        self.sequence.check(env.sequence_num)
        ts_event = rfc3339_to_ns(env.timestamp) if env.timestamp else ts_recv
        out: list[MarketItem] = []
        try:
            if env.channel == BOOK_MESSAGE_CHANNEL:
                for raw in env.events:
                    ev = _L2.decode(raw)
                    bids: list[Level] = []
                    asks: list[Level] = []
                    for u in ev.updates:
                        is_bid = _SIDE_IS_BID.get(u.side)
                        if is_bid is None:
                            raise ValueError(f"book side {u.side!r}")
                        (bids if is_bid else asks).append((parse_fixed(u.price_level), parse_fixed(u.new_quantity)))
                    out.append(
                        BookDeltas(
                            self.instrument_id(ev.product_id),
                            ts_event,
                            ts_recv,
                            -1,
                            -1,
                            bids,
                            asks,
                            snapshot=ev.type == "snapshot",
                        )
                    )
            elif env.channel == TRADE_CHANNEL:
                for raw in env.events:
                    for t in _TRADES.decode(raw).trades:
                        side = {"BUY": Side.BUY, "SELL": Side.SELL}.get(t.side)
                        if side is None:
                            raise ValueError(f"trade side {t.side!r}")
                        out.append(
                            Trade(
                                self.instrument_id(t.product_id),
                                rfc3339_to_ns(t.time),
                                ts_recv,
                                parse_fixed(t.price),
                                parse_fixed(t.size),
                                side,
                                t.trade_id,
                            )
                        )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ParseError(f"coinbase {env.channel} message: {exc}") from exc
        return out


_TYPE: Final = msgspec.json.Decoder(dict[str, Any])
_SNAPSHOT: Final = msgspec.json.Decoder(ExchangeSnapshot)
_UPDATE: Final = msgspec.json.Decoder(ExchangeL2Update)
_MATCH: Final = msgspec.json.Decoder(ExchangeMatch)


class _UpdateMessage(ExchangeL2Update, frozen=True, tag_field="type", tag="l2update"):
    pass


class _SnapshotMessage(ExchangeSnapshot, frozen=True, tag_field="type", tag="snapshot"):
    pass


class _MatchMessage(ExchangeMatch, frozen=True, tag_field="type", tag="match"):
    pass


class _LastMatchMessage(ExchangeMatch, frozen=True, tag_field="type", tag="last_match"):
    pass


_KNOWN: Final = msgspec.json.Decoder(_UpdateMessage | _SnapshotMessage | _MatchMessage | _LastMatchMessage)
"""The book and trade messages in one pass (by their ``type``); anything else, or a known type that
does not decode, takes the general path, which reports it as before."""
_KIND_OF: Final = {
    _UpdateMessage: "l2update",
    _SnapshotMessage: "snapshot",
    _MatchMessage: "match",
    _LastMatchMessage: "last_match",
}


def _pairs(levels: list[list[str]]) -> list[Level]:
    return [(parse_fixed(lv[0]), parse_fixed(lv[1])) for lv in levels]


class CoinbaseExchangeParser:
    """Parses the Exchange ``ws-feed`` (level2, matches, ticker) as recorded before Advanced Trade."""

    __slots__ = ("_last_seq", "instrument_id", "sequence_regressions")

    def __init__(self, venue: str = VENUE) -> None:
        self.instrument_id = _Ids(venue)
        self._last_seq: dict[str, int] = {}
        self.sequence_regressions = 0

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        try:
            known: ExchangeL2Update | ExchangeSnapshot | ExchangeMatch | None = _KNOWN.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            known = None
        if known is not None:
            try:
                return self._items(known, ts_recv)
            except (ValueError, IndexError) as exc:
                raise ParseError(f"coinbase feed {_KIND_OF[type(known)]} message: {exc}") from exc
        try:
            head = _TYPE.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"coinbase feed: not a JSON object: {exc}") from exc
        kind = head.get("type")
        try:
            if kind == "l2update":
                return self._items(_UPDATE.decode(payload), ts_recv)
            if kind == "snapshot":
                return self._items(_SNAPSHOT.decode(payload), ts_recv)
            if kind in ("match", "last_match"):
                return self._items(_MATCH.decode(payload), ts_recv)
            if kind == "ticker" and isinstance(head.get("sequence"), int):
                self._check_sequence(str(head.get("product_id", "")), head["sequence"])
            elif kind == "error":
                raise ParseError(f"coinbase feed error: {head.get('message', '')} {head.get('reason', '')}".strip())
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, IndexError) as exc:
            if isinstance(exc, ParseError):
                raise
            raise ParseError(f"coinbase feed {kind} message: {exc}") from exc
        return []

    def _items(self, msg: ExchangeL2Update | ExchangeSnapshot | ExchangeMatch, ts_recv: int) -> list[MarketItem]:
        if isinstance(msg, ExchangeL2Update):
            bids: list[Level] = []
            asks: list[Level] = []
            for change in msg.changes:
                side, price, size = change[0], change[1], change[2]
                is_bid = _SIDE_IS_BID.get(side)
                if is_bid is None:
                    raise ValueError(f"book side {side!r}")
                (bids if is_bid else asks).append((parse_fixed(price), parse_fixed(size)))
            ts_event = rfc3339_to_ns(msg.time) if msg.time else ts_recv
            return [BookDeltas(self.instrument_id(msg.product_id), ts_event, ts_recv, -1, -1, bids, asks)]
        if isinstance(msg, ExchangeSnapshot):
            iid = self.instrument_id(msg.product_id)
            return [BookDeltas(iid, ts_recv, ts_recv, -1, -1, _pairs(msg.bids), _pairs(msg.asks), snapshot=True)]
        self._check_sequence(msg.product_id, msg.sequence)
        maker = _SIDE_IS_BID.get(msg.side)
        if maker is None:
            raise ValueError(f"match side {msg.side!r}")
        aggressor = Side.SELL if maker else Side.BUY
        iid = self.instrument_id(msg.product_id)
        ts = rfc3339_to_ns(msg.time)
        return [Trade(iid, ts, ts_recv, parse_fixed(msg.price), parse_fixed(msg.size), aggressor, str(msg.trade_id))]

    def _check_sequence(self, product_id: str, seq: int) -> None:
        # A ticker repeats the sequence of the match it reports, so equal is fine; lower is not.
        if seq < self._last_seq.get(product_id, -1):
            self.sequence_regressions += 1
        else:
            self._last_seq[product_id] = seq
