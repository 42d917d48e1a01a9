"""The HTML run report written after a backtest.

:func:`write_html_report` produces one self-contained HTML file: the summary tables, then one
chart per panel embedded as a base64 PNG (no scripts, stylesheets or fonts fetched from anywhere):

* **Equity** with its running peak, the drawdown shaded, and a drawdown (% of peak) sub-panel;
* **Inventory**: signed position per instrument;
* **Price and fills** per instrument: the mid price, our quotes as faint lines when recorded, buys
  as green up-triangles and sells as red down-triangles with marker area growing with quantity
  (filled = maker, hollow = taker);
* one panel per strategy-specific series (``RunSeries.extra_panels``) when present.

Charts are drawn with matplotlib's Agg canvas through the object API (no pyplot, no global backend
switch). Output is deterministic: no wall-clock stamps, no random ids, PNGs written without
metadata, so two reports of the same run are byte-identical. Prices and quantities are converted
to float only here, for drawing. Long series are reduced for drawing with a min/max envelope that
keeps spikes; very many fills are aggregated into time bins (VWAP, total quantity).
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import dates as mdates
from matplotlib import rc_context
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D
from matplotlib.ticker import ScalarFormatter

from tradeloop.core import fixed
from tradeloop.model.enums import LiquiditySide, Side
from tradeloop.runtime.results import FillPoint, RunSeries, RunSummary
from tradeloop.runtime.summary import (
    format_bps,
    format_duration,
    format_money,
    format_qty,
    format_ts,
    summary_rows,
)

__all__ = ["MAX_DRAW_POINTS", "MAX_FILL_MARKERS", "render_panels", "write_html_report", "write_png_charts"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_DRAW_POINTS = 4_000
"""Lines with more points than this are reduced to a min/max envelope for drawing."""
MAX_FILL_MARKERS = 3_000
"""Instruments with more fills than this have them aggregated into time bins for drawing."""

_WIDTH_IN = 12.0
_LEFT = 0.075  # fractions of the width, identical for every panel so time axes line up
_RIGHT = 0.845
_TOP_IN = 0.34  # inches above the top axes (title)
_BOTTOM_IN = 0.52  # inches below the bottom axes (tick labels, x label)
_DPI = 100
_NS_PER_DAY = 86_400 * 1_000_000_000
_BUY = "#1a9850"
_SELL = "#d73027"
_EQUITY = "#2c5d8f"
_MID = "#4d4d4d"

_RC: dict[Any, Any] = {  # keys are rcParams names (typed upstream as a Literal union)
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


# -- panels ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Panel:
    key: str
    title: str
    height_in: float
    draw: Callable[[FigureBase, float], None]
    """Draws the panel into a (sub)figure of the given height in inches."""


@dataclass(frozen=True)
class _TimeAxis:
    lo_ns: int
    hi_ns: int

    def apply(self, ax: Axes, label: bool) -> None:
        lo, hi = _days([self.lo_ns, self.hi_ns])
        if hi > lo:
            ax.set_xlim(float(lo), float(hi))
        span = self.hi_ns - self.lo_ns
        # matplotlib.dates constructors are not annotated upstream.
        locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
        fmt = "%H:%M:%S" if span < _NS_PER_DAY else "%m-%d %H:%M"
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=UTC))  # type: ignore[no-untyped-call]
        if label:
            ax.set_xlabel("time (UTC)")


def _days(ts: Sequence[int]) -> FloatArray:
    """Engine ns -> matplotlib date numbers (days since 1970-01-01, set via ``date.epoch``)."""
    return np.asarray(ts, dtype=np.float64) / _NS_PER_DAY


def _floats(values: Sequence[int | None]) -> FloatArray:
    return np.array([math.nan if v is None else fixed.to_float(v) for v in values], dtype=np.float64)


def _envelope_idx(y: FloatArray, max_points: int = MAX_DRAW_POINTS) -> IntArray:
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


def _no_data(ax: Axes, text: str) -> None:
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


def _grid(
    fig: FigureBase, height_in: float, nrows: int, ratios: Sequence[float] | None = None, gap_in: float = 0.42
) -> list[Axes]:
    """``nrows`` stacked axes sharing x, with margins fixed in inches.

    Every panel uses the same left/right fractions, so the time axes of all charts line up when the
    images are stacked in the report; legends go in the right margin, off the data.
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


