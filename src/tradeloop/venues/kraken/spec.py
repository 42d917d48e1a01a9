"""Kraken spot venue metadata as data: endpoints, book depths, limits, errors and the symbol mapping.

Nothing here does I/O. Instrument ids use the WebSocket v2 name as the symbol (``kraken:BTC/USD``),
which is also the unified ``BASE/QUOTE`` name. WebSocket v1 and REST use Kraken's legacy asset codes
(``XBT/USD``, ``XXBTZUSD``); :func:`from_v1_pair` / :func:`to_v1_pair` map them.
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
    "CHECKSUM_DEPTH",
    "ERRORS",
    "SEQUENCE_RULE",
    "URLS",
    "VENUE",
    "SymbolError",
    "from_v1_pair",
    "reject_reason",
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
CHECKSUM_DEPTH: Final = 10
"""The checksum always covers the best 10 levels per side, whatever the subscribed depth."""
SEQUENCE_RULE: Final = SequenceRule.NONE
"""Kraken books carry no sequence numbers: integrity is the checksum (and the subscribed depth)."""
V1_QTY_DECIMALS: Final = 8

ERRORS: Final[Mapping[str, RejectReason]] = MappingProxyType(
    {
        "EAPI:Rate limit exceeded": RejectReason.RATE_LIMITED,
        "EOrder:Rate limit exceeded": RejectReason.RATE_LIMITED,
        "EService: Throttled": RejectReason.RATE_LIMITED,
        "EAPI:Invalid nonce": RejectReason.TIMESTAMP_OUTSIDE_WINDOW,
        "EOrder:Insufficient funds": RejectReason.INSUFFICIENT_BALANCE,
        "EOrder:Post only order": RejectReason.POST_ONLY_WOULD_CROSS,
        "EOrder:Unknown order": RejectReason.UNKNOWN_ORDER,
        "EOrder:Order minimum not met": RejectReason.INVALID_ORDER,
        "EOrder:Cost minimum not met": RejectReason.INVALID_ORDER,
        "EGeneral:Invalid arguments": RejectReason.INVALID_ORDER,
        "EOrder:Duplicate order": RejectReason.DUPLICATE_CLIENT_ID,
    }
)


def reject_reason(error: str) -> RejectReason:
    """The engine's reason for a Kraken ``error[]`` string (prefix match: ``EService: Throttled: 1700``)."""
    for prefix, reason in ERRORS.items():
        if error.startswith(prefix):
            return reason
    return RejectReason.OTHER


# Kraken's legacy asset codes that differ from the v2 names.
_V1_TO_V2: Final[Mapping[str, str]] = MappingProxyType({"XBT": "BTC", "XDG": "DOGE"})
_V2_TO_V1: Final[Mapping[str, str]] = MappingProxyType({v: k for k, v in _V1_TO_V2.items()})


class SymbolError(ValueError):
    """A pair name that is not ``BASE/QUOTE``."""


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
