"""``tradeloop live``: real orders on the configured venues."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
    strategy: StrategyOption = None,
    duration: float | None = typer.Option(None, "--duration", help="Seconds to run (default: until Ctrl-C)."),
    admin_port: AdminPortOption = None,
    admin_host: AdminHostOption = "127.0.0.1",
    admin_token_env: AdminTokenEnvOption = "TRADELOOP_ADMIN_TOKEN",
    journal: str | None = typer.Option(
        None,
        "--journal",
        help="Journal: a SQLite path or a postgresql:// URL (default: from config). One that has records is "
        "continued: the node recovers its state and reconciles with the venues before trading.",
    ),
    reconcile_only: bool = typer.Option(
        False,
        "--reconcile-only",
        help="Recover from the journal, reconcile with the venues, write a snapshot and exit without trading.",
    ),
    failover: str | None = typer.Option(
        None,
        "--failover",
        help="Run as one node of a failover pair: hold the lease in this Redis (redis://HOST:PORT/DB, or env:NAME) "
        "to trade, wait as the hot secondary otherwise. Both nodes need the same journal. Exit 3: lease lost.",
    ),
    node_id: str | None = typer.Option(None, "--node-id", help="This node's name in the lease (default host-pid)."),
    lease_name: str | None = typer.Option(None, "--lease-name", help="The pair's lease (default: the node tag)."),
    lease_ttl_ms: int = typer.Option(
        2000, "--lease-ttl-ms", min=100, help="Lease TTL: the other node takes over this long after a loss."
    ),
    log_file: LogFileOption = None,
    log_level: LogLevelOption = "WARNING",
) -> None:
    """Live trading: the strategy sends real orders through each configured venue's API.

    Keys come from the config's secret references (env:, file:, keystore:); the node refuses to
    start without them. On the way out every open order is canceled unless --keep-orders.
    Exit codes: 0 done, 1 a venue could not be started or the run failed, 2 configuration errors.
    """
    from tradeloop.core.logging import configure_logging
    from tradeloop.runtime.live import LiveSession, LiveStartError
    from tradeloop.runtime.live_config import load_live_config
    from tradeloop.runtime.summary import render_summary
    from tradeloop.trading.recovery import RecoveryError

    configure_logging(log_level, path=str(log_file) if log_file else None)
    with exit_on_user_errors():
        settings = admin_settings(admin_token_env, admin_host, admin_port)
        cfg = with_journal(load_live_config(config), journal)
        if failover is not None:
            from tradeloop.runtime.failover import run_failover_cli

            raise typer.Exit(
                run_failover_cli(
                    cfg,
                    failover,
                    node_id=node_id,
                    lease_name=lease_name,
                    ttl_ms=lease_ttl_ms,
                    endpoint=endpoint,
                    keep_orders=keep_orders,
                    duration_s=duration,
                    admin=settings,
                    strategy_spec=strategy,
                    console=console,
                )
            )
        session = LiveSession(
            cfg,
            endpoint=endpoint,
            keep_orders=keep_orders or None,
            duration_s=duration,
            admin=settings,
            strategy_spec=strategy,
            console=console,
            reconcile_only=reconcile_only,
        )
    console.print(
        f"[bold]tradeloop live[/bold]: strategy {strategy or cfg.strategy.name}; "
        + (f"for {duration:g}s" if duration is not None else "until Ctrl-C")
        + ("; orders kept at the end" if session.keep_orders else "")
    )
    for line in session.describe_keys():
        console.print(f"  {line}")
    try:
        with exit_on_user_errors():
            summary = asyncio.run(session.run())
    except (LiveStartError, ConnectionError, RecoveryError) as exc:
        console.print(f"[red]could not start:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        if session.journal is not None:
            session.journal.close()
    console.print(f"session ended: {session.stop_reason}")
    for venue, left in sorted(session.orders_left.items()):
        style = "green" if left == 0 else "red"
        console.print(f"  {venue}: [{style}]{left} open order(s) left[/{style}]")
    console.print(render_summary(summary))
    if any(session.orders_left.values()):
        raise typer.Exit(1)
