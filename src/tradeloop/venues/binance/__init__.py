"""Binance connectivity: venue metadata (``spec``), schemas and the market-data parser (``parse``),
signing (``auth``), order requests and replies (``orders``), user data (``private``, ``user_stream``),
the market-data and execution clients (``market_data``, ``execution``), the local simulator's dialect
(``simulator``) and the connectors (``connector``)."""

from tradeloop.venues.binance.parse import BinanceParser, ParseError
from tradeloop.venues.binance.spec import VENUE_SPOT, VENUE_USDM, BinanceMarket

__all__ = ["VENUE_SPOT", "VENUE_USDM", "BinanceMarket", "BinanceParser", "ParseError"]
