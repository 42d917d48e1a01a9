"""Order ops over a WebSocket order API: the venue-neutral bookkeeping around :class:`OrderSocket`.

:class:`WsOrderEntry` sends order ops (place, amend, cancel) over an
:class:`~tradeloop.venues.transport.order_socket.OrderSocket` and routes each reply (by request id) to
``on_ack``. A send never waits: the rate budget is checked synchronously (``try_acquire``); an op it
holds back is sent from a timer when the budget allows (``held``). An op that cannot go over the
socket (not connected, or lost between a hold and its timer) goes to ``fallback`` (REST, same client
order id: it was never written to a socket). A rate-limit reply is re-sent from a timer with a new
request id and the same client order id, within ``patience_s``. When the connection drops with ops
in flight their outcome is unknown: nothing is emitted (``unknown``), and the OMS's query by client
id settles them; nothing is re-sent, so no order is placed twice.

The venue supplies an :class:`OrderOpWire`: the frame of an op for a request id (pure; it may sign
with the clock reading it is given), the reader that recognizes a reply and its request id, and the
verdict on a reply (done, rate limited, outcome unknown).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Generic, Literal, Protocol, TypeVar

from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.venues.transport.backoff import Backoff, BackoffSpec
from tradeloop.venues.transport.order_socket import OrderSocket
from tradeloop.venues.transport.ratelimit import RateBudget

__all__ = ["OpVerdict", "OrderEntry", "OrderEntryAccess", "OrderOpWire", "WsOp", "WsOrderEntry", "check_order_entry"]

log = get_logger("tradeloop.venues.transport.order_entry")

R = TypeVar("R")

OrderEntry = Literal["websocket", "rest"]
"""Where an execution client sends place / amend / cancel while its order socket is up."""


def check_order_entry(venue: str, order_entry: str) -> OrderEntry:
    """``order_entry`` if it is ``"websocket"`` or ``"rest"``; ``ValueError`` naming the venue otherwise."""
    if order_entry == "websocket":
        return "websocket"
    if order_entry == "rest":
        return "rest"
    raise ValueError(f"{venue} execution: order_entry must be 'websocket' or 'rest', got {order_entry!r}")


class OpVerdict(Enum):
    """What a reply means for its op."""

    DONE = "done"
    """Accepted or refused for good: handed to ``on_ack``."""
    RATE_LIMITED = "rate_limited"
    """Refused for the rate limit: sent again after a backoff while patience lasts, then ``on_ack``."""
    UNKNOWN = "unknown"
    """The venue cannot say what happened: nothing is emitted; the OMS queries by client id."""


class WsOp:
    """One order op: what it is, its command, its venue payload, when it was first tried."""

    __slots__ = ("backoff", "cmd", "kind", "started", "tail")

    def __init__(self, kind: str, cmd: SubmitOrder | AmendOrder | CancelOrder, tail: bytes) -> None:
        self.kind = kind
        """The venue's name of the op (its rate-limit costs are looked up by it)."""
        self.cmd = cmd
        self.tail = tail
        """The op's payload as the venue's wire builder made it (each send gets a new request id)."""
        self.started: float | None = None
        self.backoff: Backoff | None = None


class OrderOpWire(Protocol[R]):
    """A venue's order-op dialect (pure functions)."""

    def frame(self, request_id: int, op: WsOp) -> bytes:
        """The frame that sends ``op`` under ``request_id``."""
        ...

    def read_reply(self, payload: bytes) -> tuple[str, R] | None:
        """``(request id, reply)`` when ``payload`` answers an order op, else ``None`` (pushes, events)."""
        ...

    def verdict(self, reply: R) -> OpVerdict:
        """Done, rate limited or outcome unknown."""
        ...


