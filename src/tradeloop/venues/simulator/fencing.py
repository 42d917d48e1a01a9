"""Fencing at the local venue simulator: refuse orders of a primary that lost its failover lease.

A failover pair puts its lease's fencing token in every client order id
(``<tag><token base36, 6 chars><counter base36>``, see :mod:`tradeloop.core.ids`). With
``core.fence = Fencing(tag)`` the simulator parses that token from every submit whose client order
id starts with ``tag`` and refuses the request when its token is lower than the highest
token it has already accepted: the old primary, once the new one has traded, cannot get anything
accepted, whatever it believes about its lease. Client order ids with other prefixes are not fenced.

It also records, per token, the window (first and last accept time) and number of accepted
requests, so a test can check that two primaries never had orders accepted at the same time
(windows of different tokens never overlap). ``enforce=False`` only observes: it counts stale
accepts instead of refusing them (to show what an unfenced venue would have let through).

Amends and cancels are not fenced: they name an order by its id, which carries the token of the node
that *placed* it, not of the node sending the request (a new primary amends and cancels the orders it
recovered). A node that lost its lease stops those itself (its send gate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["TOKEN_DIGITS", "Fencing", "TokenWindow"]

TOKEN_DIGITS: Final = 6
"""Base-36 digits of the token after the tag."""
_TAG = re.compile(r"^[A-Za-z0-9]{1,4}$")
_BASE36 = re.compile(r"^[0-9a-z]+$")


@dataclass
class TokenWindow:
    """When requests carrying one token were accepted (venue clock, ns)."""

    token: int
    first_ns: int
    last_ns: int
    accepted: int = 0


class Fencing:
    """The fencing rule for client order ids starting with ``tag`` (1-4 letters or digits)."""

    def __init__(self, tag: str, *, enforce: bool = True) -> None:
        if not _TAG.match(tag):
            raise ValueError(f"fence tag must be 1-4 ASCII letters or digits, got {tag!r}")
        self.tag = tag
        self.enforce = enforce
        self.highest = 0
        """The highest token accepted so far (0: none yet)."""
        self.refused = 0
        """Requests refused for a stale or unreadable token."""
        self.refused_by_token: dict[int, int] = {}
        self.stale_accepted = 0
        """Requests with a stale token accepted anyway (only with ``enforce=False``)."""
        self.windows: dict[int, TokenWindow] = {}
        self.last_refusal = ""

    def token_of(self, client_order_id: str) -> int | None:
        """The token in ``client_order_id``; ``None`` if it is not fenced (other prefix).

        ``ValueError`` if it starts with the tag but carries no readable token.
        """
        if not client_order_id.startswith(self.tag):
            return None
        digits = client_order_id[len(self.tag) : len(self.tag) + TOKEN_DIGITS]
        if len(client_order_id) <= len(self.tag) + TOKEN_DIGITS or not _BASE36.match(digits):
            raise ValueError(f"client order id {client_order_id!r} carries no fencing token after {self.tag!r}")
        return int(digits, 36)

    def check(self, client_order_id: str) -> str | None:
        """The reason to refuse a submit of ``client_order_id`` now, or ``None`` to let it through."""
        try:
            token = self.token_of(client_order_id)
        except ValueError as exc:
            return self._refuse(-1, f"fencing: {exc}") if self.enforce else None
        if token is None or token >= self.highest or not self.enforce:
            return None
        return self._refuse(token, f"fencing: stale token {token} (a newer primary holds token {self.highest})")

    def accepted(self, client_order_id: str, now_ns: int) -> None:
        """Record a submit or amend of ``client_order_id`` the venue accepted at ``now_ns``."""
        try:
            token = self.token_of(client_order_id)
        except ValueError:
            return
        if token is None:
            return
        if token < self.highest:
            self.stale_accepted += 1
        self.highest = max(self.highest, token)
        window = self.windows.get(token)
        if window is None:
            window = self.windows[token] = TokenWindow(token, now_ns, now_ns)
        window.first_ns = min(window.first_ns, now_ns)
        window.last_ns = max(window.last_ns, now_ns)
        window.accepted += 1

    def overlaps(self) -> list[tuple[int, int]]:
        """Pairs of tokens whose accept windows overlap (two primaries trading at once); empty when fenced."""
        ordered = sorted(self.windows.values(), key=lambda w: w.token)
        return [
            (a.token, b.token)
            for i, a in enumerate(ordered)
            for b in ordered[i + 1 :]
            if a.first_ns <= b.last_ns and b.first_ns <= a.last_ns
        ]

    def snapshot(self) -> dict[str, Any]:
        """Plain data for ``GET /__sim/state``."""
        return {
            "tag": self.tag,
            "enforce": self.enforce,
            "highest_token": self.highest,
            "refused": self.refused,
            "refused_by_token": {str(t): n for t, n in sorted(self.refused_by_token.items())},
            "stale_accepted": self.stale_accepted,
            "last_refusal": self.last_refusal,
            "windows": [
                {"token": w.token, "first_ns": w.first_ns, "last_ns": w.last_ns, "accepted": w.accepted}
                for w in sorted(self.windows.values(), key=lambda w: w.token)
            ],
            "overlaps": [list(pair) for pair in self.overlaps()],
        }

    def _refuse(self, token: int, reason: str) -> str:
        self.refused += 1
        self.refused_by_token[token] = self.refused_by_token.get(token, 0) + 1
        self.last_refusal = reason
        return reason
