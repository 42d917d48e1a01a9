"""Binance venue metadata as data: markets, public URLs, stream channels, sequence rules, instruments.

Nothing here does I/O. Spot is venue ``binance``, USD-M futures ``binance_usdm`` and COIN-M futures
``binance_coinm`` (parsed, but no instrument specs are listed for it yet). Instrument specs are the
exchange's published filters (``PRICE_FILTER.tickSize``, ``LOT_SIZE.stepSize``, ``NOTIONAL`` /
``MIN_NOTIONAL``) written as decimal strings and converted to fixed-point nanos once, at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import InstrumentKind, OrderStatus, RejectReason
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.transport.ratelimit import RateLimitScope, RateLimitSpec
from tradeloop.venues.transport.ws import HeartbeatKind, HeartbeatSpec, WsSpec

__all__ = [
    "ERROR_MESSAGES",
    "ERROR_REASONS",
    "INSTRUMENTS",
    "MARKETS",
    "ORDER_STATUS",
    "OUTCOME_UNKNOWN_CODES",
    "RATE_LIMITED_CODES",
    "RATE_LIMITED_STATUS",
    "RATE_LIMITS",
    "RECV_WINDOW_MS",
    "REJECT_ERRORS",
    "REQUEST_COSTS",
    "TRADING",
    "USDM_PRIVATE_WS_URL",
    "VENUE_COINM",
    "VENUE_SPOT",
    "VENUE_USDM",
    "WS_API_METHODS",
    "WS_API_ORDERS",
    "WS_API_RATE_WINDOWS",
    "WS_API_URL",
    "WS_OP_COSTS",
    "BinanceMarket",
    "MarketSpec",
    "TradingPaths",
    "depth_weight",
    "error_for",
    "get_instrument",
    "market_of_venue",
    "reject_reason",
    "sequence_rules",
]

VENUE_SPOT: Final = "binance"
VENUE_USDM: Final = "binance_usdm"
VENUE_COINM: Final = "binance_coinm"


class BinanceMarket(StrEnum):
    """The Binance markets tradeloop knows; each is its own venue name."""

    SPOT = "spot"
    USDM = "usdm"
    COINM = "coinm"


class MarketSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Endpoints, channels and book rules of one Binance market.

    ``*_channel`` values are stream-name templates; ``{symbol}`` is the lower-case symbol.
    ``sequence_rule`` is how depth diffs link (``U``/``u`` ranges on spot, the ``pu`` chain on
    futures); ``snapshot_limit`` the largest REST depth snapshot.
    """

    market: BinanceMarket
    venue: str
    kind: InstrumentKind
    rest_url: str
    ws_url: str
    ws_market_url: str
    """Where trade streams live (USD-M routes streams by path since 2026; equal to ``ws_url`` on spot)."""
    depth_snapshot_path: str
    snapshot_limit: int
    depth_channel: str
    trade_channel: str
    book_ticker_channel: str
    sequence_rule: SequenceRule


MARKETS: Final[Mapping[BinanceMarket, MarketSpec]] = MappingProxyType(
    {
        BinanceMarket.SPOT: MarketSpec(
            market=BinanceMarket.SPOT,
            venue=VENUE_SPOT,
            kind=InstrumentKind.SPOT,
            rest_url="https://api.binance.com",
            ws_url="wss://stream.binance.com:9443/stream",
            ws_market_url="wss://stream.binance.com:9443/stream",
            depth_snapshot_path="/api/v3/depth",
            snapshot_limit=5000,
            depth_channel="{symbol}@depth@100ms",
            trade_channel="{symbol}@trade",
            book_ticker_channel="{symbol}@bookTicker",
            sequence_rule=SequenceRule.RANGE,
        ),
        BinanceMarket.USDM: MarketSpec(
            market=BinanceMarket.USDM,
            venue=VENUE_USDM,
            kind=InstrumentKind.LINEAR_PERP,
            rest_url="https://fapi.binance.com",
            ws_url="wss://fstream.binance.com/public/stream",
            ws_market_url="wss://fstream.binance.com/market/stream",
            depth_snapshot_path="/fapi/v1/depth",
            snapshot_limit=1000,
            depth_channel="{symbol}@depth@100ms",
            trade_channel="{symbol}@trade",
            book_ticker_channel="{symbol}@bookTicker",
            sequence_rule=SequenceRule.PREV_LINK,
        ),
        BinanceMarket.COINM: MarketSpec(
            market=BinanceMarket.COINM,
            venue=VENUE_COINM,
            kind=InstrumentKind.LINEAR_PERP,  # inverse contracts have no kind of their own yet
            rest_url="https://dapi.binance.com",
            ws_url="wss://dstream.binance.com/stream",
            ws_market_url="wss://dstream.binance.com/stream",
            depth_snapshot_path="/dapi/v1/depth",
            snapshot_limit=1000,
            depth_channel="{symbol}@depth@100ms",
            trade_channel="{symbol}@trade",
            book_ticker_channel="{symbol}@bookTicker",
            sequence_rule=SequenceRule.PREV_LINK,
        ),
    }
)

