"""``tradeloop audit``: verify and show a hash-chained audit log."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape

from tradeloop.cli.common import console

audit_app = typer.Typer(no_args_is_help=True, help="Verify and show the hash-chained audit log.")

_HEAD = re.compile(r"^(\d+):([0-9a-f]{64})$")


def _time(ts_ns: int) -> str:
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=ns // 1000).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@audit_app.command("verify")
def verify(
    path: Path = typer.Argument(..., help="Audit log file."),
    head: str | None = typer.Option(
        None, "--head", help="SEQ:HASH recorded earlier (printed by `audit show`): also finds a truncated end."
    ),
) -> None:
    """Check the hash chain: exit 0 when intact, 1 listing each edited/removed/inserted/reordered entry."""
    from tradeloop.security.audit import AuditLog, AuditLogError, verify_audit_log

    expected: tuple[int, str] | None = None
    if head is not None:
        match = _HEAD.match(head)
        if not match:
            raise typer.BadParameter("expected SEQ:HASH (HASH = 64 lowercase hex digits)", param_hint="--head")
        expected = (int(match.group(1)), match.group(2))
    try:
        problems = verify_audit_log(path, expected_head=expected)
    except AuditLogError as exc:
        console.print(f"[red]audit error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if problems:
        for p in problems:
            typer.echo(f"line {p.position}: {p.kind}: {p.message}")
        console.print(f"[red]audit log {escape(str(path))} has {len(problems)} problem(s)[/red]")
        raise typer.Exit(1)
    last = AuditLog(path).head()
    if last is None:
        typer.echo(f"{path}: empty, intact")
    else:
        typer.echo(f"{path}: intact, {last[0]} entries, head {last[0]}:{last[1]}")


@audit_app.command("show")
def show(
    path: Path = typer.Argument(..., help="Audit log file."),
    last: int | None = typer.Option(None, "--last", min=1, help="Only the last N lines."),
) -> None:
    """Print the entries (time UTC, seq, actor, action, details); malformed lines are marked."""
    from tradeloop.security.audit_chain import AuditLogError, read_lines

    try:
        lines = read_lines(path)
    except AuditLogError as exc:
        console.print(f"[red]audit error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    for parsed in lines[-last:] if last else lines:
        e = parsed.entry
        if e is None:
            typer.echo(f"line {parsed.line_no}: MALFORMED: {parsed.error}")
            continue
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.detail.items()))
        typer.echo(f"{_time(e.ts_ns)}  #{e.seq}  {e.actor}  {e.action}  {detail}".rstrip())
    tail = next((p.entry for p in reversed(lines) if p.entry is not None), None)
    if tail is not None:
        typer.echo(f"head {tail.seq}:{tail.hash}")
