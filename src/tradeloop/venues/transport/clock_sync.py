"""Offset between the local clock and a venue's server clock, from request round trips.

A sample is (local time the request left, the server time in the reply, local time the reply
arrived). Assuming the reply's server time was read halfway through the round trip, the offset is
``server - (sent + received) / 2``, wrong by at most half the round trip (plus half the server
clock's resolution: Binance reports milliseconds). The estimator keeps the last ``window`` samples
and uses the one with the shortest round trip, whose error bound is the smallest; old samples leave
the window so drift is followed. Pure: the caller measures the times.
"""

from __future__ import annotations

from collections import deque

import msgspec

__all__ = ["ClockOffsetEstimator", "ClockSample", "NoClockSample"]


class NoClockSample(RuntimeError):
    """No offset is known yet: no sample has been added."""


class ClockSample(msgspec.Struct, frozen=True):
    """One round trip, in nanoseconds since the epoch (local clock for ``sent``/``received``)."""

    sent_ns: int
    server_ns: int
    received_ns: int
    server_resolution_ns: int = 0

    @property
    def rtt_ns(self) -> int:
        return self.received_ns - self.sent_ns

    @property
    def offset_ns(self) -> int:
        """``server - local`` at the same instant (the server stamp is taken as mid-resolution)."""
        server_mid = self.server_ns + self.server_resolution_ns // 2
        return server_mid - (self.sent_ns + self.received_ns) // 2

    @property
    def uncertainty_ns(self) -> int:
        """Bound on the error of :attr:`offset_ns` if the server's clock is right to its resolution."""
        return (self.rtt_ns + 1) // 2 + (self.server_resolution_ns + 1) // 2


class ClockOffsetEstimator:
    """Keeps the last ``window`` samples and estimates the offset from the lowest-round-trip one."""

    def __init__(self, window: int = 8) -> None:
        if window < 1:
            raise ValueError(f"clock sample window must be at least 1, got {window}")
        self._samples: deque[ClockSample] = deque(maxlen=window)

    def add(self, sent_ns: int, server_ns: int, received_ns: int, server_resolution_ns: int = 0) -> ClockSample:
        """Record one round trip; raises ``ValueError`` if the reply arrived before the request left."""
        if received_ns < sent_ns:
            raise ValueError(f"clock sample received before it was sent ({received_ns} < {sent_ns})")
        if server_resolution_ns < 0:
            raise ValueError("server clock resolution cannot be negative")
        sample = ClockSample(sent_ns, server_ns, received_ns, server_resolution_ns)
        self._samples.append(sample)
        return sample

    @property
    def has_estimate(self) -> bool:
        return bool(self._samples)

    @property
    def samples(self) -> tuple[ClockSample, ...]:
        return tuple(self._samples)

    @property
    def best(self) -> ClockSample:
        """The sample the estimate comes from: the shortest round trip (the latest among equals)."""
        if not self._samples:
            raise NoClockSample("no server-time sample yet")
        best = self._samples[0]
        for sample in self._samples:
            if sample.rtt_ns <= best.rtt_ns:
                best = sample
        return best

    @property
    def offset_ns(self) -> int:
        """Estimated ``server clock - local clock``."""
        return self.best.offset_ns

    @property
    def uncertainty_ns(self) -> int:
        return self.best.uncertainty_ns

    def server_now_ns(self, local_ns: int) -> int:
        """The server's clock reading at local time ``local_ns`` (for signed requests' timestamps)."""
        return local_ns + self.offset_ns
