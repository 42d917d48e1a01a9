"""Kraken spot venue metadata as data: endpoints, pairs, book depths, limits, statuses, errors and names.

Nothing here does I/O. Instrument ids use the WebSocket v2 name as the symbol (``kraken:BTC/USD``),
which is also the unified ``BASE/QUOTE`` name. WebSocket v1 uses Kraken's legacy asset codes
(``XBT/USD``, mapped by :func:`from_v1_pair` / :func:`to_v1_pair`); REST uses pair names from
``AssetPairs`` (``XXBTZUSD``, altname ``XBTUSD``: :func:`rest_pair` / :func:`symbol_of_rest_pair`)
and asset codes such as ``XXBT`` / ``ZUSD`` (:func:`asset_of_rest_code` / :func:`rest_code_of_asset`).

Client order ids: Kraken's ``cl_ord_id`` is free text of at most 18 ASCII characters, or a UUID
(36 characters with dashes, or 32 hex digits). The engine's ids are 1-20 letters and digits; ids of
up to 18 characters are sent as they are, longer ones as a 32-hex-digit number that encodes them
exactly (:func:`to_cl_ord_id` / :func:`from_cl_ord_id`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import OrderStatus, RejectReason
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.transport.ratelimit import RateLimitSpec
from tradeloop.venues.transport.ws import HeartbeatKind, HeartbeatSpec, WsSpec

__all__ = [
    "BOOK_DEPTHS",
    "CHECKSUM_DEPTH",
    "DEFAULT_BOOK_DEPTH",
    "ERRORS",
    "EXEC_STATUS",
    "HEARTBEAT",
    "PAIRS",
    "RATE_LIMITS",
    "REJECT_ERRORS",
    "REST_ORDER_STATUS",
    "SEQUENCE_RULE",
    "URLS",
    "VENUE",
    "WS_OP_COSTS",
    "WS_ORDER_METHODS",
    "KrakenPair",
    "SymbolError",
    "asset_of_rest_code",
    "costs",
    "from_cl_ord_id",
    "from_v1_pair",
    "instruments",
    "is_outcome_unknown",
    "is_rate_limited",
    "pair_of",
    "private_ws_spec",
    "public_ws_spec",
    "reject_reason",
    "rest_code_of_asset",
    "rest_pair",
    "symbol_of_rest_pair",
    "to_cl_ord_id",
    "to_v1_pair",
]

VENUE: Final = "kraken"


class Urls(msgspec.Struct, frozen=True, kw_only=True):
    rest: str
    ws_public: str
    ws_private: str
    ws_v1_public: str


URLS: Final = Urls(
    rest="https://api.kraken.com",
    ws_public="wss://ws.kraken.com/v2",
    ws_private="wss://ws-auth.kraken.com/v2",
    ws_v1_public="wss://ws.kraken.com",
)

BOOK_DEPTHS: Final = (10, 25, 100, 500, 1000)
DEFAULT_BOOK_DEPTH: Final = 1000
"""The depth the registry's replay adapter keeps (``venues/registry.py``), so live books match recordings."""
CHECKSUM_DEPTH: Final = 10
"""The checksum always covers the best 10 levels per side, whatever the subscribed depth."""
SEQUENCE_RULE: Final = SequenceRule.NONE
"""Kraken books carry no sequence numbers: integrity is the checksum (and the subscribed depth)."""
V1_QTY_DECIMALS: Final = 8


# -- pairs ------------------------------------------------------------------------------------


