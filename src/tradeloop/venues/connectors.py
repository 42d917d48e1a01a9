"""The registry of venue connectors: venue name -> where its ``CONNECTOR`` lives (imported lazily)."""

from __future__ import annotations

import importlib
from typing import Final

from tradeloop.venues.connector import VenueConnector

__all__ = ["CONNECTORS", "UnknownConnector", "get_connector"]

CONNECTORS: Final[dict[str, str]] = {
    # one line per venue: "venue": "tradeloop.venues.<folder>.connector:CONNECTOR",
    "bybit": "tradeloop.venues.bybit.connector:CONNECTOR",
    "bybit_linear": "tradeloop.venues.bybit.connector:CONNECTOR_LINEAR",
    "binance": "tradeloop.venues.binance.connector:CONNECTOR",
    "binance_usdm": "tradeloop.venues.binance.connector:CONNECTOR_USDM",
    "okx": "tradeloop.venues.okx.connector:CONNECTOR",
    "coinbase": "tradeloop.venues.coinbase.connector:CONNECTOR",
    "kraken": "tradeloop.venues.kraken.connector:CONNECTOR",
}


class UnknownConnector(ValueError):
    """No connector for that venue name."""


def get_connector(venue: str) -> VenueConnector:
    target = CONNECTORS.get(venue)
    if target is None:
        known = ", ".join(sorted(CONNECTORS)) or "none yet"
        raise UnknownConnector(f"no connector for venue {venue!r} (known: {known})")
    module_name, _, attr = target.partition(":")
    connector = getattr(importlib.import_module(module_name), attr)
    if not isinstance(connector, VenueConnector):
        raise TypeError(f"{target} is not a VenueConnector")
    return connector
