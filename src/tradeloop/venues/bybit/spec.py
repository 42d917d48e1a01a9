"""Bybit v5 venue metadata as data: endpoints, channels, limits and error codes.

Nothing here does I/O. Bybit uses the same symbol (``BTCUSDT``) on spot and linear, told apart by
``category``; tradeloop makes them two venues, ``bybit`` (spot) and ``bybit_linear``, so an
instrument id names one market. :func:`to_unified` / :func:`from_unified` map symbols to the
unified ``BASE/QUOTE`` and ``BASE/QUOTE:SETTLE`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import msgspec

from tradeloop.core.fixed import parse as _p
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import InstrumentKind, OrderStatus, RejectReason
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.transport.ratelimit import RateLimitScope, RateLimitSpec, UsageHeaderKind
from tradeloop.venues.transport.ws import HeartbeatKind, HeartbeatSpec, WsSpec

__all__ = [
    "BOOK_DEPTHS",
    "CATEGORY_OF_VENUE",
    "ERROR_CODES",
    "INSTRUMENTS",
    "ORDER_STATUS",
    "QUOTE_ASSETS",
    "RATE_LIMITED_CODES",
    "RATE_LIMITS",
    "REJECT_ERRORS",
    "REJECT_REASONS",
    "SEQUENCE_RULE",
    "URLS",
    "VENUE_LINEAR",
    "VENUE_SPOT",
    "WS_OP_COSTS",
    "WS_OP_PATHS",
    "WS_OUTCOME_UNKNOWN_CODES",
    "WS_RETRY_CODES",
    "WS_TRADE_HEARTBEAT",
    "SymbolError",
    "from_unified",
    "to_unified",
    "ws_trade_spec",
]

VENUE_SPOT: Final = "bybit"
VENUE_LINEAR: Final = "bybit_linear"
CATEGORY_OF_VENUE: Final[Mapping[str, str]] = MappingProxyType({VENUE_SPOT: "spot", VENUE_LINEAR: "linear"})


class Urls(msgspec.Struct, frozen=True, kw_only=True):
    rest: str
    ws_public_spot: str
    ws_public_linear: str
    ws_private: str
    ws_trade: str


URLS: Final = Urls(
    rest="https://api.bybit.com",
    ws_public_spot="wss://stream.bybit.com/v5/public/spot",
    ws_public_linear="wss://stream.bybit.com/v5/public/linear",
    ws_private="wss://stream.bybit.com/v5/private",
    ws_trade="wss://stream.bybit.com/v5/trade",
)
TESTNET_URLS: Final = Urls(
    rest="https://api-testnet.bybit.com",
    ws_public_spot="wss://stream-testnet.bybit.com/v5/public/spot",
    ws_public_linear="wss://stream-testnet.bybit.com/v5/public/linear",
    ws_private="wss://stream-testnet.bybit.com/v5/private",
    ws_trade="wss://stream-testnet.bybit.com/v5/trade",
)

BOOK_DEPTHS: Final = (1, 50, 200, 500, 1000)
BOOK_TOPIC: Final = "orderbook.{depth}.{symbol}"
TRADE_TOPIC: Final = "publicTrade.{symbol}"
SEQUENCE_RULE: Final = SequenceRule.INCREMENT
"""Deltas' update id ``u`` rises by one; a jump is a gap (resubscribe). A later snapshot resets the book."""
PING_INTERVAL_S: Final = 20
DEFAULT_RECV_WINDOW_MS: Final = 5000

ERROR_CODES: Final[Mapping[int, RejectReason]] = MappingProxyType(
    {
        10006: RejectReason.RATE_LIMITED,
        10429: RejectReason.RATE_LIMITED,
        20003: RejectReason.RATE_LIMITED,  # trade socket: too frequent on this session
        10002: RejectReason.TIMESTAMP_OUTSIDE_WINDOW,
        110072: RejectReason.DUPLICATE_CLIENT_ID,
        170141: RejectReason.DUPLICATE_CLIENT_ID,
        110004: RejectReason.INSUFFICIENT_BALANCE,
        110007: RejectReason.INSUFFICIENT_BALANCE,
        110012: RejectReason.INSUFFICIENT_BALANCE,
        170131: RejectReason.INSUFFICIENT_BALANCE,
        110001: RejectReason.UNKNOWN_ORDER,
        170213: RejectReason.UNKNOWN_ORDER,
        170218: RejectReason.POST_ONLY_WOULD_CROSS,
        10001: RejectReason.INVALID_ORDER,
        170136: RejectReason.INVALID_ORDER,
        170140: RejectReason.INVALID_ORDER,
        110008: RejectReason.UNKNOWN_ORDER,  # order already finished or canceled (cancel/amend too late)
        110003: RejectReason.INVALID_ORDER,  # price out of range
        110017: RejectReason.INVALID_ORDER,  # qty rounds to zero
        170134: RejectReason.INVALID_ORDER,  # too many price decimals
        170137: RejectReason.INVALID_ORDER,  # too many qty decimals
        170193: RejectReason.INVALID_ORDER,  # buy price above the limit
        170194: RejectReason.INVALID_ORDER,  # sell price below the limit
        170217: RejectReason.INVALID_ORDER,  # LIMIT-MAKER only for this pair
    }
)
"""``retCode`` -> reason. Codes not listed map to ``OTHER`` (auth errors 10003/10004/10005/10010 among them)."""


