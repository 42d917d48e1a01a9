"""Binance as :class:`VenueConnector` objects: URLs, listed instruments, clients and the simulator dialect.

``CONNECTOR`` is spot (``binance``, registered in ``venues/connectors.py``); ``CONNECTOR_USDM`` is
USD-M futures (``binance_usdm``: market data, orders, listen-key user stream; not registered there,
the registry takes one line per venue folder).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from tradeloop.core.clock import Clock
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent, MarketItem
from tradeloop.venues.binance.execution import BinanceExecutionClient
from tradeloop.venues.binance.market_data import BinanceMarketData
from tradeloop.venues.binance.simulator import BinanceDialect
from tradeloop.venues.binance.spec import (
    INSTRUMENTS,
    MARKETS,
    REJECT_ERRORS,
    USDM_PRIVATE_WS_URL,
    VENUE_SPOT,
    VENUE_USDM,
    WS_API_URL,
    BinanceMarket,
)
from tradeloop.venues.connector import ConnectorUrls, VenueConnector
from tradeloop.venues.transport.ratelimit import RateBudget
from tradeloop.venues.transport.rest import RestClient, RestConfig

__all__ = ["CONNECTOR", "CONNECTOR_USDM", "local_urls", "local_urls_usdm"]

_SPOT = MARKETS[BinanceMarket.SPOT]

_USDM = MARKETS[BinanceMarket.USDM]
PRODUCTION = ConnectorUrls(rest=_SPOT.rest_url, ws_public=_SPOT.ws_url, ws_private=WS_API_URL, ws_orders=WS_API_URL)
PRODUCTION_USDM = ConnectorUrls(rest=_USDM.rest_url, ws_public=_USDM.ws_url, ws_private=USDM_PRIVATE_WS_URL)


def local_urls(base: str) -> ConnectorUrls:
    """A local simulator at ``http://127.0.0.1:PORT``: the same paths (``/stream``, ``/ws-api/v3``) on it.
    The user data stream and order entry are two connections to the WebSocket API, as on Binance."""
    parts = urlsplit(base)
    ws = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    ws_api = ws + urlsplit(WS_API_URL).path
    return ConnectorUrls(
        rest=base.rstrip("/"), ws_public=ws + urlsplit(_SPOT.ws_url).path, ws_private=ws_api, ws_orders=ws_api
    )


def local_urls_usdm(base: str) -> ConnectorUrls:
    """USD-M on a local simulator: ``/public/stream`` (and ``/market/stream``), ``/private/ws/<listenKey>``."""
    parts = urlsplit(base)
    ws = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    return ConnectorUrls(
        rest=base.rstrip("/"),
        ws_public=ws + urlsplit(_USDM.ws_url).path,
        ws_private=ws + urlsplit(USDM_PRIVATE_WS_URL).path,
    )


def _instruments() -> list[Instrument]:
    return [i for i in INSTRUMENTS if i.id.venue == VENUE_SPOT]


def _instruments_usdm() -> list[Instrument]:
    return [i for i in INSTRUMENTS if i.id.venue == VENUE_USDM]


def _market_data(
    instruments: Sequence[InstrumentId],
    on_item: Callable[[MarketItem], None],
    clock: Clock,
    urls: ConnectorUrls,
    *,
    rest: RestClient | None = None,
) -> BinanceMarketData:
    return BinanceMarketData(instruments, on_item, clock, urls, rest=rest)


def _execution(
    credentials: Credentials,
    instruments: Mapping[InstrumentId, Instrument],
    clock: Clock,
    emit: EmitEvent,
    urls: ConnectorUrls,
    *,
    rest_config: RestConfig | None = None,
    budget: RateBudget | None = None,
) -> BinanceExecutionClient:
    return BinanceExecutionClient(credentials, instruments, clock, emit, urls, rest_config=rest_config, budget=budget)


def _execution_usdm(
    credentials: Credentials,
    instruments: Mapping[InstrumentId, Instrument],
    clock: Clock,
    emit: EmitEvent,
    urls: ConnectorUrls,
    *,
    rest_config: RestConfig | None = None,
    budget: RateBudget | None = None,
) -> BinanceExecutionClient:
    return BinanceExecutionClient(
        credentials, instruments, clock, emit, urls, rest_config=rest_config, market=BinanceMarket.USDM, budget=budget
    )


def _test_credentials(venue: str = VENUE_SPOT) -> Credentials:
    """The HMAC key the local simulator accepts (never valid on Binance)."""
    return Credentials(
        venue,
        "simulator",
        "tlSimBinanceKey0000000000000000000000000000000000000000000000000",
        "tlSimBinanceSecret00000000000000000000000000000000000000000000000",
    )


CONNECTOR = VenueConnector(
    venue=VENUE_SPOT,
    urls=PRODUCTION,
    local_urls=local_urls,
    instruments=_instruments,
    market_data=_market_data,
    execution=_execution,
    dialect=BinanceDialect,
    test_credentials=_test_credentials,
    extras={"reject_errors": dict(REJECT_ERRORS)},
)

CONNECTOR_USDM = VenueConnector(
    venue=VENUE_USDM,
    urls=PRODUCTION_USDM,
    local_urls=local_urls_usdm,
    instruments=_instruments_usdm,
    market_data=_market_data,
    execution=_execution_usdm,
    dialect=lambda: BinanceDialect(market=BinanceMarket.USDM),
    test_credentials=lambda: _test_credentials(VENUE_USDM),
    extras={"reject_errors": dict(REJECT_ERRORS)},
)
