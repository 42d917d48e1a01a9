"""Hedge ratio estimators for a pair: rolling OLS and a Kalman filter (pure float signal math).

Both regress ``y`` on ``x`` with an intercept, ``y = alpha + beta * x + e``, and report the spread
``y - alpha - beta * x`` with its z-score:

* :class:`RollingOLS` fits ``alpha`` and ``beta`` by least squares over the last ``window`` points
  (numpy on a fixed-size ring buffer, centred sums, so nothing drifts and nothing cancels
  catastrophically). The spread is the latest in-window residual and its z-score is that residual
  over the population standard deviation (``ddof=0``) of the window's residuals (their mean is
  zero by construction of OLS with an intercept).
* :class:`KalmanHedge` treats ``(beta, alpha)`` as a random walk observed through
  ``y_t = beta_t * x_t + alpha_t + e_t`` (the formulation of E. Chan, *Algorithmic Trading*, ch. 3):
  state noise covariance ``delta / (1 - delta) * I``, observation noise variance ``obs_var``. The
  spread is the one-step forecast error ``e_t = y_t - (beta_{t|t-1} x_t + alpha_{t|t-1})`` and its
  z-score is ``e_t / sqrt(Q_t)`` with ``Q_t`` the forecast variance.

Inputs are expected to be log prices relative to a fixed anchor (``log(p / p0)``): raw log prices
of BTC are all close to 11, which makes slope and intercept nearly collinear for the filter (OLS is
unaffected by the shift, only its intercept moves).

Floats are fine here: these numbers are signals. Order sizes derived from them go through
``fixed.from_float_for_signal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["HedgeModel", "KalmanHedge", "OlsFit", "RollingOLS", "SpreadEstimate", "ols_fit"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OlsFit:
    """Least-squares fit of ``y = alpha + beta * x``; ``resid_std`` is the residuals' ``ddof=0`` deviation."""

    alpha: float
    beta: float
    resid_std: float


@dataclass(frozen=True, slots=True)
class SpreadEstimate:
    """Hedge ratio, intercept, spread and z-score after one observation.

    ``zscore`` is ``None`` when the spread has no spread of its own to compare with (all residuals
    zero), which a strategy must treat as "no signal".
    """

    alpha: float
    beta: float
    spread: float
    zscore: float | None


class HedgeModel(Protocol):
    """What the strategy needs from an estimator."""

    def update(self, x: float, y: float) -> SpreadEstimate | None:
        """Add one observation; ``None`` while the estimator has too little data."""
        ...

    def reset(self) -> None:
        """Forget every observation."""
        ...


def ols_fit(x: FloatArray, y: FloatArray) -> OlsFit | None:
    """Ordinary least squares of ``y`` on ``x`` with an intercept; ``None`` if ``x`` is constant."""
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and y must be one-dimensional and of the same length")
    if x.size < 2:
        return None
    mx = float(x.mean())
    my = float(y.mean())
    dx = x - mx
    sxx = float(dx @ dx)
    # A constant (or numerically constant) regressor has no slope to estimate.
    if sxx <= 1e-300 or sxx <= (abs(mx) * 1e-12) ** 2 * x.size:
        return None
    beta = float(dx @ (y - my)) / sxx
    alpha = my - beta * mx
    resid = y - alpha - beta * x
    return OlsFit(alpha=alpha, beta=beta, resid_std=float(np.sqrt(np.mean(resid * resid))))


class RollingOLS:
    """OLS with intercept over the last ``window`` observations (see the module docstring)."""

    def __init__(self, window: int) -> None:
        if window < 3:
            raise ValueError("the OLS window needs at least 3 observations")
        self.window = window
        self._x: FloatArray = np.zeros(window)
        self._y: FloatArray = np.zeros(window)
        self._count = 0

    @property
    def ready(self) -> bool:
        """True once the window is full."""
        return self._count >= self.window

    def reset(self) -> None:
        self._count = 0

    def update(self, x: float, y: float) -> SpreadEstimate | None:
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"non-finite observation x={x!r} y={y!r}")
        i = self._count % self.window
        self._x[i] = x
        self._y[i] = y
        self._count += 1
        if self._count < self.window:
            return None
        # Chronological order does not matter for the fit; only the latest residual is singled out.
        fit = ols_fit(self._x, self._y)
        if fit is None:
            return None
        spread = y - fit.alpha - fit.beta * x
        z = spread / fit.resid_std if fit.resid_std > 0 else None
        return SpreadEstimate(alpha=fit.alpha, beta=fit.beta, spread=spread, zscore=z)


class KalmanHedge:
    """Kalman filter on ``(beta, alpha)`` (see the module docstring).

    ``delta`` sets how fast the hedge ratio may wander (state noise ``delta / (1 - delta)`` per
    step on both beta and alpha); ``obs_var`` is the variance of the spread around the fit, in the
    units of ``y`` squared (for log prices, ``(1e-4)**2`` is a 1 bp spread noise). The prior is
    ``beta = initial_beta``, ``alpha = 0`` with covariance ``initial_var * I``. The first
    ``warmup`` updates only train the filter and return ``None``.
    """

    def __init__(
        self,
        delta: float = 1e-10,
        obs_var: float = 1e-8,
        *,
        initial_beta: float = 1.0,
        initial_var: float = 1.0,
        warmup: int = 30,
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError("kalman delta must be in (0, 1)")
        if obs_var <= 0.0 or initial_var <= 0.0:
            raise ValueError("kalman obs_var and initial_var must be positive")
        if warmup < 0:
            raise ValueError("kalman warmup must not be negative")
        self.delta = delta
        self.obs_var = obs_var
        self.initial_beta = initial_beta
        self.initial_var = initial_var
        self.warmup = warmup
        self._state_noise = delta / (1.0 - delta)
        self.reset()

    def reset(self) -> None:
        self.theta: FloatArray = np.array([self.initial_beta, 0.0])
        """Current estimate of ``(beta, alpha)``."""
        self.cov: FloatArray = np.eye(2) * self.initial_var
        """Covariance of ``theta``."""
        self._count = 0

    def update(self, x: float, y: float) -> SpreadEstimate | None:
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"non-finite observation x={x!r} y={y!r}")
        h = np.array([x, 1.0])
        prior_cov = self.cov + self._state_noise * np.eye(2)
        forecast = float(h @ self.theta)
        error = y - forecast
        q = float(h @ prior_cov @ h) + self.obs_var
        gain = prior_cov @ h / q
        self.theta = self.theta + gain * error
        self.cov = prior_cov - np.outer(gain, h @ prior_cov)
        self._count += 1
        if self._count <= self.warmup:
            return None
        return SpreadEstimate(
            alpha=float(self.theta[1]), beta=float(self.theta[0]), spread=error, zscore=error / math.sqrt(q)
        )
