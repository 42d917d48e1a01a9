"""Console summary of a run, and the exact number formatting shared with the HTML report.

Money is formatted from its ``int`` nanos with :func:`tradeloop.core.fixed.to_str` after an exact
half-even rounding, never through float, so the console, the report and the journal agree to the
last digit shown.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table

from tradeloop.core import fixed
from tradeloop.runtime.results import RunSummary

__all__ = [
    "format_bps",
    "format_duration",
    "format_money",
    "format_qty",
    "format_ts",
    "render_summary",
    "summary_rows",
]

_NS = 1_000_000_000


def _group(text: str) -> str:
    """Insert thousands separators into the integer part of a decimal string."""
    sign = "-" if text.startswith("-") else ""
    body = text[1:] if sign else text
    whole, dot, frac = body.partition(".")
    return f"{sign}{int(whole):,}{dot}{frac}"


def format_money(value: int, decimals: int = 2) -> str:
    """Quote amount in nanos as a decimal string with ``decimals`` digits (half-even), grouped.

    A non-zero amount that would show as zero (a fee of 0.0004) gets 6 decimals instead (9 if still
    zero), so small amounts stay visible. ``format_money(1_234_567_890_123) == "1,234.57"``.
    """
    decimals = max(0, min(decimals, fixed.SCALE_DIGITS))
    step = 10 ** (fixed.SCALE_DIGITS - decimals)
    rounded = fixed.round_to_step(value, step)
    if rounded == 0 and value != 0 and decimals < fixed.SCALE_DIGITS:
        return format_money(value, 6 if decimals < 6 else fixed.SCALE_DIGITS)
    return _group(fixed.to_str(rounded, decimals))


def format_qty(value: int) -> str:
    """Quantity or price in nanos, exact, trailing zeros dropped (``"0.015"``), grouped."""
    return _group(fixed.to_str(value))


def format_bps(bps: int) -> str:
    """Basis points as a percentage with 2 decimals: ``1234`` -> ``"12.34%"``."""
    return fixed.to_str(bps * 10 ** (fixed.SCALE_DIGITS - 2), 2) + "%"


def format_ts(ts: int) -> str:
    """Engine time (ns since the epoch) as ``YYYY-MM-DD HH:MM:SS.mmm UTC``."""
    seconds, ns = divmod(ts, _NS)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{ns // 1_000_000:03d} UTC"


def format_duration(ns: int) -> str:
    """A span of engine time: ``"1d 02:03:04"``, ``"02:03:04"`` or ``"4.250s"`` below a minute."""
    if ns < 0:
        return "-" + format_duration(-ns)
    seconds, rest = divmod(ns, _NS)
    if seconds < 60:
        return f"{seconds}.{rest // 1_000_000:03d}s"
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}d {clock}" if days else clock


def _ccy(summary: RunSummary) -> str:
    return f" {summary.quote_currency}" if summary.quote_currency else ""


def summary_rows(summary: RunSummary) -> list[tuple[str, str]]:
    """The headline figures as ``(label, formatted value)`` pairs, in display order.

    Used by both :func:`render_summary` and the HTML report so they show the same strings.
    Final positions and book integrity are tabulated separately (one row per instrument).
    """
    ccy = _ccy(summary)
    rows: list[tuple[str, str]] = [
        ("Strategy", summary.strategy),
        ("Seed", str(summary.seed)),
        ("Data", summary.data_source),
        ("Start", format_ts(summary.start_ts)),
        ("End", format_ts(summary.end_ts)),
        ("Engine time", format_duration(summary.end_ts - summary.start_ts)),
        ("Events", f"{summary.events_processed:,}"),
        ("Wall time", f"{summary.wall_seconds:,.2f}s"),
        ("Events/s", f"{summary.events_per_second:,.0f}"),
        ("Fills", f"{summary.fills:,} (maker {summary.maker_fills:,}, taker {summary.taker_fills:,})"),
        ("Volume", format_money(summary.volume) + ccy),
        ("Fees", format_money(summary.fees) + ccy),
        ("Realized PnL (gross)", format_money(summary.realized_pnl) + ccy),
        ("Unrealized PnL", format_money(summary.unrealized_pnl) + ccy),
        ("Total PnL (net of fees)", format_money(summary.total_pnl) + ccy),
        ("Max drawdown", f"{format_money(summary.max_drawdown)}{ccy} ({format_bps(summary.max_drawdown_bps)})"),
    ]
    if summary.journal_path is not None:
        rows.append(("Journal", summary.journal_path))
    if summary.journal_sha256 is not None:
        rows.append(("Journal sha256", summary.journal_sha256))
    return rows


def _pnl_style(value: int) -> str:
    return "green" if value > 0 else "red" if value < 0 else ""


def render_summary(summary: RunSummary) -> Table:
    """A rich :class:`~rich.table.Table` of the run for the console.

    Headline figures first, then one row per instrument with its final position and book
    integrity (updates applied, gaps, resyncs, valid at end). Print it with ``rich.print``.
    """
    table = Table(title=f"tradeloop run: {summary.strategy}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    pnl_labels = {"Total PnL (net of fees)": summary.total_pnl, "Realized PnL (gross)": summary.realized_pnl}
    for label, value in summary_rows(summary):
        style = _pnl_style(pnl_labels[label]) if label in pnl_labels else ""
        table.add_row(label, value, style=style or None)
    instruments = sorted(set(summary.final_positions) | set(summary.book_integrity))
    for inst in instruments:
        parts = [f"position {format_qty(summary.final_positions.get(inst, 0))}"]
        book = summary.book_integrity.get(inst)
        if book is not None:
            state = "valid" if book.valid_at_end else "INVALID"
            parts.append(f"book {book.applied:,} applied, {book.gaps} gaps, {book.resyncs} resyncs, {state} at end")
        row_style = "red" if book is not None and (not book.valid_at_end or book.gaps) else None
        table.add_row(inst, "; ".join(parts), style=row_style)
    return table
