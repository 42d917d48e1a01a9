"""Online estimators: EWMA volatility with explicit time scaling, and the trade-intensity fit."""

from __future__ import annotations

import math

import pytest

from tradeloop.strategies.estimators import EwmaVolatility, TradeIntensity, fit_exponential_intensity

S = 1_000_000_000


def test_ewma_volatility_hand_computed_with_time_scaling() -> None:
    vol = EwmaVolatility(halflife_s=1.0, sample_interval_s=1.0, min_samples=2)
    assert not vol.update(0, 100.0)  # first price: the reference, no return yet
    assert not vol.update(S // 2, 150.0)  # inside the sampling interval: not a sample
    assert vol.update(1 * S, 101.0)  # r1 = ln(1.01): starts the average at r1^2 / 1 s
    assert vol.sigma() is None and not vol.ready
    assert vol.update(2 * S, 100.0)  # ln(100/101)^2 = r1^2, weight 1 - 0.5**1 = 0.5
    assert vol.variance() == pytest.approx(0.00009900908408750866750994302816603212912587, rel=1e-12)
    # Two seconds later: ln(1.02)^2 / 2 s, weight 1 - 0.5**2 = 0.75.
    assert vol.update(4 * S, 102.0)
    assert vol.variance() == pytest.approx(0.0001718062889586528612895153371221287840187, rel=1e-12)
    assert vol.sigma() == pytest.approx(0.01310748980387369446110535322881313594690, rel=1e-12)
    assert vol.samples == 3


def test_ewma_volatility_is_per_second_whatever_the_sampling_interval() -> None:
    # A price path with the same per-second variance sampled every 1 s and every 4 s.
    fast = EwmaVolatility(halflife_s=1e9, sample_interval_s=1.0, min_samples=1)
    slow = EwmaVolatility(halflife_s=1e9, sample_interval_s=4.0, min_samples=1)
    for vol, step in ((fast, 1), (slow, 4)):
        price = 100.0
        vol.update(0, price)
        for i in range(1, 9):
            price *= math.exp(0.001 * math.sqrt(step) * (1 if i % 2 else -1))
            vol.update(i * step * S, price)
    assert fast.variance() == pytest.approx(1e-6, rel=1e-9)
    assert slow.variance() == pytest.approx(1e-6, rel=1e-9)


def test_ewma_volatility_refuses_bad_parameters_and_ignores_bad_prices() -> None:
    with pytest.raises(ValueError):
        EwmaVolatility(halflife_s=0.0)
    with pytest.raises(ValueError):
        EwmaVolatility(halflife_s=1.0, min_samples=0)
    vol = EwmaVolatility(halflife_s=1.0, min_samples=1)
    assert not vol.update(0, 0.0)
    assert not vol.update(0, float("nan"))
    assert vol.samples == 0


def test_exponential_intensity_fit_recovers_a_known_decay() -> None:
    # Reach counts at depths 0, 1, 2, 3 are 8, 4, 2, 1 over 2 s: lambda = 4 * 2**-delta exactly,
    # so A = 4 and kappa = ln 2 (the weighted fit of a straight line through exact points).
    depths = [0.5, 0.5, 0.5, 0.5, 1.5, 1.5, 2.5, 3.0, -1.0, -math.inf]
    fit = fit_exponential_intensity(depths, observed_s=2.0, grid_points=4, quantile=1.0)
    assert fit is not None
    a, kappa = fit
    assert kappa == pytest.approx(0.6931471805599453094172321214581765680755, rel=1e-12)
    assert a == pytest.approx(4.0, rel=1e-12)


def test_exponential_intensity_fit_gives_none_without_a_decay() -> None:
    assert fit_exponential_intensity([], 1.0) is None
    assert fit_exponential_intensity([-1.0, -math.inf], 1.0) is None
    # Every observation reaches the same depth: counts are flat up to the top, too few points decay.
    assert fit_exponential_intensity([2.0, 2.0, 2.0], 1.0, grid_points=3, quantile=1.0) is None
    with pytest.raises(ValueError):
        fit_exponential_intensity([1.0], 1.0, grid_points=2)


def _intervals(est: TradeIntensity, reaches: list[tuple[float, float]], start_index: int = 0) -> None:
    """One interval per pair: mid 100 when it starts, a buy reaching ``pair[0]`` above it and a sell
    ``pair[1]`` below it (the mid moving inside the interval does not move the reference)."""
    for i, (buy, sell) in enumerate(reaches):
        t = (start_index + i) * S
        est.on_mid(t, 100.0)
        est.on_trade(t + 100, 100.0 + buy / 2, True)
        est.on_mid(t + 200, 103.0)
        est.on_trade(t + 300, 100.0 + buy, True)
        est.on_trade(t + 400, 100.0 - sell, False)
        est.on_mid(t + 500, 100.0)  # the mid the next interval starts from


def test_trade_intensity_uses_the_deepest_reach_per_interval_and_side() -> None:
    est = TradeIntensity(interval_s=1.0, window=10, min_intervals=4, grid_points=4, quantile=1.0)
    _intervals(est, [(0.5, 0.5), (0.5, 0.5), (1.5, 1.5), (2.5, 3.0)])
    assert est.estimate() is None  # the fourth interval is still open
    est.on_mid(4 * S, 100.0)  # closes it
    fit = est.estimate()
    assert fit is not None
    # The same reaches as the hand-computed fit, over 4 intervals x 2 sides x 1 s = 8 s: A = 1.
    assert fit[1] == pytest.approx(math.log(2), rel=1e-12)
    assert fit[0] == pytest.approx(1.0, rel=1e-12)
    assert est.kappa() == fit[1]


def test_trade_intensity_counts_quiet_intervals_in_the_rate_but_not_in_the_decay() -> None:
    est = TradeIntensity(interval_s=1.0, window=20, min_intervals=4, grid_points=4, quantile=1.0)
    _intervals(est, [(0.5, 0.5), (0.5, 0.5), (1.5, 1.5), (2.5, 3.0)])
    est.on_mid(8 * S, 100.0)  # intervals 4..7 had no data at all
    fit = est.estimate()
    assert est.intervals == 8
    assert fit is not None
    assert fit[1] == pytest.approx(math.log(2), rel=1e-12)
    assert fit[0] == pytest.approx(0.5, rel=1e-12)


def test_trade_intensity_window_forgets_old_intervals() -> None:
    est = TradeIntensity(interval_s=1.0, window=4, min_intervals=4, grid_points=4, quantile=1.0)
    _intervals(est, [(9.0, 9.0)] * 3)
    _intervals(est, [(0.5, 0.5), (0.5, 0.5), (1.5, 1.5), (2.5, 3.0)], start_index=3)
    est.on_mid(7 * S, 100.0)
    assert est.intervals == 4
    assert est.kappa() == pytest.approx(math.log(2), rel=1e-12)


def test_trade_intensity_ignores_trades_before_any_mid() -> None:
    est = TradeIntensity(interval_s=1.0, window=4, min_intervals=1)
    est.on_trade(0, 100.0, True)
    est.on_mid(S, 100.0)
    est.on_mid(2 * S, 100.0)
    assert est.intervals == 2
    assert est.estimate() is None