class KrakenPair(msgspec.Struct, frozen=True, kw_only=True):
    """One spot pair: our symbol (the v2 name), its REST names and trading rules (decimal strings)."""

    symbol: str
    """v2 WebSocket name and our symbol: ``BTC/USD``."""
    rest_pair: str
    """``AssetPairs`` key, as ccxt sends it in ``pair=`` (``XXBTZUSD``)."""
    altname: str
    """``AssetPairs`` altname (``XBTUSD``); REST order info reports pairs by this name."""
    price_decimals: int
    """``pair_decimals``: also the book checksum's price precision."""
    qty_decimals: int
    """``lot_decimals``: also the book checksum's quantity precision."""
    ordermin: str
    costmin: str = "0"

    @property
    def base(self) -> str:
        return self.symbol.partition("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.partition("/")[2]


# From AssetPairs (live response of 2021-04-17 in the shared data; BTC/USDT ordermin and costmin from
# a 2025 response). Pairs whose decimals change are corrected live by the ``instrument`` channel.
PAIRS: Final[tuple[KrakenPair, ...]] = (
    KrakenPair(symbol="BTC/USD", rest_pair="XXBTZUSD", altname="XBTUSD", price_decimals=1, qty_decimals=8,
               ordermin="0.00005", costmin="0.5"),
    KrakenPair(symbol="BTC/EUR", rest_pair="XXBTZEUR", altname="XBTEUR", price_decimals=1, qty_decimals=8,
               ordermin="0.00005", costmin="0.5"),
    KrakenPair(symbol="BTC/USDT", rest_pair="XBTUSDT", altname="XBTUSDT", price_decimals=1, qty_decimals=8,
               ordermin="0.00005", costmin="0.5"),
    KrakenPair(symbol="ETH/USD", rest_pair="XETHZUSD", altname="ETHUSD", price_decimals=2, qty_decimals=8,
               ordermin="0.005"),
    KrakenPair(symbol="ETH/EUR", rest_pair="XETHZEUR", altname="ETHEUR", price_decimals=2, qty_decimals=8,
               ordermin="0.005"),
    KrakenPair(symbol="ETH/USDT", rest_pair="ETHUSDT", altname="ETHUSDT", price_decimals=2, qty_decimals=8,
               ordermin="0.005"),
    KrakenPair(symbol="ETH/BTC", rest_pair="XETHXXBT", altname="ETHXBT", price_decimals=5, qty_decimals=8,
               ordermin="0.005"),
    KrakenPair(symbol="LTC/USD", rest_pair="XLTCZUSD", altname="LTCUSD", price_decimals=2, qty_decimals=8,
               ordermin="0.05"),
    KrakenPair(symbol="LTC/USDT", rest_pair="LTCUSDT", altname="LTCUSDT", price_decimals=5, qty_decimals=8,
               ordermin="0.05"),
    KrakenPair(symbol="USDT/USD", rest_pair="USDTZUSD", altname="USDTUSD", price_decimals=4, qty_decimals=8,
               ordermin="5"),
)  # fmt: skip

_BY_SYMBOL: Final[Mapping[str, KrakenPair]] = MappingProxyType({p.symbol: p for p in PAIRS})
_BY_REST_NAME: Final[Mapping[str, KrakenPair]] = MappingProxyType(
    {**{p.rest_pair: p for p in PAIRS}, **{p.altname: p for p in PAIRS}}
)


class SymbolError(ValueError):
    """A pair name that is not ``BASE/QUOTE``, or a pair tradeloop does not list."""


def pair_of(symbol: str) -> KrakenPair:
    """The listed pair of ``BTC/USD``; :class:`SymbolError` naming the listed ones otherwise."""
    pair = _BY_SYMBOL.get(symbol)
    if pair is None:
        raise SymbolError(f"kraken pair {symbol!r} is not listed; listed: {', '.join(sorted(_BY_SYMBOL))}")
    return pair


def rest_pair(symbol: str) -> str:
    """``BTC/USD`` -> ``XXBTZUSD`` (the REST ``pair`` parameter)."""
    return pair_of(symbol).rest_pair


def symbol_of_rest_pair(name: str) -> str:
    """``XXBTZUSD``, ``XBTUSD`` or ``XBT/USD`` (REST key, altname, v1 name) -> ``BTC/USD``."""
    pair = _BY_REST_NAME.get(name)
    if pair is not None:
        return pair.symbol
    if "/" in name:
        return from_v1_pair(name)
    raise SymbolError(f"unknown kraken REST pair name {name!r}")


def instruments() -> list[Instrument]:
    """Static specs of the listed pairs (tick = 10^-price_decimals, lot = 10^-lot_decimals)."""
    out = []
    for p in PAIRS:
        out.append(
            Instrument(
                id=InstrumentId(VENUE, p.symbol),
                base=p.base,
                quote=p.quote,
                tick_size=10 ** (fixed.SCALE_DIGITS - p.price_decimals),
                lot_size=10 ** (fixed.SCALE_DIGITS - p.qty_decimals),
                min_qty=fixed.parse(p.ordermin),
                min_notional=fixed.parse(p.costmin),
            )
        )
    return out


# -- assets -----------------------------------------------------------------------------------

# Kraken's legacy asset codes that differ from the v2 names.
_V1_TO_V2: Final[Mapping[str, str]] = MappingProxyType({"XBT": "BTC", "XDG": "DOGE"})
_V2_TO_V1: Final[Mapping[str, str]] = MappingProxyType({v: k for k, v in _V1_TO_V2.items()})
_REST_ASSETS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "XXBT": "BTC", "XBT": "BTC", "XXDG": "DOGE", "XDG": "DOGE", "XETH": "ETH", "XLTC": "LTC",
        "XXRP": "XRP", "XXLM": "XLM", "XXMR": "XMR", "XZEC": "ZEC", "XETC": "ETC", "XMLN": "MLN",
        "XREP": "REP", "ZUSD": "USD", "ZEUR": "EUR", "ZGBP": "GBP", "ZCAD": "CAD", "ZJPY": "JPY",
        "ZAUD": "AUD", "ZCHF": "CHF",
    }
)  # fmt: skip
_TO_REST_ASSET: Final[Mapping[str, str]] = MappingProxyType({v: k for k, v in _REST_ASSETS.items() if len(k) == 4})


