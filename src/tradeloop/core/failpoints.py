"""Failpoints: named places in the code where a crash test can kill the process on purpose.

The crash tests (``tests/integration/test_crash_recovery.py``) start an engine with
``TRADELOOP_FAILPOINT=<name>:<n>`` and the engine kills itself with ``SIGKILL`` the ``n``-th time it
passes the place named ``name``: between an order's durable intent and its send, after the send
before the reply, between a fill and its journal write, in the middle of a snapshot. That reaches
the instants a ``kill -9`` from outside hits only by luck.

Unset (always, outside such tests), :func:`failpoint` is one global lookup and a return.
"""

from __future__ import annotations

import os
import signal
from typing import Final

__all__ = ["ENV", "arm", "disarm", "failpoint", "hits"]

ENV: Final = "TRADELOOP_FAILPOINT"

_armed: tuple[str, int] | None = None
_hits: dict[str, int] = {}


def arm(name: str, nth: int = 1) -> None:
    """Kill the process the ``nth`` time :func:`failpoint` ``(name)`` runs."""
    global _armed
    if nth < 1:
        raise ValueError(f"failpoint {name}: nth must be at least 1, got {nth}")
    _armed = (name, nth)
    _hits.pop(name, None)


def disarm() -> None:
    global _armed
    _armed = None


def hits(name: str) -> int:
    """How many times the armed failpoint ``name`` was passed (0 when it is not armed)."""
    return _hits.get(name, 0)


def failpoint(name: str) -> None:
    """Kill the process here if this failpoint is armed and due."""
    if _armed is None or _armed[0] != name:
        return
    n = _hits.get(name, 0) + 1
    _hits[name] = n
    if n >= _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def _arm_from_env() -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    try:
        arm(name, int(nth) if nth else 1)
    except ValueError as exc:
        raise SystemExit(f"{ENV}={spec!r}: {exc}") from None


_arm_from_env()
