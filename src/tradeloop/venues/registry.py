"""Which parser, book rules and checksum each venue's market data uses, by venue name.

:func:`market_data_adapter` gives a fresh :class:`MarketDataAdapter` per venue: one object that
turns that venue's frames (WebSocket, and REST book snapshots where the venue's procedure uses
them) into normalized items and tells the book manager how to keep its books (sequence rule,
checksum function, depth limit). Replay, record and the live connectors all go through it, so a
recording is checked by exactly the code that runs live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol
from urllib.parse import parse_qs, urlparse

from tradeloop.model.book import ChecksumFn, SequenceRule
from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.venues.binance.parse import BinanceParser
from tradeloop.venues.binance.parse import ParseError as BinanceParseError
from tradeloop.venues.binance.spec import MARKETS, BinanceMarket
from tradeloop.venues.bybit import spec as bybit_spec
from tradeloop.venues.bybit.parse import BybitParser
from tradeloop.venues.bybit.parse import ParseError as BybitParseError
from tradeloop.venues.coinbase import spec as coinbase_spec
from tradeloop.venues.coinbase.parse import CoinbaseAdvancedParser, CoinbaseExchangeParser
from tradeloop.venues.coinbase.parse import ParseError as CoinbaseParseError
from tradeloop.venues.kraken import spec as kraken_spec
from tradeloop.venues.kraken.parse import KrakenPrecisions, KrakenV1Parser, KrakenV2Parser
from tradeloop.venues.kraken.parse import ParseError as KrakenParseError
from tradeloop.venues.okx import spec as okx_spec
from tradeloop.venues.okx.parse import OkxParser, book_checksum
from tradeloop.venues.okx.parse import ParseError as OkxParseError

__all__ = ["PARSE_ERRORS", "VENUES", "MarketDataAdapter", "MarketItem", "UnknownVenue", "market_data_adapter"]

MarketItem = BookDeltas | Trade | Quote

PARSE_ERRORS: Final = (
    BinanceParseError,
    OkxParseError,
    KrakenParseError,
    BybitParseError,
    CoinbaseParseError,
)
"""Every venue parser's error type: a frame that raises one of these is malformed, never fatal."""


class UnknownVenue(ValueError):
    """A venue name tradeloop has no market-data adapter for."""


class MarketDataAdapter(Protocol):
    venue: str
    sequence_rule: SequenceRule
    depth_limit: int

    @property
    def checksum_fn(self) -> ChecksumFn | None: ...

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        """Items in one WebSocket frame; raises one of :data:`PARSE_ERRORS` when it is malformed."""
        ...

    def parse_rest(self, url: str, payload: bytes, ts_recv: int) -> list[MarketItem]:
        """Items in a REST response of the venue's book procedure (snapshots); ``[]`` for anything else."""
        ...


class _Binance:
    depth_limit = 0
    checksum_fn: ChecksumFn | None = None

    def __init__(self, market: BinanceMarket) -> None:
        spec = MARKETS[market]
        self.venue = spec.venue
        self.sequence_rule = spec.sequence_rule
        self._parser = BinanceParser(spec.venue)

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        item = self._parser.parse(payload, ts_recv)
        return [item] if item is not None else []

    def parse_rest(self, url: str, payload: bytes, ts_recv: int) -> list[MarketItem]:
        if "/depth" not in url:
            return []
        symbol = parse_qs(urlparse(url).query).get("symbol", [None])[0]
        return [self._parser.parse_snapshot(payload, ts_recv, symbol)]


class _Okx:
    venue = okx_spec.VENUE
    sequence_rule = okx_spec.SEQUENCE_RULE
    depth_limit = 0
    checksum_fn: ChecksumFn | None = staticmethod(book_checksum)

    def __init__(self) -> None:
        self._parser = OkxParser()

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        return list(self._parser.parse(payload, ts_recv))

    def parse_rest(self, url: str, payload: bytes, ts_recv: int) -> list[MarketItem]:
        return []


class _Kraken:
    """v2 frames (JSON objects) live; v1 frames (JSON arrays) from older recordings."""

    venue = kraken_spec.VENUE
    sequence_rule = kraken_spec.SEQUENCE_RULE

    def __init__(self, depth: int = 1000) -> None:
        self.depth_limit = depth
        self._precisions = KrakenPrecisions()
        self._v1 = KrakenV1Parser(precisions=self._precisions)
        self._v2 = KrakenV2Parser(precisions=self._precisions)
        self.checksum_fn: ChecksumFn | None = self._precisions.book_checksum

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        parser = self._v1 if payload.lstrip()[:1] == b"[" else self._v2
        return list(parser.parse(payload, ts_recv))

    def parse_rest(self, url: str, payload: bytes, ts_recv: int) -> list[MarketItem]:
        return []


class _Bybit:
    sequence_rule = bybit_spec.SEQUENCE_RULE
    depth_limit = 0
    checksum_fn: ChecksumFn | None = None

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._parser = BybitParser(venue)

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        return list(self._parser.parse(payload, ts_recv))

    def parse_rest(self, url: str, payload: bytes, ts_recv: int) -> list[MarketItem]:
        return []


class _Coinbase:
    """Advanced Trade frames (``"channel"`` envelopes) live; Exchange ``ws-feed`` frames from older recordings."""

    venue = coinbase_spec.VENUE
    sequence_rule = coinbase_spec.SEQUENCE_RULE
    depth_limit = 0
    checksum_fn: ChecksumFn | None = None

    def __init__(self) -> None:
        self.advanced = CoinbaseAdvancedParser()
        self.exchange = CoinbaseExchangeParser()

    def parse(self, payload: bytes, ts_recv: int) -> list[MarketItem]:
        parser = self.advanced if b'"channel"' in payload[:64] else self.exchange
        return list(parser.parse(payload, ts_recv))

    def parse_rest(self, url: str, payload: bytes, ts_recv: int) -> list[MarketItem]:
        return []


VENUES: Final[dict[str, Callable[[], MarketDataAdapter]]] = {
    "binance": lambda: _Binance(BinanceMarket.SPOT),
    "binance_usdm": lambda: _Binance(BinanceMarket.USDM),
    "binance_coinm": lambda: _Binance(BinanceMarket.COINM),
    "okx": _Okx,
    "kraken": _Kraken,
    "bybit": lambda: _Bybit(bybit_spec.VENUE_SPOT),
    "bybit_linear": lambda: _Bybit(bybit_spec.VENUE_LINEAR),
    "coinbase": _Coinbase,
}


def market_data_adapter(venue: str) -> MarketDataAdapter:
    """A fresh adapter (its own parser state) for ``venue``."""
    factory = VENUES.get(venue)
    if factory is None:
        raise UnknownVenue(f"unknown venue {venue!r}; known: {', '.join(sorted(VENUES))}")
    return factory()
