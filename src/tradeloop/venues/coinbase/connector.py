"""The Coinbase Advanced Trade connector: URLs, instruments, clients and the simulator dialect."""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.coinbase.execution import CoinbaseExecutionClient
from tradeloop.venues.coinbase.market_data import CoinbaseMarketData
from tradeloop.venues.coinbase.simulator import CoinbaseDialect
from tradeloop.venues.coinbase.spec import INSTRUMENTS, URLS, VENUE
from tradeloop.venues.connector import ConnectorUrls, VenueConnector
from tradeloop.venues.transport.endpoint import with_endpoint

__all__ = ["CONNECTOR", "local_credentials", "local_urls"]

PRODUCTION: Final = ConnectorUrls(rest=f"https://{URLS.rest_host}", ws_public=URLS.ws_market, ws_private=URLS.ws_user)

_SIM_KEY_NAME: Final = "organizations/tradeloop-local/apiKeys/simulator"
_SIM_KEY_SCALAR: Final = 0x5EED_C0DE_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0001
"""The local simulator's EC P-256 key (a fixed, public test value: it guards nothing real)."""


def local_urls(base: str) -> ConnectorUrls:
    """The simulator at ``base`` (``http://127.0.0.1:PORT``): REST there, both sockets at ``ws://.../``."""
    ws = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return ConnectorUrls(
        rest=with_endpoint(PRODUCTION.rest, base),
        ws_public=with_endpoint(URLS.ws_market, ws),
        ws_private=with_endpoint(URLS.ws_user, ws),
    )


def local_credentials() -> Credentials:
    """The CDP-style key the local simulator accepts (EC P-256, as Coinbase issues)."""
    key = ec.derive_private_key(_SIM_KEY_SCALAR, ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    return Credentials(VENUE, "local-simulator", api_key=_SIM_KEY_NAME, private_key_pem=pem)


def _instruments() -> list[Instrument]:
    return list(INSTRUMENTS)


CONNECTOR: Final = VenueConnector(
    venue=VENUE,
    urls=PRODUCTION,
    local_urls=local_urls,
    instruments=_instruments,
    market_data=CoinbaseMarketData,
    execution=CoinbaseExecutionClient,
    dialect=CoinbaseDialect,
    test_credentials=local_credentials,
)
