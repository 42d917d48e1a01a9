"""OKX v5 venue metadata as data: endpoints, channels, limits, error codes and the symbol mapping.

Nothing here does I/O. Instrument ids use OKX's own ``instId`` as the symbol (``okx:BTC-USDT``,
``okx:BTC-USDT-SWAP``); :func:`to_unified` / :func:`from_unified` map it to and from the unified
``BASE/QUOTE`` (spot) and ``BASE/QUOTE:SETTLE`` (swaps) names used across venues.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import msgspec

from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import OrderStatus, RejectReason
from tradeloop.venues.transport.ratelimit import RateLimitScope, RateLimitSpec
from tradeloop.venues.transport.ws import HeartbeatKind, HeartbeatSpec, WsSpec

__all__ = [
    "BOOK_CHANNEL",
    "CANCEL_SOURCES",
    "CHECKSUM_DEPTH",
    "ERROR_CODES",
    "HEARTBEAT",
    "ORDER_STATES",
    "OUTCOME_UNKNOWN_CODES",
    "PATHS",
    "RATE_LIMITS",
    "RATE_LIMIT_SPECS",
    "SEQUENCE_RULE",
    "URLS",
    "VENUE",
    "WS_OP_COSTS",
    "WS_OP_PATHS",
    "WS_PRIVATE",
    "WS_PUBLIC",
    "RateLimit",
    "SymbolError",
    "Urls",
    "error_reason",
    "from_unified",
    "request_costs",
    "to_unified",
]

VENUE: Final = "okx"


class Urls(msgspec.Struct, frozen=True, kw_only=True):
    rest: str
    ws_public: str
    ws_private: str
    ws_business: str


URLS: Final = Urls(
    rest="https://www.okx.com",
    ws_public="wss://ws.okx.com:8443/ws/v5/public",
    ws_private="wss://ws.okx.com:8443/ws/v5/private",
    ws_business="wss://ws.okx.com:8443/ws/v5/business",
)
DEMO_URLS: Final = Urls(
    rest="https://www.okx.com",
    ws_public="wss://wspap.okx.com:8443/ws/v5/public",
    ws_private="wss://wspap.okx.com:8443/ws/v5/private",
    ws_business="wss://wspap.okx.com:8443/ws/v5/business",
)

BOOK_CHANNEL: Final = "books"
"""400-level book: a snapshot, then 100 ms diffs linked by ``prevSeqId`` -> ``seqId``."""
TRADE_CHANNEL: Final = "trades"
TICKER_CHANNEL: Final = "tickers"
BBO_CHANNEL: Final = "bbo-tbt"
SEQUENCE_RULE: Final = SequenceRule.PREV_LINK
CHECKSUM_DEPTH: Final = 25
"""Levels per side in the (legacy) CRC32 book checksum."""
PING_AFTER_IDLE_S: Final = 25
"""OKX closes a connection after 30 s without traffic; send the text ``ping`` before that."""


class RateLimit(msgspec.Struct, frozen=True):
    requests: int
    per_seconds: int


RATE_LIMITS: Final[Mapping[str, RateLimit]] = MappingProxyType(
    {
        "/api/v5/trade/order": RateLimit(60, 2),
        "/api/v5/trade/cancel-order": RateLimit(60, 2),
        "/api/v5/trade/amend-order": RateLimit(60, 2),
        "/api/v5/trade/batch-orders": RateLimit(300, 2),
        "/api/v5/trade/cancel-batch-orders": RateLimit(300, 2),
        "/api/v5/trade/orders-pending": RateLimit(60, 2),
        "/api/v5/trade/fills": RateLimit(60, 2),
        "/api/v5/account/balance": RateLimit(10, 2),
        "/api/v5/market/books": RateLimit(40, 2),
        "/api/v5/public/instruments": RateLimit(20, 2),
    }
)
"""Per-endpoint limits (requests, or orders for batch endpoints, per window). ``GET /trade/order`` shares
the place path's name but has its own limit of 60 per 2 s: both are counted in that window (stricter)."""

_IP_SCOPED: Final = frozenset({"/api/v5/market/books", "/api/v5/public/instruments"})

