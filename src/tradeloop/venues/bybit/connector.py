"""Bybit's connectors: ``bybit`` (spot, ``category=spot``) and ``bybit_linear`` (USDT perpetuals).

Both share the REST host, the private socket and the trade socket (``/v5/trade``, order entry); each
has its own public socket (``/v5/public/spot`` or ``/v5/public/linear``). The simulator key is for local tests only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tradeloop.core.clock import Clock
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent, MarketItem
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.execution import BybitExecutionClient
from tradeloop.venues.bybit.market_data import BybitMarketData
from tradeloop.venues.bybit.simulator import BybitDialect
from tradeloop.venues.connector import ConnectorUrls, VenueConnector

__all__ = ["CONNECTOR", "CONNECTOR_LINEAR", "TEST_API_KEY", "connector"]

TEST_API_KEY = "bybit-sim-key-0000"
_TEST_SECRET = "bybit-sim-secret-not-a-real-key-0123456789"


def _urls(venue: str, rest: str, ws_base: str) -> ConnectorUrls:
    return ConnectorUrls(
        rest=rest,
        ws_public=f"{ws_base}/v5/public/{spec.CATEGORY_OF_VENUE[venue]}",
        ws_private=f"{ws_base}/v5/private",
        ws_orders=f"{ws_base}/v5/trade",
    )


def connector(venue: str) -> VenueConnector:
    """The connector of ``venue`` (``bybit`` or ``bybit_linear``)."""
    if venue not in spec.CATEGORY_OF_VENUE:
        raise ValueError(f"not a Bybit venue: {venue!r}")

    def local_urls(base_url: str) -> ConnectorUrls:
        return _urls(venue, base_url.rstrip("/"), "ws" + base_url.rstrip("/").removeprefix("http"))

    def market_data(
        instruments: Sequence[InstrumentId],
        on_item: Callable[[MarketItem], None],
        clock: Clock,
        urls: ConnectorUrls,
        **kwargs: Any,
    ) -> BybitMarketData:
        return BybitMarketData(instruments, on_item, clock, urls, venue=venue, **kwargs)

    def execution(
        credentials: Credentials,
        instruments: Mapping[InstrumentId, Instrument],
        clock: Clock,
        emit: EmitEvent,
        urls: ConnectorUrls,
        **kwargs: Any,
    ) -> BybitExecutionClient:
        return BybitExecutionClient(credentials, instruments, clock, emit, urls, venue=venue, **kwargs)

    return VenueConnector(
        venue=venue,
        urls=_urls(venue, spec.URLS.rest, "wss://stream.bybit.com"),
        local_urls=local_urls,
        instruments=lambda: list(spec.INSTRUMENTS[venue]),
        market_data=market_data,
        execution=execution,
        dialect=lambda: BybitDialect(venue),
        test_credentials=lambda: Credentials(venue, "simulator", TEST_API_KEY, _TEST_SECRET),
        extras={"reject_errors": dict(spec.REJECT_ERRORS[venue])},
    )


CONNECTOR = connector(spec.VENUE_SPOT)
CONNECTOR_LINEAR = connector(spec.VENUE_LINEAR)