def asset_of_rest_code(code: str) -> str:
    """``XXBT`` -> ``BTC``, ``ZUSD`` -> ``USD``, ``USDT`` -> ``USDT``; ``XXBT.F`` keeps its suffix."""
    name, dot, suffix = code.partition(".")
    asset = _REST_ASSETS.get(name, name)
    return f"{asset}.{suffix}" if dot else asset


def rest_code_of_asset(asset: str) -> str:
    """``BTC`` -> ``XXBT``, ``USD`` -> ``ZUSD`` (what ``Balance`` replies use)."""
    return _TO_REST_ASSET.get(asset, asset)


def _split(pair: str) -> tuple[str, str]:
    base, slash, quote = pair.partition("/")
    if not slash or not base or not quote or "/" in quote or not (base + quote).isalnum():
        raise SymbolError(f"not a Kraken pair name: {pair!r}")
    return base, quote


def from_v1_pair(pair: str) -> str:
    """``XBT/USD`` (v1 WebSocket ``pair``) -> ``BTC/USD`` (v2 symbol, our symbol)."""
    base, quote = _split(pair)
    return f"{_V1_TO_V2.get(base, base)}/{_V1_TO_V2.get(quote, quote)}"


def to_v1_pair(symbol: str) -> str:
    """``BTC/USD`` -> ``XBT/USD``."""
    base, quote = _split(symbol)
    return f"{_V2_TO_V1.get(base, base)}/{_V2_TO_V1.get(quote, quote)}"


# -- client order ids -------------------------------------------------------------------------

CL_ORD_ID_TEXT_MAX: Final = 18
_ALNUM: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALNUM_INDEX: Final[Mapping[str, int]] = MappingProxyType({c: i + 1 for i, c in enumerate(_ALNUM)})
_ENGINE_ID: Final = re.compile(r"[A-Za-z0-9]{1,20}")
_SHORT_UUID: Final = re.compile(r"[0-9a-f]{32}")


def to_cl_ord_id(client_order_id: str) -> str:
    """The engine's id as Kraken's ``cl_ord_id``: as is up to 18 characters, else a 32-hex-digit number.

    The number is the id in bijective base 62 (digits 1-62, so leading ``0`` characters survive);
    20 characters need at most 120 bits, within the 128 of a UUID.
    """
    if not _ENGINE_ID.fullmatch(client_order_id):
        raise ValueError(f"client order id {client_order_id!r} is not 1-20 ASCII letters/digits")
    if len(client_order_id) <= CL_ORD_ID_TEXT_MAX:
        return client_order_id
    n = 0
    for ch in client_order_id:
        n = n * 62 + _ALNUM_INDEX[ch]
    return f"{n:032x}"