def _reject_errors(balance: int, duplicate: int, unknown: int) -> Mapping[RejectReason, str]:
    return MappingProxyType(
        {
            RejectReason.RATE_LIMITED: "10006",
            RejectReason.TIMESTAMP_OUTSIDE_WINDOW: "10002",
            RejectReason.DUPLICATE_CLIENT_ID: str(duplicate),
            RejectReason.INSUFFICIENT_BALANCE: str(balance),
            RejectReason.POST_ONLY_WOULD_CROSS: "EC_PostOnlyWillTakeLiquidity",
            RejectReason.FOK_NOT_FILLABLE: "EC_NoEnoughQtyToFill",
            RejectReason.NO_LIQUIDITY: "EC_NoImmediateQtyToFill",
            RejectReason.INVALID_ORDER: "10001",
            RejectReason.UNKNOWN_ORDER: str(unknown),
        }
    )


REJECT_ERRORS: Final[Mapping[str, Mapping[RejectReason, str]]] = MappingProxyType(
    {VENUE_SPOT: _reject_errors(170131, 170141, 170213), VENUE_LINEAR: _reject_errors(110007, 110072, 110001)}
)
"""Per venue, Bybit's own error behind each reason: a ``retCode``, or an order stream ``rejectReason``
(``EC_*``: Bybit takes the order, then cancels it). The simulator's ``reject_next`` accepts both."""

RATE_LIMITED_CODES: Final = frozenset({10006, 10429})
"""``retCode`` of a request refused for its rate (HTTP 200 with 10006, or 10429 system protection): re-send later."""
TIMESTAMP_CODE: Final = 10002
AUTH_ERROR_CODES: Final = frozenset({10003, 10004, 10005, 10010})

REJECT_REASONS: Final[Mapping[str, RejectReason]] = MappingProxyType(
    {
        "EC_PostOnlyWillTakeLiquidity": RejectReason.POST_ONLY_WOULD_CROSS,
        "EC_NoEnoughQtyToFill": RejectReason.FOK_NOT_FILLABLE,
        "EC_CancelForNoFullFill": RejectReason.FOK_NOT_FILLABLE,
        "EC_NoImmediateQtyToFill": RejectReason.NO_LIQUIDITY,
        "EC_DuplicatedClOrdID": RejectReason.DUPLICATE_CLIENT_ID,
        "EC_OrderNotExist": RejectReason.UNKNOWN_ORDER,
        "EC_OrigClOrdIDDoesNotExist": RejectReason.UNKNOWN_ORDER,
        "EC_TooLateToCancel": RejectReason.UNKNOWN_ORDER,
        "EC_LimitOrderInvalidPrice": RejectReason.INVALID_ORDER,
        "EC_MarketOrderCannotBePostOnly": RejectReason.INVALID_ORDER,
        "EC_MarketOrderPriceIsNotZero": RejectReason.INVALID_ORDER,
        "EC_UnknownOrderType": RejectReason.INVALID_ORDER,
        "EC_UnknownSide": RejectReason.INVALID_ORDER,
        "EC_UnknownTimeInForce": RejectReason.INVALID_ORDER,
        "EC_QtyCannotBeZero": RejectReason.INVALID_ORDER,
        "EC_InvalidPriceScale": RejectReason.INVALID_ORDER,
        "EC_EcInvalidQty": RejectReason.INVALID_ORDER,
        "EC_InvalidAmount": RejectReason.INVALID_ORDER,
        "EC_InvalidSymbolStatus": RejectReason.INVALID_ORDER,
        "EC_ReachRiskPriceLimit": RejectReason.INVALID_ORDER,
        "EC_ReachMarketPriceLimit": RejectReason.INVALID_ORDER,
    }
)
"""The order stream's ``rejectReason`` -> reason; ``EC_NoError``, ``EC_Others`` and unknown values mean none."""

