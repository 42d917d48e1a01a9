"""Binance venue metadata as data: markets, public URLs, stream channels, sequence rules, instruments.

Nothing here does I/O. Spot is venue ``binance``, USD-M futures ``binance_usdm`` and COIN-M futures
``binance_coinm`` (parsed, but no instrument specs are listed for it yet). Instrument specs are the
exchange's published filters (``PRICE_FILTER.tickSize``, ``LOT_SIZE.stepSize``, ``NOTIONAL`` /
``MIN_NOTIONAL``) written as decimal strings and converted to fixed-point nanos once, at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import InstrumentKind
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument

__all__ = [
    "INSTRUMENTS",
    "MARKETS",
    "VENUE_COINM",
    "VENUE_SPOT",
    "VENUE_USDM",
    "BinanceMarket",
    "MarketSpec",
    "get_instrument",
    "market_of_venue",
    "sequence_rules",
]

VENUE_SPOT: Final = "binance"
VENUE_USDM: Final = "binance_usdm"
VENUE_COINM: Final = "binance_coinm"


class BinanceMarket(StrEnum):
    """The Binance markets tradeloop knows; each is its own venue name."""

    SPOT = "spot"
    USDM = "usdm"
    COINM = "coinm"


class MarketSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Endpoints, channels and book rules of one Binance market.

    ``*_channel`` values are stream-name templates; ``{symbol}`` is the lower-case symbol.
    ``sequence_rule`` is how depth diffs link (``U``/``u`` ranges on spot, the ``pu`` chain on
    futures); ``snapshot_limit`` the largest REST depth snapshot.
    """

    market: BinanceMarket
    venue: str
    kind: InstrumentKind
    rest_url: str
    ws_url: str
    ws_market_url: str
    """Where trade streams live (USD-M routes streams by path since 2026; equal to ``ws_url`` on spot)."""
    depth_snapshot_path: str
    snapshot_limit: int
    depth_channel: str
    trade_channel: str
    book_ticker_channel: str
    sequence_rule: SequenceRule


MARKETS: Final[Mapping[BinanceMarket, MarketSpec]] = MappingProxyType(
    {
        BinanceMarket.SPOT: MarketSpec(
            market=BinanceMarket.SPOT,
            venue=VENUE_SPOT,
            kind=InstrumentKind.SPOT,
            rest_url="https://api.binance.com",
            ws_url="wss://stream.binance.com:9443/stream",
            ws_market_url="wss://stream.binance.com:9443/stream",
            depth_snapshot_path="/api/v3/depth",
            snapshot_limit=5000,
            depth_channel="{symbol}@depth@100ms",
            trade_channel="{symbol}@trade",
            book_ticker_channel="{symbol}@bookTicker",
            sequence_rule=SequenceRule.RANGE,
        ),
        BinanceMarket.USDM: MarketSpec(
            market=BinanceMarket.USDM,
            venue=VENUE_USDM,
            kind=InstrumentKind.LINEAR_PERP,
            rest_url="https://fapi.binance.com",
            ws_url="wss://fstream.binance.com/public/stream",
            ws_market_url="wss://fstream.binance.com/market/stream",
            depth_snapshot_path="/fapi/v1/depth",
            snapshot_limit=1000,
            depth_channel="{symbol}@depth@100ms",
            trade_channel="{symbol}@trade",
            book_ticker_channel="{symbol}@bookTicker",
            sequence_rule=SequenceRule.PREV_LINK,
        ),
        BinanceMarket.COINM: MarketSpec(
            market=BinanceMarket.COINM,
            venue=VENUE_COINM,
            kind=InstrumentKind.LINEAR_PERP,  # inverse contracts have no kind of their own yet
            rest_url="https://dapi.binance.com",
            ws_url="wss://dstream.binance.com/stream",
            ws_market_url="wss://dstream.binance.com/stream",
            depth_snapshot_path="/dapi/v1/depth",
            snapshot_limit=1000,
            depth_channel="{symbol}@depth@100ms",
            trade_channel="{symbol}@trade",
            book_ticker_channel="{symbol}@bookTicker",
            sequence_rule=SequenceRule.PREV_LINK,
        ),
    }
)

_BY_VENUE: Final[Mapping[str, BinanceMarket]] = MappingProxyType({spec.venue: m for m, spec in MARKETS.items()})


def market_of_venue(venue: str) -> BinanceMarket:
    """The Binance market behind a venue name (``binance`` -> SPOT); ``KeyError`` if unknown."""
    try:
        return _BY_VENUE[venue]
    except KeyError:
        raise KeyError(f"not a Binance venue: {venue!r} (known: {sorted(_BY_VENUE)})") from None


def sequence_rules() -> dict[str, SequenceRule]:
    """Venue name -> depth sequence rule, for :class:`tradeloop.data.book_manager.BookManager`."""
    return {spec.venue: spec.sequence_rule for spec in MARKETS.values()}


# Published filters, as the exchange writes them: (market, symbol, base, quote, tick, lot, min qty, min notional).
_INSTRUMENT_TABLE: Final[tuple[tuple[BinanceMarket, str, str, str, str, str, str, str], ...]] = (
    (BinanceMarket.SPOT, "BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "0.00001", "5"),
    (BinanceMarket.SPOT, "ETHUSDT", "ETH", "USDT", "0.01", "0.0001", "0.0001", "5"),
    (BinanceMarket.USDM, "BTCUSDT", "BTC", "USDT", "0.1", "0.001", "0.001", "100"),
    (BinanceMarket.USDM, "ETHUSDT", "ETH", "USDT", "0.01", "0.001", "0.001", "20"),
)


def _build_instruments() -> tuple[Instrument, ...]:
    out = []
    for market, symbol, base, quote, tick, lot, min_qty, min_notional in _INSTRUMENT_TABLE:
        spec = MARKETS[market]
        out.append(
            Instrument(
                id=InstrumentId(spec.venue, symbol),
                base=base,
                quote=quote,
                kind=spec.kind,
                tick_size=fixed.parse(tick),
                lot_size=fixed.parse(lot),
                min_qty=fixed.parse(min_qty),
                min_notional=fixed.parse(min_notional),
            )
        )
    return tuple(out)


INSTRUMENTS: Final[tuple[Instrument, ...]] = _build_instruments()
"""Known instrument specs (spot and USD-M BTCUSDT, ETHUSDT)."""

_INSTRUMENTS_BY_ID: Final[Mapping[InstrumentId, Instrument]] = MappingProxyType({i.id: i for i in INSTRUMENTS})


def get_instrument(instrument_id: InstrumentId) -> Instrument:
    """The known spec of ``instrument_id``; ``KeyError`` naming it if it is not listed."""
    try:
        return _INSTRUMENTS_BY_ID[instrument_id]
    except KeyError:
        raise KeyError(f"no Binance instrument spec for {instrument_id}") from None
