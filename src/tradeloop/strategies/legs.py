"""Multi-leg execution with leg-risk handling (for arbitrage, hedged market making, pairs).

A *leg group* is a set of orders that only make sense together (buy on one venue, sell on
another). :class:`LegExecutor` sends every leg at the same engine instant and then watches the
orders. When the legs end up unbalanced (one filled, another rejected, partly filled or expired),
the missing quantity is worked in three steps:

1. **retry**: up to ``retries`` IOC orders for the missing quantity at the leg's original limit;
2. **hedge**: one IOC at most ``hedge_slippage_bps`` through the current touch of the lagging leg;
3. **unwind**: if the lagging leg still cannot be completed (or its venue refuses the instrument:
   insufficient balance, invalid order, risk denial, no book), the legs that got ahead are traded
   back to the lagging leg's level with aggressive IOCs within the same slippage bound.

"Balanced" is measured in fractions of each leg's size, so legs of different sizes (a hedge ratio)
are handled; quantities are rounded to each instrument's lot, so "clean" means within one lot.
A single-leg group (the hedge of a fill made elsewhere, as in cross-venue market making) is
balanced only when it filled completely; it cannot be unwound, so what it misses is its residual.
After a rate-limit denial or rejection the next attempt waits ``retry_delay_ms``.
Every group ends with :class:`LegGroupResult` passed to ``on_done``, and every group where leg risk
occurred (or a residual is left) is also put on the record with ``ctx.alert("leg_risk", ...)``:
nothing is left open silently. All quantities are exact nanos.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from tradeloop.core import fixed
from tradeloop.model.enums import OrderStatus, RejectReason, Side, TimeInForce
from tradeloop.model.events import OrderDenied, OrderEvent, OrderExpired, OrderFilled, OrderRejected
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.strategies.base import StrategyContext

__all__ = ["Leg", "LegExecutor", "LegGroupResult", "LegRiskConfig", "aggressive_price"]

ALERT_KIND = "leg_risk"

_NOT_RETRYABLE = frozenset({RejectReason.INSUFFICIENT_BALANCE, RejectReason.INVALID_ORDER})
"""Rejections that the same order will get again: go straight to unwinding the other legs."""
_TRANSIENT_DENIALS = ("order_rate", "max_open_orders")
"""Risk denials that pass with time: wait ``retry_delay_ms`` before the next attempt."""
_KEPT_RESULTS = 10_000
_MAX_REFUNDS = 10
"""Attempts per group that a transient denial may give back (so a permanent limit still ends it)."""


class LegRiskConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How hard to try to complete an unbalanced leg group before unwinding it."""

    retries: int = 2
    """Re-send attempts of a failed/partial leg at the original limit."""
    hedge_slippage_bps: int = 20
    """Then one aggressive IOC order at most this far through the touch (also the unwind bound)."""
    leg_timeout_ms: int = 2000
    """A leg not done by then counts as failed (its working orders are canceled)."""
    retry_delay_ms: int = 100
    """Pause before the next attempt after a rate-limit denial or rejection (otherwise none)."""

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must not be negative")
        if not 0 <= self.hedge_slippage_bps < 10_000:
            raise ValueError("hedge_slippage_bps must be in [0, 10000)")
        if self.leg_timeout_ms <= 0:
            raise ValueError("leg_timeout_ms must be positive")
        if self.retry_delay_ms < 0:
            raise ValueError("retry_delay_ms must not be negative")


class Leg(msgspec.Struct, frozen=True):
    """One order of a group: ``qty`` in nanos, ``price`` the limit (``None`` = market)."""

    instrument_id: InstrumentId
    side: Side
    qty: int
    price: int | None


class LegGroupResult(msgspec.Struct, frozen=True):
    """How a group ended. Quantities are signed (buy > 0) and keyed by ``str(instrument_id)``."""

    group_id: str
    filled: dict[str, int]
    """Net filled quantity per leg, after any retry, hedge and unwind."""
    residual: dict[str, int]
    """Quantity still unhedged after all attempts (0 when clean)."""
    hedged: bool
    """True if any residual-hedging action (retry, hedge, unwind) was taken."""
    message: str
    """Human-readable summary; also sent via ``ctx.alert("leg_risk", ...)`` when leg risk occurred."""

    @property
    def clean(self) -> bool:
        """No residual left on any leg."""
        return not any(self.residual.values())


