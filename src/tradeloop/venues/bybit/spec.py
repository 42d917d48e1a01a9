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

from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import RejectReason

__all__ = [
    "BOOK_DEPTHS",
    "CATEGORY_OF_VENUE",
    "ERROR_CODES",
    "QUOTE_ASSETS",
    "SEQUENCE_RULE",
    "URLS",
    "VENUE_LINEAR",
    "VENUE_SPOT",
    "SymbolError",
    "from_unified",
    "to_unified",
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
    }
)

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