ORDER_STATUS: Final[Mapping[str, OrderStatus]] = MappingProxyType(
    {
        "New": OrderStatus.ACCEPTED,
        "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
        "Untriggered": OrderStatus.ACCEPTED,
        "Triggered": OrderStatus.ACCEPTED,
        "Filled": OrderStatus.FILLED,
        "Cancelled": OrderStatus.CANCELED,
        "PartiallyFilledCanceled": OrderStatus.CANCELED,
        "Deactivated": OrderStatus.CANCELED,
        "Rejected": OrderStatus.REJECTED,
    }
)
"""``orderStatus`` -> engine status. Bybit has no expired state: IOC/FOK/market leftovers are ``Cancelled``
(spot: ``PartiallyFilledCanceled`` after fills); :mod:`.private` tells those apart by ``cancelType``."""
USER_CANCEL_TYPES: Final = frozenset({"CancelByUser", "CancelAllBeforeLiq", "CancelByAdmin", "CancelByDCP"})
"""``cancelType`` values of a cancel someone asked for (as opposed to a time-in-force leftover)."""

ORDER_LINK_ID_MAX: Final = 36
"""``orderLinkId``: at most 36 characters of ``[A-Za-z0-9_-]``, unique per account."""

# Rate limits per UID per second (REST and WebSocket trading share them), one window per endpoint, as
# ``X-Bapi-Limit-Status`` (remaining in the endpoint's window) reports them; plus the IP limit.
IP_WINDOW: Final = "ip"
CREATE: Final = "/v5/order/create"
AMEND: Final = "/v5/order/amend"
CANCEL: Final = "/v5/order/cancel"
CANCEL_ALL: Final = "/v5/order/cancel-all"
REALTIME: Final = "/v5/order/realtime"
HISTORY: Final = "/v5/order/history"
EXECUTIONS: Final = "/v5/execution/list"
WALLET: Final = "/v5/account/wallet-balance"
SERVER_TIME: Final = "/v5/market/time"
INSTRUMENTS_INFO: Final = "/v5/market/instruments-info"


def _limits(orders_per_s: int) -> tuple[RateLimitSpec, ...]:
    per_endpoint = {CREATE: orders_per_s, AMEND: orders_per_s, CANCEL: orders_per_s, CANCEL_ALL: orders_per_s}
    per_endpoint |= {REALTIME: 50, HISTORY: 50, EXECUTIONS: 50, WALLET: 50}
    return (
        RateLimitSpec(name=IP_WINDOW, limit=600, window_s=5, scope=RateLimitScope.IP),
        *(
            RateLimitSpec(
                name=path,
                limit=limit,
                window_s=1,
                usage_header="X-Bapi-Limit-Status",
                usage_kind=UsageHeaderKind.REMAINING,
            )
            for path, limit in per_endpoint.items()
        ),
    )


RATE_LIMITS: Final[Mapping[str, tuple[RateLimitSpec, ...]]] = MappingProxyType(
    {VENUE_SPOT: _limits(20), VENUE_LINEAR: _limits(10)}
)
"""Per venue (category): orders 20/s spot, 10/s linear per endpoint; queries 50/s; all REST 600 per 5 s per IP."""


def costs(path: str) -> dict[str, int]:
    """The rate-budget cost of one request to ``path``."""
    return {IP_WINDOW: 1, path: 1}


# WebSocket order entry on ``/v5/trade``: one op per frame, ``args`` = the REST body of its endpoint.
WS_CREATE: Final = "order.create"
WS_AMEND: Final = "order.amend"
WS_CANCEL: Final = "order.cancel"
WS_OP_PATHS: Final[Mapping[str, str]] = MappingProxyType({WS_CREATE: CREATE, WS_AMEND: AMEND, WS_CANCEL: CANCEL})
"""Each trade-socket op and the REST endpoint whose body it carries and whose per-UID limit it shares."""
WS_OP_COSTS: Final[Mapping[str, Mapping[str, int]]] = MappingProxyType(
    {op: MappingProxyType({path: 1}) for op, path in WS_OP_PATHS.items()}
)
"""Rate-budget cost of one trade-socket op: its endpoint's UID window (the IP limit counts REST only)."""
WS_RETRY_CODES: Final = RATE_LIMITED_CODES | {20003, 10019}
"""Trade-socket ``retCode`` of an op refused before it was executed, to be sent again after a backoff: 10006
UID rate limit, 10429 system protection, 20003 too frequent on this session, 10019 service restarting (takes
no new ops)."""
WS_OUTCOME_UNKNOWN_CODES: Final = frozenset({10000, 10016})
"""Trade-socket ``retCode`` that do not say whether the op was executed (server timeout, internal error /
service restarting): nothing is emitted; the OMS queries the order by client id."""
WS_TRADE_PONGS: Final = ('"op":"pong"',)
WS_TRADE_HEARTBEAT: Final = HeartbeatSpec(
    kind=HeartbeatKind.APP_MESSAGE,
    interval_s=PING_INTERVAL_S,
    message='{"op":"ping"}',
    pong_contains=WS_TRADE_PONGS,
    pong_timeout_s=10.0,
)
"""The trade socket's keepalive: ``{"op":"ping"}`` every 20 s, answered ``{"op":"pong",...}``; it is dropped
after 10 min without one."""


