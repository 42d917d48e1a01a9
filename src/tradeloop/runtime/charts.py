"""The charts of a run report, one PNG per panel.

* **Equity** with its running peak, the drawdown shaded, a drawdown (% of peak) sub-panel, and a
  tick at the bottom for every alert on record;
* **Inventory**: signed position per instrument;
* **Price and fills**, one panel per instrument: the mid price (book-invalid spans shaded), our
  quotes as faint lines when recorded, buys as green up-triangles and sells as red down-triangles
  with marker area growing with quantity (filled = maker, hollow = taker), and any strategy series
  recorded for that instrument (see below);
* **Strategy series** (``RunSeries.extra_panels``): one axes per group of names.

Strategy series are grouped by name, generically: ``"zscore"`` and ``"zscore/entry"`` share the
axes of group ``zscore`` (the part before the first ``/``). A series whose values are all equal
(a threshold recorded once, or every time) is drawn as a dashed horizontal line. A group named
after one of the run's instruments (``"simA:BTCUSDT/reservation"``) is drawn over that
instrument's price chart instead of in a panel of its own.

Very many fills are aggregated into time bins (VWAP, total quantity) for drawing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase
from matplotlib.lines import Line2D

from tradeloop.core import fixed
from tradeloop.model.enums import LiquiditySide, Side
from tradeloop.runtime.plotting import (
    BUY,
    EQUITY,
    MID,
    RC,
    SELL,
    TimeAxis,
    days,
    envelope_idx,
    floats,
    grid,
    legend,
    new_figure,
    no_data,
    png,
)
from tradeloop.runtime.results import FillPoint, RunSeries, RunSummary
from tradeloop.runtime.summary import format_bps, format_money

__all__ = [
    "MAX_FILL_MARKERS",
    "ExtraGroup",
    "ExtraLine",
    "group_extra_panels",
    "render_panels",
    "write_png_charts",
]

MAX_FILL_MARKERS = 3_000
"""Instruments with more fills than this have them aggregated into time bins for drawing."""

_GROUP_SEP = "/"
_ALERT = "#e08214"
_SERIES_COLORS = ("#7b3294", "#e08214", "#2166ac", "#b2182b", "#1b7837", "#8c510a")


# -- strategy series grouping (pure) --------------------------------------------------------------


@dataclass(frozen=True)
class ExtraLine:
    """One recorded strategy series: ``name`` as recorded, ``label`` for the legend.

    ``constant`` is the value when every recorded value is the same finite number (drawn as a
    horizontal line across the whole chart), else ``None``.
    """

    name: str
    label: str
    points: Sequence[tuple[int, float]]
    constant: float | None


@dataclass(frozen=True)
class ExtraGroup:
    """Series drawn on the same axes: every recorded name whose part before ``/`` is ``key``."""

    key: str
    lines: list[ExtraLine] = field(default_factory=list)


def _constant(points: Sequence[tuple[int, float]]) -> float | None:
    first = points[0][1]
    if not np.isfinite(first):
        return None
    return first if all(v == first for _, v in points) else None


def group_extra_panels(extra_panels: Mapping[str, Sequence[tuple[int, float]]]) -> list[ExtraGroup]:
    """Group recorded strategy series by the part of their name before the first ``/``.

    Groups come in the order their first series was recorded; within a group the series named
    exactly like the group comes first, the others in recording order. Empty series are skipped.
    """
    groups: dict[str, ExtraGroup] = {}
    for name, points in extra_panels.items():
        if not points:
            continue
        key, sep, rest = name.partition(_GROUP_SEP)
        line = ExtraLine(name, rest if sep and rest else key, points, _constant(points))
        group = groups.setdefault(key, ExtraGroup(key))
        if name == key:
            group.lines.insert(0, line)
        else:
            group.lines.append(line)
    return list(groups.values())


def _draw_lines(ax: Axes, lines: Sequence[ExtraLine], first_color: int = 0) -> None:
    """Draw a group's series: varying ones as lines, constant ones as dashed horizontal lines."""
    varying = [ln for ln in lines if ln.constant is None]
    for n, ln in enumerate(varying):
        y = np.array([v for _, v in ln.points], dtype=np.float64)
        idx = envelope_idx(y)
        color = _SERIES_COLORS[(first_color + n) % len(_SERIES_COLORS)]
        ax.plot(days([t for t, _ in ln.points])[idx], y[idx], color=color, lw=0.9, label=ln.label, zorder=2)
    for ln in lines:
        if ln.constant is not None:
            ax.axhline(ln.constant, color="0.35", lw=0.9, ls="--", label=f"{ln.label} = {ln.constant:g}", zorder=1)


