"""Show a run comparison: a rich table for the console and a self-contained HTML page.

The console table has one column per run and one row per figure (a few runs fit a terminal that
way); the HTML page has one row per run, then the runs' PnL curves overlaid on elapsed engine time
(runs on different data start at different times) with their drawdowns below.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.ticker import FuncFormatter, MultipleLocator
from rich.table import Table

from tradeloop.runtime.compare import ComparisonRow, LoadedRun
from tradeloop.runtime.plotting import RC, SELL, envelope_idx, floats, grid, legend, new_figure, png
from tradeloop.runtime.report import format_return, html_page, png_img, sign_class
from tradeloop.runtime.summary import format_bps, format_duration, format_money

__all__ = ["comparison_rows", "comparison_table", "render_pnl_overlay", "write_comparison_html"]

_NS = 1_000_000_000
_COLORS = ("#2c5d8f", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")
_SIGNED = frozenset({"Realized PnL, gross", "Unrealized PnL", "Total PnL, net", "Return"})


def _money(value: int | None, ccy: str) -> str:
    return "-" if value is None else format_money(value) + ccy


def _opt(value: int | None, fmt: Callable[[int], str] = lambda v: f"{v:,}") -> str:
    return "-" if value is None else fmt(value)


def comparison_rows(runs: Sequence[LoadedRun]) -> list[tuple[str, list[str], list[int | None]]]:
    """The figures to compare as ``(label, one formatted cell per run, signed values for colour)``.

    Money labels carry the quote currency when every run has the same one; otherwise each cell does.
    """
    rows = [r.row for r in runs]
    currencies = {r.quote_currency for r in rows}
    shared = currencies.pop() if len(currencies) == 1 else None
    head = f" ({shared})" if shared else ""

    def ccy(r: ComparisonRow) -> str:
        return "" if shared is not None or not r.quote_currency else f" {r.quote_currency}"

    def span(r: ComparisonRow) -> str:
        return "-" if r.start_ts is None or r.end_ts is None else format_duration(r.end_ts - r.start_ts)

    def drawdown(r: ComparisonRow) -> str:
        if r.max_drawdown is None:
            return "-"
        bps = f" ({format_bps(r.max_drawdown_bps)})" if r.max_drawdown_bps is not None else ""
        return _money(r.max_drawdown, ccy(r)) + bps

    table: list[tuple[str, Callable[[ComparisonRow], str], Callable[[ComparisonRow], int | None]]] = [
        ("Strategy", lambda r: r.strategy, lambda r: None),
        ("Data", lambda r: r.data or "-", lambda r: None),
        ("Seed", lambda r: _opt(r.seed, str), lambda r: None),
        ("Engine time", span, lambda r: None),
        ("Events", lambda r: _opt(r.events), lambda r: None),
        ("Fills (maker/taker)", lambda r: f"{r.fills:,} ({r.maker_fills:,}/{r.taker_fills:,})", lambda r: None),
        ("Volume" + head, lambda r: _money(r.volume, ccy(r)), lambda r: None),
        ("Fees" + head, lambda r: _money(r.fees, ccy(r)), lambda r: None),
        ("Realized PnL, gross" + head, lambda r: _money(r.realized_pnl, ccy(r)), lambda r: r.realized_pnl),
        ("Unrealized PnL" + head, lambda r: _money(r.unrealized_pnl, ccy(r)), lambda r: r.unrealized_pnl),
        ("Total PnL, net" + head, lambda r: _money(r.total_pnl, ccy(r)), lambda r: r.total_pnl),
        ("Max drawdown" + head, drawdown, lambda r: None),
        ("Return", lambda r: format_return(r.return_nanos), lambda r: r.return_nanos),
        ("Alerts", lambda r: _opt(r.alerts), lambda r: None),
        ("Journal sha256", lambda r: (r.journal_sha256 or "-")[:12], lambda r: None),
    ]
    return [(label, [cell(r) for r in rows], [sign(r) for r in rows]) for label, cell, sign in table]


def comparison_table(runs: Sequence[LoadedRun]) -> Table:
    """A rich table: one column per run, one row per figure; PnL coloured by sign, notes below."""
    table = Table(title="tradeloop runs", title_justify="left")
    table.add_column("", style="bold", no_wrap=True)
    for run in runs:
        table.add_column(run.row.label, justify="right", overflow="fold")
    for label, cells, signs in comparison_rows(runs):
        styled = cells
        if label.split(" (")[0] in _SIGNED:
            styled = [_styled(c, s) for c, s in zip(cells, signs, strict=True)]
        table.add_row(label, *styled)
    notes = [f"{r.row.label}: {r.row.note}" for r in runs if r.row.note]
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def _styled(cell: str, sign: int | None) -> str:
    if sign is None or sign == 0:
        return cell
    return f"[green]{cell}[/green]" if sign > 0 else f"[red]{cell}[/red]"


_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 14_400, 21_600, 43_200, 86_400)


def _elapsed_axis(span_s: float) -> tuple[float, FuncFormatter]:
    """A tick step (seconds) giving at most about 8 ticks over ``span_s``, and its label format."""
    step = next((s for s in _STEPS_S if span_s / s <= 8), _STEPS_S[-1] * (1 + int(span_s // (8 * _STEPS_S[-1]))))

    def label(seconds: float, _pos: int | None = None) -> str:
        total = round(seconds)
        if span_s < 120:
            return f"{total}s"
        hours, rest = divmod(total, 3_600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"

    return float(step), FuncFormatter(label)


def render_pnl_overlay(runs: Sequence[LoadedRun]) -> bytes | None:
    """PNG of every run's PnL (equity minus initial equity) and drawdown over elapsed engine time.

    ``None`` when no run carries an equity curve.
    """
    curves = [r for r in runs if r.curve is not None and r.curve.ts]
    if not curves:
        return None
    height = 5.6
    with rc_context(RC):
        fig = new_figure(height)
        ax, ax_dd = grid(fig, height, 2, ratios=[3, 1.3], gap_in=0.12)
        ccys = {r.row.quote_currency for r in curves}
        ax.set_title("PnL over elapsed engine time (equity minus initial equity)")
        ax.set_ylabel(f"PnL ({ccys.pop()})" if len(ccys) == 1 else "PnL (quote)")
        ax_dd.set_ylabel("drawdown (%)")
        ax_dd.set_xlabel("elapsed engine time")
        for n, run in enumerate(curves):
            curve = run.curve
            assert curve is not None
            base = run.row.initial_equity if run.row.initial_equity is not None else curve.equity[0]
            x = (np.asarray(curve.ts, dtype=np.float64) - curve.ts[0]) / _NS
            eq = floats(curve.equity)
            pnl = floats([e - base for e in curve.equity])
            peak = np.maximum.accumulate(eq)
            with np.errstate(divide="ignore", invalid="ignore"):
                dd = np.where(peak > 0, (eq - peak) / peak * 100.0, 0.0)
            idx = envelope_idx(pnl)
            color = _COLORS[n % len(_COLORS)]
            ax.plot(x[idx], pnl[idx], color=color, lw=1.2, label=run.row.label)
            ax_dd.plot(x[idx], dd[idx], color=color, lw=0.9)
        ax.axhline(0.0, color="black", lw=0.6)
        ax_dd.axhline(0.0, color=SELL, lw=0.6)
        span_s = max((r.curve.ts[-1] - r.curve.ts[0]) / _NS for r in curves if r.curve is not None)
        step, formatter = _elapsed_axis(span_s)
        ax_dd.xaxis.set_major_locator(MultipleLocator(step))
        ax_dd.xaxis.set_major_formatter(formatter)
        ax_dd.set_xlim(0.0, max(span_s, 1.0))
        legend(ax)
        return png(fig)


def _html_table(runs: Sequence[LoadedRun]) -> str:
    figures = comparison_rows(runs)
    head = "<tr><th>Run</th>" + "".join(f"<th>{html.escape(label)}</th>" for label, _, _ in figures)
    head += "<th>Source</th><th>Note</th></tr>"
    body = []
    for i, run in enumerate(runs):
        cells = [f"<td>{html.escape(run.row.label)}</td>"]
        for label, values, signs in figures:
            cls = sign_class(signs[i]) if label.split(" (")[0] in _SIGNED else ""
            numeric = label not in ("Strategy", "Data")
            classes = " ".join(c for c in ("n" if numeric else "", cls) if c)
            attr = f' class="{classes}"' if classes else ""
            cells.append(f"<td{attr}>{html.escape(values[i])}</td>")
        cells.append(f'<td class="mono">{html.escape(run.row.source)}</td><td>{html.escape(run.row.note)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return '<div class="wide"><table>' + head + "".join(body) + "</table></div>"


def write_comparison_html(runs: Sequence[LoadedRun], path: str | Path) -> Path:
    """Write the comparison as a self-contained HTML page (table, then overlaid PnL curves)."""
    out = Path(path)
    title = f"tradeloop run comparison ({len(runs)} runs)"
    body = [f"<h1>{html.escape(title)}</h1>", "<h2>Runs</h2>", _html_table(runs)]
    overlay = render_pnl_overlay(runs)
    if overlay is not None:
        body.append(png_img("pnl", "PnL and drawdown", overlay))
    else:
        body.append('<p class="sub">No equity curves: the runs were loaded from journals without run records.</p>')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html_page(title, body), encoding="utf-8")
    return out