def _legend(ax: Axes, handles: Sequence[Artist] | None = None) -> None:
    kwargs: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}
    if handles is not None:
        kwargs["handles"] = list(handles)
    ax.legend(**kwargs)


def _ccy_label(summary: RunSummary) -> str:
    return summary.quote_currency or "quote"


def _time_axis(summary: RunSummary, series: RunSeries) -> _TimeAxis:
    """The run's time range, shared by every chart so they line up."""
    if summary.end_ts > summary.start_ts:
        return _TimeAxis(summary.start_ts, summary.end_ts)
    candidates = [summary.start_ts, summary.end_ts, *series.ts[:1], *series.ts[-1:]]
    candidates += [f.ts for f in series.fills[:1]] + [f.ts for f in series.fills[-1:]]
    return _TimeAxis(min(candidates), max(candidates))


def _draw_equity(fig: FigureBase, height_in: float, summary: RunSummary, series: RunSeries, taxis: _TimeAxis) -> None:
    ax, ax_dd = _grid(fig, height_in, 2, ratios=[3, 1], gap_in=0.12)
    ccy = _ccy_label(summary)
    dd_text = f"{format_money(summary.max_drawdown)} {ccy} ({format_bps(summary.max_drawdown_bps)})"
    ax.set_title(f"Equity: total PnL {format_money(summary.total_pnl)} {ccy}, max drawdown {dd_text}")
    ax.set_ylabel(f"equity ({ccy})")
    ax_dd.set_ylabel("drawdown (%)")
    taxis.apply(ax, label=False)
    taxis.apply(ax_dd, label=True)
    if not series.ts:
        _no_data(ax, "no samples recorded")
        return
    eq = _floats(series.equity)
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd_pct = np.where(peak > 0, (eq - peak) / peak * 100.0, 0.0)
    idx = np.union1d(_envelope_idx(eq), _envelope_idx(dd_pct))
    x = _days(series.ts)[idx]
    eq_d, peak_d, dd_d = eq[idx], peak[idx], dd_pct[idx]
    ax.plot(x, eq_d, color=_EQUITY, lw=1.3, label="equity")
    ax.plot(x, peak_d, color="0.45", lw=0.8, ls="--", label="running peak")
    ax.fill_between(x, eq_d, peak_d, where=eq_d < peak_d, color=_SELL, alpha=0.18, lw=0, label="drawdown")
    abs_dd = peak - eq
    if abs_dd.size and float(abs_dd.max()) > 0:
        i = int(np.argmax(abs_dd))
        ax.plot([_days([series.ts[i]])[0]], [eq[i]], "o", color=_SELL, ms=5, label="deepest drawdown")
    _legend(ax)
    ax_dd.fill_between(x, dd_d, 0.0, color=_SELL, alpha=0.35, lw=0)
    ax_dd.plot(x, dd_d, color=_SELL, lw=0.7)
    lo = float(np.nanmin(dd_d)) if dd_d.size else 0.0
    ax_dd.set_ylim(min(lo * 1.1, -0.01), 0.0)


def _draw_inventory(
    fig: FigureBase, height_in: float, series: RunSeries, instruments: list[str], taxis: _TimeAxis
) -> None:
    axes = _grid(fig, height_in, len(instruments))
    x_all = _days(series.ts)
    for n, (ax, inst) in enumerate(zip(axes, instruments, strict=True)):
        ax.set_title(f"Inventory: {inst}")
        ax.set_ylabel("position (base)")
        taxis.apply(ax, label=n == len(instruments) - 1)
        q = _floats(series.inventory[inst])
        if not q.size:
            _no_data(ax, "no samples recorded")
            continue
        idx = _envelope_idx(q)
        x, qd = x_all[idx], q[idx]
        ax.step(x, qd, where="post", color="0.2", lw=0.9)
        ax.fill_between(x, qd, 0.0, where=qd > 0, step="post", color=_BUY, alpha=0.3, lw=0, label="long")
        ax.fill_between(x, qd, 0.0, where=qd < 0, step="post", color=_SELL, alpha=0.3, lw=0, label="short")
        ax.axhline(0.0, color="black", lw=0.6)
        lim = float(np.nanmax(np.abs(qd))) if np.isfinite(qd).any() else 0.0
        if lim > 0:
            ax.set_ylim(-lim * 1.15, lim * 1.15)
        _legend(ax)


@dataclass(frozen=True)
class _Marker:
    ts: int
    price: int
    qty: int