# -- panels ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Panel:
    key: str
    title: str
    height_in: float
    draw: Callable[[FigureBase, float], None]
    """Draws the panel into a (sub)figure of the given height in inches."""


def _ccy_label(summary: RunSummary) -> str:
    return summary.quote_currency or "quote"


def _time_axis(summary: RunSummary, series: RunSeries) -> TimeAxis:
    """The run's time range, shared by every chart so they line up."""
    if summary.end_ts > summary.start_ts:
        return TimeAxis(summary.start_ts, summary.end_ts)
    candidates = [summary.start_ts, summary.end_ts, *series.ts[:1], *series.ts[-1:]]
    candidates += [f.ts for f in series.fills[:1]] + [f.ts for f in series.fills[-1:]]
    return TimeAxis(min(candidates), max(candidates))


def _mark_alerts(ax: Axes, series: RunSeries) -> None:
    if not series.alerts:
        return
    x = np.unique(days([ts for ts, _, _ in series.alerts]))
    ax.scatter(
        x,
        np.full(len(x), 0.03),
        transform=ax.get_xaxis_transform(),
        marker="|",
        s=120,
        color=_ALERT,
        linewidths=1.4,
        label=f"alert ({len(series.alerts):,})",
        zorder=4,
    )


def _draw_equity(fig: FigureBase, height_in: float, summary: RunSummary, series: RunSeries, taxis: TimeAxis) -> None:
    ax, ax_dd = grid(fig, height_in, 2, ratios=[3, 1], gap_in=0.12)
    ccy = _ccy_label(summary)
    dd_text = f"{format_money(summary.max_drawdown)} {ccy} ({format_bps(summary.max_drawdown_bps)})"
    ax.set_title(f"Equity: total PnL {format_money(summary.total_pnl)} {ccy}, max drawdown {dd_text}")
    ax.set_ylabel(f"equity ({ccy})")
    ax_dd.set_ylabel("drawdown (%)")
    taxis.apply(ax, label=False)
    taxis.apply(ax_dd, label=True)
    if not series.ts:
        no_data(ax, "no samples recorded")
        return
    eq = floats(series.equity)
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd_pct = np.where(peak > 0, (eq - peak) / peak * 100.0, 0.0)
    idx = np.union1d(envelope_idx(eq), envelope_idx(dd_pct))
    x = days(series.ts)[idx]
    eq_d, peak_d, dd_d = eq[idx], peak[idx], dd_pct[idx]
    ax.plot(x, eq_d, color=EQUITY, lw=1.3, label="equity")
    ax.plot(x, peak_d, color="0.45", lw=0.8, ls="--", label="running peak")
    ax.fill_between(x, eq_d, peak_d, where=eq_d < peak_d, color=SELL, alpha=0.18, lw=0, label="drawdown")
    abs_dd = peak - eq
    if abs_dd.size and float(abs_dd.max()) > 0:
        i = int(np.argmax(abs_dd))
        ax.plot([days([series.ts[i]])[0]], [eq[i]], "o", color=SELL, ms=5, label="deepest drawdown")
    _mark_alerts(ax, series)
    legend(ax)
    ax_dd.fill_between(x, dd_d, 0.0, color=SELL, alpha=0.35, lw=0)
    ax_dd.plot(x, dd_d, color=SELL, lw=0.7)
    lo = float(np.nanmin(dd_d)) if dd_d.size else 0.0
    ax_dd.set_ylim(min(lo * 1.1, -0.01), 0.0)


