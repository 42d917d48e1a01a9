"""What a venue adapter provides to the rest of tradeloop, in one object per venue.

Each venue folder has a ``connector.py`` with ``CONNECTOR = VenueConnector(...)``; the runtime (paper,
live, record), the local simulators and the conformance suite find it through
:func:`tradeloop.venues.connectors.get_connector`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from tradeloop.model.instrument import Instrument
from tradeloop.venues.base import ExecutionClient, MarketDataClient

if TYPE_CHECKING:
    from tradeloop.security.credentials import Credentials
    from tradeloop.venues.simulator.dialect import Dialect

__all__ = ["ConnectorUrls", "VenueConnector"]


class ConnectorUrls(msgspec.Struct, frozen=True):
    """Where a venue's REST API and WebSockets are (production, or a local simulator)."""

    rest: str
    """Base URL, e.g. ``https://api.binance.com`` or ``http://127.0.0.1:PORT``."""
    ws_public: str
    """Full URL of the public market-data socket."""
    ws_private: str = ""
    """Full URL of the private (user) socket; empty when the venue has none."""
    ws_orders: str = ""
    """Full URL of the WebSocket order-entry socket when it is a socket of its own (Binance's WS API,
    Bybit's ``/v5/trade``); empty when the venue has none or takes orders on ``ws_private`` (OKX, Kraken)."""


@dataclass(frozen=True)
class VenueConnector:
    """One venue's adapter: URLs, instruments, clients and the simulator dialect."""

    venue: str
    urls: ConnectorUrls
    local_urls: Callable[[str], ConnectorUrls]
    """``"http://127.0.0.1:PORT"`` (a local simulator) -> the same endpoints on it."""
    instruments: Callable[[], list[Instrument]]
    """Static specs of the instruments tradeloop lists for this venue."""
    market_data: Callable[..., MarketDataClient]
    """``(instruments, on_item, clock, urls, *, rest=None) -> MarketDataClient``."""
    execution: Callable[..., ExecutionClient]
    """``(credentials, instruments, clock, emit, urls, *, rest_config=None) -> ExecutionClient``."""
    dialect: Callable[[], Dialect]
    """The local simulator's dialect of this venue."""
    test_credentials: Callable[[], Credentials]
    """The key the local simulator accepts (tests and local paper/live sessions only)."""
    extras: dict[str, Any] | None = None