class WsOrderEntry(Generic[R]):
    """Order ops over an :class:`OrderSocket` (see the module docstring).

    ``on_ack(op, reply)`` gets each op's final reply (success or refusal; rate limits are retried
    first); ``fallback(op)`` sends an op the socket cannot take over REST; ``on_unknown(op)``, when
    given, is told of each op whose outcome became unknown (the client may undo what it expected of
    the reply; it must not send anything). ``on_wire(client_order_id)``, when set, is called right
    after an op's frame is written (a measurement hook; it must not raise).
    """

    def __init__(
        self,
        socket: OrderSocket,
        budget: RateBudget,
        wire: OrderOpWire[R],
        *,
        costs: Mapping[str, Mapping[str, int]],
        on_ack: Callable[[WsOp, R], None],
        fallback: Callable[[WsOp], None],
        on_unknown: Callable[[WsOp], None] | None = None,
        patience_s: float = 5.0,
        retry_backoff: BackoffSpec | None = None,
        rng: random.Random | None = None,
        name: str,
    ) -> None:
        self.socket = socket
        self.name = name
        self._budget = budget
        self._wire = wire
        self._on_ack = on_ack
        self._fallback = fallback
        self._on_unknown = on_unknown
        self._patience_s = patience_s
        self._retry_backoff = retry_backoff or BackoffSpec(base_s=0.1, cap_s=2.0)
        self._rng = rng or random.Random()
        self._costs = costs
        self._pending: dict[int, WsOp] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._next_id = 0
        self.on_wire: Callable[[str], None] | None = None
        self.sent = 0
        """Op frames written."""
        self.held = 0
        """Ops the rate budget held back (sent later from a timer)."""
        self.retried = 0
        """Rate-limit replies answered by sending the op again."""
        self.unknown = 0
        """Ops in flight when the connection dropped, or answered with an unknown outcome."""
        self.fell_back = 0
        """Ops sent over REST because the socket could not take them."""

    @property
    def ready(self) -> bool:
        return self.socket.ready

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def send(self, op: WsOp) -> None:
        """Write ``op`` now if the socket is ready and the budget admits it; else hold it or fall back."""
        socket = self.socket
        if not socket.ready:
            self.fell_back += 1
            self._fallback(op)
            return
        wait = self._budget.try_acquire(self._costs[op.kind])
        if wait > 0:
            self.held += 1
            self._later(wait, op)
            return
        self._next_id += 1
        request_id = self._next_id
        self._pending[request_id] = op
        if not socket.send(self._wire.frame(request_id, op)):  # cannot happen while ready; kept safe
            del self._pending[request_id]
            self.fell_back += 1
            self._fallback(op)
            return
        on_wire = self.on_wire
        if on_wire is not None:
            on_wire(op.cmd.client_order_id)
        self.sent += 1

    def handle(self, payload: bytes) -> bool:
        """Route a frame if it answers one of our ops (``True``); other frames are not ours."""
        got = self._wire.read_reply(payload)
        if got is None:
            return False
        rid, reply = got
        op = self._pending.pop(int(rid), None) if rid.isdigit() else None
        if op is None:
            log.warning("reply to an unknown order op", name=self.name, id=rid)
            return True
        self._answer(op, reply)
        return True

    def connection_lost(self) -> None:
        """The socket dropped: every op in flight has an unknown outcome (the OMS queries it)."""
        if self._pending:
            lost = list(self._pending.values())
            self._pending.clear()
            self.unknown += len(lost)
            log.warning("order ops in flight when the socket dropped", name=self.name, count=len(lost))
            if self._on_unknown is not None:
                for op in lost:
                    self._on_unknown(op)

    def cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- internals ----------------------------------------------------------------------------

    def _answer(self, op: WsOp, reply: R) -> None:
        verdict = self._wire.verdict(reply)
        if verdict is OpVerdict.UNKNOWN:
            self.unknown += 1
            cid = op.cmd.client_order_id
            log.warning("order op outcome unknown", name=self.name, op=op.kind, client_order_id=cid)
            if self._on_unknown is not None:
                self._on_unknown(op)
            return
        if verdict is OpVerdict.RATE_LIMITED:
            loop = asyncio.get_running_loop()
            now = loop.time()
            if op.started is None:
                op.started = now
            if op.backoff is None:
                op.backoff = Backoff(self._retry_backoff, self._rng)
            delay = op.backoff.next_delay()
            if now + delay - op.started <= self._patience_s:
                self.retried += 1
                self._budget.penalize(delay)
                self._later(delay, op)
                return
        self._on_ack(op, reply)

    def _later(self, delay_s: float, op: WsOp) -> None:
        loop = asyncio.get_running_loop()
        if op.started is None:
            op.started = loop.time()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.send(op)

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)


class OrderEntryAccess(Generic[R]):
    """What an execution client with WebSocket order entry shows (a mixin): where orders go, its
    :class:`WsOrderEntry` and socket once started, and the ``on_wire`` measurement hook, which is kept
    and handed to each order entry the client makes. The client sets ``_order_entry`` and ``_on_wire``
    in its constructor and implements :meth:`_order_entry_now`."""

    _order_entry: OrderEntry
    _on_wire: Callable[[str], None] | None

    def _order_entry_now(self) -> WsOrderEntry[R] | None:
        """The current order entry (``None`` before ``start``, with ``order_entry="rest"``, or without
        an order socket)."""
        raise NotImplementedError

    @property
    def order_entry(self) -> OrderEntry:
        """Where place / amend / cancel go while the order socket is up."""
        return self._order_entry

    @property
    def ws_orders(self) -> WsOrderEntry[R] | None:
        """The WebSocket order entry (``None`` before ``start``, with ``order_entry="rest"``, or without
        an order socket)."""
        return self._order_entry_now()

    @property
    def socket(self) -> OrderSocket | None:
        """The connection order ops go out on."""
        entry = self._order_entry_now()
        return entry.socket if entry is not None else None

    @property
    def on_wire(self) -> Callable[[str], None] | None:
        """Measurement hook: called with the client order id right after an order op's frame is written
        to the socket (not for requests sent over REST). It changes nothing the venue sees."""
        return self._on_wire

    @on_wire.setter
    def on_wire(self, hook: Callable[[str], None] | None) -> None:
        self._on_wire = hook
        entry = self._order_entry_now()
        if entry is not None:
            entry.on_wire = hook