def _draw_inventory(
    fig: FigureBase, height_in: float, series: RunSeries, instruments: list[str], taxis: TimeAxis
) -> None:
    axes = grid(fig, height_in, len(instruments))
    x_all = days(series.ts)
    for n, (ax, inst) in enumerate(zip(axes, instruments, strict=True)):
        ax.set_title(f"Inventory: {inst}")
        ax.set_ylabel("position (base)")
        taxis.apply(ax, label=n == len(instruments) - 1)
        q = floats(series.inventory[inst])
        if not q.size:
            no_data(ax, "no samples recorded")
            continue
        idx = envelope_idx(q)
        x, qd = x_all[idx], q[idx]
        ax.step(x, qd, where="post", color="0.2", lw=0.9)
        ax.fill_between(x, qd, 0.0, where=qd > 0, step="post", color=BUY, alpha=0.3, lw=0, label="long")
        ax.fill_between(x, qd, 0.0, where=qd < 0, step="post", color=SELL, alpha=0.3, lw=0, label="short")
        ax.axhline(0.0, color="black", lw=0.6)
        lim = float(np.nanmax(np.abs(qd))) if np.isfinite(qd).any() else 0.0
        if lim > 0:
            ax.set_ylim(-lim * 1.15, lim * 1.15)
        legend(ax)


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
        lo, hi = days([a, b])
        ax.axvspan(float(lo), float(hi), color="0.55", alpha=0.2, lw=0, label="book invalid" if n == 0 else None)


def _draw_fills(ax: Axes, fills: list[FillPoint], taxis: TimeAxis) -> tuple[list[Line2D], bool]:
    """Fill markers; returns legend handles and whether fills were aggregated into bins."""
    groups, aggregated = _fill_markers(fills, taxis.lo_ns, taxis.hi_ns, MAX_FILL_MARKERS)
    max_qty = max((mk.qty for g in groups.values() for mk in g), default=0)
    handles: list[Line2D] = []
    for side, marker, color in ((Side.BUY, "^", BUY), (Side.SELL, "v", SELL)):
        for liq in (LiquiditySide.MAKER, LiquiditySide.TAKER):
            pts = groups.get(f"{side}/{liq}")
            if not pts:
                continue
            x = days([p.ts for p in pts])
            y = floats([p.price for p in pts])
            rel = np.sqrt(np.array([p.qty for p in pts], dtype=np.float64) / max_qty) if max_qty > 0 else 1.0
            face = color if liq is LiquiditySide.MAKER else "none"
            ax.scatter(
                x, y, s=12.0 + 110.0 * rel, marker=marker, facecolors=face, edgecolors=color, linewidths=0.9,
                alpha=0.85, zorder=3,
            )  # fmt: skip
            handles.append(
                Line2D(
                    [], [], ls="none", marker=marker, markersize=7, markerfacecolor=face, markeredgecolor=color,
                    color=color, label=f"{side.value.lower()} ({liq.value.lower()})",
                )
            )  # fmt: skip
    return handles, aggregated


def _draw_price(
    fig: FigureBase,
    height_in: float,
    summary: RunSummary,
    series: RunSeries,
    inst: str,
    overlay: ExtraGroup | None,
    taxis: TimeAxis,
) -> None:
    (ax,) = grid(fig, height_in, 1)
    ax.set_ylabel(f"price ({_ccy_label(summary)})")
    taxis.apply(ax, label=True)
    fills = [f for f in series.fills if f.instrument == inst]
    n_buy = sum(1 for f in fills if f.side is Side.BUY)
    title = f"Price and fills: {inst}  ({n_buy:,} buys, {len(fills) - n_buy:,} sells"
    drew = False
    mids = series.mid.get(inst)
    if mids:
        m = floats(mids)
        if np.isfinite(m).any():
            idx = envelope_idx(m)
            ax.plot(days(series.ts)[idx], m[idx], color=MID, lw=0.9, label="mid", zorder=2)
            drew = True
        _shade_invalid(ax, series.ts, mids)
    quotes = series.quotes.get(inst)
    if quotes:
        qx = days([q[0] for q in quotes])
        for pos, color, label in ((1, BUY, "our bid"), (2, SELL, "our ask")):
            y = floats([q[pos] for q in quotes])
            finite = np.isfinite(y)
            if (finite[:-1] & finite[1:]).any():  # a quote held over at least two samples
                idx = envelope_idx(y)
                ax.step(qx[idx], y[idx], where="post", color=color, lw=0.8, alpha=0.45, label=label, zorder=1)
                drew = True
    if overlay is not None and overlay.lines:
        _draw_lines(ax, overlay.lines)
        drew = True
    handles, aggregated = _draw_fills(ax, fills, taxis)
    drew = drew or bool(handles)
    title += "; marker area ~ qty, filled = maker, hollow = taker"
    if aggregated:
        title += "; fills aggregated per time bin at VWAP"
    ax.set_title(title + ")")
    if not drew:
        no_data(ax, "no price or fills recorded")
        return
    line_handles, _ = ax.get_legend_handles_labels()
    legend(ax, [*line_handles, *handles])