_BY_VENUE: Final[Mapping[str, BinanceMarket]] = MappingProxyType({spec.venue: m for m, spec in MARKETS.items()})


def market_of_venue(venue: str) -> BinanceMarket:
    """The Binance market behind a venue name (``binance`` -> SPOT); ``KeyError`` if unknown."""
    try:
        return _BY_VENUE[venue]
    except KeyError:
        raise KeyError(f"not a Binance venue: {venue!r} (known: {sorted(_BY_VENUE)})") from None


def sequence_rules() -> dict[str, SequenceRule]:
    """Venue name -> depth sequence rule, for :class:`tradeloop.data.book_manager.BookManager`."""
    return {spec.venue: spec.sequence_rule for spec in MARKETS.values()}


# Published filters, as the exchange writes them: (market, symbol, base, quote, tick, lot, min qty, min notional).
_INSTRUMENT_TABLE: Final[tuple[tuple[BinanceMarket, str, str, str, str, str, str, str], ...]] = (
    (BinanceMarket.SPOT, "BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "0.00001", "5"),
    (BinanceMarket.SPOT, "ETHUSDT", "ETH", "USDT", "0.01", "0.0001", "0.0001", "5"),
    (BinanceMarket.USDM, "BTCUSDT", "BTC", "USDT", "0.1", "0.001", "0.001", "100"),
    (BinanceMarket.USDM, "ETHUSDT", "ETH", "USDT", "0.01", "0.001", "0.001", "20"),
)


def _build_instruments() -> tuple[Instrument, ...]:
    out = []
    for market, symbol, base, quote, tick, lot, min_qty, min_notional in _INSTRUMENT_TABLE:
        spec = MARKETS[market]
        out.append(
            Instrument(
                id=InstrumentId(spec.venue, symbol),
                base=base,
                quote=quote,
                kind=spec.kind,
                tick_size=fixed.parse(tick),
                lot_size=fixed.parse(lot),
                min_qty=fixed.parse(min_qty),
                min_notional=fixed.parse(min_notional),
            )
        )
    return tuple(out)


INSTRUMENTS: Final[tuple[Instrument, ...]] = _build_instruments()
"""Known instrument specs (spot and USD-M BTCUSDT, ETHUSDT)."""

_INSTRUMENTS_BY_ID: Final[Mapping[InstrumentId, Instrument]] = MappingProxyType({i.id: i for i in INSTRUMENTS})


def get_instrument(instrument_id: InstrumentId) -> Instrument:
    """The known spec of ``instrument_id``; ``KeyError`` naming it if it is not listed."""
    try:
        return _INSTRUMENTS_BY_ID[instrument_id]
    except KeyError:
        raise KeyError(f"no Binance instrument spec for {instrument_id}") from None


# -- trading: REST paths, rate limits, request costs, statuses and error codes (data) ----------

RECV_WINDOW_MS: Final = 5000
"""``recvWindow`` sent with every signed request (the venue's default; at most 60000)."""

WS_API_URL: Final = "wss://ws-api.binance.com:443/ws-api/v3"
"""Spot WebSocket API: the user data stream (``userDataStream.subscribe.signature``) lives here since
the REST/WS listen-key endpoints were retired (2026-02-20)."""
USDM_PRIVATE_WS_URL: Final = "wss://fstream.binance.com/private/ws"
"""USD-M user data: ``<this>/<listenKey>``, the key from ``POST /fapi/v1/listenKey``."""


class TradingPaths(msgspec.Struct, frozen=True, kw_only=True):
    """REST paths of one market's trading endpoints (``""`` where the market has none)."""

    order: str
    """POST place, DELETE cancel, GET query (and PUT modify on USD-M)."""
    open_orders: str
    cancel_all: str
    cancel_replace: str
    amend_keep_priority: str
    modify: str
    account: str
    my_trades: str
    server_time: str
    listen_key: str
    client_id_pattern: str


TRADING: Final[Mapping[BinanceMarket, TradingPaths]] = MappingProxyType(
    {
        BinanceMarket.SPOT: TradingPaths(
            order="/api/v3/order",
            open_orders="/api/v3/openOrders",
            cancel_all="/api/v3/openOrders",
            cancel_replace="/api/v3/order/cancelReplace",
            amend_keep_priority="/api/v3/order/amend/keepPriority",
            modify="",
            account="/api/v3/account",
            my_trades="/api/v3/myTrades",
            server_time="/api/v3/time",
            listen_key="",
            client_id_pattern=r"^[a-zA-Z0-9_-]{1,36}$",
        ),
        BinanceMarket.USDM: TradingPaths(
            order="/fapi/v1/order",
            open_orders="/fapi/v1/openOrders",
            cancel_all="/fapi/v1/allOpenOrders",
            cancel_replace="",
            amend_keep_priority="",
            modify="/fapi/v1/order",
            account="/fapi/v2/balance",
            my_trades="/fapi/v1/userTrades",
            server_time="/fapi/v1/time",
            listen_key="/fapi/v1/listenKey",
            client_id_pattern=r"^[\.A-Z\:/a-z0-9_-]{1,36}$",
        ),
    }
)

_W: Final = "REQUEST_WEIGHT"
_O10: Final = "ORDERS_10S"
_O1D: Final = "ORDERS_1D"
_O1M: Final = "ORDERS_1M"

RATE_LIMITS: Final[Mapping[BinanceMarket, tuple[RateLimitSpec, ...]]] = MappingProxyType(
    {
        BinanceMarket.SPOT: (
            RateLimitSpec(
                name=_W, limit=6000, window_s=60, scope=RateLimitScope.IP, usage_header="X-MBX-USED-WEIGHT-1M"
            ),
            RateLimitSpec(name=_O10, limit=100, window_s=10, usage_header="X-MBX-ORDER-COUNT-10S"),
            RateLimitSpec(name=_O1D, limit=200_000, window_s=86_400, usage_header="X-MBX-ORDER-COUNT-1D"),
        ),
        BinanceMarket.USDM: (
            RateLimitSpec(
                name=_W, limit=2400, window_s=60, scope=RateLimitScope.IP, usage_header="X-MBX-USED-WEIGHT-1M"
            ),
            RateLimitSpec(name=_O10, limit=300, window_s=10, usage_header="X-MBX-ORDER-COUNT-10S"),
            RateLimitSpec(name=_O1M, limit=1200, window_s=60, usage_header="X-MBX-ORDER-COUNT-1M"),
        ),
    }
)
"""``rateLimits`` of ``exchangeInfo`` as data; the usage headers are read back after every reply."""

_SPOT_ORDER: Final = {_W: 1, _O10: 1, _O1D: 1}
_USDM_ORDER: Final = {_W: 0, _O10: 1, _O1M: 1}
REQUEST_COSTS: Final[Mapping[BinanceMarket, Mapping[str, Mapping[str, int]]]] = MappingProxyType(
    {
        BinanceMarket.SPOT: {
            "place": _SPOT_ORDER,
            "cancel": {_W: 1},
            "cancel_all": {_W: 1},
            "cancel_replace": _SPOT_ORDER,
            "amend": {_W: 4},
            "query": {_W: 4},
            "open_orders": {_W: 6},
            "open_orders_all": {_W: 80},
            "account": {_W: 20},
            "my_trades": {_W: 20},
            "time": {_W: 1},
        },
        BinanceMarket.USDM: {
            "place": _USDM_ORDER,
            "cancel": {_W: 1},
            "cancel_all": {_W: 1},
            "amend": _USDM_ORDER,
            "query": {_W: 1},
            "open_orders": {_W: 1},
            "open_orders_all": {_W: 40},
            "account": {_W: 5},
            "my_trades": {_W: 5},
            "time": {_W: 1},
            "listen_key": {_W: 1},
        },
    }
)
"""Weight of each request in each window (window name -> weight), from the endpoint docs."""

WS_API_METHODS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "place": "order.place",
        "cancel": "order.cancel",
        "amend": "order.amend.keepPriority",
        "cancel_replace": "order.cancelReplace",
    }
)
"""Spot order requests sent on the WebSocket API: request kind (a ``REQUEST_COSTS`` key) -> method."""
WS_OP_COSTS: Final[Mapping[str, Mapping[str, int]]] = MappingProxyType(
    {kind: REQUEST_COSTS[BinanceMarket.SPOT][kind] for kind in WS_API_METHODS}
)
"""A WebSocket API order request weighs what its REST twin weighs, in the same windows (one budget)."""
WS_API_RATE_WINDOWS: Final[Mapping[tuple[str, str, int], str]] = MappingProxyType(
    {("REQUEST_WEIGHT", "MINUTE", 1): _W, ("ORDERS", "SECOND", 10): _O10, ("ORDERS", "DAY", 1): _O1D}
)
"""A WebSocket API reply's ``rateLimits`` item ``(rateLimitType, interval, intervalNum)`` -> budget window."""
WS_API_ORDERS: Final = WsSpec(
    url=WS_API_URL,
    heartbeat=HeartbeatSpec(kind=HeartbeatKind.WS_PING, interval_s=30.0, when_idle=True, pong_timeout_s=10.0),
)
"""The order-entry connection to the WebSocket API. Binance pings every 20 s (picows answers); the
client's own ping after 30 s of silence finds a dead connection before an order is written to it."""
RATE_LIMITED_CODES: Final = frozenset({-1003, -1015})
"""Too much request weight, too many new orders: nothing was done, the request may be sent again."""
RATE_LIMITED_STATUS: Final = frozenset({429, 418})
OUTCOME_UNKNOWN_CODES: Final = frozenset({-1006, -1007})
""""Unexpected response" / "Timeout waiting for response": the request may or may not have been executed."""


