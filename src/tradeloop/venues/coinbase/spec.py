"""Coinbase venue metadata as data: endpoints, channels, limits, error mapping and symbols.

Nothing here does I/O. Instrument ids use Coinbase's ``product_id`` (``coinbase:BTC-USD``);
:func:`to_unified` / :func:`from_unified` map it to and from ``BTC/USD``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import msgspec

from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import RejectReason

__all__ = ["ERRORS", "JWT_LIFETIME_S", "SEQUENCE_RULE", "URLS", "VENUE", "SymbolError", "from_unified", "to_unified"]

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
        "rate_limit_exceeded": RejectReason.RATE_LIMITED,
        "INSUFFICIENT_FUND": RejectReason.INSUFFICIENT_BALANCE,
        "INVALID_LIMIT_PRICE_POST_ONLY": RejectReason.POST_ONLY_WOULD_CROSS,
        "UNKNOWN_ORDER": RejectReason.UNKNOWN_ORDER,
        "ORDER_NOT_FOUND": RejectReason.UNKNOWN_ORDER,
        "DUPLICATE_CLIENT_ORDER_ID": RejectReason.DUPLICATE_CLIENT_ID,
        "INVALID_SIZE_PRECISION": RejectReason.INVALID_ORDER,
        "INVALID_PRICE_PRECISION": RejectReason.INVALID_ORDER,
    }
)


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
