"""``tradeloop split``: the node as three services over NATS (market data, strategy, execution with risk)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from tradeloop.cli.common import LogFileOption, LogLevelOption, StrategyOption, console, exit_on_user_errors

SERVICE_NAMES = ("market-data", "strategy", "execution")


def split(
    config: Path = typer.Option(
        ..., "--config", exists=True, dir_okay=False, help="TOML config with [live.venues.<venue>] sections."
    ),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Trade on a local simulator at this URL (http://127.0.0.1:PORT); single venue only."
    ),
    nats_url: str = typer.Option("nats://127.0.0.1:4222", "--nats", help="NATS server with JetStream."),
    deployment: str = typer.Option(
        "tradeloop",
        "--deployment",
        help="Name of this deployment: its subjects are tl.<name>.*, its streams TL_<name>_*.",
    ),
    duration: float | None = typer.Option(None, "--duration", help="Seconds to run (default: until Ctrl-C)."),
    service: str | None = typer.Option(
        None, "--service", help="Run one service here: market-data, strategy or execution (default: all three)."
    ),
    strategy: StrategyOption = None,
    keep_orders: bool = typer.Option(
        False, "--keep-orders", help="Leave working orders at the venues on the way out (default: cancel all)."
    ),
    journal: str | None = typer.Option(
        None, "--journal", help="The execution node's journal: a SQLite path or a postgresql:// URL (default: config)."
    ),
    max_command_age: float = typer.Option(
        10.0, "--max-command-age", help="The execution service denies a submit older than this many seconds."
    ),
    log_file: LogFileOption = None,
    log_level: LogLevelOption = "WARNING",
) -> None:
    """Run the node split into three processes connected by NATS, or one of them (--service).

    Market data goes on core NATS; commands and order events on JetStream streams (nothing lost).
    The single-process `tradeloop live` stays the default way to trade. Exit codes: 0 done, 1 a service
    failed or could not start, 2 configuration errors.
    """
    from tradeloop.core.logging import configure_logging

    configure_logging(log_level, path=str(log_file) if log_file else None)
    if service is not None and service not in SERVICE_NAMES:
        console.print(f"[red]unknown service {service!r}[/red]; one of: {', '.join(SERVICE_NAMES)}")
        raise typer.Exit(2)
    if service is None:
        extra = ["--max-command-age", str(max_command_age)]
        _launch(
            config, endpoint, nats_url, deployment, duration, strategy, keep_orders, journal, log_file, log_level, extra
        )
        return
    _one_service(
        service, config, endpoint, nats_url, deployment, duration, strategy, keep_orders, journal, max_command_age
    )


def _launch(
    config: Path,
    endpoint: str | None,
    nats_url: str,
    deployment: str,
    duration: float | None,
    strategy: str | None,
    keep_orders: bool,
    journal: str | None,
    log_file: Path | None,
    log_level: str,
    extra: list[str],
) -> None:
    from tradeloop.deploy.launcher import SplitLauncher
    from tradeloop.runtime.live_config import load_live_config

    with exit_on_user_errors():
        cfg = load_live_config(config)  # configuration errors stop here, before any process starts
        args = ["--config", str(config), "--nats", nats_url, "--deployment", deployment, "--log-level", log_level]
        for flag, value in (("--endpoint", endpoint), ("--strategy", strategy), ("--journal", journal)):
            if value is not None:
                args += [flag, value]
        if log_file is not None:
            args += ["--log-file", str(log_file)]
        if keep_orders:
            args.append("--keep-orders")
        args += extra
        launcher = SplitLauncher(
            args,
            nats_url=nats_url,
            deployment=deployment,
            duration_s=duration,
            stop_timeout_s=2 * cfg.live.stop_timeout_s + 10,
            say=lambda line: console.print(f"split: {line}"),
        )
    console.print(
        f"[bold]tradeloop split[/bold]: deployment {deployment} on {launcher.link.where}; "
        + (f"for {duration:g}s" if duration is not None else "until Ctrl-C")
    )
    try:
        outcome = launcher.run()
    except ConnectionError as exc:
        console.print(f"[red]could not start:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"split ended: {outcome.reason}")
    raise typer.Exit(outcome.exit_code)


def _one_service(
    service: str,
    config: Path,
    endpoint: str | None,
    nats_url: str,
    deployment: str,
    duration: float | None,
    strategy: str | None,
    keep_orders: bool,
    journal: str | None,
    max_command_age: float,
) -> None:
    from tradeloop.cli.common import with_journal
    from tradeloop.deploy.execution_service import ExecutionService
    from tradeloop.deploy.market_data_service import MarketDataService
    from tradeloop.deploy.nats_link import NatsLink
    from tradeloop.deploy.strategy_service import StrategyService
    from tradeloop.deploy.subjects import Subjects
    from tradeloop.runtime.live import LiveStartError
    from tradeloop.runtime.live_config import load_live_config
    from tradeloop.runtime.summary import render_summary

    with exit_on_user_errors():
        cfg = with_journal(load_live_config(config), journal)
        link = NatsLink(nats_url, Subjects(deployment), service)
        runner: MarketDataService | StrategyService | ExecutionService
        if service == "market-data":
            runner = MarketDataService(cfg, link, endpoint=endpoint, duration_s=duration)
        elif service == "strategy":
            runner = StrategyService(cfg, link, endpoint=endpoint, strategy_spec=strategy, duration_s=duration)
        else:
            runner = ExecutionService(
                cfg,
                link,
                max_command_age_s=max_command_age,
                endpoint=endpoint,
                duration_s=duration,
                keep_orders=keep_orders or None,
                console=console,
            )
    console.print(f"split {service}: deployment {deployment} on {link.where}")
    try:
        with exit_on_user_errors():
            result = asyncio.run(runner.run())
    except (LiveStartError, ConnectionError) as exc:
        console.print(f"[red]{service} could not start:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        if isinstance(runner, ExecutionService) and runner.journal is not None:
            runner.journal.close()
    if isinstance(runner, ExecutionService):
        console.print(f"execution ended: {runner.stop_reason}")
        for venue, left in sorted(runner.orders_left.items()):
            style = "green" if left == 0 else "red"
            console.print(f"  {venue}: [{style}]{left} open order(s) left[/{style}]")
        if result is not None:
            console.print(render_summary(result))
        if any(runner.orders_left.values()):
            raise typer.Exit(1)
    else:
        console.print(f"{service} ended: {runner.control.stop_reason}")
