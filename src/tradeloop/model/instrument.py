"""Instrument specifications and the rounding helpers that keep orders on the venue's grid."""

from __future__ import annotations

import msgspec

from tradeloop.core import fixed
from tradeloop.model.enums import InstrumentKind
from tradeloop.model.identifiers import InstrumentId


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """A tradable instrument and its trading rules. All sizes and prices are fixed-point nanos.

    For a linear perpetual, sizes are in base units (one contract = ``contract_size`` base) and
    PnL settles in ``settle`` (the quote currency for linear contracts).
    """

    id: InstrumentId
    base: str
    quote: str
    kind: InstrumentKind = InstrumentKind.SPOT
    tick_size: int
    lot_size: int
    min_qty: int = 0
    max_qty: int = 0
    min_notional: int = 0
    contract_size: int = fixed.SCALE

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError(f"{self.id}: tick_size and lot_size must be positive")
        if self.min_qty < 0 or self.min_notional < 0 or self.max_qty < 0:
            raise ValueError(f"{self.id}: limits must not be negative")

    @property
    def settle(self) -> str:
        """Currency in which cash and PnL for this instrument are booked."""
        return self.quote

    @property
    def price_decimals(self) -> int:
        return fixed.decimals_of(self.tick_size)

    @property
    def qty_decimals(self) -> int:
        return fixed.decimals_of(self.lot_size)

    def round_price(self, price: int, rounding: str = "half_even") -> int:
        """Nearest valid price; use ``floor`` for bids and ``ceil`` for asks to stay passive."""
        return fixed.round_to_step(price, self.tick_size, rounding)

    def round_qty(self, qty: int, rounding: str = "down") -> int:
        """Valid size, by default rounded towards zero so a size limit is never exceeded."""
        return fixed.round_to_step(qty, self.lot_size, rounding)

    def is_valid_price(self, price: int) -> bool:
        return price > 0 and price % self.tick_size == 0

    def is_valid_qty(self, qty: int) -> bool:
        return (
            qty > 0 and qty % self.lot_size == 0 and qty >= self.min_qty and (self.max_qty == 0 or qty <= self.max_qty)
        )

    def notional(self, price: int, qty: int) -> int:
        """Quote value of ``qty`` at ``price`` (exact for every instrument whose decimals add up to 9)."""
        return fixed.mul(fixed.mul(price, qty), self.contract_size)

    def price_to_str(self, price: int) -> str:
        return fixed.to_str(price, self.price_decimals)

    def qty_to_str(self, qty: int) -> str:
        return fixed.to_str(qty, self.qty_decimals)
