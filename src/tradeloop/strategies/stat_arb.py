"""Statistical arbitrage on a pair: cointegration-gated z-score trading of a hedged spread.

The pair is ``instruments = [y, x]``. Every ``sample_interval_ms`` (once both books are valid) the
strategy samples both mids as log prices relative to the first sample, ``ly = log(y / y0)`` and
``lx = log(x / x0)``, and

1. updates the hedge model (:mod:`~tradeloop.strategies.hedge_ratio`): a rolling OLS over the last
   ``window`` samples, or a Kalman filter; it gives the hedge ratio ``beta``, the spread
   ``ly - alpha - beta * lx`` and its z-score;
2. every ``coint_every`` samples, once ``window`` samples are in, runs the Engle-Granger test
   (:mod:`~tradeloop.strategies.cointegration`) on the window; the pair may be entered only while
   the p-value is below ``coint_pvalue`` (the *gate*), and a position is closed when the gate closes;
3. feeds the z-score to the state machine of :mod:`~tradeloop.strategies.pairs_signal` (entry,
   exit, stop, cool-down after a stop).

**Sizing by notional.** An entry trades ``qty_y = notional / price_y`` and
``qty_x = beta * qty_y * price_y / price_x`` (the log-price hedge ratio applied to value), both on
their lot grids, computed in exact fixed point from the mids (``beta`` enters through
``fixed.from_float_for_signal``). A long spread buys ``y`` and sells ``x``; a short spread the reverse.

**Execution.** Both legs go out at the same instant through a
:class:`~tradeloop.strategies.legs.LegExecutor` as IOC limits ``slippage_bps`` through the touch;
leg risk (one leg filled, the other not) is retried, hedged or unwound there and reported as a
``leg_risk`` alert. Exits trade each instrument back to the position it had when the strategy
started, so whatever a leg group left over is closed too. No entry is made while a group is
working, while the positions differ from the start (they are flattened first), or when a spot leg
would sell more base currency than the account holds (or buy more than its quote balance pays for).

``ctx.record`` feeds the report's strategy panels: ``zscore``, ``spread``, ``hedge_ratio`` and
``coint_pvalue``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

import msgspec
import numpy as np

from tradeloop.core import fixed
from tradeloop.model.enums import InstrumentKind, Side, TimeInForce
from tradeloop.model.events import OrderEvent
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext
from tradeloop.strategies.cointegration import MIN_OBSERVATIONS, engle_granger
from tradeloop.strategies.hedge_ratio import HedgeModel, KalmanHedge, RollingOLS, SpreadEstimate
from tradeloop.strategies.legs import Leg, LegExecutor, LegGroupResult, LegRiskConfig, aggressive_price
from tradeloop.strategies.pairs_signal import PairsSignal, SignalAction, SpreadPosition, Thresholds

__all__ = ["PairTrade", "StatArbConfig", "StatisticalArbitrage"]

ALERT_KIND = "stat_arb"
_MAX_FLATTEN_FAILURES = 3


class StatArbConfig(StrategyConfig, frozen=True, kw_only=True):
    """Parameters of :class:`StatisticalArbitrage`; ``instruments`` is ``[y, x]``."""

    notional: str = "1000"
    """Quote value of the ``y`` leg of each entry (decimal string)."""
    sample_interval_ms: int = 1000
    window: int = 300
    """Samples in the OLS window and in the cointegration test."""
    hedge_method: Literal["ols", "kalman"] = "ols"
    kalman_delta: float = 1e-10
    """Kalman state noise: beta and alpha may move by ``sqrt(delta / (1 - delta))`` per sample."""
    kalman_obs_var: float = 1e-8
    """Kalman observation noise variance of the log-price spread (1e-8 = a 1 bp spread noise)."""
    kalman_warmup: int = 30
    coint_every: int = 30
    """Samples between two cointegration tests."""
    coint_pvalue: float = 0.05
    """Trade only while the last Engle-Granger p-value is below this."""
    entry_z: float = 2.0
    exit_z: float = 0.5
    stop_z: float = 4.0
    cooldown_ms: int = 60_000
    """No new entry this long after a stop, or after an entry that traded nothing (expired, denied)."""
    min_spread_bps: float = 0.0
    """Entries also need the spread's deviation (in bps of log price) to be at least this: a z-score
    on a very quiet spread can be large while the deviation is smaller than the trading costs."""
    min_hedge_ratio: float = 0.1
    max_hedge_ratio: float = 10.0
    """Entries need ``min_hedge_ratio <= beta <= max_hedge_ratio`` (a pair that moves together)."""
    slippage_bps: int = 5
    """Entry and exit legs are IOC limits at most this far through the touch."""
    legs: LegRiskConfig = msgspec.field(default_factory=LegRiskConfig)

    def __post_init__(self) -> None:
        if len(self.instruments) != 2 or self.instruments[0] == self.instruments[1]:
            raise ValueError("stat_arb needs exactly two different instruments: [y, x]")
        try:
            notional = fixed.parse(self.notional)
        except fixed.FixedPointError as exc:
            raise ValueError(f"notional: {exc}") from None
        if notional <= 0:
            raise ValueError("notional must be positive")
        if self.sample_interval_ms <= 0:
            raise ValueError("sample_interval_ms must be positive")
        if self.window < MIN_OBSERVATIONS:
            raise ValueError(f"window must be at least {MIN_OBSERVATIONS} samples")
        if self.coint_every <= 0:
            raise ValueError("coint_every must be positive")
        if not 0.0 < self.coint_pvalue <= 1.0:
            raise ValueError("coint_pvalue must be in (0, 1]")
        if not (math.isfinite(self.min_spread_bps) and self.min_spread_bps >= 0.0):
            raise ValueError("min_spread_bps must be a non-negative number")
        if not 0.0 <= self.min_hedge_ratio < self.max_hedge_ratio:
            raise ValueError("need 0 <= min_hedge_ratio < max_hedge_ratio")
        if not 0 <= self.slippage_bps < 10_000:
            raise ValueError("slippage_bps must be in [0, 10000)")
        if self.cooldown_ms < 0:
            raise ValueError("cooldown_ms must not be negative")
        self.thresholds()  # validates the z levels
        self.hedge_model()  # validates the Kalman parameters

    def thresholds(self) -> Thresholds:
        return Thresholds(
            entry=self.entry_z, exit=self.exit_z, stop=self.stop_z, cooldown_ns=self.cooldown_ms * 1_000_000
        )

    def hedge_model(self) -> HedgeModel:
        if self.hedge_method == "kalman":
            return KalmanHedge(self.kalman_delta, self.kalman_obs_var, warmup=self.kalman_warmup)
        return RollingOLS(self.window)


@dataclass(frozen=True, slots=True)
class PairTrade:
    """One decision that sent legs (for tests and inspection; the journal has the orders)."""

    ts: int
    action: SignalAction
    zscore: float | None
    spread: float | None
    hedge_ratio: float | None
    group_id: str
    result: LegGroupResult | None = None


class StatisticalArbitrage(Strategy[StatArbConfig]):
    """Pairs trading with a cointegration gate (see the module docstring)."""

    config_type = StatArbConfig

    def __init__(self, strategy_id: str, config: StatArbConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        self.instrument_ids = [ctx.resolve_instrument(iid) for iid in self.instrument_ids]
        self.y_id, self.x_id = self.instrument_ids
        self._notional = fixed.parse(config.notional)
        self.model = config.hedge_model()
        self.signal = PairsSignal(config.thresholds())
        self.executor = LegExecutor(ctx, config.legs, self._on_group_done)
        self._anchor: tuple[float, float] | None = None
        self._ly: deque[float] = deque(maxlen=config.window)
        self._lx: deque[float] = deque(maxlen=config.window)
        self._since_test = 0
        self._reference: dict[InstrumentId, int] = {}
        self._pending: dict[str, PairTrade] = {}
        self._early: dict[str, LegGroupResult] = {}
        self._flatten_failures = 0
        self._warned: set[str] = set()
        self.samples = 0
        self.gate_open = False
        self.last_estimate: SpreadEstimate | None = None
        self.p_values: list[tuple[int, float]] = []
        """Every cointegration p-value seen, with its time."""
        self.trades: list[PairTrade] = []
        """Every decision that sent a leg group, in order (results filled in when the group is done)."""

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self) -> None:
        # Positions are measured from what the account held at the start (spot holdings).
        self._reference = {iid: self.ctx.position(iid) for iid in self.instrument_ids}
        self.ctx.set_timer("sample", self.config.sample_interval_ms * 1_000_000, self._on_sample)

    def on_order(self, event: OrderEvent) -> None:
        self.executor.on_order(event)

    def on_stop(self) -> None:
        self.ctx.clock.cancel_timer(f"{self.strategy_id}.sample")

    # -- sampling -------------------------------------------------------------------------------

    def _mids(self) -> tuple[int, int] | None:
        mids = []
        for iid in (self.y_id, self.x_id):
            book = self.ctx.book(iid)
            mid_x2 = book.mid_x2() if book is not None else None
            if mid_x2 is None or mid_x2 <= 0:
                return None
            mids.append(mid_x2 // 2)
        return mids[0], mids[1]

    def _on_sample(self, _name: str, ts: int) -> None:
        mids = self._mids()
        if mids is None:
            return
        y_px, x_px = fixed.to_float(mids[0]), fixed.to_float(mids[1])
        if self._anchor is None:
            self._anchor = (y_px, x_px)
        ly = math.log(y_px / self._anchor[0])
        lx = math.log(x_px / self._anchor[1])
        self.samples += 1
        self._ly.append(ly)
        self._lx.append(lx)
        est = self.model.update(lx, ly)
        self.last_estimate = est
        self._test_cointegration(ts)
        if est is not None:
            self.ctx.record("hedge_ratio", est.beta)
            self.ctx.record("spread", est.spread)
            if est.zscore is not None:
                self.ctx.record("zscore", est.zscore)
        self._act(ts, est, mids)

    def _test_cointegration(self, ts: int) -> None:
        if len(self._ly) < self.config.window:
            return
        self._since_test += 1
        if self.p_values and self._since_test < self.config.coint_every:
            return
        self._since_test = 0
        result = engle_granger(np.fromiter(self._ly, float), np.fromiter(self._lx, float))
        self.p_values.append((ts, result.p_value))
        self.ctx.record("coint_pvalue", result.p_value)
        self.gate_open = result.cointegrated(self.config.coint_pvalue)

    # -- decisions ------------------------------------------------------------------------------

    def _act(self, ts: int, est: SpreadEstimate | None, mids: tuple[int, int]) -> None:
        if self.executor.busy():
            return
        offsets = self._offsets()
        if self.signal.position is SpreadPosition.FLAT:
            if any(offsets.values()):
                self._flatten(ts, SignalAction.EXIT, est, "positions differ from the start")
                return
        elif not self.gate_open:
            self.ctx.alert(ALERT_KIND, f"cointegration gate closed (p={self._last_p():.3f}): closing the pair")
            self._exit(ts, SignalAction.EXIT, est)
            return
        if est is None or est.zscore is None:
            return
        action = self.signal.decide(est.zscore, ts)
        if action is SignalAction.NONE:
            return
        if action is SignalAction.EXIT or action is SignalAction.STOP:
            if action is SignalAction.STOP:
                self.ctx.alert(ALERT_KIND, f"stop: z={est.zscore:.2f} beyond {self.config.stop_z}; cooling down")
            self._exit(ts, action, est)
            return
        if self.gate_open and self._flatten_failures < _MAX_FLATTEN_FAILURES:
            self._enter(ts, action, est, mids)

    def _enter(self, ts: int, action: SignalAction, est: SpreadEstimate, mids: tuple[int, int]) -> None:
        if abs(est.spread) * 10_000 < self.config.min_spread_bps:
            return
        beta = est.beta
        if not self.config.min_hedge_ratio <= beta <= self.config.max_hedge_ratio:
            self._warn_once("beta", f"hedge ratio {beta:.3f} outside the allowed range: not entering")
            return
        sizes = self.leg_sizes(beta, mids[0], mids[1])
        if sizes is None:
            self._warn_once("size", "notional too small for the instruments' lot / minimum size: not entering")
            return
        qty_y, qty_x = sizes
        y_side = Side.BUY if action is SignalAction.ENTER_LONG else Side.SELL
        legs = [self._leg(self.y_id, y_side, qty_y), self._leg(self.x_id, y_side.opposite, qty_x)]
        if any(leg is None for leg in legs):
            return
        sendable = [leg for leg in legs if leg is not None]
        shortfall = self._unaffordable(sendable)
        if shortfall:
            self._warn_once("balance:" + shortfall, f"not entering: {shortfall}")
            return
        self.signal.commit(action, ts)
        self._send(ts, action, est, sendable)

    def _exit(self, ts: int, action: SignalAction, est: SpreadEstimate | None) -> None:
        self.signal.commit(action, ts)
        self._flatten(ts, action, est, "")

    def _flatten(self, ts: int, action: SignalAction, est: SpreadEstimate | None, why: str) -> None:
        legs = []
        for iid, offset in self._offsets().items():
            if offset:
                leg = self._leg(iid, Side.SELL if offset > 0 else Side.BUY, abs(offset))
                if leg is not None:
                    legs.append(leg)
        if not legs:
            return
        if why:
            if self._flatten_failures >= _MAX_FLATTEN_FAILURES:
                return
            self.ctx.alert(ALERT_KIND, f"flattening: {why}")
        self._send(ts, action, est, legs)

    def _send(self, ts: int, action: SignalAction, est: SpreadEstimate | None, legs: list[Leg]) -> None:
        group_id = self.executor.execute(legs, time_in_force=TimeInForce.IOC)
        if est is None:
            trade = PairTrade(ts, action, None, None, None, group_id)
        else:
            trade = PairTrade(ts, action, est.zscore, est.spread, est.beta, group_id)
        self._pending[group_id] = trade
        self.trades.append(trade)
        early = self._early.pop(group_id, None)
        if early is not None:
            self._on_group_done(early)

    def _on_group_done(self, result: LegGroupResult) -> None:
        trade = self._pending.pop(result.group_id, None)
        if trade is None:
            # Finished inside ``execute`` (every leg denied at once): handled when ``_send`` registers it.
            self._early[result.group_id] = result
            return
        self.trades[self.trades.index(trade)] = replace(trade, result=result)
        entry = trade.action in (SignalAction.ENTER_LONG, SignalAction.ENTER_SHORT)
        if entry and not any(result.filled.values()):
            # Nothing traded (IOCs expired, orders denied): the pair is still flat; wait before trying again.
            now = self.ctx.now_ns()
            self.ctx.alert(ALERT_KIND, f"entry traded nothing, cooling down: {result.message}")
            self.signal.commit(SignalAction.EXIT, now)
            self.signal.start_cooldown(now)
        if not entry:
            flat = not any(self._offsets().values())
            self._flatten_failures = 0 if flat else self._flatten_failures + 1
            if self._flatten_failures == _MAX_FLATTEN_FAILURES:
                self.ctx.alert(
                    ALERT_KIND,
                    f"could not flatten after {_MAX_FLATTEN_FAILURES} attempts: no new entries; positions "
                    + ", ".join(f"{iid} {fixed.to_str(v)}" for iid, v in self._offsets().items()),
                )

    # -- sizing and orders ----------------------------------------------------------------------

    def leg_sizes(self, beta: float, y_price: int, x_price: int) -> tuple[int, int] | None:
        """Exact ``(qty_y, qty_x)`` for one entry at these prices, or ``None`` if a leg is below its minimum."""
        y_inst = self.ctx.instrument(self.y_id)
        x_inst = self.ctx.instrument(self.x_id)
        qty_y = y_inst.round_qty(fixed.div(self._notional, y_price, "floor"), "down")
        beta_n = fixed.from_float_for_signal(beta, 1)  # beta in nanos, exactly
        x_value = fixed.mul(beta_n, y_inst.notional(y_price, qty_y))
        qty_x = x_inst.round_qty(fixed.div(x_value, x_price, "half_even"), "half_even")
        if not (_tradable(y_inst, qty_y, y_price) and _tradable(x_inst, qty_x, x_price)):
            return None
        return qty_y, qty_x

    def _leg(self, iid: InstrumentId, side: Side, qty: int) -> Leg | None:
        inst = self.ctx.instrument(iid)
        qty = inst.round_qty(qty, "down")
        book = self.ctx.book(iid)
        touch = None if book is None else (book.best_ask() if side is Side.BUY else book.best_bid())
        if qty <= 0 or touch is None:
            return None
        price = aggressive_price(inst, side, touch, self.config.slippage_bps)
        return None if price is None else Leg(iid, side, qty, price)

    def _unaffordable(self, legs: list[Leg]) -> str:
        """What a spot leg lacks (empty when every spot leg is covered by the account's balances)."""
        for leg in legs:
            inst = self.ctx.instrument(leg.instrument_id)
            if inst.kind is not InstrumentKind.SPOT or leg.price is None:
                continue
            venue = leg.instrument_id.venue
            if leg.side is Side.SELL:
                held = self.ctx.balance(venue, inst.base)
                if held < leg.qty:
                    return (
                        f"selling {inst.qty_to_str(leg.qty)} {inst.base} on {venue} but only {fixed.to_str(held)} held"
                    )
            else:
                cash = self.ctx.balance(venue, inst.quote)
                cost = inst.notional(leg.price, leg.qty)
                if cash < cost:
                    return (
                        f"buying {fixed.to_str(cost)} {inst.quote} of {inst.base} on {venue} with {fixed.to_str(cash)}"
                    )
        return ""

    # -- helpers --------------------------------------------------------------------------------

    def _offsets(self) -> dict[InstrumentId, int]:
        """Position of each instrument relative to the start."""
        return {iid: self.ctx.position(iid) - self._reference.get(iid, 0) for iid in self.instrument_ids}

    def _last_p(self) -> float:
        return self.p_values[-1][1] if self.p_values else math.nan

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.ctx.alert(ALERT_KIND, message)


def _tradable(inst: Instrument, qty: int, price: int) -> bool:
    return qty > 0 and qty >= inst.min_qty and inst.notional(price, qty) >= inst.min_notional