RATE_LIMIT_SPECS: Final[tuple[RateLimitSpec, ...]] = tuple(
    RateLimitSpec(
        name=path,
        limit=limit.requests,
        window_s=limit.per_seconds,
        scope=RateLimitScope.IP if path in _IP_SCOPED else RateLimitScope.ACCOUNT,
    )
    for path, limit in RATE_LIMITS.items()
)
"""The windows of :data:`RATE_LIMITS` for a :class:`~tradeloop.venues.transport.ratelimit.RateBudget`
(OKX sends no usage headers: our own count is all there is)."""


def request_costs(path: str, orders: int = 1) -> dict[str, int]:
    """The cost of one request to ``path`` (``orders`` items for batch endpoints); ``{}`` if not limited here."""
    if path not in RATE_LIMITS:
        return {}
    return {path: orders if "batch" in path else 1}


HEARTBEAT: Final = HeartbeatSpec(
    kind=HeartbeatKind.APP_MESSAGE,
    interval_s=PING_AFTER_IDLE_S,
    message="ping",
    when_idle=True,
    pong_equals=("pong",),
    pong_timeout_s=10.0,
)
"""Text ``ping`` after 25 s without traffic (OKX drops a connection silent for 30 s), ``pong`` back."""
WS_PUBLIC: Final = WsSpec(url=URLS.ws_public, heartbeat=HEARTBEAT)
WS_PRIVATE: Final = WsSpec(url=URLS.ws_private, heartbeat=HEARTBEAT)

ERROR_CODES: Final[Mapping[str, RejectReason]] = MappingProxyType(
    {
        "50011": RejectReason.RATE_LIMITED,  # rate limit reached (HTTP 200 or 429)
        "50040": RejectReason.RATE_LIMITED,  # too frequent operations
        "50061": RejectReason.RATE_LIMITED,  # sub-account order rate limit
        "50102": RejectReason.TIMESTAMP_OUTSIDE_WINDOW,  # timestamp request expired (> 30 s off)
        "51008": RejectReason.INSUFFICIENT_BALANCE,  # also its sub-codes 51008_1000 ...
        "51016": RejectReason.DUPLICATE_CLIENT_ID,  # client order id already exists
        "51019": RejectReason.POST_ONLY_WOULD_CROSS,  # (?) per nautilus; OKX usually cancels (cancelSource 31)
        "51603": RejectReason.UNKNOWN_ORDER,  # order does not exist
        "51400": RejectReason.UNKNOWN_ORDER,  # cancel failed: filled, canceled or does not exist
        "51401": RejectReason.UNKNOWN_ORDER,  # cancel failed: already canceled
        "51402": RejectReason.UNKNOWN_ORDER,  # cancel failed: already completed
        "51503": RejectReason.UNKNOWN_ORDER,  # amend failed: filled, canceled or does not exist
        "51509": RejectReason.UNKNOWN_ORDER,  # amend failed: order canceled
        "51510": RejectReason.UNKNOWN_ORDER,  # amend failed: order completed
        "51000": RejectReason.INVALID_ORDER,  # parameter error
        "51001": RejectReason.INVALID_ORDER,  # instrument does not exist
        "51006": RejectReason.INVALID_ORDER,  # price outside the limit
        "51020": RejectReason.INVALID_ORDER,  # below the minimum size
        "51121": RejectReason.INVALID_ORDER,  # not a multiple of the lot size
        "60014": RejectReason.RATE_LIMITED,  # WebSocket: requests too frequent
    }
)
"""``sCode`` / ``code`` values mapped to engine reject reasons (others map to ``OTHER``)."""

RATE_LIMIT_CODES: Final = frozenset({"50011", "50040", "50061", "60014"})
"""Codes that mean "slow down": the request is re-sent after a backoff, not rejected at once."""

OUTCOME_UNKNOWN_CODES: Final = frozenset({"50004"})
"""Codes after which the order may or may not exist ("endpoint request timeout, does not indicate
success or failure"): nothing is emitted, the OMS's query by client id settles it."""


def error_reason(code: str) -> RejectReason:
    """The engine reason for an OKX ``code`` / ``sCode`` (sub-codes such as ``51008_1000`` by their code)."""
    return ERROR_CODES.get(code.partition("_")[0], RejectReason.OTHER)


ORDER_STATES: Final[Mapping[str, OrderStatus]] = MappingProxyType(
    {
        "live": OrderStatus.ACCEPTED,
        "partially_filled": OrderStatus.PARTIALLY_FILLED,
        "filled": OrderStatus.FILLED,
        "canceled": OrderStatus.CANCELED,
        "mmp_canceled": OrderStatus.CANCELED,
    }
)
"""OKX ``state`` -> engine status (IOC/FOK leftovers end ``canceled`` with ``cancelSource`` 14/13: EXPIRED)."""