def _fill_markers(
    fills: list[FillPoint], lo_ns: int, hi_ns: int, max_markers: int
) -> tuple[dict[str, list[_Marker]], bool]:
    """Fills grouped by ``side/liquidity``; aggregated into time bins (VWAP, summed qty) if too many."""
    groups: dict[str, list[_Marker]] = {}
    if len(fills) <= max_markers:
        for f in fills:
            groups.setdefault(f"{f.side}/{f.liquidity}", []).append(_Marker(f.ts, f.price, f.qty))
        return groups, False
    bins = max(1, max_markers // 4)
    width = max(1, -(-(hi_ns - lo_ns + 1) // bins))
    acc: dict[tuple[str, int], list[int]] = {}  # (group, bin) -> [sum qty, sum price*qty, sum ts*qty]
    for f in fills:
        key = (f"{f.side}/{f.liquidity}", (f.ts - lo_ns) // width)
        a = acc.setdefault(key, [0, 0, 0])
        a[0] += f.qty
        a[1] += f.price * f.qty
        a[2] += f.ts * f.qty
    for (group, _), (q, pq, tq) in sorted(acc.items()):
        if q > 0:
            groups.setdefault(group, []).append(_Marker(tq // q, fixed.div_round(pq, q), q))
    return groups, True


def _invalid_spans(ts: Sequence[int], mids: Sequence[int | None]) -> list[tuple[int, int]]:
    """``(start, end)`` engine-time spans where the mid was ``None`` (book invalid), up to the next valid sample."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for t, m in zip(ts, mids, strict=True):
        if m is None and start is None:
            start = t
        elif m is not None and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, ts[-1]))
    return spans


def _shade_invalid(ax: Axes, ts: Sequence[int], mids: Sequence[int | None]) -> None:
    for n, (a, b) in enumerate(_invalid_spans(ts, mids)):
        lo, hi = _days([a, b])
        ax.axvspan(float(lo), float(hi), color="0.55", alpha=0.2, lw=0, label="book invalid" if n == 0 else None)


def _draw_price(
    fig: FigureBase, height_in: float, summary: RunSummary, series: RunSeries, inst: str, taxis: _TimeAxis
) -> None:
    (ax,) = _grid(fig, height_in, 1)
    ccy = _ccy_label(summary)
    ax.set_ylabel(f"price ({ccy})")
    taxis.apply(ax, label=True)
    fills = [f for f in series.fills if f.instrument == inst]
    n_buy = sum(1 for f in fills if f.side is Side.BUY)
    title = f"Price and fills: {inst}  ({n_buy:,} buys, {len(fills) - n_buy:,} sells"
    drew = False
    mids = series.mid.get(inst)
    if mids:
        m = _floats(mids)
        if np.isfinite(m).any():
            idx = _envelope_idx(m)
            ax.plot(_days(series.ts)[idx], m[idx], color=_MID, lw=0.9, label="mid", zorder=2)
            drew = True
    if mids:
        _shade_invalid(ax, series.ts, mids)
    quotes = series.quotes.get(inst)
    if quotes:
        qx = _days([q[0] for q in quotes])
        for pos, color, label in ((1, _BUY, "our bid"), (2, _SELL, "our ask")):
            y = _floats([q[pos] for q in quotes])
            if np.isfinite(y).any():
                idx = _envelope_idx(y)
                ax.step(qx[idx], y[idx], where="post", color=color, lw=0.8, alpha=0.45, label=label, zorder=1)
                drew = True
    groups, aggregated = _fill_markers(fills, taxis.lo_ns, taxis.hi_ns, MAX_FILL_MARKERS)
    max_qty = max((mk.qty for g in groups.values() for mk in g), default=0)
    handles: list[Line2D] = []
    for side, marker, color in ((Side.BUY, "^", _BUY), (Side.SELL, "v", _SELL)):
        for liq in (LiquiditySide.MAKER, LiquiditySide.TAKER):
            pts = groups.get(f"{side}/{liq}")
            if not pts:
                continue
            x = _days([p.ts for p in pts])
            y = _floats([p.price for p in pts])
            rel = np.sqrt(np.array([p.qty for p in pts], dtype=np.float64) / max_qty) if max_qty > 0 else 1.0
            sizes = 12.0 + 110.0 * rel
            face = color if liq is LiquiditySide.MAKER else "none"
            ax.scatter(
                x, y, s=sizes, marker=marker, facecolors=face, edgecolors=color, linewidths=0.9, alpha=0.85, zorder=3
            )
            label = f"{side.value.lower()} ({liq.value.lower()})"
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="none",
                    marker=marker,
                    markersize=7,
                    markerfacecolor=face,
                    markeredgecolor=color,
                    color=color,
                    label=label,
                )
            )
            drew = True
    title += "; marker area ~ qty, filled = maker, hollow = taker"
    if aggregated:
        title += "; fills aggregated per time bin at VWAP"
    ax.set_title(title + ")")
    if not drew:
        _no_data(ax, "no price or fills recorded")
        return
    line_handles, _ = ax.get_legend_handles_labels()
    _legend(ax, [*line_handles, *handles])


def _draw_extras(fig: FigureBase, height_in: float, series: RunSeries, names: list[str], taxis: _TimeAxis) -> None:
    axes = _grid(fig, height_in, len(names))
    for n, (ax, name) in enumerate(zip(axes, names, strict=True)):
        points = series.extra_panels[name]
        ax.set_title(name)
        ax.set_ylabel(name)
        taxis.apply(ax, label=n == len(names) - 1)
        y = np.array([v for _, v in points], dtype=np.float64)
        idx = _envelope_idx(y)
        ax.plot(_days([t for t, _ in points])[idx], y[idx], color="#7b3294", lw=0.9)
        finite = y[np.isfinite(y)]
        if finite.size and float(finite.min()) < 0 < float(finite.max()):
            ax.axhline(0.0, color="black", lw=0.6)


def _price_panel(summary: RunSummary, series: RunSeries, inst: str, taxis: _TimeAxis) -> _Panel:
    return _Panel(
        f"price:{inst}",
        f"Price and fills: {inst}",
        4.2,
        lambda fig, h: _draw_price(fig, h, summary, series, inst, taxis),
    )


def _panels(summary: RunSummary, series: RunSeries) -> list[_Panel]:
    taxis = _time_axis(summary, series)
    panels = [_Panel("equity", "Equity", 4.6, lambda fig, h: _draw_equity(fig, h, summary, series, taxis))]
    inv = sorted(series.inventory)
    if inv:
        panels.append(
            _Panel(
                "inventory",
                "Inventory",
                0.6 + 1.9 * len(inv),
                lambda fig, h: _draw_inventory(fig, h, series, inv, taxis),
            )
        )
    for inst in series.instruments():
        panels.append(_price_panel(summary, series, inst, taxis))
    extras = [name for name, pts in series.extra_panels.items() if pts]
    if extras:
        height = 0.6 + 1.8 * len(extras)
        panels.append(
            _Panel("extras", "Strategy series", height, lambda fig, h: _draw_extras(fig, h, series, extras, taxis))
        )
    return panels


# -- rendering ------------------------------------------------------------------------------------


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def render_panels(summary: RunSummary, series: RunSeries) -> list[tuple[str, str, bytes]]:
    """Render each report panel to PNG bytes: ``[(key, title, png), ...]`` in report order.

    Keys are ``"equity"``, ``"inventory"``, ``"price:<instrument>"`` and ``"extras"`` (the last two only
    when there is something to draw).
    """
    out: list[tuple[str, str, bytes]] = []
    with rc_context(_RC):
        for panel in _panels(summary, series):
            fig = Figure(figsize=(_WIDTH_IN, panel.height_in), dpi=_DPI)
            FigureCanvasAgg(fig)
            panel.draw(fig, panel.height_in)
            out.append((panel.key, panel.title, _png(fig)))
    return out


def write_png_charts(summary: RunSummary, series: RunSeries, path: str | Path) -> Path:
    """All report panels stacked into one PNG image (for a README, a chat, a quick look)."""
    out = Path(path)
    with rc_context(_RC):
        panels = _panels(summary, series)
        heights = [p.height_in for p in panels]
        fig = Figure(figsize=(_WIDTH_IN, sum(heights)), dpi=_DPI)
        FigureCanvasAgg(fig)
        subfigs = fig.subfigures(len(panels), 1, height_ratios=heights, squeeze=False)[:, 0]
        for panel, sub in zip(panels, subfigs, strict=True):
            panel.draw(sub, panel.height_in)
        out.write_bytes(_png(fig))
    return out


_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1240px;
color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}
.kpi .l{font-size:12px;color:#666}.kpi .v{font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}
.pos{color:#1a7f37}.neg{color:#c62828}
table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #eee;padding:4px 12px 4px 0;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.k{color:#555;white-space:nowrap}td.mono{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
img{max-width:100%;height:auto;display:block}
.bad{color:#c62828;font-weight:600}
""".strip()


def _sign_class(value: int) -> str:
    return "pos" if value > 0 else "neg" if value < 0 else ""


def _kpis(summary: RunSummary) -> str:
    ccy = f" {summary.quote_currency}" if summary.quote_currency else ""
    tiles = [
        ("Total PnL (net)", format_money(summary.total_pnl) + ccy, _sign_class(summary.total_pnl)),
        ("Max drawdown", f"{format_money(summary.max_drawdown)}{ccy} ({format_bps(summary.max_drawdown_bps)})", ""),
        ("Fills", f"{summary.fills:,}", ""),
        ("Volume", format_money(summary.volume) + ccy, ""),
        ("Fees", format_money(summary.fees) + ccy, ""),
    ]
    cells = "".join(
        f'<div class="kpi"><div class="l">{html.escape(label)}</div>'
        f'<div class="{f"v {cls}" if cls else "v"}">{html.escape(value)}</div></div>'
        for label, value, cls in tiles
    )
    return f'<div class="kpis">{cells}</div>'


def _summary_table(summary: RunSummary) -> str:
    mono = {"Journal", "Journal sha256", "Data"}
    rows = []
    for label, value in summary_rows(summary):
        value_td = '<td class="mono">' if label in mono else "<td>"
        rows.append(f'<tr><td class="k">{html.escape(label)}</td>{value_td}{html.escape(value)}</td></tr>')
    return '<table class="summary">' + "".join(rows) + "</table>"


def _instrument_table(summary: RunSummary) -> str:
    instruments = sorted(set(summary.final_positions) | set(summary.book_integrity))
    if not instruments:
        return "<p>No instruments.</p>"
    head = (
        '<tr><th>Instrument</th><th class="n">Final position</th><th class="n">Book updates applied</th>'
        '<th class="n">Gaps</th><th class="n">Resyncs</th><th>Book valid at end</th></tr>'
    )
    rows = []
    for inst in instruments:
        pos = format_qty(summary.final_positions.get(inst, 0))
        book = summary.book_integrity.get(inst)
        if book is None:
            cells = '<td class="n">-</td><td class="n">-</td><td class="n">-</td><td>-</td>'
        else:
            gaps_cls = "n bad" if book.gaps else "n"
            valid = "yes" if book.valid_at_end else '<span class="bad">NO</span>'
            cells = (
                f'<td class="n">{book.applied:,}</td><td class="{gaps_cls}">{book.gaps:,}</td>'
                f'<td class="n">{book.resyncs:,}</td><td>{valid}</td>'
            )
        rows.append(f'<tr><td>{html.escape(inst)}</td><td class="n">{html.escape(pos)}</td>{cells}</tr>')
    return "<table>" + head + "".join(rows) + "</table>"


def _sampling_note(series: RunSeries) -> str:
    parts = [f"{len(series.ts):,} samples"]
    if series.interval_ns > 0:
        parts.append(f"every {format_duration(series.interval_ns)} of engine time")
    if series.samples_offered > len(series.ts):
        parts.append(f"decimated from {series.samples_offered:,}")
    return "Charts: " + ", ".join(parts) + f"; {len(series.fills):,} fills."


def write_html_report(summary: RunSummary, series: RunSeries, path: str | Path) -> Path:
    """Write the self-contained HTML run report to ``path`` and return it as a :class:`Path`.

    The page holds headline tiles, the summary table, a per-instrument table (final position and
    book integrity), then the charts as inline base64 PNGs. Nothing is loaded from the network and
    the output depends only on ``summary`` and ``series`` (byte-identical for the same run).
    """
    out = Path(path)
    title = f"tradeloop run report: {summary.strategy}"
    sub = f"{summary.data_source} · {format_ts(summary.start_ts)} → {format_ts(summary.end_ts)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(sub)}</p>',
        _kpis(summary),
        "<h2>Summary</h2>",
        _summary_table(summary),
        "<h2>Instruments</h2>",
        _instrument_table(summary),
        f'<p class="sub">{html.escape(_sampling_note(series))}</p>',
    ]
    for key, panel_title, png in render_panels(summary, series):
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<section id="{html.escape(key)}"><h2>{html.escape(panel_title)}</h2>')
        parts.append(f'<img alt="{html.escape(panel_title)}" src="data:image/png;base64,{data}"></section>')
    parts.append("</body></html>\n")
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
