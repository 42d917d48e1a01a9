"""``tradeloop live``: real orders on the configured venues."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import typer

from tradeloop.cli.common import console
from tradeloop.core.config import ConfigError


def live(
    config: Path = typer.Option(
        ..., "--config", exists=True, dir_okay=False, help="TOML config with [live.venues.<venue>] sections."
    ),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Trade on a local simulator at this URL (http://127.0.0.1:PORT); single venue only."
    ),
    keep_orders: bool = typer.Option(
        False, "--keep-orders", help="Leave working orders at the venues on the way out (default: cancel all)."
    ),
    strategy: str | None = typer.Option(
        None, "--strategy", help="Built-in name, module:Class or path.py:Class (default: from config)."
    ),
    duration: float | None = typer.Option(None, "--duration", help="Seconds to run (default: until Ctrl-C)."),
    admin_port: int | None = typer.Option(
        None, "--admin-port", help="Serve the admin API, /metrics and the dashboard on this port (0: any free port)."
    ),
    admin_host: str = typer.Option("127.0.0.1", "--admin-host", help="Address the admin API listens on."),
    admin_token_env: str = typer.Option(
        "TRADELOOP_ADMIN_TOKEN", "--admin-token-env", help="Environment variable holding the admin token."
    ),
    journal: Path | None = typer.Option(None, "--journal", help="SQLite journal path (default: from config)."),
    log_file: Path | None = typer.Option(
        None, "--log-file", help="Write JSON logs here (default: warnings to stderr)."
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Live trading: the strategy sends real orders through each configured venue's API.

    Keys come from the config's secret references (env:, file:, keystore:); the node refuses to
    start without them. On the way out every open order is canceled unless --keep-orders.
    Exit codes: 0 done, 1 a venue could not be started or the run failed, 2 configuration errors.
    """
    from tradeloop.core.logging import configure_logging
    from tradeloop.ops.admin import AdminConfigError, AdminSettings
    from tradeloop.runtime.live import LiveSession, LiveStartError
    from tradeloop.runtime.live_config import load_live_config
    from tradeloop.runtime.summary import render_summary
    from tradeloop.strategies.loader import StrategyNotFound

    configure_logging(log_level, path=str(log_file) if log_file else None)
    try:
        settings = (
            AdminSettings.from_env(admin_token_env, host=admin_host, port=admin_port)
            if admin_port is not None
            else None
        )
        cfg = load_live_config(config)
        if journal is not None:
            cfg = msgspec.structs.replace(cfg, journal=msgspec.structs.replace(cfg.journal, path=str(journal)))
        session = LiveSession(
            cfg,
            endpoint=endpoint,
            keep_orders=keep_orders or None,
            duration_s=duration,
            admin=settings,
            strategy_spec=strategy,
            console=console,
        )
    except AdminConfigError as exc:
        console.print(f"[red]admin API error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"[bold]tradeloop live[/bold]: strategy {strategy or cfg.strategy.name}; "
        + (f"for {duration:g}s" if duration is not None else "until Ctrl-C")
        + ("; orders kept at the end" if session.keep_orders else "")
    )
    for line in session.describe_keys():
        console.print(f"  {line}")
    try:
        summary = asyncio.run(session.run())
    except (LiveStartError, ConnectionError) as exc:
        console.print(f"[red]could not start:[/red] {exc}")
        raise typer.Exit(1) from None
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    except StrategyNotFound as exc:
        console.print(f"[red]strategy error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        if session.engine is not None:
            session.engine.journal.close()
    console.print(f"session ended: {session.stop_reason}")
    for venue, left in sorted(session.orders_left.items()):
        style = "green" if left == 0 else "red"
        console.print(f"  {venue}: [{style}]{left} open order(s) left[/{style}]")
    console.print(render_summary(summary))
    if any(session.orders_left.values()):
        raise typer.Exit(1)