def depth_weight(market: BinanceMarket, limit: int) -> dict[str, int]:
    """Request weight of a REST depth snapshot of ``limit`` levels per side."""
    if market is BinanceMarket.SPOT:
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    else:
        weight = 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
    return {_W: weight}


ORDER_STATUS: Final[Mapping[str, OrderStatus]] = MappingProxyType(
    {
        "NEW": OrderStatus.ACCEPTED,
        "PENDING_NEW": OrderStatus.ACCEPTED,
        "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
        "FILLED": OrderStatus.FILLED,
        "CANCELED": OrderStatus.CANCELED,
        "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
        "REJECTED": OrderStatus.REJECTED,
        "EXPIRED": OrderStatus.EXPIRED,
        "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    }
)
"""Binance order status -> engine order status (``EXPIRED_IN_MATCH`` is self-trade prevention)."""

MSG_DUPLICATE: Final = "Duplicate order sent."
MSG_INSUFFICIENT_BALANCE: Final = "Account has insufficient balance for requested action."
MSG_WOULD_TAKE: Final = "Order would immediately match and take."
MSG_UNKNOWN_ORDER: Final = "Unknown order sent."

ERROR_MESSAGES: Final[Mapping[int, str]] = MappingProxyType(
    {
        -1003: "Too much request weight used; please use WebSocket Streams for live updates.",
        -1013: "Filter failure: LOT_SIZE",
        -1015: "Too many new orders.",
        -1021: "Timestamp for this request is outside of the recvWindow.",
        -1022: "Signature for this request is not valid.",
        -1102: "Mandatory parameter was not sent, was empty/null, or malformed.",
        -1111: "Precision is over the maximum defined for this asset.",
        -1121: "Invalid symbol.",
        -2010: "New order rejected.",
        -2011: MSG_UNKNOWN_ORDER,
        -2013: "Order does not exist.",
        -2014: "API-key format invalid.",
        -2015: "Invalid API-key, IP, or permissions for action.",
        -2021: "Order cancel-replace partially failed.",
        -2022: "Order cancel-replace failed.",
        -5022: "Due to the order could not be executed as maker, the Post Only order will be rejected.",
        -2019: "Margin is insufficient.",
        -4116: "ClientOrderId is duplicated.",
    }
)
"""The venue's message for each error code we send or expect (the simulator answers with these)."""

ERROR_REASONS: Final[tuple[tuple[int, str, RejectReason], ...]] = (
    (-2010, "duplicate order", RejectReason.DUPLICATE_CLIENT_ID),
    (-2010, "insufficient balance", RejectReason.INSUFFICIENT_BALANCE),
    (-2010, "immediately match and take", RejectReason.POST_ONLY_WOULD_CROSS),
    (-2010, "", RejectReason.OTHER),
    (-1003, "", RejectReason.RATE_LIMITED),
    (-1015, "", RejectReason.RATE_LIMITED),
    (-1021, "", RejectReason.TIMESTAMP_OUTSIDE_WINDOW),
    (-2011, "", RejectReason.UNKNOWN_ORDER),
    (-2013, "", RejectReason.UNKNOWN_ORDER),
    (-1013, "", RejectReason.INVALID_ORDER),
    (-1100, "", RejectReason.INVALID_ORDER),
    (-1102, "", RejectReason.INVALID_ORDER),
    (-1106, "", RejectReason.INVALID_ORDER),
    (-1111, "", RejectReason.INVALID_ORDER),
    (-1121, "", RejectReason.INVALID_ORDER),
    (-4164, "", RejectReason.INVALID_ORDER),
    (-5022, "", RejectReason.POST_ONLY_WOULD_CROSS),
    (-2019, "", RejectReason.INSUFFICIENT_BALANCE),
    (-4116, "", RejectReason.DUPLICATE_CLIENT_ID),
)
"""(code, lower-case message fragment or "" for any, reason): the first matching row wins."""


def reject_reason(code: int, message: str) -> RejectReason:
    """The engine's reason for a Binance error ``{"code": code, "msg": message}`` (``OTHER`` if unmapped)."""
    text = message.lower()
    for row_code, fragment, reason in ERROR_REASONS:
        if row_code == code and (not fragment or fragment in text):
            return reason
    return RejectReason.OTHER


REJECT_ERRORS: Final[Mapping[RejectReason, str]] = MappingProxyType(
    {
        RejectReason.RATE_LIMITED: "-1015",
        RejectReason.TIMESTAMP_OUTSIDE_WINDOW: "-1021",
        RejectReason.DUPLICATE_CLIENT_ID: MSG_DUPLICATE,
        RejectReason.INSUFFICIENT_BALANCE: MSG_INSUFFICIENT_BALANCE,
        RejectReason.POST_ONLY_WOULD_CROSS: MSG_WOULD_TAKE,
        RejectReason.UNKNOWN_ORDER: "-2011",
        RejectReason.INVALID_ORDER: "-1013",
    }
)
"""For the simulator's ``reject_next``: the venue error (code, or a -2010 message) behind each reason."""


def error_for(text: str) -> tuple[int, str]:
    """``reject_next``'s argument as ``(code, msg)``: a code ("-1021"), ``"code:msg"``, or a -2010 message."""
    head, sep, tail = text.partition(":")
    try:
        code = int(head.strip())
    except ValueError:
        return -2010, text
    return code, tail.strip() if sep and tail.strip() else ERROR_MESSAGES.get(code, "Error.")