CANCEL_SOURCES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "0": "canceled by the system",
        "1": "canceled by the user",
        "13": "FOK order not completely filled",
        "14": "IOC order partially filled, rest canceled",
        "15": "order price beyond the limit",
        "20": "cancel-all-after triggered",
        "31": "post-only order would take liquidity",
        "32": "self-trade prevention",
    }
)
"""``cancelSource`` values tradeloop names (others are reported by number)."""
CANCEL_FOK: Final = "13"
CANCEL_IOC: Final = "14"
CANCEL_POST_ONLY: Final = "31"

PATHS: Final = MappingProxyType(
    {
        "place": "/api/v5/trade/order",
        "batch_place": "/api/v5/trade/batch-orders",
        "cancel": "/api/v5/trade/cancel-order",
        "batch_cancel": "/api/v5/trade/cancel-batch-orders",
        "amend": "/api/v5/trade/amend-order",
        "order": "/api/v5/trade/order",
        "pending": "/api/v5/trade/orders-pending",
        "fills": "/api/v5/trade/fills",
        "balance": "/api/v5/account/balance",
        "books": "/api/v5/market/books",
        "instruments": "/api/v5/public/instruments",
        "time": "/api/v5/public/time",
    }
)
"""REST paths tradeloop uses."""
WS_OP_PATHS: Final = MappingProxyType(
    {
        "order": "/api/v5/trade/order",
        "amend-order": "/api/v5/trade/amend-order",
        "cancel-order": "/api/v5/trade/cancel-order",
    }
)
"""WebSocket order ops tradeloop sends, each with the REST endpoint whose limit it shares (OKX counts an
order op on the private socket and the REST call against the same per-endpoint limit)."""
WS_OP_COSTS: Final = MappingProxyType({op: MappingProxyType({path: 1}) for op, path in WS_OP_PATHS.items()})
"""Rate-budget costs of one WebSocket order op (computed once; the send path only looks them up)."""
BATCH_MAX: Final = 20
"""Orders per batch request (place, cancel, amend)."""
PENDING_PAGE: Final = 100
"""Orders per ``orders-pending`` page (older pages with ``after=<ordId>``)."""
BOOK_DEPTH: Final = 400
"""Levels per side of the ``books`` channel (and of the REST snapshot the 2026 procedure fetches)."""


class SymbolError(ValueError):
    """A symbol that does not follow OKX's ``instId`` or the unified naming."""


def to_unified(inst_id: str) -> str:
    """``BTC-USDT`` -> ``BTC/USDT``; ``BTC-USDT-SWAP`` -> ``BTC/USDT:USDT``; ``BTC-USD-SWAP`` -> ``BTC/USD:BTC``.

    Dated futures keep their expiry: ``BTC-USD-220527`` -> ``BTC/USD:BTC-220527``.
    """
    parts = inst_id.split("-")
    if len(parts) < 2 or not all(p.isalnum() and p.upper() == p for p in parts):
        raise SymbolError(f"not an OKX instId: {inst_id!r}")
    base, quote = parts[0], parts[1]
    if len(parts) == 2:
        return f"{base}/{quote}"
    settle = base if quote == "USD" else quote  # USD-margined contracts are inverse (settle in base)
    if len(parts) == 3 and parts[2] == "SWAP":
        return f"{base}/{quote}:{settle}"
    if len(parts) == 3 and parts[2].isdigit():
        return f"{base}/{quote}:{settle}-{parts[2]}"
    raise SymbolError(f"unsupported OKX instId: {inst_id!r}")


def from_unified(symbol: str) -> str:
    """The inverse of :func:`to_unified`."""
    pair, _, contract = symbol.partition(":")
    base, slash, quote = pair.partition("/")
    if not slash or not base or not quote:
        raise SymbolError(f"not a unified symbol: {symbol!r}")
    if not contract:
        return f"{base}-{quote}"
    settle, _, expiry = contract.partition("-")
    expected = base if quote == "USD" else quote
    if settle != expected:
        raise SymbolError(f"{symbol!r}: OKX settles {base}-{quote} contracts in {expected}")
    return f"{base}-{quote}-{expiry}" if expiry else f"{base}-{quote}-SWAP"
