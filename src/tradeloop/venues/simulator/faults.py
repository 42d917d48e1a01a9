"""Fault injection of a local venue simulator: the one place fault state lives.

Tests (or ``POST /__sim/fault``) arm faults; the venue's dialect consumes them with the ``take_*``
methods at the point where the fault applies (the next book update it would send, the next order
request it answers, ...). Every fault is counted when armed and when consumed, so a test can check
that the dialect really applied it (``GET /__sim/state`` shows the counters).

``drop_connections`` is the only fault acted on at once: the server closes every WebSocket it
tracks (see :meth:`tradeloop.venues.simulator.server.VenueSimulator.track`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

__all__ = ["FAULTS", "FaultError", "FaultPlan"]

FAULTS: Final[tuple[str, ...]] = (
    "corrupt_checksum",
    "delay_next_reply",
    "drop_connections",
    "rate_limit_next",
    "reject_next",
    "send_malformed",
    "skip_sequence",
    "stall_feed",
)
"""Names of the faults :meth:`FaultPlan.arm` (and ``POST /__sim/fault``) accepts."""


class FaultError(ValueError):
    """A fault that cannot be armed: unknown name, or bad arguments."""


def _positive_count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FaultError(f"count must be a positive integer, got {count!r}")
    return count


def _seconds(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
        raise FaultError(f"seconds must be a number in [0, 3600], got {seconds!r}")
    return float(seconds)


class FaultPlan:
    """Faults armed on one simulator, consumed by its dialect.

    Counted faults (``skip_sequence(3)``) apply to the next ``count`` occasions; arming the same
    fault again adds to what is left. ``reject_next`` and ``delay_next_reply`` queue their values
    in arming order.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._skip = 0
        self._corrupt = 0
        self._rate_limit = 0
        self._rejects: deque[str] = deque()
        self._delays: deque[float] = deque()
        self._malformed: deque[bytes] = deque()
        self._stalled_until = 0.0
        self._drop_listeners: list[Callable[[], None]] = []
        self.armed: dict[str, int] = dict.fromkeys(FAULTS, 0)
        """How many of each fault were armed (a ``count=3`` arms three)."""
        self.consumed: dict[str, int] = dict.fromkeys(FAULTS, 0)
        """How many of each fault the dialect (or the server, for drops) applied."""

    # -- arming -------------------------------------------------------------------------------

    def drop_connections(self) -> None:
        """Have the server close every WebSocket it tracks, now."""
        self.armed["drop_connections"] += 1
        self.consumed["drop_connections"] += 1
        for listener in list(self._drop_listeners):
            listener()

    def stall_feed(self, seconds: float) -> None:
        """No market frames for ``seconds`` (sockets stay open; app-level pings go unanswered)."""
        until = self._monotonic() + _seconds(seconds)
        self._stalled_until = max(self._stalled_until, until)
        self.armed["stall_feed"] += 1

    def skip_sequence(self, count: int = 1) -> None:
        """The next ``count`` book updates are not sent; their sequence numbers are consumed."""
        self._skip += _positive_count(count)
        self.armed["skip_sequence"] += count

    def corrupt_checksum(self, count: int = 1) -> None:
        """The next ``count`` book updates carry a wrong checksum."""
        self._corrupt += _positive_count(count)
        self.armed["corrupt_checksum"] += count

    def reject_next(self, error: str, count: int = 1) -> None:
        """The next ``count`` order requests are refused with ``error`` (the venue's own code or message)."""
        if not isinstance(error, str) or not error:
            raise FaultError(f"error must be a non-empty string (the venue's code or message), got {error!r}")
        self._rejects.extend([error] * _positive_count(count))
        self.armed["reject_next"] += count

    def delay_next_reply(self, seconds: float, count: int = 1) -> None:
        """The replies to the next ``count`` order requests are held ``seconds`` (the request is acted on at once)."""
        delay = _seconds(seconds)
        self._delays.extend([delay] * _positive_count(count))
        self.armed["delay_next_reply"] += count

    def rate_limit_next(self, count: int = 1) -> None:
        """The next ``count`` REST requests get the venue's rate-limit reply (429, body, Retry-After)."""
        self._rate_limit += _positive_count(count)
        self.armed["rate_limit_next"] += count

    def send_malformed(self, payload: bytes, count: int = 1) -> None:
        """Push ``payload`` as-is to market-data subscribers, ``count`` times."""
        if isinstance(payload, str):
            payload = payload.encode()
        if not isinstance(payload, bytes | bytearray):
            raise FaultError(f"payload must be bytes or text, got {type(payload).__name__}")
        self._malformed.extend([bytes(payload)] * _positive_count(count))
        self.armed["send_malformed"] += count

    def arm(self, fault: str, **kwargs: Any) -> None:
        """Arm a fault by name (``POST /__sim/fault``); :class:`FaultError` on unknown names or arguments."""
        if fault not in FAULTS:
            raise FaultError(f"unknown fault {fault!r}; known faults: {', '.join(FAULTS)}")
        method: Callable[..., None] = getattr(self, fault)
        try:
            method(**kwargs)
        except TypeError as exc:
            raise FaultError(f"bad arguments for {fault}: {exc}") from None

    # -- consumed by dialects -----------------------------------------------------------------

    def take_skip(self) -> bool:
        """True if this book update must be skipped (its sequence numbers still consumed)."""
        if self._skip <= 0:
            return False
        self._skip -= 1
        self.consumed["skip_sequence"] += 1
        return True

    def take_corrupt(self) -> bool:
        """True if this book update must carry a wrong checksum."""
        if self._corrupt <= 0:
            return False
        self._corrupt -= 1
        self.consumed["corrupt_checksum"] += 1
        return True

    def take_reject(self) -> str | None:
        """The venue error to refuse this order request with, or ``None``."""
        if not self._rejects:
            return None
        self.consumed["reject_next"] += 1
        return self._rejects.popleft()

    def take_delay(self) -> float:
        """Seconds to hold the reply to this order request (0.0: none)."""
        if not self._delays:
            return 0.0
        self.consumed["delay_next_reply"] += 1
        return self._delays.popleft()

    def take_rate_limit(self) -> bool:
        """True if this REST request gets the venue's rate-limit reply."""
        if self._rate_limit <= 0:
            return False
        self._rate_limit -= 1
        self.consumed["rate_limit_next"] += 1
        return True

    def stalled(self) -> bool:
        """True while the feed is stalled: send no market frames, answer no app-level pings."""
        if self._stalled_until and self._monotonic() < self._stalled_until:
            return True
        if self._stalled_until:
            self._stalled_until = 0.0
            self.consumed["stall_feed"] += 1
        return False

    def take_malformed(self) -> bytes | None:
        """A malformed payload to push to market-data subscribers as-is, or ``None``."""
        if not self._malformed:
            return None
        self.consumed["send_malformed"] += 1
        return self._malformed.popleft()

    def clear(self) -> None:
        """Disarm every pending fault (counters are kept)."""
        self._skip = self._corrupt = self._rate_limit = 0
        self._rejects.clear()
        self._delays.clear()
        self._malformed.clear()
        self._stalled_until = 0.0

    # -- server side --------------------------------------------------------------------------

    def add_drop_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` on every :meth:`drop_connections` (the server closes its sockets there)."""
        self._drop_listeners.append(fn)

    def remove_drop_listener(self, fn: Callable[[], None]) -> None:
        if fn in self._drop_listeners:
            self._drop_listeners.remove(fn)

    def pending(self) -> dict[str, int]:
        """Faults armed and not yet consumed, by name (stall: 1 while stalled)."""
        return {
            "corrupt_checksum": self._corrupt,
            "delay_next_reply": len(self._delays),
            "drop_connections": 0,
            "rate_limit_next": self._rate_limit,
            "reject_next": len(self._rejects),
            "send_malformed": len(self._malformed),
            "skip_sequence": self._skip,
            "stall_feed": 1 if self._stalled_until and self._monotonic() < self._stalled_until else 0,
        }

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counters for ``GET /__sim/state``: armed, consumed and pending per fault."""
        return {"armed": dict(self.armed), "consumed": dict(self.consumed), "pending": self.pending()}
