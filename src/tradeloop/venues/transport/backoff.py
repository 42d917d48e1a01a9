"""Exponential reconnect/retry backoff with jitter, from an injected random generator.

Two jitter modes (both spread many clients' retries so they do not hit a venue in lock step):

* ``full``: attempt *n* waits ``uniform(0, min(cap, base * factor**n))``;
* ``decorrelated``: each wait is ``min(cap, uniform(base, 3 * previous wait))``, starting from ``base``.

The generator is passed in, so a seeded ``random.Random`` gives the same delays every run. Callers
:meth:`Backoff.reset` after a healthy connection or a successful request.
"""

from __future__ import annotations

import random
from enum import StrEnum

import msgspec

__all__ = ["Backoff", "BackoffSpec", "JitterMode"]


class JitterMode(StrEnum):
    FULL = "full"
    DECORRELATED = "decorrelated"


class BackoffSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long to wait between attempts, in seconds."""

    base_s: float = 0.5
    """The first delay's ceiling (full jitter) or floor (decorrelated jitter)."""
    cap_s: float = 30.0
    """No delay is longer than this."""
    factor: float = 2.0
    """Growth of the full-jitter ceiling per attempt."""
    jitter: JitterMode = JitterMode.FULL

    def __post_init__(self) -> None:
        if not self.base_s > 0:
            raise ValueError(f"backoff base_s must be positive, got {self.base_s}")
        if not self.cap_s >= self.base_s:
            raise ValueError(f"backoff cap_s ({self.cap_s}) must be at least base_s ({self.base_s})")
        if not self.factor >= 1:
            raise ValueError(f"backoff factor must be at least 1, got {self.factor}")


class Backoff:
    """The delay before each next attempt; :attr:`attempts` counts delays handed out since the last reset."""

    __slots__ = ("_ceiling", "_previous", "_rng", "attempts", "spec")

    def __init__(self, spec: BackoffSpec, rng: random.Random) -> None:
        self.spec = spec
        self._rng = rng
        self.attempts = 0
        self._ceiling = spec.base_s  # full jitter: grows by `factor` per attempt up to `cap_s`
        self._previous = spec.base_s  # decorrelated jitter: the last delay

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt (and count the attempt)."""
        spec = self.spec
        if spec.jitter is JitterMode.FULL:
            delay = self._rng.uniform(0.0, self._ceiling)
            self._ceiling = min(spec.cap_s, self._ceiling * spec.factor)
        else:
            delay = min(spec.cap_s, self._rng.uniform(spec.base_s, self._previous * 3.0))
            self._previous = delay
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Start again from the first delay (after a healthy connection or a success)."""
        self.attempts = 0
        self._ceiling = self.spec.base_s
        self._previous = self.spec.base_s
