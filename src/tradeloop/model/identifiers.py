"""Identifiers: venues and instruments."""

from __future__ import annotations

import msgspec


class InstrumentId(msgspec.Struct, frozen=True, order=True, cache_hash=True):
    """One tradable instrument on one venue, e.g. ``binance:BTCUSDT``.

    ``venue`` is the lower-case venue name, ``symbol`` the venue's own symbol.
    """

    venue: str
    symbol: str

    def __str__(self) -> str:
        return f"{self.venue}:{self.symbol}"

    @classmethod
    def parse(cls, text: str) -> InstrumentId:
        """Parse ``"venue:SYMBOL"``."""
        venue, sep, symbol = text.partition(":")
        if not sep or not venue or not symbol:
            raise ValueError(f"instrument id must look like 'venue:SYMBOL', got {text!r}")
        return cls(venue, symbol)
