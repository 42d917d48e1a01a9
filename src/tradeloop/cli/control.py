"""``tradeloop kill`` and ``tradeloop resume``: the operator's kill switch and resume, over the admin API.

Both POST ``{"reason": ...}`` to a running node's admin API (``/api/kill``, ``/api/resume``) with
``Authorization: Bearer <token>``, the token read from an environment variable
(``TRADELOOP_ADMIN_TOKEN`` unless ``--token-env`` names another); it never appears in output.
On success the node's answer (``{"state": "HALTED"}``) goes to stdout as JSON.

Exit codes: 0 done; 1 the node answered with an error (e.g. a resume without a reason); 2 bad usage
(no token in the environment, a URL that is not http(s)); 3 the node cannot be reached; 4 the node
refused the token.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Final

import typer

from tradeloop.cli.common import console

DEFAULT_TOKEN_ENV: Final = "TRADELOOP_ADMIN_TOKEN"
EXIT_NODE_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
EXIT_TOKEN_REFUSED: Final = 4


class ControlError(Exception):
    """A kill/resume request that did not go through; ``exit_code`` says why."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def post_control(url: str, action: str, reason: str, token: str, timeout_s: float = 10.0) -> dict[str, object]:
    """POST ``{"reason": reason}`` to ``<url>/api/<action>``; the node's JSON answer, or :class:`ControlError`."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ControlError(f"--url must be an http(s) URL such as http://127.0.0.1:8080, got {url!r}", EXIT_USAGE)
    endpoint = url.rstrip("/") + f"/api/{action}"
    request = urllib.request.Request(
        endpoint,
        data=json.dumps({"reason": reason}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read())
        if exc.code in (401, 403):
            raise ControlError(
                f"the node at {url} refused the admin token ({exc.code}: {detail})", EXIT_TOKEN_REFUSED
            ) from None
        raise ControlError(f"the node at {url} answered {exc.code}: {detail}", EXIT_NODE_ERROR) from None
    except (urllib.error.URLError, OSError) as exc:
        why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(why, socket.timeout | TimeoutError):
            why = f"no answer within {timeout_s:g} s"
        raise ControlError(f"cannot reach the node at {url}: {why}", EXIT_UNREACHABLE) from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise ControlError(
            f"the node at {url} sent a reply that is not JSON: {body[:200]!r}", EXIT_NODE_ERROR
        ) from None
    if not isinstance(answer, dict):
        raise ControlError(f"the node at {url} sent an unexpected reply: {answer!r}", EXIT_NODE_ERROR)
    return answer


def _error_detail(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace") or "no detail"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return str(data)[:200]


def _run(action: str, url: str, reason: str, token_env: str, timeout: float) -> None:
    token = os.environ.get(token_env, "").strip()
    if not token:
        console.print(f"[red]no admin token:[/red] set the environment variable {token_env}")
        raise typer.Exit(EXIT_USAGE)
    try:
        answer = post_control(url, action, reason, token, timeout)
    except ControlError as exc:
        console.print(f"[red]{action} failed:[/red] {exc}")
        raise typer.Exit(exc.exit_code) from None
    console.print(f"{action}: trading is now [bold]{answer.get('state', '?')}[/bold] on {url}")
    typer.echo(json.dumps(answer))


URL_OPTION = typer.Option(
    ..., "--url", envvar="TRADELOOP_ADMIN_URL", help="The node's admin API, e.g. http://127.0.0.1:8080."
)
TOKEN_ENV_OPTION = typer.Option(DEFAULT_TOKEN_ENV, "--token-env", help="Environment variable holding the admin token.")
TIMEOUT_OPTION = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for the node.")


def kill(
    url: str = URL_OPTION,
    reason: str = typer.Option("", "--reason", help="Why (recorded in the journal and the audit log)."),
    token_env: str = TOKEN_ENV_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Kill switch: halt trading on a running node and cancel every open order on every venue."""
    _run("kill", url, reason, token_env, timeout)


def resume(
    url: str = URL_OPTION,
    reason: str = typer.Option(..., "--reason", help="Why it is safe to trade again (required, audited)."),
    token_env: str = TOKEN_ENV_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Resume trading on a running node after a halt (by a circuit breaker or the kill switch)."""
    _run("resume", url, reason, token_env, timeout)
