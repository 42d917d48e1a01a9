"""The z-score state machine of a pairs trade (pure: no orders, no clock of its own).

States: ``FLAT``, ``LONG_SPREAD`` (long ``y``, short ``x``: entered when the spread is cheap,
``z <= -entry``) and ``SHORT_SPREAD`` (short ``y``, long ``x``: entered when ``z >= entry``).

* **Entry** from ``FLAT`` when ``entry <= |z| < stop`` and no cool-down is running (a deviation
  already beyond the stop is not entered).
* **Exit** (take profit) once ``z`` is back within ``exit`` of zero or beyond it on the other
  side: ``z >= -exit`` when long, ``z <= exit`` when short (a jump straight through zero exits too).
* **Stop** once the deviation reaches ``stop`` on the side of the position: ``z <= -stop`` when
  long, ``z >= stop`` when short. A stop starts a cool-down of ``cooldown_ns`` during which no
  new entry is made.

:meth:`PairsSignal.decide` only says what to do; :meth:`PairsSignal.commit` makes the transition
once the strategy has acted, so an entry that could not be sent (legs busy, gate closed) does not
move the state. :meth:`PairsSignal.update` does both, for callers that always act.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

__all__ = ["PairsSignal", "SignalAction", "SpreadPosition", "Thresholds"]


class SpreadPosition(Enum):
    FLAT = "flat"
    LONG_SPREAD = "long_spread"
    SHORT_SPREAD = "short_spread"


class SignalAction(Enum):
    NONE = "none"
    ENTER_LONG = "enter_long"
    """Buy ``y``, sell ``x``."""
    ENTER_SHORT = "enter_short"
    """Sell ``y``, buy ``x``."""
    EXIT = "exit"
    """Close the position: the spread came back."""
    STOP = "stop"
    """Close the position: the spread ran away; then cool down."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Absolute z-score levels, ``0 <= exit < entry < stop``, and the cool-down after a stop."""

    entry: float
    exit: float
    stop: float
    cooldown_ns: int = 0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.entry, self.exit, self.stop)):
            raise ValueError("z-score thresholds must be finite")
        if not 0.0 <= self.exit < self.entry < self.stop:
            raise ValueError(
                f"z-score thresholds need 0 <= exit < entry < stop (exit={self.exit}, entry={self.entry}, "
                f"stop={self.stop})"
            )
        if self.cooldown_ns < 0:
            raise ValueError("cooldown must not be negative")


class PairsSignal:
    """Where the pair stands and what the next z-score asks for (see the module docstring)."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self.position = SpreadPosition.FLAT
        self.cooldown_until = 0
        """No entry before this time (ns); set by a stop."""

    def in_cooldown(self, ts: int) -> bool:
        return ts < self.cooldown_until

    def start_cooldown(self, ts: int) -> None:
        """No entry before ``ts + cooldown_ns`` (a stop does this; so may a failed entry)."""
        self.cooldown_until = max(self.cooldown_until, ts + self.thresholds.cooldown_ns)

    def decide(self, z: float, ts: int) -> SignalAction:
        """The action ``z`` at time ``ts`` calls for, without changing the state."""
        if not math.isfinite(z):
            return SignalAction.NONE
        t = self.thresholds
        if self.position is SpreadPosition.FLAT:
            if self.in_cooldown(ts) or abs(z) >= t.stop:
                return SignalAction.NONE
            if z >= t.entry:
                return SignalAction.ENTER_SHORT
            if z <= -t.entry:
                return SignalAction.ENTER_LONG
            return SignalAction.NONE
        if self.position is SpreadPosition.LONG_SPREAD:
            if z <= -t.stop:
                return SignalAction.STOP
            return SignalAction.EXIT if z >= -t.exit else SignalAction.NONE
        if z >= t.stop:
            return SignalAction.STOP
        return SignalAction.EXIT if z <= t.exit else SignalAction.NONE

    def commit(self, action: SignalAction, ts: int) -> None:
        """Apply ``action`` (as returned by :meth:`decide`, or ``EXIT`` / ``STOP`` forced by the caller)."""
        if action is SignalAction.NONE:
            return
        if action is SignalAction.ENTER_LONG or action is SignalAction.ENTER_SHORT:
            if self.position is not SpreadPosition.FLAT:
                raise ValueError(f"cannot {action.value} while {self.position.value}")
            long = action is SignalAction.ENTER_LONG
            self.position = SpreadPosition.LONG_SPREAD if long else SpreadPosition.SHORT_SPREAD
            return
        self.position = SpreadPosition.FLAT
        if action is SignalAction.STOP:
            self.start_cooldown(ts)

    def update(self, z: float, ts: int) -> SignalAction:
        """:meth:`decide` then :meth:`commit`."""
        action = self.decide(z, ts)
        self.commit(action, ts)
        return action
