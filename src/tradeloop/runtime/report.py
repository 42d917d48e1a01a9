"""The HTML run report written after a backtest.

:func:`write_html_report` produces one self-contained HTML file: headline tiles, the summary table,
a per-instrument table (final position, book integrity), the alerts on record (strategy alerts such
as leg-risk hedges, and risk alerts) when there are any, then one chart per panel embedded as a
base64 PNG (see :mod:`tradeloop.runtime.charts`). No scripts, stylesheets or fonts are fetched from
anywhere, and the page depends only on the summary and the series: the same run gives the same
bytes. Money is formatted from exact nanos (:mod:`tradeloop.runtime.summary`).
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tradeloop.core import fixed
from tradeloop.runtime.charts import MAX_FILL_MARKERS, render_panels, write_png_charts
from tradeloop.runtime.plotting import MAX_DRAW_POINTS
from tradeloop.runtime.results import RunSeries, RunSummary
from tradeloop.runtime.summary import (
    format_bps,
    format_duration,
    format_money,
    format_qty,
    format_ts,
    summary_rows,
)

__all__ = [
    "MAX_ALERT_ROWS",
    "MAX_DRAW_POINTS",
    "MAX_FILL_MARKERS",
    "format_return",
    "html_page",
    "png_img",
    "render_panels",
    "write_html_report",
    "write_png_charts",
]

MAX_ALERT_ROWS = 500
"""Alerts listed one per row in the report; beyond this only the counts per kind are shown."""

CSS = """
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
td.t{white-space:nowrap;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block}
.bad{color:#c62828;font-weight:600}
.wide{overflow-x:auto}
""".strip()


def html_page(title: str, body: Iterable[str]) -> str:
    """A complete, self-contained HTML page with the report style, ``title`` and ``body`` parts."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
    ]
    return "\n".join([*head, *body, "</body></html>\n"])


def png_img(key: str, title: str, png: bytes) -> str:
    """A titled page section holding ``png`` inline (base64), anchored at ``key``."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<section id="{html.escape(key)}"><h2>{html.escape(title)}</h2>\n'
        f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}"></section>'
    )


def format_return(return_nanos: int | None) -> str:
    """A return given as a fraction in nanos as a percentage with 4 decimals (``"0.0258%"``), or ``"-"``."""
    if return_nanos is None:
        return "-"
    pct = fixed.round_to_step(return_nanos * 100, 10 ** (fixed.SCALE_DIGITS - 4))
    return fixed.to_str(pct, 4) + "%"


def sign_class(value: int | None) -> str:
    """CSS class for a signed amount: ``pos``, ``neg`` or nothing."""
    if value is None:
        return ""
    return "pos" if value > 0 else "neg" if value < 0 else ""


def _kpis(summary: RunSummary) -> str:
    ccy = f" {summary.quote_currency}" if summary.quote_currency else ""
    tiles = [
        ("Total PnL (net)", format_money(summary.total_pnl) + ccy, sign_class(summary.total_pnl)),
        ("Max drawdown", f"{format_money(summary.max_drawdown)}{ccy} ({format_bps(summary.max_drawdown_bps)})", ""),
        ("Fills", f"{summary.fills:,}", ""),
        ("Volume", format_money(summary.volume) + ccy, ""),
        ("Fees", format_money(summary.fees) + ccy, ""),
    ]
    ret = summary.return_nanos()
    if ret is not None:
        tiles.insert(1, ("Return on initial equity", format_return(ret), sign_class(ret)))
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
    if summary.initial_equity is not None:
        ccy = f" {summary.quote_currency}" if summary.quote_currency else ""
        equity = f"{format_money(summary.initial_equity)}{ccy} (return {format_return(summary.return_nanos())})"
        rows.append(f'<tr><td class="k">Initial equity</td><td>{html.escape(equity)}</td></tr>')
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


def _alerts_section(alerts: list[tuple[int, str, str]]) -> list[str]:
    """Counts per kind, then one row per alert (time, kind, message), the first ``MAX_ALERT_ROWS``."""
    if not alerts:
        return []
    counts = Counter(kind for _, kind, _ in alerts)
    summary = ", ".join(f"{kind}: {n:,}" for kind, n in sorted(counts.items()))
    shown = alerts[:MAX_ALERT_ROWS]
    note = f"{len(alerts):,} alerts ({summary})"
    if len(shown) < len(alerts):
        note += f"; the first {len(shown):,} are listed"
    rows = "".join(
        f'<tr><td class="t">{html.escape(format_ts(ts))}</td><td>{html.escape(kind)}</td>'
        f"<td>{html.escape(message)}</td></tr>"
        for ts, kind, message in shown
    )
    return [
        '<section id="alerts"><h2>Alerts</h2>',
        f'<p class="sub">{html.escape(note)}</p>',
        "<table><tr><th>Time</th><th>Kind</th><th>Message</th></tr>" + rows + "</table></section>",
    ]


def _sampling_note(series: RunSeries) -> str:
    parts = [f"{len(series.ts):,} samples"]
    if series.interval_ns > 0:
        parts.append(f"every {format_duration(series.interval_ns)} of engine time")
    if series.samples_offered > len(series.ts):
        parts.append(f"decimated from {series.samples_offered:,}")
    return "Charts: " + ", ".join(parts) + f"; {len(series.fills):,} fills."


def write_html_report(summary: RunSummary, series: RunSeries, path: str | Path) -> Path:
    """Write the self-contained HTML run report to ``path`` (creating its folder) and return it.

    The page holds headline tiles, the summary table, a per-instrument table (final position and
    book integrity), the alerts when there are any, then the charts as inline base64 PNGs. Nothing
    is loaded from the network and the output depends only on ``summary`` and ``series``.
    """
    out = Path(path)
    title = f"tradeloop run report: {summary.strategy}"
    sub = f"{summary.data_source} · {format_ts(summary.start_ts)} → {format_ts(summary.end_ts)}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(sub)}</p>',
        _kpis(summary),
        "<h2>Summary</h2>",
        _summary_table(summary),
        "<h2>Instruments</h2>",
        _instrument_table(summary),
        *_alerts_section(series.alerts),
        f'<p class="sub">{html.escape(_sampling_note(series))}</p>',
    ]
    body += [png_img(key, panel_title, png) for key, panel_title, png in render_panels(summary, series)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html_page(title, body), encoding="utf-8")
    return out
