"""Binance connectivity. So far: venue metadata (``spec``), message schemas (``schemas``) and the
public market-data parser (``parse``); the live connector (transport, auth, execution) comes later."""

from tradeloop.venues.binance.parse import BinanceParser, ParseError
from tradeloop.venues.binance.spec import VENUE_SPOT, VENUE_USDM, BinanceMarket

__all__ = ["VENUE_SPOT", "VENUE_USDM", "BinanceMarket", "BinanceParser", "ParseError"]