def from_cl_ord_id(cl_ord_id: str) -> str:
    """Kraken's ``cl_ord_id`` back to the engine's id (other clients' UUIDs come back unchanged)."""
    if not _SHORT_UUID.fullmatch(cl_ord_id):
        return cl_ord_id
    n = int(cl_ord_id, 16)
    chars: list[str] = []
    while n:
        n, digit = divmod(n - 1, 62)
        chars.append(_ALNUM[digit])
    decoded = "".join(reversed(chars))
    if len(decoded) <= CL_ORD_ID_TEXT_MAX or not _ENGINE_ID.fullmatch(decoded):
        return cl_ord_id
    return decoded


# -- statuses ---------------------------------------------------------------------------------

REST_ORDER_STATUS: Final[Mapping[str, OrderStatus]] = MappingProxyType(
    {
        "pending": OrderStatus.ACCEPTED,
        "open": OrderStatus.ACCEPTED,  # PARTIALLY_FILLED when vol_exec > 0
        "closed": OrderStatus.FILLED,
        "canceled": OrderStatus.CANCELED,
        "expired": OrderStatus.EXPIRED,
    }
)
"""REST order info ``status`` -> engine status."""

EXEC_STATUS: Final[Mapping[str, OrderStatus]] = MappingProxyType(
    {
        "pending_new": OrderStatus.ACCEPTED,
        "new": OrderStatus.ACCEPTED,
        "partially_filled": OrderStatus.PARTIALLY_FILLED,
        "filled": OrderStatus.FILLED,
        "canceled": OrderStatus.CANCELED,
        "expired": OrderStatus.EXPIRED,
        "triggered": OrderStatus.ACCEPTED,
    }
)
"""WebSocket v2 ``executions`` ``order_status`` -> engine status."""


# -- errors -----------------------------------------------------------------------------------

ERRORS: Final[Mapping[str, RejectReason]] = MappingProxyType(
    {
        "EAPI:Rate limit exceeded": RejectReason.RATE_LIMITED,
        "EOrder:Rate limit exceeded": RejectReason.RATE_LIMITED,
        "EService: Throttled": RejectReason.RATE_LIMITED,
        "EAPI:Invalid nonce": RejectReason.TIMESTAMP_OUTSIDE_WINDOW,
        "EOrder:Insufficient funds": RejectReason.INSUFFICIENT_BALANCE,
        "EOrder:Post only order": RejectReason.POST_ONLY_WOULD_CROSS,
        "EOrder:Unknown order": RejectReason.UNKNOWN_ORDER,
        "EOrder:Invalid order": RejectReason.UNKNOWN_ORDER,
        "EOrder:Order minimum not met": RejectReason.INVALID_ORDER,
        "EOrder:Cost minimum not met": RejectReason.INVALID_ORDER,
        "EGeneral:Invalid arguments": RejectReason.INVALID_ORDER,
        "EOrder:Duplicate order": RejectReason.DUPLICATE_CLIENT_ID,  # (?) exact text not documented
    }
)
"""Kraken ``error[]`` string prefixes -> the engine's reasons (anything else: ``OTHER``)."""

REJECT_ERRORS: Final[Mapping[RejectReason, str]] = MappingProxyType(
    {
        RejectReason.RATE_LIMITED: "EOrder:Rate limit exceeded",
        RejectReason.TIMESTAMP_OUTSIDE_WINDOW: "EAPI:Invalid nonce",
        RejectReason.DUPLICATE_CLIENT_ID: "EOrder:Duplicate order",
        RejectReason.INSUFFICIENT_BALANCE: "EOrder:Insufficient funds",
        RejectReason.POST_ONLY_WOULD_CROSS: "EOrder:Post only order",
        RejectReason.UNKNOWN_ORDER: "EOrder:Unknown order",
        RejectReason.INVALID_ORDER: "EGeneral:Invalid arguments",
    }
)
"""The Kraken error behind each reason (the local simulator answers with these; ``reject_next`` uses them)."""

_RATE_LIMIT_PREFIXES: Final = ("EAPI:Rate limit exceeded", "EOrder:Rate limit exceeded", "EService: Throttled")
_OUTCOME_UNKNOWN_PREFIXES: Final = ("EService:Unavailable", "EService:Busy", "EService:Deadline elapsed")


