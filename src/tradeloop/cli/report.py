"""``tradeloop report``: compare finished runs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tradeloop.cli.common import console


def report(
    runs: list[Path] = typer.Argument(
        ..., help="Runs to compare: run folders (with run.json), run.json files or SQLite journals.", show_default=False
    ),
    html: Path | None = typer.Option(None, "--html", help="Also write the comparison as a self-contained HTML page."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON on stdout (money in int nanos)."),
) -> None:
    """Compare runs in one table: strategy, data, fills, volume, fees, PnL, drawdown, return."""
    from tradeloop.runtime.compare import NotARun, comparison_json, load_runs
    from tradeloop.runtime.compare_page import comparison_table, write_comparison_html

    try:
        loaded = load_runs(runs)
    except NotARun as exc:
        console.print(f"[red]not a run:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(comparison_json(loaded).decode() + "\n")
    else:
        console.print(comparison_table(loaded))
    if html is not None:
        out = write_comparison_html(loaded, html)
        console.print(f"comparison: {out}")
