"""OKX as a :class:`VenueConnector`: URLs, listed instruments (spot and linear swaps), clients and the
simulator dialect. ``extras["reject_errors"]`` names OKX's error behind each reject reason (what the
simulator's ``reject_next`` is armed with)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit

from tradeloop.core.clock import Clock
from tradeloop.model.enums import RejectReason
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent, MarketItem
from tradeloop.venues.connector import ConnectorUrls, VenueConnector
from tradeloop.venues.okx.execution import OkxExecutionClient, OrderEntry
from tradeloop.venues.okx.instruments import INSTRUMENTS
from tradeloop.venues.okx.market_data import OkxMarketData
from tradeloop.venues.okx.simulator import OkxDialect
from tradeloop.venues.okx.spec import URLS, VENUE
from tradeloop.venues.transport.ratelimit import RateBudget
from tradeloop.venues.transport.rest import RestClient, RestConfig

__all__ = ["CONNECTOR", "REJECT_ERRORS", "local_urls"]

PRODUCTION: Final = ConnectorUrls(rest=URLS.rest, ws_public=URLS.ws_public, ws_private=URLS.ws_private)

REJECT_ERRORS: Final[Mapping[RejectReason, str]] = {
    RejectReason.RATE_LIMITED: "50011",
    RejectReason.TIMESTAMP_OUTSIDE_WINDOW: "50102",
    RejectReason.DUPLICATE_CLIENT_ID: "51016",
    RejectReason.INSUFFICIENT_BALANCE: "51008",
    RejectReason.POST_ONLY_WOULD_CROSS: "51019",
    RejectReason.UNKNOWN_ORDER: "51603",
    RejectReason.INVALID_ORDER: "51000",
}
"""OKX's ``sCode`` for each reason (51019 for post-only is unsure: OKX usually cancels such an order
with ``cancelSource`` 31 instead, which the client maps to the same reason)."""


def local_urls(base: str) -> ConnectorUrls:
    """A local simulator at ``http://127.0.0.1:PORT``: the same paths (``/ws/v5/public``, ``/ws/v5/private``)."""
    parts = urlsplit(base)
    ws = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    return ConnectorUrls(
        rest=base.rstrip("/"),
        ws_public=ws + urlsplit(URLS.ws_public).path,
        ws_private=ws + urlsplit(URLS.ws_private).path,
    )


def _instruments() -> list[Instrument]:
    return [spec.instrument() for spec in INSTRUMENTS]


def _market_data(
    instruments: Sequence[InstrumentId],
    on_item: Callable[[MarketItem], None],
    clock: Clock,
    urls: ConnectorUrls,
    *,
    rest: RestClient | None = None,
) -> OkxMarketData:
    return OkxMarketData(instruments, on_item, clock, urls, rest=rest)


def _execution(
    credentials: Credentials,
    instruments: Mapping[InstrumentId, Instrument],
    clock: Clock,
    emit: EmitEvent,
    urls: ConnectorUrls,
    *,
    rest_config: RestConfig | None = None,
    order_entry: OrderEntry = "websocket",
    budget: RateBudget | None = None,
) -> OkxExecutionClient:
    """The execution client: orders over the private WebSocket while it is up (``order_entry="rest"``:
    always over REST); ``budget``: a rate budget shared with other processes (default: its own)."""
    return OkxExecutionClient(
        credentials, instruments, clock, emit, urls, rest_config=rest_config, order_entry=order_entry, budget=budget
    )


def _test_credentials() -> Credentials:
    """The key the local simulator accepts (never valid on OKX)."""
    return Credentials(
        VENUE, "simulator", "tlSimOkxKey0000000000000000", "tlSimOkxSecret000000000000000", "tlSimOkxPass00"
    )


CONNECTOR = VenueConnector(
    venue=VENUE,
    urls=PRODUCTION,
    local_urls=local_urls,
    instruments=_instruments,
    market_data=_market_data,
    execution=_execution,
    dialect=OkxDialect,
    test_credentials=_test_credentials,
    extras={"reject_errors": REJECT_ERRORS},
)
