"""Online estimators for the Avellaneda-Stoikov market maker: volatility and order-arrival decay.

Both are deterministic (no clock of their own, no randomness): the same sequence of
``(timestamp, value)`` updates gives the same estimates, bit for bit.

* :class:`EwmaVolatility`: exponentially weighted variance of log mid returns, sampled at most
  once per ``sample_interval_s`` and scaled explicitly to one second (each squared return is divided
  by the seconds it spans), so ``sigma`` is a fraction per sqrt(second) whatever the sampling.
* :class:`TradeIntensity`: the decay ``kappa`` of the fill intensity ``lambda(delta) = A*exp(-kappa*delta)``
  of a quote at distance ``delta`` from the mid, fitted to public trades (see the class).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence

_NS = 1_000_000_000


class EwmaVolatility:
    """EWMA variance of log returns of a price, per second.

    A sample is taken on the first update at least ``sample_interval_s`` after the previous one. Its
    squared log return divided by the seconds since the previous sample (``r^2 / dt``, an estimate of
    the variance per second) enters the average with weight ``1 - 0.5 ** (dt / halflife_s)``; the
    first one starts it. ``sigma()`` is ready after ``min_samples`` samples.
    """

    def __init__(self, halflife_s: float, sample_interval_s: float = 1.0, min_samples: int = 10) -> None:
        if halflife_s <= 0 or sample_interval_s <= 0:
            raise ValueError("halflife_s and sample_interval_s must be positive")
        if min_samples < 1:
            raise ValueError("min_samples must be at least 1")
        self.halflife_s = halflife_s
        self.min_samples = min_samples
        self._interval_ns = round(sample_interval_s * _NS)
        self._last_ts: int | None = None
        self._last_log_price = 0.0
        self._variance = 0.0
        self.samples = 0

    def update(self, ts_ns: int, price: float) -> bool:
        """Offer the price at ``ts_ns``; returns ``True`` when it was taken as a sample."""
        if price <= 0 or not math.isfinite(price):
            return False
        if self._last_ts is None:
            self._last_ts = ts_ns
            self._last_log_price = math.log(price)
            return False
        elapsed = ts_ns - self._last_ts
        if elapsed < self._interval_ns:
            return False
        log_price = math.log(price)
        dt = elapsed / _NS
        per_second = (log_price - self._last_log_price) ** 2 / dt
        if self.samples == 0:
            self._variance = per_second
        else:
            weight = 1.0 - 0.5 ** (dt / self.halflife_s)
            self._variance += weight * (per_second - self._variance)
        self.samples += 1
        self._last_ts = ts_ns
        self._last_log_price = log_price
        return True

    @property
    def ready(self) -> bool:
        return self.samples >= self.min_samples

    def variance(self) -> float | None:
        """Variance of log returns per second, or ``None`` before ``min_samples`` samples."""
        return self._variance if self.ready else None

    def sigma(self) -> float | None:
        """Volatility of log returns per sqrt(second) (a fraction of the price), or ``None`` if not ready."""
        variance = self.variance()
        return math.sqrt(variance) if variance is not None else None


def fit_exponential_intensity(
    depths: Sequence[float], observed_s: float, grid_points: int = 12, quantile: float = 0.95
) -> tuple[float, float] | None:
    """Fit ``lambda(delta) = A*exp(-kappa*delta)`` to hit depths; returns ``(A, kappa)`` or ``None``.

    ``depths`` holds, per observation, how far from the reference mid the trades reached (negative:
    not beyond the mid); ``observed_s`` is the time all observations together cover. On a grid of
    ``grid_points`` depths from 0 to the ``quantile`` of the positive depths, the intensity is the
    number of observations reaching at least that depth per second; ``ln(lambda)`` is fitted by least
    squares on ``delta``, each point weighted by its count (the variance of a log count is about
    1/count). ``None`` when fewer than three grid points have hits or the fit does not decay.
    """
    if grid_points < 3 or not 0 < quantile <= 1 or observed_s <= 0:
        raise ValueError("need grid_points >= 3, 0 < quantile <= 1 and observed_s > 0")
    reached = sorted(d for d in depths if d >= 0)
    positive = [d for d in reached if d > 0]
    if not positive:
        return None
    top = positive[int(quantile * (len(positive) - 1))]
    step = top / (grid_points - 1)
    n = len(reached)
    xs: list[float] = []
    ys: list[float] = []
    ws: list[float] = []
    for k in range(grid_points):
        delta = k * step
        count = n - bisect_left(reached, delta)
        if count > 0:
            xs.append(delta)
            ys.append(math.log(count / observed_s))
            ws.append(float(count))
    if len(xs) < 3:
        return None
    w_total = sum(ws)
    x_mean = sum(w * x for w, x in zip(ws, xs, strict=True)) / w_total
    y_mean = sum(w * y for w, y in zip(ws, ys, strict=True)) / w_total
    sxx = sum(w * (x - x_mean) ** 2 for w, x in zip(ws, xs, strict=True))
    sxy = sum(w * (x - x_mean) * (y - y_mean) for w, x, y in zip(ws, xs, ys, strict=True))
    if sxx <= 0:
        return None
    slope = sxy / sxx
    if slope >= 0:
        return None
    return math.exp(y_mean - slope * x_mean), -slope


class TradeIntensity:
    """Order-arrival decay ``kappa`` (and level ``A``) estimated from public trades.

    Time is cut into intervals of ``interval_s``. In each interval the reference is the mid at its
    start; a buy trade at price ``p`` reached depth ``p - mid`` on the ask side, a sell trade
    ``mid - p`` on the bid side. An ask quote at distance ``delta`` would have been hit in that interval
    if the deepest buy reached ``delta``, so each interval gives one observation per side: its deepest
    reach (``-inf`` without trades). The last ``window`` intervals are fitted with
    :func:`fit_exponential_intensity` (``A`` in hits per second per side, ``kappa`` per unit of
    price). Counting price moves within the interval, not only the touch, is what lets ``kappa``
    describe quotes behind the touch.
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        window: int = 300,
        min_intervals: int = 30,
        grid_points: int = 12,
        quantile: float = 0.95,
    ) -> None:
        if interval_s <= 0 or window < 1 or min_intervals < 1:
            raise ValueError("interval_s, window and min_intervals must be positive")
        self.interval_s = interval_s
        self.min_intervals = min_intervals
        self.grid_points = grid_points
        self.quantile = quantile
        self._interval_ns = round(interval_s * _NS)
        self._observations: deque[tuple[float, float]] = deque(maxlen=window)
        self._index: int | None = None
        self._reference: float | None = None
        self._last_mid: float | None = None
        self._buy_reach = -math.inf
        self._sell_reach = -math.inf
        self._fit: tuple[float, float] | None = None
        self._fit_stale = True

    @property
    def intervals(self) -> int:
        """Closed intervals in the window."""
        return len(self._observations)

    def _roll(self, ts_ns: int) -> None:
        index = ts_ns // self._interval_ns
        if self._index is None:
            self._index = index
            self._reference = self._last_mid
            return
        if index <= self._index:
            return
        # Close the current interval, then the empty ones skipped (at most a window's worth).
        skipped = min(index - self._index - 1, self._observations.maxlen or 0)
        self._observations.append((self._buy_reach, self._sell_reach))
        for _ in range(skipped):
            self._observations.append((-math.inf, -math.inf))
        self._index = index
        self._reference = self._last_mid
        self._buy_reach = self._sell_reach = -math.inf
        self._fit_stale = True

    def on_mid(self, ts_ns: int, mid: float) -> None:
        """The mid at ``ts_ns`` (call on every book update)."""
        self._roll(ts_ns)
        self._last_mid = mid
        if self._reference is None:
            self._reference = mid

    def on_trade(self, ts_ns: int, price: float, buyer_is_aggressor: bool) -> None:
        """A public trade at ``ts_ns``; ignored until a mid is known."""
        self._roll(ts_ns)
        reference = self._reference
        if reference is None:
            return
        if buyer_is_aggressor:
            self._buy_reach = max(self._buy_reach, price - reference)
        else:
            self._sell_reach = max(self._sell_reach, reference - price)

    def estimate(self) -> tuple[float, float] | None:
        """``(A, kappa)`` from the closed intervals, or ``None`` before ``min_intervals`` or without a fit."""
        if len(self._observations) < self.min_intervals:
            return None
        if self._fit_stale:
            depths = [d for pair in self._observations for d in pair]
            observed = 2 * len(self._observations) * self.interval_s
            self._fit = fit_exponential_intensity(depths, observed, self.grid_points, self.quantile)
            self._fit_stale = False
        return self._fit

    def kappa(self) -> float | None:
        fit = self.estimate()
        return fit[1] if fit is not None else None
