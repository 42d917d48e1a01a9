"""``tradeloop backtest``."""

from __future__ import annotations

from pathlib import Path

import typer

from tradeloop.cli.common import console, exit_on_user_errors


def backtest(
    strategy: str | None = typer.Option(
        None, "--strategy", help="Built-in name, module:Class or path.py:Class (default: from config)."
    ),
    config: Path | None = typer.Option(None, "--config", exists=True, dir_okay=False, help="TOML config file."),
    data: list[Path] | None = typer.Option(
        None, "--data", help="Recordings to replay instead of the synthetic market (repeatable, or several after it)."
    ),
    journal: Path | None = typer.Option(None, "--journal", help="SQLite journal path (default: in memory)."),
    report: Path | None = typer.Option(None, "--report", help="Where to write the HTML report."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the synthetic market and strategy randomness."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed recording line."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    log_file: Path | None = typer.Option(
        None, "--log-file", help="Write JSON logs here (default: warnings to stderr)."
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run a backtest: the demo market maker on the synthetic market unless told otherwise."""
    from tradeloop.core.logging import configure_logging
    from tradeloop.runtime.runner import BacktestRequest, run_backtest

    configure_logging(log_level, path=str(log_file) if log_file else None)

    request = BacktestRequest(
        config_path=config,
        strategy=strategy,
        data=[str(p) for p in data] if data else [],
        journal=str(journal) if journal else None,
        report=str(report) if report else None,
        seed=seed,
        strict=strict,
        progress=progress,
    )
    from tradeloop.data.recording import RecordingError

    try:
        with exit_on_user_errors():
            outcome = run_backtest(request, console=console)
    except RecordingError as exc:
        console.print(f"[red]stopped at a malformed recording line (--strict):[/red] {exc}")
        raise typer.Exit(1) from None
    if outcome.errors:
        raise typer.Exit(1)
