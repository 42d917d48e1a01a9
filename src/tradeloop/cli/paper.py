"""``tradeloop paper``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import typer

from tradeloop.cli.common import console
from tradeloop.core.config import ConfigError


def paper(
    config: Path | None = typer.Option(None, "--config", exists=True, dir_okay=False, help="TOML config file."),
    strategy: str | None = typer.Option(
        None, "--strategy", help="Built-in name, module:Class or path.py:Class (default: from config)."
    ),
    duration: float | None = typer.Option(
        None, "--duration", help="Seconds to run (default: until the market data ends or Ctrl-C)."
    ),
    speed: float = typer.Option(1.0, "--speed", help="Replay the market this many times faster than real time."),
    admin_port: int | None = typer.Option(
        None, "--admin-port", help="Serve the admin API, /metrics and the dashboard on this port (0: any free port)."
    ),
    admin_host: str = typer.Option("127.0.0.1", "--admin-host", help="Address the admin API listens on."),
    admin_token_env: str = typer.Option(
        "TRADELOOP_ADMIN_TOKEN", "--admin-token-env", help="Environment variable holding the admin token."
    ),
    audit_log: Path | None = typer.Option(None, "--audit-log", help="Audit log of operator actions (kill, resume)."),
    journal: Path | None = typer.Option(None, "--journal", help="SQLite journal path (default: in memory)."),
    log_file: Path | None = typer.Option(
        None, "--log-file", help="Write JSON logs here (default: warnings to stderr)."
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
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
    from tradeloop.ops.admin import AdminConfigError, AdminSettings
    from tradeloop.runtime.config import load_backtest_config
    from tradeloop.runtime.paper import PaperSession
    from tradeloop.runtime.summary import render_summary
    from tradeloop.runtime.venue_feed import VenueFeed, VenueMarketData
    from tradeloop.strategies.loader import StrategyNotFound

    configure_logging(log_level, path=str(log_file) if log_file else None)
    try:
        settings = (
            AdminSettings.from_env(admin_token_env, host=admin_host, port=admin_port)
            if admin_port is not None
            else None
        )
        cfg = load_backtest_config(config)
        if journal is not None:
            cfg = msgspec.structs.replace(cfg, journal=msgspec.structs.replace(cfg.journal, path=str(journal)))
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
    except AdminConfigError as exc:
        console.print(f"[red]admin API error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    except StrategyNotFound as exc:
        console.print(f"[red]strategy error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"[bold]tradeloop paper[/bold]: {session.source.description} at {speed:g}x; "
        f"strategy {strategy or cfg.strategy.name}; "
        + (f"for {duration:g}s" if duration is not None else "until the data ends or Ctrl-C")
    )
    try:
        summary = asyncio.run(session.run())
    except AdminConfigError as exc:
        console.print(f"[red]admin API error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ConnectionError as exc:
        console.print(f"[red]market data error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        session.engine.journal.close()
    console.print(f"session ended: {session.stop_reason}")
    console.print(render_summary(summary))
