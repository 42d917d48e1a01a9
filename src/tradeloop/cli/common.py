"""Shared pieces of the command line: the console, the options every session command takes, and how
their errors become exit codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import msgspec
import typer
from rich.console import Console

if TYPE_CHECKING:
    from tradeloop.ops.admin import AdminSettings

console = Console(stderr=True)
"""Human-facing output goes to stderr; stdout is kept for machine-readable output."""

StrategyOption = Annotated[
    str | None,
    typer.Option("--strategy", help="Built-in name, module:Class or path.py:Class (default: from config)."),
]
AdminPortOption = Annotated[
    int | None,
    typer.Option(
        "--admin-port", help="Serve the admin API, /metrics and the dashboard on this port (0: any free port)."
    ),
]
AdminHostOption = Annotated[str, typer.Option("--admin-host", help="Address the admin API listens on.")]
AdminTokenEnvOption = Annotated[
    str, typer.Option("--admin-token-env", help="Environment variable holding the admin token.")
]
LogFileOption = Annotated[
    Path | None, typer.Option("--log-file", help="Write JSON logs here (default: warnings to stderr).")
]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]

C = TypeVar("C", bound=msgspec.Struct)


def admin_settings(token_env: str, host: str, port: int | None) -> AdminSettings | None:
    """The admin API's settings when ``--admin-port`` is given (its token from ``token_env``)."""
    from tradeloop.ops.admin import AdminSettings

    return AdminSettings.from_env(token_env, host=host, port=port) if port is not None else None


def with_journal(cfg: C, journal: str | Path | None) -> C:
    """``cfg`` with its ``journal.path`` replaced by ``--journal`` when given."""
    if journal is None:
        return cfg
    section = getattr(cfg, "journal")  # noqa: B009  # every session config has a journal section
    return msgspec.structs.replace(cfg, journal=msgspec.structs.replace(section, path=str(journal)))


@contextlib.contextmanager
def exit_on_user_errors() -> Iterator[None]:
    """Print configuration, admin and strategy errors as one line and exit with status 2 (a journal the
    node cannot recover from: status 1)."""
    from tradeloop.core.config import ConfigError
    from tradeloop.ops.admin import AdminConfigError
    from tradeloop.strategies.loader import StrategyNotFound
    from tradeloop.trading.recovery import RecoveryError

    try:
        yield
    except RecoveryError as exc:
        console.print(f"[red]recovery failed:[/red] {exc}")
        raise typer.Exit(1) from None
    except AdminConfigError as exc:
        console.print(f"[red]admin API error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    except StrategyNotFound as exc:
        console.print(f"[red]strategy error:[/red] {exc}")
        raise typer.Exit(2) from None
