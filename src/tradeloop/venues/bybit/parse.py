"""Bybit v5 public market data: raw frame bytes -> normalized ``BookDeltas`` / ``Trade``.

Mapping rules: an ``orderbook.*`` message is a snapshot when ``type == "snapshot"`` (also mid-stream,
e.g. ``u == 1`` after a service restart: it resets the book); a delta becomes ``BookDeltas`` with
``first_seq = last_seq = u`` so the book's ``INCREMENT`` rule requires each ``u`` to follow the last.
``ts_event`` is the matching-engine time ``cts`` when sent, else ``ts``. ``publicTrade`` gives one
``Trade`` per element (``S`` is the taker side). The level-1 book ``orderbook.1.*`` is Bybit's best
bid/ask stream: it gives a ``Quote`` (``seq = u``) once both sides are known, never book deltas. Acks,
pongs and other topics give nothing; a failed ack (``"success": false``) raises :class:`ParseError`.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tradeloop.core.fastparse import parse_fixed, parse_levels
from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.model.enums import InstrumentKind, Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.bybit.schemas import (
    BookMessage,
    LinearInstruments,
    Reply,
    SpotInstruments,
    TradeMessage,
)
from tradeloop.venues.bybit.spec import VENUE_LINEAR, VENUE_SPOT

__all__ = ["BybitParser", "MarketItem", "ParseError", "parse_instruments"]

MarketItem = BookDeltas | Trade | Quote
_MS: Final = 1_000_000
_BOOK: Final = msgspec.json.Decoder(BookMessage)
_TRADES: Final = msgspec.json.Decoder(TradeMessage)
_HEAD: Final = msgspec.json.Decoder(dict[str, Any])
_SIDES: Final = {"Buy": Side.BUY, "Sell": Side.SELL}


class ParseError(ValueError):
    """A frame that is not valid Bybit market data (the message names the topic)."""


class BybitParser:
    """Parses Bybit v5 public frames of one market (venue ``bybit`` or ``bybit_linear``)."""

    __slots__ = ("_ids", "_top", "venue")

    def __init__(self, venue: str = VENUE_SPOT) -> None:
        self.venue = venue
        self._ids: dict[str, InstrumentId] = {}
        self._top: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {}

    def instrument_id(self, symbol: str) -> InstrumentId:
        iid = self._ids.get(symbol)
        if iid is None:
            iid = self._ids[symbol] = InstrumentId(self.venue, symbol)
        return iid

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        if payload.startswith(b'{"topic":"orderbook.'):
            if payload.startswith(b'{"topic":"orderbook.1.'):
                return self._quote(payload, ts_recv)
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
        if topic.startswith("orderbook.1."):
            return self._quote(payload, ts_recv)
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

    def _quote(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        try:
            msg = _BOOK.decode(payload)
            d = msg.data
            bids, asks = parse_levels(d.b), parse_levels(d.a)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ParseError(f"bybit orderbook.1 frame: {exc}") from exc
        bid, ask = (None, None) if msg.type == "snapshot" else self._top.get(d.s, (None, None))
        if bids:  # level 1: at most one level per side; size 0 removes it
            bid = bids[0] if bids[0][1] else None
        if asks:
            ask = asks[0] if asks[0][1] else None
        self._top[d.s] = (bid, ask)
        if bid is None or ask is None:
            return []
        ts_event = (msg.cts or msg.ts) * _MS
        return [Quote(self.instrument_id(d.s), ts_event, ts_recv, bid[0], bid[1], ask[0], ask[1], d.u)]

    def _trade(self, t: Any, ts_recv: int) -> Trade:
        side = _SIDES.get(t.S)
        if side is None:
            raise ValueError(f"trade side {t.S!r}")
        return Trade(self.instrument_id(t.s), t.T * _MS, ts_recv, parse_fixed(t.p), parse_fixed(t.v), side, t.i)


def _fixed(text: str) -> int:
    return parse_fixed(text) if text else 0


def parse_instruments(venue: str, payload: bytes) -> list[Instrument]:
    """Instruments in a ``/v5/market/instruments-info`` reply of ``venue``'s category, sorted by symbol.

    Only ``Trading`` symbols; for ``bybit_linear`` only perpetuals settled in the quote coin. Spot size
    step is ``basePrecision``, linear ``qtyStep``; minimum notional ``minOrderAmt`` / ``minNotionalValue``.
    """
    try:
        reply = msgspec.json.decode(payload, type=Reply)
        if reply.retCode != 0:
            raise ParseError(f"bybit instruments-info: retCode {reply.retCode} {reply.retMsg}")
        out: list[Instrument] = []
        if venue == VENUE_SPOT:
            for s in msgspec.json.decode(reply.result, type=SpotInstruments).rows:
                if s.status != "Trading":
                    continue
                lot = s.lotSizeFilter
                out.append(
                    Instrument(
                        id=InstrumentId(venue, s.symbol),
                        base=s.baseCoin,
                        quote=s.quoteCoin,
                        tick_size=parse_fixed(s.priceFilter.tickSize),
                        lot_size=parse_fixed(lot.basePrecision),
                        min_qty=_fixed(lot.minOrderQty),
                        max_qty=_fixed(lot.maxLimitOrderQty or lot.maxOrderQty),
                        min_notional=_fixed(lot.minOrderAmt),
                    )
                )
        elif venue == VENUE_LINEAR:
            for c in msgspec.json.decode(reply.result, type=LinearInstruments).rows:
                if c.status != "Trading" or c.contractType != "LinearPerpetual" or c.settleCoin != c.quoteCoin:
                    continue
                lot2 = c.lotSizeFilter
                out.append(
                    Instrument(
                        id=InstrumentId(venue, c.symbol),
                        base=c.baseCoin,
                        quote=c.quoteCoin,
                        kind=InstrumentKind.LINEAR_PERP,
                        tick_size=parse_fixed(c.priceFilter.tickSize),
                        lot_size=parse_fixed(lot2.qtyStep),
                        min_qty=_fixed(lot2.minOrderQty),
                        max_qty=_fixed(lot2.maxOrderQty),
                        min_notional=_fixed(lot2.minNotionalValue),
                    )
                )
        else:
            raise ParseError(f"not a Bybit venue: {venue!r}")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"bybit instruments-info: {exc}") from exc
    return sorted(out, key=lambda i: i.id.symbol)
