"""``tradeloop record``: a venue's raw market data to a file that ``tradeloop replay`` reads."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer

from tradeloop.cli.common import console
from tradeloop.core.config import ConfigError


def record(
    venue: str = typer.Option(..., "--venue", help="Venue whose market data to record (see venues/connectors.py)."),
    symbol: list[str] = typer.Option(..., "--symbol", help="Venue symbol (repeatable), e.g. BTCUSDT."),
    out: Path = typer.Option(..., "--out", dir_okay=False, help="Output file; gzip when it ends with .gz."),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Record a local simulator at this URL (http://127.0.0.1:PORT) instead of the venue."
    ),
    duration: float | None = typer.Option(None, "--duration", help="Seconds to record (default: until Ctrl-C)."),
    log_file: Path | None = typer.Option(
        None, "--log-file", help="Write JSON logs here (default: warnings to stderr)."
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Record VENUE's raw frames (and REST book snapshots) with receive times, for `tradeloop replay`.

    The venue's own market-data client subscribes and keeps its books as it would live; every frame it
    receives is written as `<ts_ns> <frame>`, REST snapshots as `<ts_ns> REST <url> <body>`."""
    from tradeloop.core.logging import configure_logging
    from tradeloop.runtime.recorder import RecordStats, record_venue

    configure_logging(log_level, path=str(log_file) if log_file else None)
    if duration is not None and not duration > 0:
        console.print("[red]--duration must be positive[/red]")
        raise typer.Exit(2)
    if out.exists():
        console.print(f"[red]{out} already exists; record into a new file[/red]")
        raise typer.Exit(2)

    async def main() -> RecordStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        return await record_venue(venue, list(symbol), out, endpoint=endpoint, duration_s=duration, stop=stop)

    console.print(
        f"[bold]tradeloop record[/bold]: {venue} {', '.join(symbol)} -> {out}; "
        + (f"for {duration:g}s" if duration is not None else "until Ctrl-C")
    )
    try:
        stats = asyncio.run(main())
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ConnectionError as exc:
        console.print(f"[red]market data error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"recorded {stats.frames:,} frames and {stats.rest:,} REST responses ({stats.bytes:,} bytes) "
        f"into {out} via {stats.tap}; the client parsed {stats.items:,} items, {stats.malformed:,} malformed"
    )
    if stats.frames == 0:
        raise typer.Exit(1)
