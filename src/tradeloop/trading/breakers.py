"""Circuit breakers: venue reject rate, volatility and stale market data.

Each breaker watches one signal and, when it crosses its configured limit, calls
``trip(check, message, target)`` (in the node: :meth:`tradeloop.trading.risk.RiskEngine.trip`), which
emits a ``RiskAlert`` with the message, escalates the trading state to ``REDUCING`` or ``HALTED``
with the message as the reason, and on ``HALTED`` cancels every open order. The daily loss and
drawdown limits of the risk engine follow the same pattern.

Reject rate (check ``reject_rate``)
    Per venue, the venue's answers to our submits in a sliding window of ``window_ms``:
    ``OrderAccepted`` counts as an order, ``OrderRejected`` as an order and a reject. Trips when at
    least ``min_orders`` answers are in the window and ``rejects * 10^4 > max_reject_bps * orders``.
Volatility (check ``volatility``)
    Per instrument, the highest and lowest mid of valid books seen in the last ``window_ms``. Trips
    when ``ln(high / low) > max_move_bps / 10^4``, the largest absolute log-return between any two
    mids in the window. The comparison is in integers: ``high * 10^18 > low * F`` with
    ``F = ceil(exp(max_move_bps / 10^4) * 10^18)`` computed once with :mod:`decimal` (correctly
    rounded, the same on every platform; for any price below 10^9 the rounding moves the threshold
    by less than one nano). The bps in the message are ``ceil(ln(high / low) * 10^4)``, also in
    :mod:`decimal`. No float is involved.
Stale data (check ``stale_data``)
    Every ``check_interval_ms`` of engine time, each traded instrument whose book has had no valid
    update for more than ``max_age_ms`` trips (a book that never arrived counts from the start; one
    invalidated by a gap stops updating until it resyncs). A quiet but live market still updates its
    book (exchange depth streams send an update every 100 ms or so), so this reads as a dead feed.

Once per episode
    A breaker alerts once when its condition starts; it alerts again only after the condition
    cleared (a fresh update, the move or reject share back within the limit) or after the operator
    resumed trading.

Never resumes by itself
    Breakers only escalate. Trading goes back to ``ACTIVE`` only by an operator action
    (:meth:`tradeloop.runtime.control.OperatorControl.resume`). On that ``TradingStateChanged`` to
    ``ACTIVE`` every breaker re-arms and starts measuring afresh: the reject and mid windows are
    emptied and the age of every book counts from the resume, so a condition that persists trips
    again once it is seen anew (a stale book after another ``max_age_ms``).

Time comes only from the injected clock, so backtests repeat byte for byte.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from decimal import ROUND_CEILING, Decimal, localcontext

from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import Clock
from tradeloop.model import topics
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookStatus
from tradeloop.model.enums import TradingState
from tradeloop.model.events import OrderAccepted, OrderEvent, OrderRejected, RiskAlert, TradingStateChanged
from tradeloop.model.identifiers import InstrumentId
from tradeloop.trading import risk_config as rc
from tradeloop.trading.risk_config import (
    BreakersConfig,
    RejectRateBreakerConfig,
    StaleDataBreakerConfig,
    VolatilityBreakerConfig,
    breach_state,
)

TripFn = Callable[[str, str, TradingState], None]
"""``trip(check, message, target_state)``: what a breaker calls when it trips."""

STALE_TIMER = "risk.breakers.stale_data"
"""Name of the clock timer that runs the stale data check."""

BPS = rc.BPS_ONE
NS_PER_MS = 1_000_000
FACTOR_SCALE = 10**18
"""Fixed-point scale of :func:`log_move_factor`."""


# -- pure pieces -----------------------------------------------------------------------------------


class RejectWindow:
    """Venue answers to submits within a sliding window of ``window_ns``; exact counts."""

    __slots__ = ("_samples", "_window", "rejects")

    def __init__(self, window_ns: int) -> None:
        self._window = window_ns
        self._samples: deque[tuple[int, bool]] = deque()
        self.rejects = 0
        """Rejects in the window."""

    @property
    def orders(self) -> int:
        """Answered submits in the window."""
        return len(self._samples)

    def add(self, ts: int, rejected: bool) -> None:
        """Count one answer at ``ts`` and forget those older than ``ts - window``."""
        self._samples.append((ts, rejected))
        self.rejects += rejected
        self.expire(ts)

    def expire(self, now: int) -> None:
        """Forget answers before ``now - window`` (an answer exactly at the edge is kept)."""
        oldest = now - self._window
        samples = self._samples
        while samples and samples[0][0] < oldest:
            self.rejects -= samples.popleft()[1]

    def clear(self) -> None:
        self._samples.clear()
        self.rejects = 0


def reject_share_exceeded(rejects: int, orders: int, min_orders: int, max_reject_bps: int) -> bool:
    """``rejects / orders > max_reject_bps / 10^4`` with at least ``min_orders`` orders, exactly."""
    return orders >= min_orders and rejects * BPS > max_reject_bps * orders


class MidRange:
    """Highest and lowest value (a mid x2) seen within a sliding window, with the time of each.

    Two monotonic deques: amortized O(1) per update however long the window.
    """

    __slots__ = ("_highs", "_lows", "_window")

    def __init__(self, window_ns: int) -> None:
        self._window = window_ns
        self._highs: deque[tuple[int, int]] = deque()  # values decreasing from the front
        self._lows: deque[tuple[int, int]] = deque()  # values increasing from the front

    def add(self, ts: int, value: int) -> None:
        """Record ``value`` at ``ts`` (times must not go backwards) and forget what left the window."""
        highs, lows = self._highs, self._lows
        while highs and highs[-1][1] <= value:
            highs.pop()
        highs.append((ts, value))
        while lows and lows[-1][1] >= value:
            lows.pop()
        lows.append((ts, value))
        oldest = ts - self._window
        while highs[0][0] < oldest:
            highs.popleft()
        while lows[0][0] < oldest:
            lows.popleft()

    @property
    def high(self) -> tuple[int, int] | None:
        """(time, value) of the highest value in the window."""
        return self._highs[0] if self._highs else None

    @property
    def low(self) -> tuple[int, int] | None:
        """(time, value) of the lowest value in the window."""
        return self._lows[0] if self._lows else None

    def clear(self) -> None:
        self._highs.clear()
        self._lows.clear()


def log_move_factor(max_move_bps: int) -> int:
    """``exp(max_move_bps / 10^4)`` scaled by :data:`FACTOR_SCALE`, rounded up (decimal arithmetic)."""
    if max_move_bps <= 0:
        raise ValueError("max_move_bps must be positive")
    with localcontext() as ctx:
        ctx.prec = 40
        value = (Decimal(max_move_bps) / BPS).exp() * FACTOR_SCALE
        return int(value.to_integral_value(rounding=ROUND_CEILING))


def log_move_exceeded(high: int, low: int, factor: int) -> bool:
    """``ln(high / low)`` above the limit whose :func:`log_move_factor` is ``factor`` (exact integers)."""
    return low > 0 and high * FACTOR_SCALE > low * factor


def log_move_bps(high: int, low: int) -> int:
    """``ceil(ln(high / low) * 10^4)`` for positive ``high >= low`` (decimal arithmetic)."""
    if low <= 0 or high < low:
        raise ValueError(f"need 0 < low <= high, got low={low} high={high}")
    with localcontext() as ctx:
        ctx.prec = 40
        value = (Decimal(high) / Decimal(low)).ln() * BPS
        return int(value.to_integral_value(rounding=ROUND_CEILING))


# -- the breakers ----------------------------------------------------------------------------------


class CircuitBreakers:
    """The configured circuit breakers of one node; see the module docstring.

    ``instruments`` are the books the stale data breaker watches. Feed it with :meth:`subscribe`
    (or call the ``on_*`` methods yourself); :meth:`start` arms the stale data timer (it also arms
    itself on the first book), :meth:`stop` disarms it when the data source has ended.
    """

    def __init__(
        self,
        config: BreakersConfig,
        clock: Clock,
        instruments: Iterable[InstrumentId],
        trip: TripFn,
    ) -> None:
        self.config = config
        self._clock = clock
        self._instruments = sorted(set(instruments))
        self._trip = trip
        self._started = False
        self._stopped = False
        self._reject_cfg: RejectRateBreakerConfig | None = config.reject_rate
        self._reject_windows: dict[str, RejectWindow] = {}
        self._reject_tripped: set[str] = set()
        self._vol_cfg: VolatilityBreakerConfig | None = config.volatility
        self._vol_factor = log_move_factor(config.volatility.max_move_bps) if config.volatility else 0
        self._ranges: dict[InstrumentId, MidRange] = {}
        self._vol_tripped: set[InstrumentId] = set()
        self._stale_cfg: StaleDataBreakerConfig | None = config.stale_data
        self._armed_at = clock.now_ns()
        self._last_update: dict[InstrumentId, int] = {}
        self._invalid: dict[InstrumentId, str] = {}
        self._stale_tripped: set[InstrumentId] = set()
        self.trips: dict[str, int] = {}
        """How many times each breaker tripped (by check name), for metrics and tests."""

    # -- wiring ------------------------------------------------------------------------------------

    def subscribe(self, bus: MessageBus) -> None:
        """Subscribe to what the configured breakers need (nothing when none is configured)."""
        if not self.config.any_enabled:
            return
        if self._vol_cfg is not None or self._stale_cfg is not None:
            bus.subscribe(topics.BOOK, self.on_book)
        if self._stale_cfg is not None:
            bus.subscribe(topics.BOOK_STATUS, self.on_book_status)
        if self._reject_cfg is not None:
            bus.subscribe(topics.ORDER_EVENTS, self.on_order_event)
        bus.subscribe(topics.RISK_EVENTS, self.on_risk_event)

    def start(self) -> None:
        """Arm the stale data timer (idempotent; nothing after :meth:`stop`)."""
        cfg = self._stale_cfg
        if cfg is None or self._started or self._stopped:
            return
        self._started = True
        self._armed_at = self._clock.now_ns()
        self._clock.set_timer(STALE_TIMER, cfg.check_interval_ms * NS_PER_MS, self.check_stale)

    def stop(self) -> None:
        """Disarm the stale data timer for good (the market data source has ended)."""
        self._stopped = True
        if self._started:
            self._clock.cancel_timer(STALE_TIMER)

    def rearm(self) -> None:
        """Forget every window and trip: measure afresh from now (called on the operator's resume)."""
        for window in self._reject_windows.values():
            window.clear()
        self._reject_tripped.clear()
        for rng in self._ranges.values():
            rng.clear()
        self._vol_tripped.clear()
        self._armed_at = self._clock.now_ns()
        self._stale_tripped.clear()

    # -- inputs ------------------------------------------------------------------------------------

    def on_risk_event(self, event: TradingStateChanged | RiskAlert) -> None:
        """Re-arm when trading goes back to ``ACTIVE`` (only an operator does that)."""
        if isinstance(event, TradingStateChanged) and event.state is TradingState.ACTIVE:
            self.rearm()

    def on_book(self, book: OrderBook) -> None:
        """A valid book update: refreshes its age and feeds the volatility window."""
        now = self._clock.now_ns()
        iid = book.instrument_id
        if self._stale_cfg is not None:
            if not self._started:
                self.start()
            self._last_update[iid] = now
            self._invalid.pop(iid, None)
            self._stale_tripped.discard(iid)
        cfg = self._vol_cfg
        if cfg is None:
            return
        mid_x2 = book.mid_x2()
        if mid_x2 is None or mid_x2 <= 0:
            return
        rng = self._ranges.get(iid)
        if rng is None:
            rng = self._ranges[iid] = MidRange(cfg.window_ms * NS_PER_MS)
        rng.add(now, mid_x2)
        high, low = rng.high, rng.low
        assert high is not None and low is not None
        if not log_move_exceeded(high[1], low[1], self._vol_factor):
            self._vol_tripped.discard(iid)
            return
        if iid in self._vol_tripped:
            return
        self._vol_tripped.add(iid)
        (t_high, v_high), (t_low, v_low) = high, low
        if t_high > t_low:
            move = f"rose from {_mid(v_low)} to {_mid(v_high)}"
        else:
            move = f"fell from {_mid(v_high)} to {_mid(v_low)}"
        span_ms = abs(t_high - t_low) // NS_PER_MS
        self._fire(
            rc.VOLATILITY,
            f"{rc.VOLATILITY}: {iid} mid {move} within {span_ms} ms, a {log_move_bps(v_high, v_low)} bps "
            f"log move (max {cfg.max_move_bps} bps in {cfg.window_ms} ms)",
            breach_state(cfg.action),
        )

    def on_book_status(self, status: BookStatus) -> None:
        """Remember why a book is invalid (for the stale data message)."""
        if status.valid:
            self._invalid.pop(status.instrument_id, None)
        else:
            self._invalid[status.instrument_id] = status.reason

    def on_order_event(self, event: OrderEvent) -> None:
        """Count the venue's answers to submits for the reject rate."""
        cfg = self._reject_cfg
        if cfg is None:
            return
        if isinstance(event, OrderRejected):
            rejected = True
        elif isinstance(event, OrderAccepted):
            rejected = False
        else:
            return
        venue = event.instrument_id.venue
        window = self._reject_windows.get(venue)
        if window is None:
            window = self._reject_windows[venue] = RejectWindow(cfg.window_ms * NS_PER_MS)
        window.add(self._clock.now_ns(), rejected)
        rejects, orders = window.rejects, window.orders
        if not reject_share_exceeded(rejects, orders, cfg.min_orders, cfg.max_reject_bps):
            if orders >= cfg.min_orders:
                self._reject_tripped.discard(venue)
            return
        if venue in self._reject_tripped:
            return
        self._reject_tripped.add(venue)
        share = fixed.div_round(rejects * BPS, orders, "ceil")
        last = (
            f"; last reject: {event.reason.value} {event.message}".rstrip() if isinstance(event, OrderRejected) else ""
        )
        self._fire(
            rc.REJECT_RATE,
            f"{rc.REJECT_RATE}: {venue} rejected {rejects} of the last {orders} submits in {cfg.window_ms} ms "
            f"({share} bps, max {cfg.max_reject_bps} bps){last}",
            breach_state(cfg.action),
        )

    def check_stale(self, _name: str = STALE_TIMER, _ts: int = 0) -> None:
        """Trip for every watched book without a valid update for longer than ``max_age_ms``."""
        cfg = self._stale_cfg
        if cfg is None:
            return
        now = self._clock.now_ns()
        max_age = cfg.max_age_ms * NS_PER_MS
        for iid in self._instruments:
            last = self._last_update.get(iid)
            since = self._armed_at if last is None or last < self._armed_at else last
            age = now - since
            if age <= max_age or iid in self._stale_tripped:
                continue
            self._stale_tripped.add(iid)
            if iid in self._invalid:
                why = f"book invalid ({self._invalid[iid]})"
            elif last is None:
                why = "no book received"
            else:
                why = "no update"
            age_ms = fixed.div_round(age, NS_PER_MS, "ceil")
            self._fire(
                rc.STALE_DATA,
                f"{rc.STALE_DATA}: {iid} {why} for {age_ms} ms (max {cfg.max_age_ms} ms)",
                breach_state(cfg.action),
            )

    def _fire(self, check: str, message: str, target: TradingState) -> None:
        self.trips[check] = self.trips.get(check, 0) + 1
        self._trip(check, message, target)


def _mid(mid_x2: int) -> str:
    return fixed.to_str(fixed.div_round(mid_x2, 2))
