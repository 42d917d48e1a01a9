"""The Engle-Granger gate: refuses independent random walks, accepts a cointegrated pair, and its
statistic equals a Dickey-Fuller regression on the OLS residuals computed here with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.strategies.cointegration import MIN_OBSERVATIONS, engle_granger


def random_walk(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.cumsum(rng.normal(0.0, 1.0, n))


def cointegrated_pair(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = random_walk(rng, n)
    noise = np.zeros(n)
    shocks = rng.normal(0.0, 1.0, n)
    for i in range(1, n):
        noise[i] = 0.6 * noise[i - 1] + shocks[i]  # stationary AR(1) spread
    return 1.0 + 2.0 * x + noise, x


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_gate_refuses_independent_random_walks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, x = random_walk(rng, 300), random_walk(rng, 300)
    result = engle_granger(y, x)
    assert not result.cointegrated(0.05), result
    assert result.p_value > 0.05


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_gate_accepts_a_cointegrated_pair(seed: int) -> None:
    y, x = cointegrated_pair(np.random.default_rng(seed), 300)
    result = engle_granger(y, x)
    assert result.cointegrated(0.01), result
    assert result.t_stat < result.critical_values[0]  # beyond the 1 % critical value


def test_statistic_is_dickey_fuller_on_ols_residuals() -> None:
    y, x = cointegrated_pair(np.random.default_rng(9), 200)
    # Step 1: OLS of y on (1, x). Step 2: delta e_t = rho e_{t-1} + u_t (no constant, no lags); t of rho.
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    e = y - design @ coef
    de, lag = np.diff(e), e[:-1]
    rho = float(lag @ de) / float(lag @ lag)
    u = de - rho * lag
    se = np.sqrt(float(u @ u) / (len(de) - 1) / float(lag @ lag))
    result = engle_granger(y, x, maxlag=0, autolag=None)
    assert result.t_stat == pytest.approx(rho / se, rel=1e-9)
    assert result.note == ""


def test_untestable_and_bad_input() -> None:
    x = random_walk(np.random.default_rng(0), 50)
    flat = engle_granger(np.full(50, 3.0), x)
    assert flat.p_value == 1.0 and flat.note == "constant series"
    assert not flat.cointegrated(0.05)
    with pytest.raises(ValueError, match="at least"):
        engle_granger(x[: MIN_OBSERVATIONS - 1], x[: MIN_OBSERVATIONS - 1])
    with pytest.raises(ValueError, match="same length"):
        engle_granger(x, x[:-1])
    bad = x.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="finite"):
        engle_granger(bad, x)
