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
from tradeloop.model.enums import RejectReason

__all__ = [
    "BOOK_CHANNEL",
    "CHECKSUM_DEPTH",
    "ERROR_CODES",
    "RATE_LIMITS",
    "SEQUENCE_RULE",
    "URLS",
    "VENUE",
    "RateLimit",
    "SymbolError",
    "Urls",
    "from_unified",
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
        "/api/v5/market/books": RateLimit(40, 2),
        "/api/v5/public/instruments": RateLimit(20, 2),
    }
)

ERROR_CODES: Final[Mapping[str, RejectReason]] = MappingProxyType(
    {
        "50011": RejectReason.RATE_LIMITED,
        "50061": RejectReason.RATE_LIMITED,
        "50102": RejectReason.TIMESTAMP_OUTSIDE_WINDOW,
        "51008": RejectReason.INSUFFICIENT_BALANCE,
        "51016": RejectReason.DUPLICATE_CLIENT_ID,
        "51603": RejectReason.UNKNOWN_ORDER,
        "51400": RejectReason.UNKNOWN_ORDER,
        "51000": RejectReason.INVALID_ORDER,
        "51020": RejectReason.INVALID_ORDER,
        "51121": RejectReason.INVALID_ORDER,
        "51006": RejectReason.INVALID_ORDER,
    }
)
"""``sCode`` / ``code`` values mapped to engine reject reasons (others map to ``OTHER``)."""


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
