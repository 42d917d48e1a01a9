"""The Kraken spot connector: URLs, instruments, clients and the simulator dialect."""

from __future__ import annotations

import base64
import hashlib
from typing import Final

from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.connector import ConnectorUrls, VenueConnector
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.execution import KrakenExecutionClient
from tradeloop.venues.kraken.market_data import KrakenMarketData
from tradeloop.venues.kraken.simulator import KrakenDialect
from tradeloop.venues.transport.endpoint import with_endpoint

__all__ = ["CONNECTOR", "PRODUCTION", "local_urls", "test_credentials"]

PRODUCTION: Final = ConnectorUrls(rest=spec.URLS.rest, ws_public=spec.URLS.ws_public, ws_private=spec.URLS.ws_private)


def local_urls(base: str) -> ConnectorUrls:
    """The simulator at ``base`` (``http://127.0.0.1:PORT``): REST there, both sockets at ``ws://.../v2``
    (production's two hosts share the path ``/v2``; the simulator serves both on one endpoint)."""
    ws = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return ConnectorUrls(
        rest=with_endpoint(PRODUCTION.rest, base),
        ws_public=with_endpoint(PRODUCTION.ws_public, ws),
        ws_private=with_endpoint(PRODUCTION.ws_private, ws),
    )


def test_credentials() -> Credentials:
    """The key the local simulator accepts (a fixed, public test value: it guards nothing real)."""
    secret = base64.b64encode(hashlib.sha512(b"tradeloop kraken local simulator").digest()).decode()
    return Credentials(spec.VENUE, "local-simulator", api_key="tradeloop-kraken-sim-key", secret=secret)


def _instruments() -> list[Instrument]:
    return spec.instruments()


CONNECTOR: Final = VenueConnector(
    venue=spec.VENUE,
    urls=PRODUCTION,
    local_urls=local_urls,
    instruments=_instruments,
    market_data=KrakenMarketData,
    execution=KrakenExecutionClient,
    dialect=KrakenDialect,
    test_credentials=test_credentials,
    extras={"reject_errors": spec.REJECT_ERRORS},
)
