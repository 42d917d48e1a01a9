"""Positions with exact PnL.

A position keeps its open cost exactly (sum of fill notionals of the open size). Reducing fills
remove cost in proportion, rounded once; the rounding remainder stays in the remaining cost, so
``realized + unrealized`` always equals the cash actually moved plus the marked value. Average entry
is derived from cost, never stored.
"""

from __future__ import annotations

from tradeloop.core import fixed
from tradeloop.model.identifiers import InstrumentId


class Position:
    """Net position in one instrument. ``qty`` is signed (long > 0), in base units (nanos)."""

    __slots__ = ("cost", "fees", "instrument_id", "last_mark", "qty", "realized", "volume")

    def __init__(self, instrument_id: InstrumentId) -> None:
        self.instrument_id = instrument_id
        self.qty = 0
        self.cost = 0
        """Signed quote cost of the open size (nanos): > 0 for a long, < 0 for a short."""
        self.realized = 0
        self.fees = 0
        self.volume = 0
        self.last_mark: int | None = None

    def apply_fill(self, signed_qty: int, price: int, notional: int, fee: int) -> int:
        """Add a fill of ``signed_qty`` at ``price`` with quote value ``notional`` (>= 0).

        Returns the PnL realized by this fill (before fees).
        """
        if signed_qty == 0:
            return 0
        self.fees += fee
        self.volume += notional
        signed_notional = notional if signed_qty > 0 else -notional
        old = self.qty
        if old == 0 or (old > 0) == (signed_qty > 0):
            self.qty = old + signed_qty
            self.cost += signed_notional
            return 0
        closing = min(abs(signed_qty), abs(old))
        if closing == abs(old):
            removed = self.cost
        else:
            removed = fixed.div_round(self.cost * closing, abs(old))
        if closing == abs(signed_qty):
            close_notional = signed_notional
        else:
            close_notional = fixed.div_round(signed_notional * closing, abs(signed_qty))
        # Cash in for the closing part (-close_notional) minus the cost it carried.
        realized = -close_notional - removed
        self.cost -= removed
        self.qty = old + signed_qty
        self.realized += realized
        remainder = signed_notional - close_notional
        if self.qty != 0 and (old > 0) != (self.qty > 0):
            self.cost = remainder  # flipped: the rest opens a new position at the fill price
        return realized

    def avg_entry(self) -> int | None:
        """Average entry price (rounded to nanos); ``None`` when flat."""
        if self.qty == 0:
            return None
        return fixed.div(self.cost, self.qty)

    def market_value(self, mark: int) -> int:
        """Signed quote value of the position at ``mark``."""
        return fixed.mul(self.qty, mark)

    def unrealized(self, mark: int) -> int:
        return self.market_value(mark) - self.cost

    def __repr__(self) -> str:
        return f"Position({self.instrument_id}, qty={self.qty}, cost={self.cost}, realized={self.realized})"
