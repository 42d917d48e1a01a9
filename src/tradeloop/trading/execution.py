"""Execution engine: routes commands to venue clients and throttles them by each venue's budget.

Submits and amends wait in a per-venue FIFO when the venue's token bucket is empty and are sent in
order when it refills. Cancels jump the queue (they reduce risk; they may leave the bucket in debt,
which delays the queue but never starves it) and a cancel for an order still waiting in the queue
removes it there, so it never reaches the venue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from functools import partial

import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.failpoints import failpoint
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.trading.intent_barrier import IntentBarrier
from tradeloop.venues.base import ExecutionClient


class ThrottleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Order-entry budget of one venue account: ``rate`` requests per second, bursts of ``burst``."""

    rate: int = 10
    burst: int = 20


class TokenBucket:
    """Integer token bucket on engine time (no floats, deterministic)."""

    __slots__ = ("_capacity", "_last_ns", "_rate", "_tokens")

    _UNIT = 1_000_000_000  # one token, in token-nanos

    def __init__(self, rate_per_s: int, burst: int, now_ns: int) -> None:
        if rate_per_s <= 0 or burst <= 0:
            raise ValueError("throttle rate and burst must be positive")
        self._rate = rate_per_s
        self._capacity = burst * self._UNIT
        self._tokens = self._capacity
        self._last_ns = now_ns

    def _refill(self, now_ns: int) -> None:
        if now_ns > self._last_ns:
            self._tokens = min(self._capacity, self._tokens + (now_ns - self._last_ns) * self._rate)
            self._last_ns = now_ns

    def try_take(self, now_ns: int) -> bool:
        self._refill(now_ns)
        if self._tokens >= self._UNIT:
            self._tokens -= self._UNIT
            return True
        return False

    def take_anyway(self, now_ns: int) -> None:
        """Spend a token even if that leaves the bucket in debt (for cancels)."""
        self._refill(now_ns)
        self._tokens -= self._UNIT

    def next_token_ns(self, now_ns: int) -> int:
        self._refill(now_ns)
        missing = self._UNIT - self._tokens
        if missing <= 0:
            return now_ns
        return now_ns + -(-missing // self._rate)


class RoutingError(KeyError):
    pass


GatedCommand = SubmitOrder | AmendOrder | CancelOrder | CancelAllOrders
SendGate = Callable[[GatedCommand], str | None]
"""Asked right before a submit, amend or cancel leaves: ``None`` lets it go, a reason stops it (e.g. a
failover node that no longer holds its lease: the orders belong to the new primary now)."""


class ExecutionEngine:
    """Sends commands to the right :class:`ExecutionClient` at the rate each venue allows."""

    def __init__(
        self,
        clock: Clock,
        clients: Mapping[str, ExecutionClient],
        throttles: Mapping[str, ThrottleConfig],
        on_sending: Callable[[SubmitOrder | AmendOrder], bool | None],
        *,
        gate: SendGate | None = None,
        on_refused: Callable[[GatedCommand, str], None] | None = None,
        barrier: IntentBarrier | None = None,
    ) -> None:
        """``gate`` is asked before each submit or amend leaves; one it stops goes to ``on_refused``
        (the OMS records it as denied) and never reaches the venue. ``on_sending`` is told of every
        submit or amend about to leave; ``False`` drops it (an amend of an order that ended while it waited).
        ``barrier`` (a live node's journal) holds each request until its intent is durable, in order."""
        if gate is not None and on_refused is None:
            raise ValueError("a send gate needs on_refused")
        self._clock = clock
        self._clients = dict(clients)
        self._on_sending = on_sending
        self._gate = gate
        self._on_refused = on_refused
        self._barrier = barrier
        now = clock.now_ns()
        self._buckets = {
            venue: TokenBucket(
                throttles.get(venue, ThrottleConfig()).rate, throttles.get(venue, ThrottleConfig()).burst, now
            )
            for venue in self._clients
        }
        self._queues: dict[str, deque[SubmitOrder | AmendOrder]] = {venue: deque() for venue in self._clients}
        self._drain_scheduled: set[str] = set()
        self.sent = 0
        self.throttled = 0
        self.refused = 0

    def client(self, venue: str) -> ExecutionClient:
        try:
            return self._clients[venue]
        except KeyError:
            raise RoutingError(f"no execution client for venue {venue!r}") from None

    def has_venue(self, venue: str) -> bool:
        return venue in self._clients

    def supports_amend(self, venue: str) -> bool:
        return self.client(venue).supports_amend

    def queued(self, venue: str) -> int:
        return len(self._queues[venue])

    def submit(self, cmd: SubmitOrder) -> None:
        self.send(cmd)

    def amend(self, cmd: AmendOrder) -> None:
        self.send(cmd)

    def send(self, cmd: SubmitOrder | AmendOrder) -> None:
        """Send now if the venue's budget allows and nothing waits before it, else queue."""
        venue = cmd.instrument_id.venue
        client = self.client(venue)
        queue = self._queues[venue]
        if not queue and self._buckets[venue].try_take(self._clock.now_ns()):
            self._send(client, cmd)
            return
        queue.append(cmd)
        self.throttled += 1
        self._schedule_drain(venue)

    def _send(self, client: ExecutionClient, cmd: SubmitOrder | AmendOrder) -> None:
        if (self._gate is not None and self._refused(cmd)) or self._on_sending(cmd) is False:
            return
        self.sent += 1
        if self._barrier is None:
            _deliver(client, cmd)
        else:
            self._barrier.after_intent(lambda: _deliver(client, cmd))

    def _schedule_drain(self, venue: str) -> None:
        if venue in self._drain_scheduled:
            return
        self._drain_scheduled.add(venue)
        at = self._buckets[venue].next_token_ns(self._clock.now_ns())
        self._clock.call_at(at, lambda: self._drain(venue))

    def _drain(self, venue: str) -> None:
        self._drain_scheduled.discard(venue)
        queue = self._queues[venue]
        bucket = self._buckets[venue]
        client = self._clients[venue]
        while queue and bucket.try_take(self._clock.now_ns()):
            self._send(client, queue.popleft())
        if queue:
            self._schedule_drain(venue)

    def cancel(self, cmd: CancelOrder) -> bool:
        """Cancel an order. Returns ``False`` when the order was still queued here and has been
        dropped without reaching the venue (the caller then cancels it locally)."""
        venue = cmd.instrument_id.venue
        queue = self._queues[venue]
        for queued in list(queue):
            if queued.client_order_id == cmd.client_order_id:
                queue.remove(queued)
                if isinstance(queued, SubmitOrder):
                    return False
                # A queued amend of an order being canceled is moot: drop it and cancel.
        if self._refused(cmd):
            return True
        self._buckets[venue].take_anyway(self._clock.now_ns())
        client = self.client(venue)
        if self._barrier is None:
            client.cancel(cmd)
        else:
            self._barrier.in_order(lambda: client.cancel(cmd))
        return True

    def _refused(self, cmd: GatedCommand) -> bool:
        """True (and reported) when the send gate stops ``cmd``."""
        if self._gate is None:
            return False
        reason = self._gate(cmd)
        if reason is None:
            return False
        assert self._on_refused is not None
        self.refused += 1
        self._on_refused(cmd, reason)
        return True

    def drop_queued(self, venue: str | None = None) -> list[SubmitOrder | AmendOrder]:
        """Remove queued submits and amends (all venues or one); returns what was dropped."""
        dropped: list[SubmitOrder | AmendOrder] = []
        for v, queue in self._queues.items():
            if venue is None or v == venue:
                dropped.extend(queue)
                queue.clear()
        return dropped

    def cancel_all(self, cmd: CancelAllOrders) -> list[str]:
        """Send a venue-wide cancel-all to the venues in scope; returns those venues."""
        venues = [cmd.venue] if cmd.venue else sorted(self._clients)
        if cmd.instrument_id is not None:
            venues = [cmd.instrument_id.venue]
        if self._refused(cmd):
            return []
        for venue in venues:
            self._buckets[venue].take_anyway(self._clock.now_ns())
            client = self.client(venue)
            if self._barrier is None:
                client.cancel_all(cmd)
            else:
                self._barrier.in_order(partial(client.cancel_all, cmd))
        return venues

    def query(self, cmd: QueryOrder) -> None:
        client = self.client(cmd.instrument_id.venue)
        if self._barrier is None:
            client.query(cmd)
        else:
            self._barrier.in_order(lambda: client.query(cmd))


def _deliver(client: ExecutionClient, cmd: SubmitOrder | AmendOrder) -> None:
    failpoint("send.before")  # the intent is durable, the bytes have not left
    if isinstance(cmd, SubmitOrder):
        client.submit(cmd)
    else:
        client.amend(cmd)
    failpoint("send.after")  # sent (or handed to the client's sender), no reply yet
