"""The simulated venue's account: balances with locked amounts, and linear-perp positions.

Locks (all exact nanos, in the currency the order would spend):

* spot buy: quote notional at the limit price plus the highest possible fee;
* spot sell: the base size;
* linear perp: initial margin (notional x ``perp_initial_margin``, rounded up) plus the highest
  possible fee, in the quote currency; reduce-only orders lock only the fee.

A linear-perp position keeps its margin (open cost x ``perp_initial_margin``) locked. Perp fills
move realized PnL and fees into the quote balance; spot fills move base and quote.
"""

from __future__ import annotations

from collections.abc import Mapping

from tradeloop.core import fixed
from tradeloop.model.enums import InstrumentKind, Side
from tradeloop.model.events import Balance, OrderFilled
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.position import Position
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.sim.orders import SimOrder, VenuePosition


class SimAccount:
    """Balances (total and locked per currency) and perp positions of one simulated venue account."""

    def __init__(self, config: SimVenueConfig, balances: Mapping[str, int]) -> None:
        self._config = config
        self._total: dict[str, int] = {ccy: balances[ccy] for ccy in sorted(balances)}
        self._locked: dict[str, int] = {}
        self._positions: dict[InstrumentId, Position] = {}
        self._margin: dict[InstrumentId, int] = {}

    def transfer(self, currency: str, amount: int) -> None:
        """A deposit (``amount > 0``) or withdrawal (``< 0``) outside trading; never below what is locked."""
        total = self.total(currency) + amount
        if total < self.locked(currency):
            raise ValueError(f"withdrawal of {-amount} {currency} leaves less than the {self.locked(currency)} locked")
        self._total[currency] = total

    # -- reading ------------------------------------------------------------------------------

    def total(self, currency: str) -> int:
        """Balance of ``currency`` including locked amounts."""
        return self._total.get(currency, 0)

    def locked(self, currency: str) -> int:
        """Amount of ``currency`` held by open orders and perp position margin."""
        return self._locked.get(currency, 0)

    def free(self, currency: str) -> int:
        """Total minus locked: what a new order may lock."""
        return self.total(currency) - self.locked(currency)

    def balances(self) -> list[Balance]:
        """Every currency seen, sorted by name."""
        currencies = sorted({*self._total, *self._locked})
        return [Balance(ccy, self.total(ccy), self.locked(ccy)) for ccy in currencies]

    def position_qty(self, instrument_id: InstrumentId) -> int:
        """Signed perp position (long > 0) in base units."""
        pos = self._positions.get(instrument_id)
        return 0 if pos is None else pos.qty

    def positions(self) -> list[VenuePosition]:
        """Perp positions sorted by instrument (flat ones included once they traded)."""
        return [
            VenuePosition(
                instrument_id=iid,
                qty=pos.qty,
                cost=pos.cost,
                realized=pos.realized,
                fees=pos.fees,
                margin=self._margin.get(iid, 0),
            )
            for iid, pos in sorted(self._positions.items())
        ]

    # -- locks --------------------------------------------------------------------------------

    def required(self, inst: Instrument, side: Side, qty: int, notional: int, reduce_only: bool) -> tuple[str, int]:
        """(currency, amount) to lock for an order of ``qty`` worth ``notional`` in quote."""
        fee_reserve = fixed.mul(notional, self._config.fee_reserve_rate, "ceil")
        if inst.kind is InstrumentKind.SPOT:
            if side is Side.BUY:
                return inst.quote, notional + fee_reserve
            return inst.base, qty
        margin = 0 if reduce_only else fixed.mul(notional, self._config.perp_initial_margin, "ceil")
        return inst.settle, margin + fee_reserve

    def set_lock(self, order: SimOrder, currency: str, amount: int) -> None:
        """Replace what ``order`` holds locked with ``amount`` of ``currency``."""
        if order.lock:
            self._locked[order.lock_currency] -= order.lock
        order.lock_currency = currency
        order.lock = amount
        if amount:
            self._locked[currency] = self._locked.get(currency, 0) + amount

    def release(self, order: SimOrder) -> None:
        """Unlock everything ``order`` holds."""
        self.set_lock(order, order.lock_currency, 0)

    # -- fills --------------------------------------------------------------------------------

    def apply_fill(self, inst: Instrument, fill: OrderFilled) -> None:
        """Move balances (spot) or position, realized PnL and fee (linear perp) for one fill."""
        notional = inst.notional(fill.last_price, fill.last_qty)
        total = self._total
        if inst.kind is InstrumentKind.SPOT:
            sign = fill.side.sign
            total[inst.base] = total.get(inst.base, 0) + sign * fill.last_qty
            total[inst.quote] = total.get(inst.quote, 0) - sign * notional - fill.fee
            return
        pos = self._positions.get(inst.id)
        if pos is None:
            pos = self._positions[inst.id] = Position(inst.id)
        realized = pos.apply_fill(fill.side.sign * fill.last_qty, fill.last_price, notional, fill.fee)
        ccy = inst.settle
        total[ccy] = total.get(ccy, 0) + realized - fill.fee
        margin = fixed.mul(abs(pos.cost), self._config.perp_initial_margin, "ceil")
        self._locked[ccy] = self._locked.get(ccy, 0) + margin - self._margin.get(inst.id, 0)
        self._margin[inst.id] = margin
