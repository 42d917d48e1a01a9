"""Hedge ratio estimators: rolling OLS against numpy.linalg.lstsq and hand values, the Kalman filter
against a filter stepped by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradeloop.strategies.hedge_ratio import KalmanHedge, RollingOLS, ols_fit


def lstsq_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    design = np.column_stack([np.ones_like(x), x])
    (alpha, beta), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(alpha), float(beta)


def test_ols_fit_hand_values() -> None:
    # mean x 2.5, mean y 5, Sxy 9.5, Sxx 5 -> beta 1.9, alpha 0.25; residuals -0.15, 0.45, -0.45, 0.15.
    fit = ols_fit(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.5, 5.5, 8.0]))
    assert fit is not None
    assert fit.beta == pytest.approx(1.9)
    assert fit.alpha == pytest.approx(0.25)
    assert fit.resid_std == pytest.approx(math.sqrt(0.1125))


def test_ols_fit_matches_lstsq_on_log_prices() -> None:
    rng = np.random.default_rng(11)
    x = 11.0 + np.cumsum(rng.normal(0, 1e-4, 500))  # log BTC prices: large level, tiny moves
    y = 0.3 + 0.97 * x + rng.normal(0, 2e-5, 500)
    fit = ols_fit(x, y)
    alpha, beta = lstsq_fit(x - x[0], y)  # lstsq on shifted x (well conditioned); same slope
    assert fit is not None
    assert fit.beta == pytest.approx(beta, rel=1e-9)
    assert fit.alpha == pytest.approx(alpha - beta * x[0], rel=1e-9)


def test_ols_fit_refuses_constant_regressor_and_bad_shapes() -> None:
    assert ols_fit(np.full(10, 11.2), np.arange(10.0)) is None
    with pytest.raises(ValueError):
        ols_fit(np.arange(3.0), np.arange(4.0))


def test_rolling_ols_hand_window() -> None:
    ols = RollingOLS(window=4)
    assert ols.update(1.0, 2.0) is None
    assert ols.update(2.0, 4.5) is None
    assert ols.update(3.0, 5.5) is None
    est = ols.update(4.0, 8.0)
    assert est is not None and est.zscore is not None
    assert est.beta == pytest.approx(1.9)
    assert est.alpha == pytest.approx(0.25)
    assert est.spread == pytest.approx(0.15)
    assert est.zscore == pytest.approx(0.15 / math.sqrt(0.1125))  # = 1/sqrt(5)


def test_rolling_ols_uses_only_the_last_window() -> None:
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(0, 1, 200))
    y = 2.0 + 0.5 * x + rng.normal(0, 0.3, 200)
    y[150:] += 0.8 * x[150:]  # the relation changes: the window must forget the old one
    window = 40
    ols = RollingOLS(window)
    for i in range(200):
        est = ols.update(float(x[i]), float(y[i]))
        if i < window - 1:
            assert est is None
            continue
        assert est is not None
        xs, ys = x[i - window + 1 : i + 1], y[i - window + 1 : i + 1]
        alpha, beta = lstsq_fit(xs, ys)
        assert est.beta == pytest.approx(beta, rel=1e-9, abs=1e-12)
        assert est.alpha == pytest.approx(alpha, rel=1e-9, abs=1e-12)
        resid = ys - alpha - beta * xs
        assert est.spread == pytest.approx(resid[-1], abs=1e-9)
        assert est.zscore == pytest.approx(resid[-1] / resid.std(), rel=1e-7)
    assert est is not None and est.beta == pytest.approx(1.3, abs=0.1)


def test_rolling_ols_flat_spread_has_no_zscore() -> None:
    ols = RollingOLS(5)
    est = None
    for i in range(5):
        est = ols.update(float(i), 1.0 + 2.0 * i)
    assert est is not None and est.beta == pytest.approx(2.0)
    assert est.zscore is None


def test_rolling_ols_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        RollingOLS(2)
    with pytest.raises(ValueError):
        RollingOLS(5).update(float("nan"), 1.0)


def test_kalman_two_steps_by_hand() -> None:
    # delta 0.5 -> state noise 1 per step; obs_var 1; prior beta 0, alpha 0, covariance I.
    kf = KalmanHedge(delta=0.5, obs_var=1.0, initial_beta=0.0, initial_var=1.0, warmup=0)
    # Step 1 (x=1, y=2): prior cov 2I, forecast 0, error 2, Q = 4 + 1 = 5, gain (0.4, 0.4).
    est = kf.update(1.0, 2.0)
    assert est is not None
    assert est.spread == pytest.approx(2.0)
    assert est.zscore == pytest.approx(2.0 / math.sqrt(5.0))
    assert (est.beta, est.alpha) == (pytest.approx(0.8), pytest.approx(0.8))
    np.testing.assert_allclose(kf.cov, [[1.2, -0.8], [-0.8, 1.2]])
    # Step 2 (x=2, y=1): prior cov [[2.2,-0.8],[-0.8,2.2]], P h = (3.6, 0.6), Q = 7.8 + 1 = 8.8,
    # forecast 2.4, error -1.4, gain (9/22, 3/44) -> beta 5/22, alpha 31/44.
    est = kf.update(2.0, 1.0)
    assert est is not None
    assert est.spread == pytest.approx(-1.4)
    assert est.zscore == pytest.approx(-1.4 / math.sqrt(8.8))
    assert est.beta == pytest.approx(5 / 22)
    assert est.alpha == pytest.approx(31 / 44)
    gain = np.array([9 / 22, 3 / 44])
    expected_cov = np.array([[2.2, -0.8], [-0.8, 2.2]]) - np.outer(gain, [3.6, 0.6])
    np.testing.assert_allclose(kf.cov, expected_cov)


def test_kalman_warmup_and_reset() -> None:
    kf = KalmanHedge(delta=0.5, obs_var=1.0, initial_beta=0.0, warmup=2)
    assert kf.update(1.0, 2.0) is None
    assert kf.update(2.0, 1.0) is None
    assert kf.update(3.0, 3.0) is not None
    kf.reset()
    assert list(kf.theta) == [0.0, 0.0]
    assert kf.update(1.0, 2.0) is None


def test_kalman_tracks_the_hedge_ratio_of_a_cointegrated_pair() -> None:
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(0, 1e-3, 2000))  # log price relative to its start
    y = 2e-4 + 1.5 * x + rng.normal(0, 1e-4, 2000)
    kf = KalmanHedge(delta=1e-9, obs_var=1e-8, initial_beta=1.0, warmup=10)
    zs = []
    est = None
    for xi, yi in zip(x, y, strict=True):
        est = kf.update(float(xi), float(yi))
        if est is not None and est.zscore is not None:
            zs.append(est.zscore)
    assert est is not None
    assert est.beta == pytest.approx(1.5, abs=0.02)
    assert est.alpha == pytest.approx(2e-4, abs=1e-4)
    # Forecast errors over their predicted deviation are close to unit variance once it has converged.
    assert 0.8 < float(np.std(zs[500:])) < 1.2


def test_kalman_rejects_bad_parameters() -> None:
    for kwargs in ({"delta": 0.0}, {"delta": 1.0}, {"obs_var": 0.0}, {"initial_var": -1.0}, {"warmup": -1}):
        with pytest.raises(ValueError):
            KalmanHedge(**kwargs)  # type: ignore[arg-type]
