"""``tradeloop replay``: a recording through one venue's parser and books, with an integrity table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tradeloop.cli.common import console


def replay(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="Recordings (any supported format)."),
    venue: str = typer.Option(..., "--venue", help="binance, binance_usdm, okx, kraken, bybit, bybit_linear, coinbase"),
    show_malformed: int = typer.Option(10, "--show-malformed", help="How many malformed frames to list."),
) -> None:
    """Replay recordings through VENUE's parser and books; exit 1 if any book ends invalid."""
    from tradeloop.data.venue_replay import replay_venue
    from tradeloop.venues.registry import UnknownVenue

    try:
        report = replay_venue(venue, list(files))
    except UnknownVenue as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"{venue}: {report.frames:,} frames from {len(files)} file(s)")
    table.add_column("symbol", no_wrap=True)
    for column in ("msgs", "trades", "snaps", "cksum ok", "cksum bad", "gaps", "resyncs"):
        table.add_column(column, justify="right")
    table.add_column("book at end")
    for symbol in sorted(report.symbols):
        s = report.symbols[symbol]
        is_book = s.snapshots > 0 or s.messages > s.trades
        state = (
            ("[green]valid[/green]" if s.valid_at_end else f"[red]invalid[/red] ({s.invalid_reason})")
            if is_book
            else "-"
        )
        table.add_row(
            symbol,
            f"{s.messages:,}",
            f"{s.trades:,}",
            f"{s.snapshots:,}",
            f"{s.checksums_verified:,}",
            f"{s.checksum_failures:,}",
            f"{s.gaps:,}",
            f"{s.resyncs:,}",
            state,
        )
    console.print(table)
    if report.malformed:
        console.print(f"[yellow]{len(report.malformed):,} malformed frame(s)[/yellow]")
        for m in report.malformed[:show_malformed]:
            console.print(f"  {m}")
    if not report.all_books_valid:
        raise typer.Exit(1)
