"""Coinbase venue metadata as data: endpoints, channels, limits, error mapping and symbols.

Nothing here does I/O. Instrument ids use Coinbase's ``product_id`` (``coinbase:BTC-USD``);
:func:`to_unified` / :func:`from_unified` map it to and from ``BTC/USD``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import OrderStatus, RejectReason
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.transport.ratelimit import RateLimitScope, RateLimitSpec
from tradeloop.venues.transport.ws import HeartbeatKind, HeartbeatSpec

__all__ = [
    "CANCEL_BATCH_SIZE",
    "ERRORS",
    "INSTRUMENTS",
    "JWT_LIFETIME_S",
    "ORDER_STATUS",
    "PATHS",
    "RATE_LIMITS",
    "REJECT_ERRORS",
    "SEQUENCE_RULE",
    "URLS",
    "VENUE",
    "SymbolError",
    "from_unified",
    "get_instrument",
    "to_unified",
]

VENUE: Final = "coinbase"


class Urls(msgspec.Struct, frozen=True, kw_only=True):
    rest_host: str
    rest_base: str
    ws_market: str
    ws_user: str
    ws_exchange_feed: str


URLS: Final = Urls(
    rest_host="api.coinbase.com",
    rest_base="/api/v3/brokerage",
    ws_market="wss://advanced-trade-ws.coinbase.com",
    ws_user="wss://advanced-trade-ws-user.coinbase.com",
    ws_exchange_feed="wss://ws-feed.exchange.coinbase.com",
)

BOOK_CHANNEL: Final = "level2"
BOOK_MESSAGE_CHANNEL: Final = "l2_data"
TRADE_CHANNEL: Final = "market_trades"
HEARTBEAT_CHANNEL: Final = "heartbeats"
SUBSCRIBE_WITHIN_S: Final = 5
JWT_LIFETIME_S: Final = 120
SEQUENCE_RULE: Final = SequenceRule.NONE
"""Book batches carry no per-book sequence; continuity is the connection's ``sequence_num`` (see
:class:`~tradeloop.venues.coinbase.parse.ConnectionSequence`), a gap resubscribes ``level2``."""

ERRORS: Final[Mapping[str, RejectReason]] = MappingProxyType(
    {
        # HTTP 429 body id; HTTP 401 for a JWT outside its nbf/exp window (the body text is not documented (?))
        "rate_limit_exceeded": RejectReason.RATE_LIMITED,
        "request_timestamp_expired": RejectReason.TIMESTAMP_OUTSIDE_WINDOW,
        # create order: error_response.error / new_order_failure_reason / preview_failure_reason (PREVIEW_ dropped)
        "INSUFFICIENT_FUND": RejectReason.INSUFFICIENT_BALANCE,
        "INSUFFICIENT_FUNDS": RejectReason.INSUFFICIENT_BALANCE,
        "INVALID_LIMIT_PRICE_POST_ONLY": RejectReason.POST_ONLY_WOULD_CROSS,
        "UNKNOWN_ORDER": RejectReason.UNKNOWN_ORDER,
        "ORDER_NOT_FOUND": RejectReason.UNKNOWN_ORDER,
        "DUPLICATE_CLIENT_ORDER_ID": RejectReason.DUPLICATE_CLIENT_ID,
        "INVALID_SIZE_PRECISION": RejectReason.INVALID_ORDER,
        "INVALID_PRICE_PRECISION": RejectReason.INVALID_ORDER,
        "INVALID_LIMIT_PRICE": RejectReason.INVALID_ORDER,
        "INVALID_PRODUCT_ID": RejectReason.INVALID_ORDER,
        "INVALID_SIDE": RejectReason.INVALID_ORDER,
        "UNSUPPORTED_ORDER_CONFIGURATION": RejectReason.INVALID_ORDER,
        "INVALID_ORDER_CONFIGURATION": RejectReason.INVALID_ORDER,
        "ORDER_SIZE_TOO_SMALL": RejectReason.INVALID_ORDER,
        "INVALID_ARGUMENT": RejectReason.INVALID_ORDER,
        "INVALID_NO_LIQUIDITY": RejectReason.NO_LIQUIDITY,
        # batch_cancel results[].failure_reason
        "UNKNOWN_CANCEL_ORDER": RejectReason.UNKNOWN_ORDER,
        "ORDER_IS_FULLY_FILLED": RejectReason.UNKNOWN_ORDER,
        # edit errors[].edit_failure_reason
        "ONLY_OPEN_ORDERS_CAN_BE_EDITED": RejectReason.UNKNOWN_ORDER,
        "CANNOT_EDIT_TO_BELOW_FILLED_SIZE": RejectReason.INVALID_ORDER,
        "INVALID_EDITED_SIZE": RejectReason.INVALID_ORDER,
        "INVALID_EDITED_PRICE": RejectReason.INVALID_ORDER,
        "ONLY_LIMIT_ORDER_EDITS_SUPPORTED": RejectReason.INVALID_ORDER,
    }
)
"""Coinbase failure reasons -> engine reasons. Anything else maps to ``OTHER`` (the venue text is kept)."""

REJECT_ERRORS: Final[Mapping[RejectReason, str]] = MappingProxyType(
    {
        RejectReason.RATE_LIMITED: "rate_limit_exceeded",
        RejectReason.TIMESTAMP_OUTSIDE_WINDOW: "request_timestamp_expired",
        RejectReason.DUPLICATE_CLIENT_ID: "DUPLICATE_CLIENT_ORDER_ID",
        RejectReason.INSUFFICIENT_BALANCE: "INSUFFICIENT_FUND",
        RejectReason.POST_ONLY_WOULD_CROSS: "INVALID_LIMIT_PRICE_POST_ONLY",
        RejectReason.UNKNOWN_ORDER: "UNKNOWN_CANCEL_ORDER",
        RejectReason.INVALID_ORDER: "INVALID_PRICE_PRECISION",
        RejectReason.NO_LIQUIDITY: "INVALID_NO_LIQUIDITY",
    }
)
"""The Coinbase error behind each engine reason (what the simulator's ``reject_next`` is given)."""

ORDER_STATUS: Final[Mapping[str, OrderStatus | None]] = MappingProxyType(
    {
        "PENDING": OrderStatus.ACCEPTED,
        "QUEUED": OrderStatus.ACCEPTED,
        "OPEN": OrderStatus.ACCEPTED,  # PARTIALLY_FILLED when something filled
        "CANCEL_QUEUED": OrderStatus.ACCEPTED,  # still working until the cancel lands
        "EDIT_QUEUED": OrderStatus.ACCEPTED,
        "FILLED": OrderStatus.FILLED,
        "CANCELLED": OrderStatus.CANCELED,
        "EXPIRED": OrderStatus.EXPIRED,
        "FAILED": OrderStatus.REJECTED,
        "UNKNOWN_ORDER_STATUS": None,
    }
)
"""Order ``status`` (REST and user channel) -> engine status; ``None``: reconcile by query."""


class Paths(msgspec.Struct, frozen=True, kw_only=True):
    orders: str
    batch_cancel: str
    edit: str
    historical: str
    historical_batch: str
    accounts: str


PATHS: Final = Paths(
    orders="/api/v3/brokerage/orders",
    batch_cancel="/api/v3/brokerage/orders/batch_cancel",
    edit="/api/v3/brokerage/orders/edit",
    historical="/api/v3/brokerage/orders/historical/{order_id}",
    historical_batch="/api/v3/brokerage/orders/historical/batch",
    accounts="/api/v3/brokerage/accounts",
)

CANCEL_BATCH_SIZE: Final = 100
"""Order ids per ``batch_cancel`` request (cancel-all sends the open orders in chunks of this)."""
OPEN_ORDERS_PAGE: Final = 100
ACCOUNTS_PAGE: Final = 250
HISTORY_PAGE: Final = 250
HISTORY_PAGES_FOR_CLIENT_ID: Final = 4
"""Pages of recent orders searched for a client order id (the API has no lookup by client id)."""

RATE_LIMITS: Final[tuple[RateLimitSpec, ...]] = (
    RateLimitSpec(name="PRIVATE", limit=30, window_s=1.0, scope=RateLimitScope.ACCOUNT),
    RateLimitSpec(name="PUBLIC", limit=10, window_s=1.0, scope=RateLimitScope.IP),
)
"""Private endpoints about 30 requests/s per user, public about 10/s per IP (older docs (?))."""
PRIVATE_COST: Final[Mapping[str, int]] = MappingProxyType({"PRIVATE": 1})

WS_HEARTBEAT: Final = HeartbeatSpec(kind=HeartbeatKind.WS_PING, interval_s=20.0)
"""WebSocket ping frames; the ``heartbeats`` channel (one message a second) keeps the feed busy."""
WS_STALE_AFTER_S: Final = 15.0
"""No frame for this long (the heartbeats channel sends one a second): reconnect."""


# Published product rules (GET /products): product id, base, quote, price_increment, base_increment,
# base_min_size, quote_min_size.
_INSTRUMENT_TABLE: Final[tuple[tuple[str, str, str, str, str, str, str], ...]] = (
    ("BTC-USD", "BTC", "USD", "0.01", "0.00000001", "0.00000001", "1"),
    ("BTC-USDC", "BTC", "USDC", "0.01", "0.00000001", "0.00000001", "1"),
    ("ETH-USD", "ETH", "USD", "0.01", "0.00000001", "0.00000001", "1"),
)


def _build_instruments() -> tuple[Instrument, ...]:
    return tuple(
        Instrument(
            id=InstrumentId(VENUE, product_id),
            base=base,
            quote=quote,
            tick_size=fixed.parse(tick),
            lot_size=fixed.parse(lot),
            min_qty=fixed.parse(min_qty),
            min_notional=fixed.parse(min_notional),
        )
        for product_id, base, quote, tick, lot, min_qty, min_notional in _INSTRUMENT_TABLE
    )


INSTRUMENTS: Final[tuple[Instrument, ...]] = _build_instruments()
"""Static specs of the spot products tradeloop lists for Coinbase (BTC-USD is the simulator's pair)."""
_BY_ID: Final[Mapping[InstrumentId, Instrument]] = MappingProxyType({i.id: i for i in INSTRUMENTS})


def get_instrument(instrument_id: InstrumentId) -> Instrument:
    """The listed spec of ``instrument_id``; ``KeyError`` naming it otherwise."""
    try:
        return _BY_ID[instrument_id]
    except KeyError:
        raise KeyError(f"no Coinbase instrument spec for {instrument_id}") from None


class SymbolError(ValueError):
    """A product id or unified symbol that does not parse."""


def to_unified(product_id: str) -> str:
    base, dash, quote = product_id.partition("-")
    if not dash or not base or not quote or "-" in quote or not (base + quote).isalnum() or not product_id.isupper():
        raise SymbolError(f"not a Coinbase product id: {product_id!r}")
    return f"{base}/{quote}"


def from_unified(symbol: str) -> str:
    base, slash, quote = symbol.partition("/")
    if not slash or not base or not quote or ":" in quote or "/" in quote:
        raise SymbolError(f"not a unified spot symbol: {symbol!r}")
    return f"{base}-{quote}"
