"""Portfolio: balances per venue and currency, positions per instrument, marks, equity and PnL.

Accounting model (exact, integer nanos):

* Every fill moves the settle (quote) currency by the fill's notional: ``-notional`` for a buy,
  ``+notional`` for a sell, for spot and linear perpetuals alike, and fees leave in their currency.
* A spot fill also moves the base currency balance; the spot position *is* the base balance
  (initial holdings are opened at the first mark, so PnL counts from the start of the run).
* A perpetual position's cost sits in the quote balance ("synthetic cash"), so for every kind
  ``equity = quote cash + sum(position x mark)``, exactly, and
  ``equity - initial equity = realized + unrealized - fees``, exactly. The venue-style wallet
  balance of a perp account is available from :meth:`Portfolio.wallet_balance`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tradeloop.core import fixed
from tradeloop.model.enums import InstrumentKind, Side
from tradeloop.model.events import OrderFilled
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.position import Position


class PortfolioError(RuntimeError):
    pass


class Portfolio:
    """Positions and balances across venues, valued in one currency (``valuation``)."""

    def __init__(
        self,
        instruments: Iterable[Instrument],
        initial_balances: Mapping[str, Mapping[str, int]],
        valuation: str = "USDT",
    ) -> None:
        self.instruments: dict[InstrumentId, Instrument] = {i.id: i for i in instruments}
        self.valuation = valuation
        self.balances: dict[tuple[str, str], int] = {}
        for venue in sorted(initial_balances):
            for ccy in sorted(initial_balances[venue]):
                self.balances[(venue, ccy)] = initial_balances[venue][ccy]
        self.positions: dict[InstrumentId, Position] = {}
        self.marks: dict[InstrumentId, int] = {}
        self._spot_by_base: dict[tuple[str, str], InstrumentId] = {}
        self._unopened: dict[InstrumentId, int] = {}
        for inst in sorted(self.instruments.values(), key=lambda i: (i.id.venue, i.id.symbol)):
            self._open_position(inst)
        self.fill_count = 0
        self.initial_equity: int | None = None if self._unopened else self.equity()

    # -- updates ------------------------------------------------------------------------------

    def update_mark(self, instrument_id: InstrumentId, price: int) -> None:
        self.marks[instrument_id] = price
        held = self._unopened.pop(instrument_id, None) if self._unopened else None
        if held is not None:
            # Holdings from before the run are opened at the first mark: PnL counts from there.
            pos = self.positions[instrument_id]
            pos.cost += fixed.mul(held, price)
            if not self._unopened:
                self.initial_equity = self.equity()

    def apply_fill(self, fill: OrderFilled) -> int:
        """Book a fill; returns the PnL it realized (before fees)."""
        inst = self.instruments.get(fill.instrument_id)
        if inst is None:
            raise PortfolioError(f"fill for unknown instrument {fill.instrument_id}")
        if fill.fee_currency != inst.quote:
            raise PortfolioError(f"{inst.id}: fee in {fill.fee_currency} not supported yet (quote-only fees)")
        if fill.last_qty <= 0 or fill.last_price <= 0:
            raise PortfolioError(f"{inst.id}: fill with non-positive size or price: {fill}")
        if fill.instrument_id not in self.marks:
            self.update_mark(fill.instrument_id, fill.last_price)
        venue = inst.id.venue
        signed_qty = fill.last_qty if fill.side is Side.BUY else -fill.last_qty
        notional = inst.notional(fill.last_price, fill.last_qty)
        quote_key = (venue, inst.quote)
        self.balances[quote_key] = self.balances.get(quote_key, 0) + (-notional if signed_qty > 0 else notional)
        if inst.kind is InstrumentKind.SPOT:
            base_key = (venue, inst.base)
            self.balances[base_key] = self.balances.get(base_key, 0) + signed_qty
        fee_key = (venue, fill.fee_currency)
        self.balances[fee_key] = self.balances.get(fee_key, 0) - fill.fee
        self.fill_count += 1
        return self.positions[inst.id].apply_fill(signed_qty, fill.last_price, notional, fill.fee)

    def add_instrument(self, instrument: Instrument) -> None:
        """Trade ``instrument`` from now on (flat; a spot base balance already held becomes its position)."""
        if instrument.id in self.instruments:
            return
        self._open_position(instrument)
        self.instruments[instrument.id] = instrument

    def _open_position(self, inst: Instrument) -> None:
        if inst.quote != self.valuation:
            raise PortfolioError(f"{inst.id}: quote {inst.quote} differs from valuation currency {self.valuation}")
        self.positions[inst.id] = Position(inst.id)
        if inst.kind is InstrumentKind.SPOT:
            key = (inst.id.venue, inst.base)
            if key in self._spot_by_base:
                raise PortfolioError(f"two spot instruments with base {inst.base} on {inst.id.venue}")
            self._spot_by_base[key] = inst.id
            held = self.balances.get(key, 0)
            if held:
                # The holding is the position from the start; its cost is set at the first mark.
                self.positions[inst.id].qty = held
                self._unopened[inst.id] = held

    def correct_balance(self, venue: str, currency: str, total: int) -> None:
        """Set a balance to what the venue reports (a reconciliation's correction).

        A spot base currency is also the position: it moves by the same amount, valued at the mark (or
        opened at the next mark when there is none yet). The correction's value moves the initial
        equity too, so PnL stays what trading made: ``equity - initial == realized + unrealized - fees``.
        """
        key = (venue, currency)
        delta = total - self.balances.get(key, 0)
        if delta == 0:
            return
        self.balances[key] = total
        value = delta if currency == self.valuation else 0
        iid = self._spot_by_base.get(key)
        if iid is not None:
            pos = self.positions[iid]
            pos.qty += delta
            mark = self.marks.get(iid)
            if mark is None:
                self._unopened[iid] = self._unopened.get(iid, 0) + delta
            else:
                pos.cost += fixed.mul(delta, mark)
                value += fixed.mul(delta, mark)
        if self.initial_equity is not None:
            self.initial_equity += value

    # -- views --------------------------------------------------------------------------------

    def position_qty(self, instrument_id: InstrumentId) -> int:
        pos = self.positions.get(instrument_id)
        return pos.qty if pos is not None else 0

    def mark(self, instrument_id: InstrumentId) -> int | None:
        return self.marks.get(instrument_id)

    def balance(self, venue: str, currency: str) -> int:
        return self.balances.get((venue, currency), 0)

    def wallet_balance(self, venue: str, currency: str) -> int:
        """Balance as the venue would report it: perp cost basis added back to the quote cash."""
        total = self.balance(venue, currency)
        for iid, pos in self.positions.items():
            inst = self.instruments[iid]
            if iid.venue == venue and inst.kind is InstrumentKind.LINEAR_PERP and inst.quote == currency:
                total += pos.cost
        return total

    def _value(self, pos: Position) -> int:
        mark = self.marks.get(pos.instrument_id)
        if mark is None:
            return pos.cost  # never marked yet: carried at cost (0 for holdings from before the run)
        return fixed.mul(pos.qty, mark)

    def cash(self) -> int:
        """Sum of valuation-currency balances over all venues."""
        return sum(v for (_, ccy), v in self.balances.items() if ccy == self.valuation)

    def equity(self) -> int:
        """``cash + sum(position x mark)`` in the valuation currency."""
        total = self.cash()
        for pos in self.positions.values():
            if pos.qty:
                total += self._value(pos)
        return total

    def gross_exposure(self) -> int:
        return sum(abs(self._value(p)) for p in self.positions.values() if p.qty)

    def realized_pnl(self) -> int:
        return sum(p.realized for p in self.positions.values())

    def unrealized_pnl(self) -> int:
        return sum(self._value(p) - p.cost for p in self.positions.values() if p.qty)

    def fees(self) -> int:
        return sum(p.fees for p in self.positions.values())

    def volume(self) -> int:
        return sum(p.volume for p in self.positions.values())

    def pnl(self) -> int:
        """``realized + unrealized - fees``; equals ``equity() - initial_equity`` exactly."""
        return self.realized_pnl() + self.unrealized_pnl() - self.fees()

    def snapshot(self) -> dict[str, object]:
        """Plain view for reports and state comparison (ints only)."""
        return {
            "balances": {f"{v}:{c}": amt for (v, c), amt in sorted(self.balances.items())},
            "positions": {
                str(iid): {"qty": p.qty, "cost": p.cost, "realized": p.realized, "fees": p.fees}
                for iid, p in sorted(self.positions.items())
            },
        }
