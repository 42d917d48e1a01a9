"""Execution client of the simulated venue: latency on both legs, and fault injection.

Every request reaches the venue ``order_latency_ns`` after it was sent, and every event the venue
emits reaches the engine ``response_latency_ns`` later, both scheduled with ``clock.call_at``, so
on a :class:`~tradeloop.core.clock.SimClock` a reply to a request sent at ``t`` arrives exactly
at ``t + order_latency_ns + response_latency_ns``. Same-time deliveries keep their order.

For tests of the order manager, :meth:`SimExecutionClient.drop_next_replies` loses the direct
replies of the next requests (the venue still acts on them) and
:meth:`SimExecutionClient.reject_next` has the next order requests refused without reaching the
matching engine.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

from tradeloop.core.clock import Clock
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import RejectReason
from tradeloop.model.events import Event
from tradeloop.venues.base import EmitEvent
from tradeloop.venues.sim.venue import SimulatedVenue, rejection

C = TypeVar("C", SubmitOrder, CancelOrder, CancelAllOrders, AmendOrder, QueryOrder)

_INJECTED = "injected rejection (simulated venue)"


class SimExecutionClient:
    """:class:`~tradeloop.venues.base.ExecutionClient` for a :class:`SimulatedVenue`.

    The client installs itself as the venue's event sink; ``on_event`` is the engine's callback.
    """

    def __init__(self, venue: SimulatedVenue, clock: Clock, on_event: EmitEvent) -> None:
        self.venue = venue.name
        self.supports_amend = venue.config.supports_amend
        self.simulator = venue
        self._clock = clock
        self._on_event = on_event
        self._order_latency = venue.config.order_latency_ns
        self._response_latency = venue.config.response_latency_ns
        self._drop = 0
        self._reject = 0
        self._reject_reason = RejectReason.OTHER
        self._dropping = False
        self.dropped_events = 0
        """How many venue events were lost by :meth:`drop_next_replies` (for tests)."""
        venue.set_emit(self._from_venue)

    # -- ExecutionClient ----------------------------------------------------------------------

    def submit(self, cmd: SubmitOrder) -> None:
        self._send(cmd, self.simulator.handle_submit, injectable=True)

    def cancel(self, cmd: CancelOrder) -> None:
        self._send(cmd, self.simulator.handle_cancel, injectable=True)

    def cancel_all(self, cmd: CancelAllOrders) -> None:
        self._send(cmd, self.simulator.handle_cancel_all, injectable=False)

    def amend(self, cmd: AmendOrder) -> None:
        self._send(cmd, self.simulator.handle_amend, injectable=True)

    def query(self, cmd: QueryOrder) -> None:
        """Answered by every fill of the order again, then an ``OrderStatusReport``."""
        self._send(cmd, self.simulator.handle_query, injectable=False)

    # -- fault injection ----------------------------------------------------------------------

    def drop_next_replies(self, n: int = 1) -> None:
        """Lose the direct replies (accept, reject, acks, immediate fills) of the next ``n`` requests
        of any kind. The venue still processes them; later spontaneous events are delivered."""
        if n < 0:
            raise ValueError("n must not be negative")
        self._drop += n

    def reject_next(self, n: int, reason: RejectReason) -> None:
        """Refuse the next ``n`` submit, cancel or amend requests with ``reason`` at the venue,
        without acting on them (cancel-all and queries are not affected and not counted). Replaces an
        earlier ``reject_next`` that has not run out."""
        if n < 0:
            raise ValueError("n must not be negative")
        self._reject = n
        self._reject_reason = reason

    # -- internals ----------------------------------------------------------------------------

    def _send(self, cmd: C, handler: Callable[[C], None], injectable: bool) -> None:
        drop = self._drop > 0
        if drop:
            self._drop -= 1
        reject: RejectReason | None = None
        if injectable and self._reject > 0:
            self._reject -= 1
            reject = self._reject_reason
        deliver = partial(self._deliver, cmd, handler, drop, reject)
        self._clock.call_at(self._clock.now_ns() + self._order_latency, deliver)

    def _deliver(self, cmd: C, handler: Callable[[C], None], drop: bool, reject: RejectReason | None) -> None:
        self._dropping = drop
        try:
            if reject is None:
                handler(cmd)
            else:
                self._from_venue(self._injected(cmd, reject))
        finally:
            self._dropping = False

    def _injected(self, cmd: C, reason: RejectReason) -> Event:
        """The venue's refusal of ``cmd`` with ``reason`` (fault injection)."""
        if isinstance(cmd, SubmitOrder | CancelOrder | AmendOrder):
            return rejection(cmd, reason, _INJECTED, self._clock.now_ns())
        raise TypeError(f"cannot inject a rejection of {type(cmd).__name__}")

    def _from_venue(self, event: Event) -> None:
        if self._dropping:
            self.dropped_events += 1
            return
        self._clock.call_at(self._clock.now_ns() + self._response_latency, partial(self._on_event, event))
