"""Drawing primitives shared by the run report and the run comparison page.

Everything here uses matplotlib's Agg canvas through the object API (no pyplot, no global backend
switch) under one fixed style (:data:`RC`). Output is deterministic: PNGs are written without
metadata and long series are reduced for drawing by a fixed min/max envelope, so the same input
gives the same bytes. Exact ``int`` nanos become floats only here, for drawing.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import dates as mdates
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, FigureBase
from matplotlib.ticker import ScalarFormatter

from tradeloop.core import fixed

__all__ = [
    "BUY",
    "DPI",
    "EQUITY",
    "MAX_DRAW_POINTS",
    "MID",
    "NS_PER_DAY",
    "RC",
    "SELL",
    "WIDTH_IN",
    "FloatArray",
    "IntArray",
    "TimeAxis",
    "days",
    "envelope_idx",
    "floats",
    "grid",
    "legend",
    "new_figure",
    "no_data",
    "png",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_DRAW_POINTS = 4_000
"""Lines with more points than this are reduced to a min/max envelope for drawing."""

WIDTH_IN = 12.0
DPI = 100
NS_PER_DAY = 86_400 * 1_000_000_000
BUY = "#1a9850"
SELL = "#d73027"
EQUITY = "#2c5d8f"
MID = "#4d4d4d"

_LEFT = 0.075  # fractions of the width, identical for every panel so time axes line up
_RIGHT = 0.845
_TOP_IN = 0.34  # inches above the top axes (title)
_BOTTOM_IN = 0.52  # inches below the bottom axes (tick labels, x label)

RC: dict[Any, Any] = {  # keys are rcParams names (typed upstream as a Literal union)
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.formatter.useoffset": False,
    "axes.formatter.limits": (-9, 15),
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
    "date.epoch": "1970-01-01T00:00:00",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "svg.hashsalt": "tradeloop",
    "svg.fonttype": "none",
    "path.simplify": True,
}
"""The report style; use with ``matplotlib.rc_context(RC)``."""


@dataclass(frozen=True)
class TimeAxis:
    """A run's time range (engine ns), applied to every time chart so they line up."""

    lo_ns: int
    hi_ns: int

    def apply(self, ax: Axes, label: bool) -> None:
        lo, hi = days([self.lo_ns, self.hi_ns])
        if hi > lo:
            ax.set_xlim(float(lo), float(hi))
        span = self.hi_ns - self.lo_ns
        # matplotlib.dates constructors are not annotated upstream.
        locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
        fmt = "%H:%M:%S" if span < NS_PER_DAY else "%m-%d %H:%M"
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=UTC))  # type: ignore[no-untyped-call]
        if label:
            ax.set_xlabel("time (UTC)")


def days(ts: Sequence[int]) -> FloatArray:
    """Engine ns -> matplotlib date numbers (days since 1970-01-01, set via ``date.epoch``)."""
    return np.asarray(ts, dtype=np.float64) / NS_PER_DAY


def floats(values: Sequence[int | None]) -> FloatArray:
    """Nanos (``None`` for a gap) -> float units for drawing, ``NaN`` for gaps."""
    return np.array([math.nan if v is None else fixed.to_float(v) for v in values], dtype=np.float64)


def envelope_idx(y: FloatArray, max_points: int = MAX_DRAW_POINTS) -> IntArray:
    """Indices keeping, per bucket, the min and max of ``y`` (and first/last); all if short enough.

    A bucket with no finite value keeps one index so gaps (NaN) still break the line.
    """
    n = len(y)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep: set[int] = {0, n - 1}
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        if b <= a:
            continue
        seg = y[a:b]
        finite = np.isfinite(seg)
        if not finite.any():
            keep.add(a)
            continue
        if not finite.all():
            keep.add(a + int(np.argmin(finite)))  # first gap in the bucket
        keep.add(a + int(np.nanargmin(seg)))
        keep.add(a + int(np.nanargmax(seg)))
    return np.array(sorted(keep), dtype=np.int64)


def no_data(ax: Axes, text: str) -> None:
    """Write ``text`` in the middle of an empty chart."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


class _GroupedFormatter(ScalarFormatter):
    """Plain tick labels (no offset, no scientific notation) with thousands separators."""

    def __init__(self) -> None:
        super().__init__(useOffset=False)
        self.set_scientific(False)

    def __call__(self, x: float, pos: int | None = None) -> str:
        text = super().__call__(x, pos)
        return _LEADING_INT.sub(lambda m: f"{m.group(1)}{int(m.group(2)):,}", text, count=1)


_LEADING_INT = re.compile(r"^([^\d]*)(\d{4,})")


def grid(
    fig: FigureBase, height_in: float, nrows: int, ratios: Sequence[float] | None = None, gap_in: float = 0.42
) -> list[Axes]:
    """``nrows`` stacked axes sharing x, with margins fixed in inches.

    Every panel uses the same left/right fractions, so the time axes of all charts line up when the
    images are stacked in a page; legends go in the right margin, off the data.
    """
    ratios = list(ratios) if ratios is not None else [1.0] * nrows
    top = 1.0 - _TOP_IN / height_in
    bottom = _BOTTOM_IN / height_in
    avail = height_in * (top - bottom)
    mean_h = max(0.2, (avail - gap_in * (nrows - 1)) / nrows)
    axes = fig.subplots(
        nrows,
        1,
        sharex=True,
        squeeze=False,
        gridspec_kw={
            "left": _LEFT,
            "right": _RIGHT,
            "top": top,
            "bottom": bottom,
            "hspace": gap_in / mean_h,
            "height_ratios": ratios,
        },
    )[:, 0]
    for ax in axes:
        ax.yaxis.set_major_formatter(_GroupedFormatter())
    return list(axes)


def legend(ax: Axes, handles: Sequence[Artist] | None = None) -> None:
    """A legend in the right margin, top-aligned with the axes."""
    kwargs: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}
    if handles is not None:
        kwargs["handles"] = list(handles)
    ax.legend(**kwargs)


def new_figure(height_in: float) -> Figure:
    """A report-width figure on its own Agg canvas (call under ``rc_context(RC)``)."""
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without metadata (so the bytes depend only on the drawing)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()
