"""Risk engine: pre-trade checks, post-trade limits, trading state and the kill switch.

Pre-trade
    :meth:`RiskEngine.check_submit` and :meth:`RiskEngine.check_amend` run synchronously on the
    order path (OMS -> risk -> execution). They return ``None`` when the order may go, else a
    human-readable denial reason that starts with the name of the check that refused it
    (``"price_band: 71000.00 is 1520 bps from mid 61837.63 (max 500)"``); the OMS turns it into an
    ``OrderDenied``. Cancels are never checked: they are always allowed, in every state.

Post-trade
    :meth:`RiskEngine.on_equity` watches the daily loss (against the equity at the start of the
    UTC day) and the drawdown (against the running peak). A breach emits a ``RiskAlert`` and moves
    the trading state to the configured one (``REDUCING`` or ``HALTED``); ``HALTED`` also cancels
    every open order through ``cancel_all``. The state only ever escalates on its own: going back to
    ``ACTIVE`` is an operator action (:meth:`RiskEngine.set_state`).

Trading state
    ``ACTIVE`` lets orders through the checks; ``REDUCING`` lets only orders through that reduce
    the current position without flipping it (counting open orders on the same side); ``HALTED``
    denies every submit and amend. :meth:`RiskEngine.kill_switch` halts and cancels everything.

Every amount is fixed-point nanos and every comparison is exact integer arithmetic. Time comes only
from the injected clock (and the ``ts`` given to :meth:`RiskEngine.on_equity`), so backtests repeat.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from tradeloop.core import fixed
from tradeloop.core.clock import Clock
from tradeloop.model.commands import AmendOrder, SubmitOrder
from tradeloop.model.enums import OrderType, Side, TradingState
from tradeloop.model.events import RiskAlert, TradingStateChanged
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.order import Order
from tradeloop.trading import risk_config as rc
from tradeloop.trading.risk_config import InstrumentLimits, ResolvedRiskConfig, RiskConfig
from tradeloop.trading.views import BookView, OrderView, PortfolioView

NS_PER_DAY = 86_400 * 1_000_000_000
BPS = 10_000

RiskEvent = TradingStateChanged | RiskAlert
"""What the risk engine emits (published on ``topics.RISK_EVENTS``)."""

_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
_HALTED: Final = TradingState.HALTED
_REDUCING: Final = TradingState.REDUCING
_LIMIT: Final = OrderType.LIMIT


@dataclass(slots=True)
class _Terms:
    """The terms of an order (new, or as it would be after an amend) and what they are checked against."""

    inst: Instrument
    limits: InstrumentLimits
    side: Side
    is_limit: bool
    limit_price: int | None
    """Limit price; ``None`` for a market order (or a limit order that lacks one)."""
    qty: int
    """Total order size (what precision and max_order_qty apply to)."""
    leaves: int
    """Size that may still trade (what position and exposure apply to)."""
    position: int
    same_side_leaves: int
    """Leaves of our other open orders on the same instrument and side."""
    opposite: list[Order]
    """Our open orders on the same instrument and the other side."""
    mid_x2: int | None
    """Twice the mid of a valid book, else ``None``."""
    book_problem: str
    """Why there is no valid book (empty when there is one)."""
    mark: int | None


class RiskEngine:
    """Pre-trade checks, post-trade limits and the trading state.

    ``emit`` receives every ``TradingStateChanged`` and ``RiskAlert``; ``cancel_all`` is called with a
    reason when trading halts on a breach or on the kill switch and must cancel every open order.
    """

    def __init__(
        self,
        config: RiskConfig,
        clock: Clock,
        instruments: Mapping[InstrumentId, Instrument],
        portfolio: PortfolioView,
        orders: OrderView,
        books: BookView,
        emit: Callable[[RiskEvent], None],
        cancel_all: Callable[[str], None],
    ) -> None:
        self.config = config
        self._cfg = config.resolve()
        self._enabled = _EnabledChecks(self._cfg)
        self._clock = clock
        self._instruments = instruments
        self._portfolio = portfolio
        self._orders = orders
        self._books = books
        self._emit = emit
        self._cancel_all = cancel_all
        self._state = TradingState.ACTIVE
        self._state_reason = ""
        self._denials: dict[str, int] = {}
        self._submits: dict[str, deque[int]] = {}  # venue -> times of accepted submits, oldest first
        # post-trade
        self._day: int | None = None
        self._day_start_equity: int | None = None
        self._last_equity: int | None = None
        self._peak: int | None = None
        self._daily_tripped = False
        self._drawdown_tripped = False

    # -- state -----------------------------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        """Current trading state."""
        return self._state

    @property
    def state_reason(self) -> str:
        """Reason given with the last state change."""
        return self._state_reason

    @property
    def denials(self) -> dict[str, int]:
        """Number of denied submits and amends by check name (a copy, for metrics)."""
        return dict(self._denials)

    @property
    def day_start_equity(self) -> int | None:
        """Equity at the start of the current UTC day (the daily loss baseline), once known."""
        return self._day_start_equity

    @property
    def peak_equity(self) -> int | None:
        """Running equity peak (the drawdown baseline), once known."""
        return self._peak

    def set_state(self, state: TradingState, reason: str) -> bool:
        """Operator action: move to ``state`` and emit ``TradingStateChanged``; ``False`` if already there.

        Setting ``ACTIVE`` re-arms the post-trade limits: one that is still breached trips again on
        the next equity update (call :meth:`reset_peak` first to accept a drawdown). Setting
        ``HALTED`` does not cancel open orders; :meth:`kill_switch` does.
        """
        if state is TradingState.ACTIVE:
            self._daily_tripped = self._drawdown_tripped = False
        if state is self._state:
            return False
        self._change_state(self._clock.now_ns(), state, reason)
        return True

    def kill_switch(self, reason: str) -> None:
        """Halt trading, emit ``RiskAlert`` (and ``TradingStateChanged`` if not halted yet), cancel everything."""
        ts = self._clock.now_ns()
        self._emit(RiskAlert(ts=ts, check=rc.KILL_SWITCH, message=reason))
        if self._state is not TradingState.HALTED:
            self._change_state(ts, TradingState.HALTED, f"{rc.KILL_SWITCH}: {reason}")
        self._cancel_all(reason)

    def restore(self, state: TradingState, reason: str) -> None:
        """Set the state without emitting (rebuilding from the journal's ``TradingStateChanged`` events)."""
        self._state = state
        self._state_reason = reason

    def reset_peak(self) -> None:
        """Operator action: restart the drawdown from the last equity seen."""
        self._peak = self._last_equity
        self._drawdown_tripped = False

    def _change_state(self, ts: int, state: TradingState, reason: str) -> None:
        self._state = state
        self._state_reason = reason
        self._emit(TradingStateChanged(ts=ts, state=state, reason=reason))

    # -- pre-trade -------------------------------------------------------------------------------

    def check_submit(self, cmd: SubmitOrder) -> str | None:
        """``None`` if ``cmd`` may be sent, else the denial reason (prefixed by the check's name).

        Checks, in order (the first that fails is reported): ``trading_state``, ``instrument``,
        ``precision``, ``price_band`` (or ``no_valid_book``), ``max_order_qty``,
        ``max_order_notional``, ``max_position``, ``max_exposure``, ``self_trade``,
        ``max_open_orders``, ``order_rate``. An order that passes counts against its venue's order
        rate. Market orders are valued at the book mid (else the mark); one that cannot be valued
        is denied by the notional and exposure limits.
        """
        reason = self._check_submit(cmd)
        if reason is not None:
            self._count(reason)
        elif self._cfg.enabled(rc.ORDER_RATE):
            self._submits.setdefault(cmd.instrument_id.venue, deque()).append(self._clock.now_ns())
        return reason

    def check_amend(self, cmd: AmendOrder, order: Order) -> str | None:
        """``None`` if ``order`` may be amended as ``cmd`` asks, else the denial reason.

        The new price and size go through precision, price band, size, position, exposure and
        self-trade checks; an amend that only lowers the size needs just precision. ``HALTED``
        denies every amend; ``REDUCING`` only amends that leave the order reducing.
        """
        reason = self._check_amend(cmd, order)
        if reason is not None:
            self._count(reason)
        return reason

    def _count(self, reason: str) -> None:
        check = reason.partition(":")[0]
        self._denials[check] = self._denials.get(check, 0) + 1

    def _check_submit(self, cmd: SubmitOrder) -> str | None:
        if self._state is TradingState.HALTED:
            return self._halted_reason()
        iid = cmd.instrument_id
        inst = self._instruments.get(iid)
        if inst is None:
            return f"{rc.INSTRUMENT}: unknown instrument {iid}"
        open_here = self._orders.open_orders(iid)
        terms = self._terms(inst, cmd.side, cmd.order_type, cmd.price, cmd.qty, cmd.qty, open_here)
        reason = self._check_terms(terms, increases=True)
        if reason is not None:
            return reason
        cfg = self._cfg
        if cfg.enabled(rc.MAX_OPEN_ORDERS):
            limit = terms.limits.max_open_orders
            if limit is not None and len(open_here) >= limit:
                return f"{rc.MAX_OPEN_ORDERS}: {len(open_here)} open orders on {iid} (max {limit})"
            total_limit = cfg.max_open_orders_total
            if total_limit is not None:
                total = len(self._orders.open_orders())
                if total >= total_limit:
                    return f"{rc.MAX_OPEN_ORDERS}: {total} open orders in total (max {total_limit})"
        if cfg.enabled(rc.ORDER_RATE):
            return self._check_rate(iid.venue)
        return None

    def _check_amend(self, cmd: AmendOrder, order: Order) -> str | None:
        if self._state is _HALTED:
            return self._halted_reason()
        iid = order.instrument_id
        inst = self._instruments.get(iid)
        if inst is None:
            return f"{rc.INSTRUMENT}: unknown instrument {iid}"
        price = cmd.price if cmd.price is not None else order.price
        qty = cmd.qty if cmd.qty is not None else order.qty
        open_here = [o for o in self._orders.open_orders(iid) if o.client_order_id != order.client_order_id]
        leaves = max(qty - order.filled_qty, 0)
        terms = self._terms(inst, order.side, order.order_type, price, qty, leaves, open_here)
        increases = price != order.price or qty > order.qty
        return self._check_terms(terms, increases=increases)

    def _halted_reason(self) -> str:
        why = f" ({self._state_reason})" if self._state_reason else ""
        return f"{rc.TRADING_STATE}: trading is HALTED{why}"

    def _terms(
        self,
        inst: Instrument,
        side: Side,
        order_type: OrderType,
        price: int | None,
        qty: int,
        leaves: int,
        open_here: list[Order],
    ) -> _Terms:
        iid = inst.id
        book = self._books.book(iid)
        mid_x2: int | None = None
        problem = ""
        same_side_leaves = 0
        opposite: list[Order] = []
        for o in open_here:
            if o.side is side:
                same_side_leaves += o.leaves_qty
            else:
                opposite.append(o)
        is_limit = order_type is _LIMIT
        portfolio = self._portfolio
        if book is None:
            problem = f"no book for {iid}"
        elif not book.valid:
            problem = f"book for {iid} is invalid ({book.invalid_reason})"
        else:
            mid_x2 = book.mid_x2()
            if mid_x2 is None or mid_x2 <= 0:
                mid_x2 = None
                problem = f"book for {iid} has an empty side"
        return _Terms(
            inst=inst,
            limits=self._cfg.limits_for(iid),
            side=side,
            is_limit=is_limit,
            limit_price=price if is_limit else None,
            qty=qty,
            leaves=leaves,
            position=portfolio.position_qty(iid),
            same_side_leaves=same_side_leaves,
            opposite=opposite,
            mid_x2=mid_x2,
            book_problem=problem,
            mark=portfolio.mark(iid),
        )

    def _check_terms(self, t: _Terms, *, increases: bool) -> str | None:
        """Every check of an order's terms; with ``increases`` false (an amend that only shrinks the
        order) only precision applies."""
        cfg = self._cfg
        on = self._enabled
        reducing = _reduces(t)
        if increases and self._state is _REDUCING and not reducing:
            return self._reducing_reason(t)
        if on.precision:
            reason = self._check_precision(t)
            if reason is not None:
                return reason
        if not increases:
            return None
        if on.price_band:
            reason = self._check_price_band(t)
            if reason is not None:
                return reason
        inst, limits = t.inst, t.limits
        if on.max_order_qty and limits.max_order_qty is not None and t.qty > limits.max_order_qty:
            return f"{rc.MAX_ORDER_QTY}: {_qty(inst, t.qty)} > max {_qty(inst, limits.max_order_qty)}"
        if on.max_order_notional and limits.max_order_notional is not None:
            notional = self._notional(t, t.qty)
            if notional is None:
                return f"{rc.MAX_ORDER_NOTIONAL}: no reference price for a market order ({t.book_problem}, no mark)"
            if notional > limits.max_order_notional:
                return (
                    f"{rc.MAX_ORDER_NOTIONAL}: {fixed.to_str(notional)} {inst.quote} "
                    f"> max {fixed.to_str(limits.max_order_notional)}"
                )
        if on.max_position and limits.max_position is not None:
            sign = t.side.sign
            without = t.position + sign * t.same_side_leaves
            projected = without + sign * t.leaves
            if abs(projected) > limits.max_position and abs(projected) > abs(without):
                return (
                    f"{rc.MAX_POSITION}: position {_qty(inst, t.position)} with open {t.side.value} orders "
                    f"{_qty(inst, t.same_side_leaves)} and this order {_qty(inst, t.leaves)} would be "
                    f"{_qty(inst, projected)} (max {_qty(inst, limits.max_position)})"
                )
        max_exposure = cfg.max_exposure
        if on.max_exposure and max_exposure is not None and not reducing:
            notional = self._notional(t, t.leaves)
            if notional is None:
                return f"{rc.MAX_EXPOSURE}: no reference price for a market order ({t.book_problem}, no mark)"
            gross = self._portfolio.gross_exposure()
            if gross + notional > max_exposure:
                return (
                    f"{rc.MAX_EXPOSURE}: gross exposure {fixed.to_str(gross)} + order {fixed.to_str(notional)} "
                    f"> max {fixed.to_str(max_exposure)}"
                )
        if on.self_trade:
            return self._check_self_trade(t)
        return None

    def _reducing_reason(self, t: _Terms) -> str:
        inst = t.inst
        if t.position == 0 or t.side.sign * t.position > 0:
            what = "would increase it"
        else:
            what = f"with open {t.side.value} orders {_qty(inst, t.same_side_leaves)} would flip it"
        return (
            f"{rc.TRADING_STATE}: REDUCING allows only orders that reduce the position; "
            f"{t.side.value} {_qty(inst, t.leaves)} against position {_qty(inst, t.position)} {what}"
        )

    def _check_precision(self, t: _Terms) -> str | None:
        inst, qty, price = t.inst, t.qty, t.limit_price
        p = rc.PRECISION
        if t.is_limit and price is None:
            return f"{p}: limit order without a price"
        if price is not None:
            if price <= 0:
                return f"{p}: price {fixed.to_str(price)} must be positive"
            if price % inst.tick_size:
                return f"{p}: price {fixed.to_str(price)} is not a multiple of tick {fixed.to_str(inst.tick_size)}"
        if qty <= 0:
            return f"{p}: qty {fixed.to_str(qty)} must be positive"
        if qty % inst.lot_size:
            return f"{p}: qty {fixed.to_str(qty)} is not a multiple of lot {fixed.to_str(inst.lot_size)}"
        if qty < inst.min_qty:
            return f"{p}: qty {_qty(inst, qty)} < min_qty {_qty(inst, inst.min_qty)}"
        if inst.max_qty and qty > inst.max_qty:
            return f"{p}: qty {_qty(inst, qty)} > max_qty {_qty(inst, inst.max_qty)}"
        if inst.min_notional:
            # A market order without a reference price is left to the book check and the venue.
            notional = self._notional(t, qty)
            if notional is not None and notional < inst.min_notional:
                return f"{p}: notional {fixed.to_str(notional)} < min_notional {fixed.to_str(inst.min_notional)}"
        return None

    def _check_price_band(self, t: _Terms) -> str | None:
        m2 = t.mid_x2
        if m2 is None:
            if self._cfg.require_valid_book:
                return f"{rc.NO_VALID_BOOK}: {t.book_problem}"
            return None
        price = t.limit_price
        if price is None:
            return None
        band = t.limits.price_band_bps
        dev_x2 = abs(2 * price - m2)
        if dev_x2 * BPS > band * m2:
            bps = fixed.div_round(dev_x2 * BPS, m2, "ceil")
            mid = fixed.to_str(fixed.div_round(m2, 2))
            return f"{rc.PRICE_BAND}: {_px(t.inst, price)} is {bps} bps from mid {mid} (max {band})"
        return None

    def _check_self_trade(self, t: _Terms) -> str | None:
        price = t.limit_price
        for o in t.opposite:
            if price is None or o.price is None:
                crosses = True
            elif t.side is Side.BUY:
                crosses = price >= o.price
            else:
                crosses = price <= o.price
            if crosses:
                mine = "market" if price is None else f"at {_px(t.inst, price)}"
                theirs = "market" if o.price is None else f"at {_px(t.inst, o.price)}"
                return (
                    f"{rc.SELF_TRADE}: {t.side.value} {mine} would trade with own open "
                    f"{o.side.value} {o.client_order_id} {theirs}"
                )
        return None

    def _check_rate(self, venue: str) -> str | None:
        cfg = self._cfg
        limit = cfg.order_rate_for(venue)
        times = self._submits.setdefault(venue, deque())
        oldest_kept = self._clock.now_ns() - cfg.order_rate_window_ns
        while times and times[0] <= oldest_kept:
            times.popleft()
        if len(times) >= limit:
            window_ms = cfg.order_rate_window_ns // 1_000_000
            return f"{rc.ORDER_RATE}: {len(times)} submits on {venue} in the last {window_ms} ms (max {limit})"
        return None

    def _notional(self, t: _Terms, qty: int) -> int | None:
        """Quote value of ``qty``: at the limit price, else (market order) at the mid, else at the mark."""
        price = t.limit_price
        if price is None:
            price = fixed.div_round(t.mid_x2, 2) if t.mid_x2 is not None else t.mark
            if price is None:
                return None
        return t.inst.notional(price, qty)

    # -- post-trade ------------------------------------------------------------------------------

    def on_equity(self, ts: int, equity: int) -> None:
        """Check the daily loss and drawdown limits against a new equity reading at ``ts``.

        The daily baseline is the equity at the start of the UTC day of ``ts``: the last reading
        before midnight (or the first reading ever). The drawdown is measured from the running peak.
        A new breach emits ``RiskAlert`` and escalates the state to the configured one (never
        de-escalates); reaching ``HALTED`` calls ``cancel_all``.
        """
        day = ts // NS_PER_DAY
        if self._day is None or day > self._day:
            baseline = self._last_equity if self._last_equity is not None else equity
            self._day = day
            self._day_start_equity = baseline
            self._daily_tripped = False
        self._last_equity = equity
        if self._peak is None or equity > self._peak:
            self._peak = equity
        cfg = self._cfg
        start = self._day_start_equity
        assert start is not None
        if cfg.enabled(rc.DAILY_LOSS):
            loss = start - equity
            over = _over_limit(loss, start, cfg.max_daily_loss, cfg.max_daily_loss_bps)
            if over and not self._daily_tripped:
                self._daily_tripped = True
                self._trip(
                    ts,
                    rc.DAILY_LOSS,
                    f"{rc.DAILY_LOSS}: equity {fixed.to_str(equity)} is {fixed.to_str(loss)} below the day's start "
                    f"{fixed.to_str(start)} ({over})",
                    cfg.daily_loss_state,
                )
            elif not over:
                self._daily_tripped = False
        if cfg.enabled(rc.DRAWDOWN):
            peak = self._peak
            drawdown = peak - equity
            over = _over_limit(drawdown, peak, cfg.max_drawdown, cfg.max_drawdown_bps)
            if over and not self._drawdown_tripped:
                self._drawdown_tripped = True
                self._trip(
                    ts,
                    rc.DRAWDOWN,
                    f"{rc.DRAWDOWN}: equity {fixed.to_str(equity)} is {fixed.to_str(drawdown)} below the peak "
                    f"{fixed.to_str(peak)} ({over})",
                    cfg.drawdown_state,
                )
            elif not over:
                self._drawdown_tripped = False

    def trip(self, check: str, message: str, target: TradingState, *, cancel: bool = True) -> None:
        """A breach found outside this engine (a circuit breaker, the operator's kill switch).

        Emits ``RiskAlert(check, message)`` and escalates the state to ``target`` with ``message`` as
        the reason (never de-escalates). Reaching ``HALTED`` cancels every open order through
        ``cancel_all`` unless ``cancel`` is false (the caller cancels itself).
        """
        self._trip(self._clock.now_ns(), check, message, target, cancel)

    def _trip(self, ts: int, check: str, message: str, target: TradingState, cancel: bool = True) -> None:
        self._emit(RiskAlert(ts=ts, check=check, message=message))
        if _SEVERITY[target] > _SEVERITY[self._state]:
            self._change_state(ts, target, message)
            if target is TradingState.HALTED and cancel:
                self._cancel_all(message)


class _EnabledChecks:
    """Which order-terms checks are switched on, read once (the config never changes)."""

    __slots__ = (
        "max_exposure",
        "max_order_notional",
        "max_order_qty",
        "max_position",
        "precision",
        "price_band",
        "self_trade",
    )

    def __init__(self, cfg: ResolvedRiskConfig) -> None:
        self.precision = cfg.enabled(rc.PRECISION)
        self.price_band = cfg.enabled(rc.PRICE_BAND)
        self.max_order_qty = cfg.enabled(rc.MAX_ORDER_QTY)
        self.max_order_notional = cfg.enabled(rc.MAX_ORDER_NOTIONAL)
        self.max_position = cfg.enabled(rc.MAX_POSITION)
        self.max_exposure = cfg.enabled(rc.MAX_EXPOSURE)
        self.self_trade = cfg.enabled(rc.SELF_TRADE)


def _reduces(t: _Terms) -> bool:
    """The order (with our other open orders on its side) reduces the position and does not flip it."""
    pos = t.position
    return pos != 0 and t.side.sign * pos < 0 and t.leaves + t.same_side_leaves <= abs(pos)


def _over_limit(amount: int, base: int, limit: int | None, limit_bps: int | None) -> str:
    """Which limit ``amount`` (a loss from ``base``) breaks, as text; empty if none."""
    if limit is not None and amount > limit:
        return f"max {fixed.to_str(limit)}"
    if limit_bps is not None and base > 0 and amount * BPS > limit_bps * base:
        return f"{fixed.div_round(amount * BPS, base, 'ceil')} bps, max {limit_bps} bps"
    return ""


def _px(inst: Instrument, price: int) -> str:
    return inst.price_to_str(price) if price % inst.tick_size == 0 else fixed.to_str(price)


def _qty(inst: Instrument, qty: int) -> str:
    return inst.qty_to_str(qty) if qty % inst.lot_size == 0 else fixed.to_str(qty)
