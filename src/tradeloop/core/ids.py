"""Client order ids every venue accepts: short (at most 20 chars), ASCII letters and digits only.

Format: ``<tag><epoch base36><counter base36>``. The tag names the node (so two nodes never
collide), the epoch part is the generator's start time in seconds (so a restarted node does not
reuse ids), and the counter makes ids unique within a run. In backtests the start time comes from
the simulated clock, so ids (and the journal) are repeatable.
"""

from __future__ import annotations

import re

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_VALID = re.compile(r"^[A-Za-z0-9]{1,20}$")
MAX_LEN = 20


def to_base36(n: int) -> str:
    if n < 0:
        raise ValueError("base36 of a negative number")
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def is_valid_client_order_id(text: str) -> bool:
    return bool(_VALID.match(text))


EPOCH_CHARS = 6
MAX_EPOCH = 36**EPOCH_CHARS - 1


class ClientOrderIdGenerator:
    """``epoch`` replaces the start second in the ids (a failover node puts its fencing token there)."""

    def __init__(self, tag: str, start_ns: int, counter: int = 0, *, epoch: int | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z0-9]{1,4}", tag):
            raise ValueError(f"id tag must be 1-4 ASCII letters or digits, got {tag!r}")
        if epoch is None:
            epoch = start_ns // 1_000_000_000
        elif not 0 <= epoch <= MAX_EPOCH:
            raise ValueError(f"id epoch must be 0..{MAX_EPOCH}, got {epoch}")
        self._prefix = tag + to_base36(epoch).rjust(EPOCH_CHARS, "0")
        self._counter = counter

    def next(self) -> str:
        self._counter += 1
        cid = self._prefix + to_base36(self._counter)
        if len(cid) > MAX_LEN:
            raise OverflowError("client order id counter exhausted")
        return cid

    @property
    def counter(self) -> int:
        return self._counter

    @property
    def prefix(self) -> str:
        return self._prefix

    def last(self) -> str | None:
        """The last id handed out (``None`` before the first)."""
        return self._prefix + to_base36(self._counter) if self._counter else None

    def observe(self, client_order_id: str) -> None:
        """After recovery: never hand out an id at or below one already used with this prefix."""
        if client_order_id.startswith(self._prefix):
            try:
                n = int(client_order_id[len(self._prefix) :], 36)
            except ValueError:
                return
            self._counter = max(self._counter, n)