def ws_trade_spec(url: str = URLS.ws_trade) -> WsSpec:
    """The trade socket's connection rules (:data:`WS_TRADE_HEARTBEAT`)."""
    return WsSpec(url=url, heartbeat=WS_TRADE_HEARTBEAT, open_timeout_s=10.0)


WS_AUTH_EXPIRES_MS: Final = 10_000
"""How far ahead of the (offset-corrected) clock a socket ``auth`` expires."""


PUBLIC_PONGS: Final = ('"ret_msg":"pong"',)
PRIVATE_PONGS: Final = ('"op":"pong"',)
_HEARTBEAT = HeartbeatSpec(
    kind=HeartbeatKind.APP_MESSAGE,
    interval_s=PING_INTERVAL_S,
    message='{"req_id":"p{n}","op":"ping"}',
    pong_contains=PUBLIC_PONGS + PRIVATE_PONGS,
    pong_timeout_s=10.0,
)


def ws_spec(url: str, *, stale_after_s: float | None) -> WsSpec:
    """A Bybit socket: ``{"op":"ping"}`` every 20 s; both pong shapes (public ``ret_msg``, private ``op``)."""
    return WsSpec(url=url, heartbeat=_HEARTBEAT, stale_after_s=stale_after_s, open_timeout_s=10.0)


QUOTE_ASSETS: Final = ("USDT", "USDC", "BTC", "ETH", "EUR", "DAI")
"""Quote currencies recognised when splitting a concatenated symbol, longest match first."""


class SymbolError(ValueError):
    """A symbol that cannot be split or mapped."""


def _split(symbol: str) -> tuple[str, str]:
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote) and symbol.isalnum() and symbol.isupper():
            return symbol[: -len(quote)], quote
    raise SymbolError(f"cannot split Bybit symbol {symbol!r}")


def to_unified(venue: str, symbol: str) -> str:
    """``(bybit, BTCUSDT)`` -> ``BTC/USDT``; ``(bybit_linear, BTCUSDT)`` -> ``BTC/USDT:USDT``."""
    base, quote = _split(symbol)
    if venue == VENUE_SPOT:
        return f"{base}/{quote}"
    if venue == VENUE_LINEAR:
        return f"{base}/{quote}:{quote}"
    raise SymbolError(f"not a Bybit venue: {venue!r}")


def from_unified(unified: str) -> tuple[str, str]:
    """The inverse of :func:`to_unified`: ``(venue, symbol)``."""
    pair, _, settle = unified.partition(":")
    base, slash, quote = pair.partition("/")
    if not slash or not base or not quote:
        raise SymbolError(f"not a unified symbol: {unified!r}")
    if not settle:
        return VENUE_SPOT, base + quote
    if settle != quote:
        raise SymbolError(f"{unified!r}: only linear contracts (settled in the quote) are supported")
    return VENUE_LINEAR, base + quote


def _spot(symbol: str, base: str, tick: str, lot: str, min_qty: str, min_notional: str) -> Instrument:
    return Instrument(
        id=InstrumentId(VENUE_SPOT, symbol),
        base=base,
        quote="USDT",
        tick_size=_p(tick),
        lot_size=_p(lot),
        min_qty=_p(min_qty),
        min_notional=_p(min_notional),
    )


def _linear(symbol: str, base: str, tick: str, lot: str, min_notional: str = "5") -> Instrument:
    return Instrument(
        id=InstrumentId(VENUE_LINEAR, symbol),
        base=base,
        quote="USDT",
        kind=InstrumentKind.LINEAR_PERP,
        tick_size=_p(tick),
        lot_size=_p(lot),
        min_qty=_p(lot),
        min_notional=_p(min_notional),
    )


INSTRUMENTS: Final[Mapping[str, tuple[Instrument, ...]]] = MappingProxyType(
    {
        VENUE_SPOT: (
            _spot("BTCUSDT", "BTC", "0.01", "0.000001", "0.000048", "5"),
            _spot("ETHUSDT", "ETH", "0.01", "0.00001", "0.00062", "5"),
        ),
        VENUE_LINEAR: (
            _linear("BTCUSDT", "BTC", "0.1", "0.001"),
            _linear("ETHUSDT", "ETH", "0.01", "0.01"),
        ),
    }
)
"""Static specs of the instruments tradeloop lists by default (Bybit's values when written; they change:
refresh from ``/v5/market/instruments-info`` with :func:`tradeloop.venues.bybit.parse.parse_instruments`)."""
