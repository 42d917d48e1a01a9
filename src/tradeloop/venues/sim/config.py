"""Configuration of the simulated venue: latencies, fees, queue model, margin."""

from __future__ import annotations

from typing import Literal

import msgspec

from tradeloop.core import fixed

QueueModel = Literal["proportional", "pessimistic", "optimistic"]
"""How book-size decreases at a resting order's price (not explained by trades) move it forward.

``proportional``: by ``decrease x ahead / level size`` (cancels spread evenly over the queue).
``pessimistic``: not at all; only public trades at the price move the order forward.
``optimistic``: by the whole decrease (every cancel was in front of us).
"""


class SimVenueConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Matching, latency and fee model of one simulated venue. Amounts and rates are nanos.

    Fees are fractions of the fill notional (``0.0002`` is ``200_000``); a negative ``maker_fee``
    is a rebate. ``perp_initial_margin`` is the fraction of a linear-perp order's notional locked
    as initial margin (``0.1`` = 10x leverage). Config files write these as decimal strings
    (:class:`tradeloop.runtime.config.SimSection`).
    """

    order_latency_ns: int = 1_000_000
    """Engine -> venue delay of every request."""
    response_latency_ns: int = 1_000_000
    """Venue -> engine delay of every event."""
    maker_fee: int = 200_000
    taker_fee: int = 400_000
    queue_model: QueueModel = "proportional"
    perp_initial_margin: int = 100_000_000
    supports_amend: bool = True

    def __post_init__(self) -> None:
        if self.order_latency_ns < 0 or self.response_latency_ns < 0:
            raise ValueError("latencies must not be negative")
        if not -fixed.SCALE < self.maker_fee < fixed.SCALE:
            raise ValueError("maker_fee must be a fraction strictly between -1 and 1 (nanos)")
        if not 0 <= self.taker_fee < fixed.SCALE:
            raise ValueError("taker_fee must be a fraction in [0, 1) (nanos)")
        if not 0 < self.perp_initial_margin <= fixed.SCALE:
            raise ValueError("perp_initial_margin must be a fraction in (0, 1] (nanos)")

    @property
    def fee_reserve_rate(self) -> int:
        """The highest fee rate any fill can pay; used to reserve fees when locking funds."""
        return max(self.maker_fee, self.taker_fee, 0)
