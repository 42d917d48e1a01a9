"""``tradeloop paper``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import typer

from tradeloop.cli.common import (
    AdminHostOption,
    AdminPortOption,
    AdminTokenEnvOption,
    LogFileOption,
    LogLevelOption,
    StrategyOption,
    admin_settings,
    console,
    exit_on_user_errors,
    with_journal,
)
from tradeloop.core.config import ConfigError


def paper(
    config: Path | None = typer.Option(None, "--config", exists=True, dir_okay=False, help="TOML config file."),
    strategy: StrategyOption = None,
    duration: float | None = typer.Option(
        None, "--duration", help="Seconds to run (default: until the market data ends or Ctrl-C)."
    ),
    speed: float = typer.Option(1.0, "--speed", help="Replay the market this many times faster than real time."),
    admin_port: AdminPortOption = None,
    admin_host: AdminHostOption = "127.0.0.1",
    admin_token_env: AdminTokenEnvOption = "TRADELOOP_ADMIN_TOKEN",
    audit_log: Path | None = typer.Option(None, "--audit-log", help="Audit log of operator actions (kill, resume)."),
    journal: str | None = typer.Option(
        None,
        "--journal",
        help="Journal: a SQLite path or a postgresql:// URL (default: in memory). One that has records is "
        "continued: the session recovers its state first.",
    ),
    log_file: LogFileOption = None,
    log_level: LogLevelOption = "WARNING",
    venue: str | None = typer.Option(
        None, "--venue", help="Trade this venue's live public market data (fills stay simulated)."
    ),
    symbol: list[str] | None = typer.Option(None, "--symbol", help="Symbol on --venue (repeatable), e.g. BTCUSDT."),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Market data from a local simulator at this URL (http://127.0.0.1:PORT)."
    ),
) -> None:
    """Paper trading: the strategy on simulated venues, in real time, with metrics and the admin API.

    Market data: the config's (synthetic market or recordings), or with --venue and --symbol the
    venue's live public feed (--endpoint: a local simulator instead of the exchange)."""
    from tradeloop.core.logging import configure_logging
    from tradeloop.runtime.config import load_backtest_config
    from tradeloop.runtime.paper import PaperSession
    from tradeloop.runtime.summary import render_summary
    from tradeloop.runtime.venue_feed import VenueFeed, VenueMarketData

    configure_logging(log_level, path=str(log_file) if log_file else None)
    with exit_on_user_errors():
        settings = admin_settings(admin_token_env, admin_host, admin_port)
        cfg = with_journal(load_backtest_config(config), journal)
        if audit_log is not None:
            cfg = msgspec.structs.replace(cfg, audit=msgspec.structs.replace(cfg.audit, path=str(audit_log)))
        venue_feed = None
        if venue is not None:
            if not symbol:
                raise ConfigError("--venue needs at least one --symbol")
            venue_feed = VenueFeed([VenueMarketData(venue, symbol, endpoint=endpoint)])
        elif symbol or endpoint:
            raise ConfigError("--symbol and --endpoint need --venue")
        session = PaperSession(
            cfg,
            speed=speed,
            duration_s=duration,
            admin=settings,
            strategy_spec=strategy,
            console=console,
            venue_feed=venue_feed,
        )
    console.print(
        f"[bold]tradeloop paper[/bold]: {session.source.description} at {speed:g}x; "
        f"strategy {strategy or cfg.strategy.name}; "
        + (f"for {duration:g}s" if duration is not None else "until the data ends or Ctrl-C")
    )
    try:
        with exit_on_user_errors():
            summary = asyncio.run(session.run())
    except ConnectionError as exc:
        console.print(f"[red]market data error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        session.engine.journal.close()
    console.print(f"session ended: {session.stop_reason}")
    console.print(render_summary(summary))
