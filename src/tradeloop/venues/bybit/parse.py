"""Bybit v5 public market data: raw frame bytes -> normalized ``BookDeltas`` / ``Trade``.

Mapping rules: an ``orderbook.*`` message is a snapshot when ``type == "snapshot"`` (also mid-stream,
e.g. ``u == 1`` after a service restart: it resets the book); a delta becomes ``BookDeltas`` with
``first_seq = last_seq = u`` so the book's ``INCREMENT`` rule requires each ``u`` to follow the last.
``ts_event`` is the matching-engine time ``cts`` when sent, else ``ts``. ``publicTrade`` gives one
``Trade`` per element (``S`` is the taker side). Acks, pongs and other topics give nothing; a failed
ack (``"success": false``) raises :class:`ParseError`.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tradeloop.core.fastparse import parse_fixed, parse_levels
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.bybit.schemas import BookMessage, TradeMessage
from tradeloop.venues.bybit.spec import VENUE_SPOT

__all__ = ["BybitParser", "MarketItem", "ParseError"]

MarketItem = BookDeltas | Trade
_MS: Final = 1_000_000
_BOOK: Final = msgspec.json.Decoder(BookMessage)
_TRADES: Final = msgspec.json.Decoder(TradeMessage)
_HEAD: Final = msgspec.json.Decoder(dict[str, Any])
_SIDES: Final = {"Buy": Side.BUY, "Sell": Side.SELL}


class ParseError(ValueError):
    """A frame that is not valid Bybit market data (the message names the topic)."""


class BybitParser:
    """Parses Bybit v5 public frames of one market (venue ``bybit`` or ``bybit_linear``)."""

    __slots__ = ("_ids", "venue")

    def __init__(self, venue: str = VENUE_SPOT) -> None:
        self.venue = venue
        self._ids: dict[str, InstrumentId] = {}

    def instrument_id(self, symbol: str) -> InstrumentId:
        iid = self._ids.get(symbol)
        if iid is None:
            iid = self._ids[symbol] = InstrumentId(self.venue, symbol)
        return iid

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        if payload.startswith(b'{"topic":"orderbook.'):
            return [self._book(payload, ts_recv)]
        try:
            head = _HEAD.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"bybit: not a JSON object: {exc}") from exc
        if head.get("success") is False:
            raise ParseError(f"bybit {head.get('op', '')} refused: {head.get('ret_msg', '')}")
        topic = head.get("topic")
        if not isinstance(topic, str):
            return []
        if topic.startswith("orderbook."):
            return [self._book(payload, ts_recv)]
        if topic.startswith("publicTrade."):
            try:
                msg = _TRADES.decode(payload)
                return [self._trade(t, ts_recv) for t in msg.data]
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                raise ParseError(f"bybit {topic}: {exc}") from exc
        return []

    def _book(self, payload: bytes, ts_recv: int) -> BookDeltas:
        try:
            msg = _BOOK.decode(payload)
            d = msg.data
            return BookDeltas(
                self.instrument_id(d.s),
                (msg.cts or msg.ts) * _MS,
                ts_recv,
                d.u,
                d.u,
                parse_levels(d.b),
                parse_levels(d.a),
                snapshot=msg.type == "snapshot",
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ParseError(f"bybit orderbook frame: {exc}") from exc

    def _trade(self, t: Any, ts_recv: int) -> Trade:
        side = _SIDES.get(t.S)
        if side is None:
            raise ValueError(f"trade side {t.S!r}")
        return Trade(self.instrument_id(t.s), t.T * _MS, ts_recv, parse_fixed(t.p), parse_fixed(t.v), side, t.i)