def reject_reason(error: str) -> RejectReason:
    """The engine's reason for a Kraken ``error[]`` string (prefix match: ``EService: Throttled: 1700``)."""
    for prefix, reason in ERRORS.items():
        if error.startswith(prefix):
            return reason
    return RejectReason.OTHER


def is_rate_limited(error: str) -> bool:
    """A refusal to be retried after a pause (the request was not acted on)."""
    return error.startswith(_RATE_LIMIT_PREFIXES)


def is_outcome_unknown(error: str) -> bool:
    """The engine was busy or unavailable: the request may or may not have been executed."""
    return error.startswith(_OUTCOME_UNKNOWN_PREFIXES)


# -- connections and limits -------------------------------------------------------------------

HEARTBEAT: Final = HeartbeatSpec(
    kind=HeartbeatKind.APP_MESSAGE,
    interval_s=20.0,
    message='{"method":"ping","req_id":{n}}',
    pong_contains=('"method":"pong"',),
    pong_timeout_s=15.0,
)
"""Kraken v2's keepalive on both sockets: ``{"method":"ping","req_id":n}`` after 20 s without a frame,
answered by ``{"method":"pong","req_id":n,...}``; the ``heartbeat`` channel (about 1/s while anything
is subscribed) is a data frame like any other. The order socket uses it as is."""


def public_ws_spec(url: str = URLS.ws_public) -> WsSpec:
    """Public v2 socket: app-level ping every 20 s; the ``heartbeat`` channel (about 1/s once
    subscribed) keeps the stale-feed watchdog fed."""
    return WsSpec(url=url, heartbeat=HEARTBEAT, stale_after_s=10.0)


def private_ws_spec(url: str = URLS.ws_private) -> WsSpec:
    """Private v2 socket (``executions``, ``balances``): quiet when nothing trades, so only the ping
    keeps it honest."""
    return WsSpec(url=url, heartbeat=HEARTBEAT)


def _decaying_counter(name: str, capacity: int, decay_per_s: float, lengths: tuple[float, ...]) -> list[RateLimitSpec]:
    """Sliding windows that keep a decaying counter (capacity ``C``, decay ``r``/s) from overflowing.

    A counter that starts empty never overflows iff every interval of length ``T`` holds at most
    ``C + r*T`` calls. Window ``i`` allows ``C + r*T[i-1]`` (the previous, shorter length), which
    implies the bound for every ``T`` up to the longest length; a longest length at least ``C/r``
    beyond the one before keeps it for longer intervals too, at a sustained rate of ``r``.
    """
    out = []
    previous = 0.0
    for length in lengths:
        out.append(
            RateLimitSpec(name=f"{name}_{length:g}s", limit=int(capacity + decay_per_s * previous), window_s=length)
        )
        previous = length
    return out


REST_WINDOWS: Final = tuple(_decaying_counter("REST", 15, 0.33, (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 366.0)))
"""Kraken's REST call counter, Starter tier (capacity 15, decay 0.33/s). AddOrder, CancelOrder and
AmendOrder are not counted here but by the trading engine's per-pair counter (:data:`ORDER_WINDOWS`)."""
ORDER_WINDOWS: Final = tuple(_decaying_counter("ORDERS", 60, 1.0, (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 380.0)))
"""The trading engine's rate counter per pair (Starter threshold 60, decay about 1/s (?))."""
RATE_LIMITS: Final[tuple[RateLimitSpec, ...]] = REST_WINDOWS + ORDER_WINDOWS


def costs(kind: str, weight: int = 1) -> dict[str, int]:
    """Request costs for every window of ``kind`` (``"REST"`` or ``"ORDERS"``)."""
    windows = REST_WINDOWS if kind == "REST" else ORDER_WINDOWS
    return {w.name: weight for w in windows}


WS_ORDER_METHODS: Final = ("add_order", "amend_order", "cancel_order")
"""The WebSocket v2 order methods tradeloop sends on ``ws-auth`` (each carries the session token)."""
WS_OP_COSTS: Final[Mapping[str, Mapping[str, int]]] = MappingProxyType(
    {method: MappingProxyType(costs("ORDERS")) for method in WS_ORDER_METHODS}
)
"""Each WebSocket order op draws on the trading engine's counter, like ``AddOrder``/``AmendOrder``/
``CancelOrder`` over REST (the counter is shared by REST, WebSocket and FIX)."""
