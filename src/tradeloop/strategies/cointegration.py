"""Engle-Granger cointegration test of a pair: a thin, pure wrapper over ``statsmodels``.

:func:`engle_granger` regresses ``y`` on ``x`` (with a constant) and runs an augmented Dickey-Fuller
test on the residuals, with MacKinnon's p-values for the cointegration case
(``statsmodels.tsa.stattools.coint``). A small p-value rejects "no cointegration": the pair's
spread is mean-reverting over the sample. Series that cannot be tested (a constant one) come back
with ``p_value = 1.0`` and a ``note``, so a gate built on the p-value stays closed for them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from statsmodels.tsa.stattools import coint

__all__ = ["MIN_OBSERVATIONS", "CointegrationResult", "engle_granger"]

MIN_OBSERVATIONS = 20
"""Fewer points than this give no meaningful test; :func:`engle_granger` refuses them."""


@dataclass(frozen=True, slots=True)
class CointegrationResult:
    """Test statistic (more negative = stronger evidence), its p-value and the 1/5/10 % critical values."""

    t_stat: float
    p_value: float
    critical_values: tuple[float, float, float]
    note: str = ""
    """Why the test could not be run (empty when it ran)."""

    def cointegrated(self, threshold: float) -> bool:
        """True when the p-value is below ``threshold`` (e.g. 0.05)."""
        return self.p_value < threshold


def engle_granger(
    y: Sequence[float] | np.ndarray,
    x: Sequence[float] | np.ndarray,
    *,
    trend: Literal["c", "ct"] = "c",
    maxlag: int | None = None,
    autolag: Literal["aic", "bic", "t-stat"] | None = "aic",
) -> CointegrationResult:
    """Engle-Granger test of ``y`` against ``x`` (same length, at least :data:`MIN_OBSERVATIONS`).

    ``trend`` is the deterministic part of the cointegrating regression (``"c"`` constant, ``"ct"``
    constant and trend); ``maxlag`` / ``autolag`` choose the ADF lag length as in statsmodels.
    Raises ``ValueError`` for mismatched, too short or non-finite input.
    """
    ya = np.asarray(y, dtype=np.float64)
    xa = np.asarray(x, dtype=np.float64)
    if ya.ndim != 1 or ya.shape != xa.shape:
        raise ValueError("y and x must be one-dimensional and of the same length")
    if ya.size < MIN_OBSERVATIONS:
        raise ValueError(f"a cointegration test needs at least {MIN_OBSERVATIONS} observations, got {ya.size}")
    if not (np.all(np.isfinite(ya)) and np.all(np.isfinite(xa))):
        raise ValueError("y and x must be finite")
    if np.ptp(ya) == 0.0 or np.ptp(xa) == 0.0:
        return CointegrationResult(math.nan, 1.0, (math.nan, math.nan, math.nan), note="constant series")
    with warnings.catch_warnings():
        # Perfectly collinear inputs make statsmodels warn and report t = -inf, p = 0: the spread is
        # identically zero, which the z-score stage then refuses (no deviation to trade).
        warnings.simplefilter("ignore")
        t_stat, p_value, crit = coint(ya, xa, trend=trend, maxlag=maxlag, autolag=autolag)
    c = [float(v) for v in crit]
    return CointegrationResult(float(t_stat), float(p_value), (c[0], c[1], c[2]))