def aggressive_price(inst: Instrument, side: Side, touch: int, slippage_bps: int) -> int | None:
    """Limit of an IOC that may trade at most ``slippage_bps`` through ``touch`` (the best opposite price).

    The offset is rounded down to the tick so the bound is never exceeded; ``None`` if a sell
    limit would not be positive.
    """
    offset = fixed.round_to_step(touch * slippage_bps // 10_000, inst.tick_size, "floor")
    if side is Side.BUY:
        return inst.round_price(touch + offset, "floor") if touch + offset >= inst.tick_size else None
    limit = inst.round_price(touch - offset, "ceil")
    return limit if limit > 0 else None


@dataclass
class _LegState:
    leg: Leg
    inst: Instrument
    orders: list[tuple[str, int]] = field(default_factory=list)
    """(client order id, +1 for orders in the leg's direction, -1 for unwinding orders)."""
    retries: int = 0
    hedge_sent: bool = False
    refused: bool = False
    problems: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    """client order id -> "initial", "retry", "hedge" or "unwind"."""


@dataclass
class _Group:
    group_id: str
    legs: list[_LegState]
    phase: str = "initial"  # initial -> complete -> unwind -> done
    deadline: int = 0
    timeouts: int = 0
    """Deadlines missed in a row by the current round (reset when a new round is sent)."""
    timed_out: bool = False
    unwind_rounds: int = 0
    backoff: bool = False
    waiting: bool = False
    refunds: int = 0
    hedged: bool = False
    notes: list[str] = field(default_factory=list)


class LegExecutor:
    """Sends leg groups and resolves leg risk (see the module docstring).

    The owning strategy forwards every order event with :meth:`on_order`; the executor ignores
    orders that are not its own. Deadlines run on a ctx clock alarm, or the strategy may call
    :meth:`on_timer` itself.
    """

    def __init__(
        self,
        ctx: StrategyContext,
        config: LegRiskConfig,
        on_done: Callable[[LegGroupResult], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.config = config
        self.on_done = on_done
        self._groups: dict[str, _Group] = {}
        self._by_order: dict[str, tuple[_Group, _LegState]] = {}
        self._count = 0
        self._advancing = False
        self._dirty: list[_Group] = []
        self._sending = False
        self._early: list[OrderEvent] = []
        self.results: deque[LegGroupResult] = deque(maxlen=_KEPT_RESULTS)
        """The last finished groups, in the order they finished."""

    # -- public API ---------------------------------------------------------------------------

    def execute(self, legs: Sequence[Leg], *, time_in_force: TimeInForce = TimeInForce.IOC) -> str:
        """Send all ``legs`` now (same engine instant) and return the group id.

        Raises ``ValueError`` for an empty group, an unknown instrument or a size that is not a
        positive multiple of the instrument's lot.
        """
        if not legs:
            raise ValueError("a leg group needs at least one leg")
        states: list[_LegState] = []
        for leg in legs:
            inst = self.ctx.instruments.get(leg.instrument_id)
            if inst is None:
                raise ValueError(f"unknown instrument {leg.instrument_id}")
            if leg.qty <= 0 or leg.qty % inst.lot_size:
                raise ValueError(f"{leg.instrument_id}: leg size {leg.qty} is not a positive multiple of the lot")
            if leg.price is not None and not inst.is_valid_price(leg.price):
                raise ValueError(f"{leg.instrument_id}: leg price {leg.price} is not on the tick grid")
            states.append(_LegState(leg, inst))
        self._count += 1
        group = _Group(f"{self.ctx.strategy_id}-LG{self._count}", states)
        self._groups[group.group_id] = group
        self._arm(group)
        # Send every leg before looking at any answer (a leg denied on the spot must not end the
        # group before the other legs are out).
        advancing, self._advancing = self._advancing, True
        try:
            for state in states:
                self._send(group, state, state.leg.side, state.leg.qty, state.leg.price, time_in_force, +1, "initial")
        finally:
            self._advancing = advancing
        self._mark(group)
        return group.group_id

    def busy(self) -> bool:
        """Whether any group is still working."""
        return bool(self._groups)

    def owns(self, client_order_id: str) -> bool:
        """Whether the order was sent by this executor."""
        return client_order_id in self._by_order

    def on_order(self, event: OrderEvent) -> None:
        """Feed one order event (the strategy forwards all of its own)."""
        entry = self._by_order.get(event.client_order_id)
        if entry is None:
            if self._sending:  # an answer given while our submit was still on the stack
                self._early.append(event)
            return
        group, state = entry
        self._note(group, state, event)
        if group.phase == "done":
            if isinstance(event, OrderFilled):
                self._late_fill(group, state, event)
            return
        self._mark(group)

    def on_timer(self, ts: int) -> None:
        """Check deadlines: cancel orders of groups that are late; give up on groups stuck twice."""
        for group in [g for g in self._groups.values() if g.deadline and g.deadline <= ts]:
            if group.waiting:
                group.waiting = False
                self._mark(group)
                continue
            working = self._working(group)
            if not working:
                self._mark(group)
                continue
            group.timeouts += 1
            group.timed_out = True
            if group.timeouts >= 2:
                ids = ", ".join(cid for cid, _ in working)
                group.notes.append(f"orders still unresolved after two timeouts: {ids}")
                self._finish(group)
                continue
            for cid, state in working:
                state.problems.append("timed out")
                order = self.ctx.order(cid)
                if order is not None and order.status is not OrderStatus.PENDING_CANCEL:
                    self.ctx.cancel(cid)
            group.notes.append(f"timeout after {self.config.leg_timeout_ms} ms: canceling {len(working)} order(s)")
            self._arm(group, new_round=False)

    # -- state machine ------------------------------------------------------------------------

    def _mark(self, group: _Group) -> None:
        if group not in self._dirty:
            self._dirty.append(group)
        if self._advancing:
            return
        self._advancing = True
        try:
            while self._dirty:
                self._advance(self._dirty.pop(0))
        finally:
            self._advancing = False

    def _advance(self, group: _Group) -> None:
        if group.phase == "done" or group.waiting or self._working(group):
            return
        if group.backoff:
            group.backoff = False
            group.waiting = True
            group.deadline = self.ctx.now_ns() + self.config.retry_delay_ms * 1_000_000
            self.ctx.clock.set_alarm(self._alarm_name(group), group.deadline, self._on_alarm)
            return
        if group.phase in ("initial", "complete"):
            outcome = self._complete_round(group)
            if outcome == "sent":
                return
            group.phase = "unwind" if outcome == "exhausted" else group.phase
        if group.phase == "unwind" and self._unwind_round(group):
            return
        self._finish(group)

    def _complete_round(self, group: _Group) -> str:
        """Send retries/hedges for lagging legs: ``"sent"``, ``"balanced"`` or ``"exhausted"``."""
        desired = self._balanced(group, lead=True)
        lagging = [(s, want - self._filled(s)) for s, want in zip(group.legs, desired, strict=True)]
        lagging = [(s, missing) for s, missing in lagging if missing > 0]
        if not lagging:
            return "balanced"
        if group.phase == "initial":
            group.hedged = True
            group.notes.append("legs unbalanced: " + self._describe(group))
            group.phase = "complete"
        sent = False
        for state, missing in lagging:
            leg = state.leg
            if state.refused:
                continue
            if state.retries < self.config.retries:
                state.retries += 1
                group.notes.append(
                    f"retry {state.retries} {leg.instrument_id} {leg.side.value} {state.inst.qty_to_str(missing)} "
                    f"at {self._px(state.inst, leg.price)}"
                )
                self._send(group, state, leg.side, missing, leg.price, TimeInForce.IOC, +1, "retry")
                sent = True
            elif not state.hedge_sent:
                state.hedge_sent = True
                price = self._aggressive(state.inst, leg.side)
                if price is None:
                    state.refused = True
                    state.problems.append("no book to hedge against")
                    continue
                group.notes.append(
                    f"hedge {leg.instrument_id} {leg.side.value} {state.inst.qty_to_str(missing)} "
                    f"IOC at {state.inst.price_to_str(price)} (within {self.config.hedge_slippage_bps} bps of touch)"
                )
                self._send(group, state, leg.side, missing, price, TimeInForce.IOC, +1, "hedge")
                sent = True
        if sent:
            self._arm(group)
            return "sent"
        return "exhausted"

    def _unwind_round(self, group: _Group) -> bool:
        """Trade legs that got ahead back to the lagging level; ``False`` when done or out of tries."""
        desired = self._balanced(group, lead=False)
        excess = [(s, self._filled(s) - want) for s, want in zip(group.legs, desired, strict=True)]
        excess = [(s, qty) for s, qty in excess if qty > 0]
        if not excess or group.unwind_rounds > self.config.retries:
            return False
        group.unwind_rounds += 1
        sent = False
        for state, qty in excess:
            side = state.leg.side.opposite
            price = self._aggressive(state.inst, side)
            if price is None:
                group.notes.append(f"cannot unwind {state.leg.instrument_id}: no book")
                continue
            group.notes.append(
                f"unwind {state.leg.instrument_id} {side.value} {state.inst.qty_to_str(qty)} IOC at "
                f"{state.inst.price_to_str(price)}"
            )
            self._send(group, state, side, qty, price, TimeInForce.IOC, -1, "unwind")
            sent = True
        if sent:
            self._arm(group)
        return sent

    def _finish(self, group: _Group) -> None:
        group.phase = "done"
        self._groups.pop(group.group_id, None)
        self.ctx.clock.cancel_timer(self._alarm_name(group))
        desired = self._balanced(group, lead=False)
        filled: dict[str, int] = {}
        residual: dict[str, int] = {}
        for state, want in zip(group.legs, desired, strict=True):
            key = str(state.leg.instrument_id)
            sign = state.leg.side.sign
            net = self._filled(state)
            filled[key] = filled.get(key, 0) + sign * net
            residual[key] = residual.get(key, 0) + sign * (net - want)
        unresolved = bool(self._working(group))
        for state in group.legs:  # only orders still open can report anything later
            for cid, _ in state.orders:
                order = self.ctx.order(cid)
                if order is None or order.is_terminal:
                    self._by_order.pop(cid, None)
        leg_risk = group.hedged or any(residual.values()) or unresolved or group.timed_out
        if not leg_risk:
            message = f"{group.group_id}: clean; " + self._describe(group)
        else:
            if any(residual.values()):
                outcome = "UNHEDGED residual " + ", ".join(f"{k} {fixed.to_str(v)}" for k, v in residual.items() if v)
            elif group.unwind_rounds:
                outcome = "unwound, residual 0"
            else:
                outcome = "residual hedged, residual 0" if group.hedged else "residual 0"

            message = f"{group.group_id}: leg risk, {outcome}; " + "; ".join(group.notes)
            message += "; final: " + self._describe(group)
        result = LegGroupResult(group.group_id, filled, residual, group.hedged, message)
        self.results.append(result)
        if leg_risk:
            self.ctx.alert(ALERT_KIND, message)
        if self.on_done is not None:
            self.on_done(result)

    def _late_fill(self, group: _Group, state: _LegState, fill: OrderFilled) -> None:
        self.ctx.alert(
            ALERT_KIND,
            f"{group.group_id}: fill after the group finished: {fill.instrument_id} {fill.side.value} "
            f"{state.inst.qty_to_str(fill.last_qty)} at {state.inst.price_to_str(fill.last_price)} "
            f"(order {fill.client_order_id}); position changed outside the hedged group",
        )

    # -- helpers ------------------------------------------------------------------------------

    def _send(
        self,
        group: _Group,
        state: _LegState,
        side: Side,
        qty: int,
        price: int | None,
        tif: TimeInForce,
        direction: int,
        kind: str,
    ) -> None:
        self._sending = True
        try:
            cid = self.ctx.submit(state.leg.instrument_id, side, qty, price, time_in_force=tif)
        finally:
            self._sending = False
        state.orders.append((cid, direction))
        state.kinds[cid] = kind
        self._by_order[cid] = (group, state)
        early, self._early = self._early, []
        for event in early:
            if event.client_order_id == cid:
                self._note(group, state, event)
        order = self.ctx.order(cid)
        if order is not None and order.is_terminal:
            self._mark(group)

    @staticmethod
    def _note(group: _Group, state: _LegState, event: OrderEvent) -> None:
        """Remember why an order did not fill, and whether trying again can help."""
        if isinstance(event, OrderDenied):
            if event.reason.startswith(_TRANSIENT_DENIALS):
                group.backoff = True
                if group.refunds < _MAX_REFUNDS:
                    # The order never reached the venue: it does not use up an attempt.
                    group.refunds += 1
                    kind = state.kinds.get(event.client_order_id)
                    if kind == "retry":
                        state.retries = max(state.retries - 1, 0)
                    elif kind == "hedge":
                        state.hedge_sent = False
                    elif kind == "unwind":
                        group.unwind_rounds = max(group.unwind_rounds - 1, 0)
            else:
                state.refused = True
            state.problems.append(f"denied ({event.reason})")
        elif isinstance(event, OrderRejected):
            if event.reason in _NOT_RETRYABLE:
                state.refused = True
            elif event.reason is RejectReason.RATE_LIMITED:
                group.backoff = True
            state.problems.append(f"rejected ({event.reason.value}{': ' + event.message if event.message else ''})")
        elif isinstance(event, OrderExpired):
            state.problems.append("expired")

    def _working(self, group: _Group) -> list[tuple[str, _LegState]]:
        out = []
        for state in group.legs:
            for cid, _ in state.orders:
                order = self.ctx.order(cid)
                if order is not None and not order.is_terminal:
                    out.append((cid, state))
        return out

    def _filled(self, state: _LegState) -> int:
        """Net filled quantity in the leg's own direction."""
        total = 0
        for cid, direction in state.orders:
            order = self.ctx.order(cid)
            if order is not None:
                total += direction * order.filled_qty
        return total

    def _balanced(self, group: _Group, *, lead: bool) -> list[int]:
        """Per leg, the size that matches the most (``lead``) or least filled leg, rounded to lots.

        A single-leg group (a hedge of a fill made elsewhere) must fill completely.
        """
        if len(group.legs) == 1:
            return [group.legs[0].leg.qty]
        ref = group.legs[0]
        ref_filled = self._filled(ref)
        for state in group.legs[1:]:
            f = self._filled(state)
            # Compare f / qty with ref_filled / ref.qty exactly.
            ahead = f * ref.leg.qty > ref_filled * state.leg.qty
            if ahead == lead and f * ref.leg.qty != ref_filled * state.leg.qty:
                ref, ref_filled = state, f
        out = []
        for state in group.legs:
            if state is ref:
                out.append(ref_filled)
                continue
            want = fixed.div_round(max(ref_filled, 0) * state.leg.qty, ref.leg.qty, "half_even")
            out.append(state.inst.round_qty(want, "half_even"))
        return out

    def _aggressive(self, inst: Instrument, side: Side) -> int | None:
        book = self.ctx.book(inst.id)
        if book is None:
            return None
        touch = book.best_ask() if side is Side.BUY else book.best_bid()
        if touch is None:
            return None
        return aggressive_price(inst, side, touch, self.config.hedge_slippage_bps)

    def _arm(self, group: _Group, *, new_round: bool = True) -> None:
        if new_round:
            group.timeouts = 0
        group.deadline = self.ctx.now_ns() + self.config.leg_timeout_ms * 1_000_000
        self.ctx.clock.set_alarm(self._alarm_name(group), group.deadline, self._on_alarm)

    def _alarm_name(self, group: _Group) -> str:
        return f"{self.ctx.strategy_id}.legs.{group.group_id}"

    def _on_alarm(self, _name: str, ts: int) -> None:
        self.on_timer(ts)

    def _describe(self, group: _Group) -> str:
        parts = []
        for state in group.legs:
            leg = state.leg
            text = (
                f"{leg.instrument_id} {leg.side.value} {state.inst.qty_to_str(self._filled(state))}"
                f"/{state.inst.qty_to_str(leg.qty)}"
            )
            if state.problems:
                counts: dict[str, int] = {}
                for problem in state.problems:
                    counts[problem] = counts.get(problem, 0) + 1
                text += " (" + ", ".join(p if n == 1 else f"{p} x{n}" for p, n in counts.items()) + ")"
            parts.append(text)
        return ", ".join(parts)

    @staticmethod
    def _px(inst: Instrument, price: int | None) -> str:
        return "market" if price is None else inst.price_to_str(price)