def _draw_extras(fig: FigureBase, height_in: float, groups: list[ExtraGroup], taxis: TimeAxis) -> None:
    axes = grid(fig, height_in, len(groups))
    for n, (ax, group) in enumerate(zip(axes, groups, strict=True)):
        ax.set_title(group.key)
        ax.set_ylabel(group.key)
        taxis.apply(ax, label=n == len(groups) - 1)
        _draw_lines(ax, group.lines)
        values = np.array([v for ln in group.lines for _, v in ln.points], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size and float(finite.min()) < 0 < float(finite.max()):
            ax.axhline(0.0, color="black", lw=0.6)
        if len(group.lines) > 1 or group.lines[0].label != group.key:
            legend(ax)


def _price_panel(
    summary: RunSummary, series: RunSeries, inst: str, overlay: ExtraGroup | None, taxis: TimeAxis
) -> _Panel:
    return _Panel(
        f"price:{inst}",
        f"Price and fills: {inst}",
        4.2,
        lambda fig, h: _draw_price(fig, h, summary, series, inst, overlay, taxis),
    )


def _panels(summary: RunSummary, series: RunSeries) -> list[_Panel]:
    taxis = _time_axis(summary, series)
    panels = [_Panel("equity", "Equity", 4.6, lambda fig, h: _draw_equity(fig, h, summary, series, taxis))]
    inv = sorted(series.inventory)
    if inv:
        height = 0.6 + 1.9 * len(inv)
        panels.append(
            _Panel("inventory", "Inventory", height, lambda fig, h: _draw_inventory(fig, h, series, inv, taxis))
        )
    instruments = series.instruments()
    groups = group_extra_panels(series.extra_panels)
    overlays = {g.key: g for g in groups if g.key in instruments}
    for inst in instruments:
        panels.append(_price_panel(summary, series, inst, overlays.get(inst), taxis))
    own = [g for g in groups if g.key not in overlays]
    if own:
        title = "Strategy series: " + ", ".join(g.key for g in own)
        panels.append(_Panel("extras", title, 0.6 + 1.8 * len(own), lambda fig, h: _draw_extras(fig, h, own, taxis)))
    return panels


def render_panels(summary: RunSummary, series: RunSeries) -> list[tuple[str, str, bytes]]:
    """Render each report panel to PNG bytes: ``[(key, title, png), ...]`` in report order.

    Keys are ``"equity"``, ``"inventory"``, ``"price:<instrument>"`` and ``"extras"`` (the last two only
    when there is something to draw).
    """
    out: list[tuple[str, str, bytes]] = []
    with rc_context(RC):
        for panel in _panels(summary, series):
            fig = new_figure(panel.height_in)
            panel.draw(fig, panel.height_in)
            out.append((panel.key, panel.title, png(fig)))
    return out


def write_png_charts(summary: RunSummary, series: RunSeries, path: str | Path) -> Path:
    """All report panels stacked into one PNG image (for a README, a chat, a quick look)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with rc_context(RC):
        panels = _panels(summary, series)
        heights = [p.height_in for p in panels]
        fig = new_figure(sum(heights))
        subfigs = fig.subfigures(len(panels), 1, height_ratios=heights, squeeze=False)[:, 0]
        for panel, sub in zip(panels, subfigs, strict=True):
            panel.draw(sub, panel.height_in)
        out.write_bytes(png(fig))
    return out
