"""OKX's private WebSocket on picows, and order entry over it.

:class:`OkxPrivateSocket` keeps one logged-in private connection open: after every (re)connect it
sends ``login``, waits for the venue's answer, subscribes (``orders``, ``account``) and only then
counts as ready; the text ``ping`` after ``interval_s`` without a frame keeps it alive (a missing
``pong`` drops it); a lost connection is reported once (``on_close``) and reopened after a backoff.
Every data frame goes to ``on_frame`` with its receive time. Its :meth:`~OkxPrivateSocket.send`
writes a frame synchronously: picows hands it to the socket (``send(2)`` on plain TCP, the TLS
transport's write otherwise) before it returns, with no task and no await in between.

:class:`WsOrderEntry` sends order ops (``order``, ``amend-order``, ``cancel-order``) over it and
routes each reply (by request id) to ``on_ack``. A send never waits: the rate budget is checked
synchronously (``try_acquire``); an op it holds back is sent from a timer when the budget allows
(``held``). An op that cannot go over the socket (not connected, or lost between a hold and its
timer) goes to ``fallback`` (REST, same client order id: it was never written to a socket). A
rate-limit reply is re-sent from a timer with a new request id and the same client order id, within
``patience_s``. When the connection drops with ops in flight their outcome is unknown: nothing is
emitted (``unknown``), and the OMS's query by client id settles them; nothing is re-sent, so no
order is placed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from typing import Final

import msgspec
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.venues.okx.orders import AckOutcome
from tradeloop.venues.okx.schemas import EventReply
from tradeloop.venues.okx.spec import HEARTBEAT, OUTCOME_UNKNOWN_CODES, WS_OP_COSTS
from tradeloop.venues.okx.ws_wire import WsReply, ws_frame, ws_reply
from tradeloop.venues.transport.backoff import Backoff, BackoffSpec
from tradeloop.venues.transport.endpoint import loggable_url
from tradeloop.venues.transport.ratelimit import RateBudget
from tradeloop.venues.transport.ws import HeartbeatSpec

__all__ = ["OkxPrivateSocket", "SocketCounters", "WsOp", "WsOrderEntry"]

log = get_logger("tradeloop.venues.okx.ws_orders")

_EVENT = msgspec.json.Decoder(EventReply)
_PING: Final = b"ping"
_PONG: Final = b"pong"


class SocketCounters(msgspec.Struct, kw_only=True):
    """Health of the private connection."""

    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    login_failures: int = 0
    frames: int = 0
    frames_sent: int = 0
    callback_errors: int = 0


class _Listener(WSListener):
    """picows callbacks, forwarded to the socket that opened the connection."""

    def __init__(self, owner: OkxPrivateSocket) -> None:
        super().__init__()
        self._owner = owner

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            self._owner._on_data(frame.get_payload_as_bytes())
        elif kind is WSMsgType.CLOSE:
            self._owner._note_loss(f"closed by server (code {frame.get_close_code().value})")
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._owner._on_disconnected()

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, _PING)

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        return frame.msg_type is WSMsgType.TEXT and frame.get_payload_as_bytes() == _PONG


class OkxPrivateSocket:
    """One logged-in OKX private connection, kept open until :meth:`close` (see the module docstring).

    ``login()`` returns the ``login`` frame (signed at the time it is called); ``subscribe`` is sent
    once the login is accepted. ``on_open()`` runs after every successful login, ``on_close(reason)``
    once per lost connection, ``on_frame(payload, ts_recv_ns)`` for every data frame but pongs.
    """

    def __init__(
        self,
        url: str,
        *,
        login: Callable[[], bytes],
        subscribe: bytes,
        on_frame: Callable[[bytes, int], None],
        on_open: Callable[[], None],
        on_close: Callable[[str], None],
        heartbeat: HeartbeatSpec = HEARTBEAT,
        backoff: BackoffSpec | None = None,
        connect_timeout_s: float = 10.0,
        login_timeout_s: float = 5.0,
        now_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        name: str = "okx-private",
    ) -> None:
        self.url = url
        self.name = name
        self._login = login
        self._subscribe = subscribe
        self._on_frame = on_frame
        self._on_open = on_open
        self._on_close = on_close
        self._heartbeat = heartbeat
        self._backoff = Backoff(backoff or BackoffSpec(), rng or random.Random())
        self._connect_timeout_s = connect_timeout_s
        self._login_timeout_s = login_timeout_s
        self._now_ns = now_ns
        self.counters = SocketCounters()
        self._transport: WSTransport | None = None
        self.ready = False
        """Logged in and subscribed: a :meth:`send` now goes out on this connection (read-only; a plain
        attribute, since the send path reads it on every order)."""
        self._logged_in = False
        """This connection's login was accepted (its loss is reported to ``on_close``)."""
        self._login_reply: asyncio.Future[EventReply] | None = None
        self._loss: str | None = None
        self._closing = False
        self._opened = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_close_reason: str | None = None

    def send(self, payload: bytes) -> bool:
        """Write one text frame now (``False``, nothing written, when not :attr:`ready`)."""
        transport = self._transport
        if not self.ready or transport is None:
            return False
        transport.send(WSMsgType.TEXT, payload)
        self.counters.frames_sent += 1
        return True

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ws:{self.name}")

    async def wait_open(self, timeout_s: float | None = None) -> None:
        """Until the first login is accepted (``TimeoutError`` after ``timeout_s``)."""
        await asyncio.wait_for(self._opened.wait(), timeout_s)

    def drop(self, reason: str) -> None:
        """Close the current connection (it is reopened after the backoff)."""
        transport = self._transport
        self.ready = False  # from now on sends go elsewhere
        if transport is not None:
            self._note_loss(reason)
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    async def close(self) -> None:
        """Close the connection and stop reconnecting (``on_close("closed by client")``). Idempotent."""
        self._closing = True
        self._wake.set()
        self.drop("closed by client")
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=3.0)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._transport is not None:  # cut, should the close handshake have hung
            self._transport.disconnect(graceful=False)

    # -- connection lifecycle -----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            transport = await self._connect()
            if transport is None:
                continue
            if self._closing:  # close() came while connecting
                transport.disconnect()
                break
            if await self._log_in(transport):
                await transport.wait_disconnected()
            else:
                transport.disconnect()
                with contextlib.suppress(Exception):
                    await transport.wait_disconnected()
            if not self._closing:
                await self._pause(self._backoff.next_delay())

    async def _connect(self) -> WSTransport | None:
        hb = self._heartbeat
        try:
            transport, _ = await asyncio.wait_for(
                ws_connect(
                    lambda: _Listener(self),
                    self.url,
                    websocket_handshake_timeout=self._connect_timeout_s,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=hb.interval_s,
                    auto_ping_reply_timeout=hb.pong_timeout_s or hb.interval_s,
                    max_frame_size=16 * 1024 * 1024,
                    logger_name=f"tradeloop.{self.name}",
                ),
                self._connect_timeout_s,
            )
        except Exception as exc:  # picows raises its own errors as well as OSError/TimeoutError
            self.counters.connect_failures += 1
            delay = self._backoff.next_delay()
            log.warning(
                "websocket connect failed",
                name=self.name,
                host=loggable_url(self.url),
                error=type(exc).__name__,
                retry_in_s=round(delay, 3),
            )
            await self._pause(delay)
            return None
        self._transport = transport
        self._loss = None
        self.counters.connects += 1
        return transport

    async def _log_in(self, transport: WSTransport) -> bool:
        loop = asyncio.get_running_loop()
        self._login_reply = loop.create_future()
        opened_at = loop.time()
        try:
            transport.send(WSMsgType.TEXT, self._login())
            reply = await asyncio.wait_for(asyncio.shield(self._login_reply), self._login_timeout_s)
        except (TimeoutError, asyncio.CancelledError, ConnectionError) as exc:
            self.counters.login_failures += 1
            self._note_loss(f"login not answered ({type(exc).__name__})")
            return False
        finally:
            self._login_reply = None
        if reply.event != "login" or reply.code not in ("", "0"):
            self.counters.login_failures += 1
            self._note_loss(f"login refused: {reply.code} {reply.msg}")
            log.error("okx login refused", name=self.name, code=reply.code, msg=reply.msg)
            return False
        if transport.is_disconnected:
            return False
        transport.send(WSMsgType.TEXT, self._subscribe)
        self.ready = self._logged_in = True
        self._backoff.reset()
        self._opened.set()
        log.info(
            "okx private socket logged in",
            name=self.name,
            host=loggable_url(self.url),
            after_s=round(loop.time() - opened_at, 3),
        )
        try:
            self._on_open()
        except Exception as exc:
            self._callback_error("on_open", exc)
        return True

    def _on_data(self, payload: bytes) -> None:
        ts = self._now_ns()
        self.counters.frames += 1
        waiter = self._login_reply
        if waiter is not None and not self._logged_in:
            if waiter.done():
                return
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                event = _EVENT.decode(payload)
                if event.event in ("login", "error"):
                    waiter.set_result(event)
            return
        if payload == _PONG:
            return
        try:
            self._on_frame(payload, ts)
        except Exception as exc:
            self._callback_error("on_frame", exc)

    def _note_loss(self, reason: str) -> None:
        if self._loss is None:
            self._loss = reason

    def _on_disconnected(self) -> None:
        was_open = self._logged_in
        self.ready = self._logged_in = False
        self._transport = None
        reason = self._loss or "connection lost"
        self.last_close_reason = reason
        self.counters.disconnects += 1
        waiter = self._login_reply
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(reason))
            waiter.exception()  # retrieved: the login coroutine may already be gone
        if not was_open:
            return
        log.info("okx private socket disconnected", name=self.name, reason=reason)
        try:
            self._on_close(reason)
        except Exception as exc:
            self._callback_error("on_close", exc)

    async def _pause(self, delay_s: float) -> None:
        self._wake.clear()
        if self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay_s)

    def _callback_error(self, where: str, exc: Exception) -> None:
        self.counters.callback_errors += 1
        if self.counters.callback_errors <= 10:
            log.error(f"okx private socket {where} raised", name=self.name, error=f"{type(exc).__name__}: {exc}")


class WsOp:
    """One order op: what it is, its command, its frame after the request id, when it was first tried."""

    __slots__ = ("backoff", "cmd", "kind", "started", "tail")

    def __init__(self, kind: str, cmd: SubmitOrder | AmendOrder | CancelOrder, tail: bytes) -> None:
        self.kind = kind
        """``order``, ``amend-order`` or ``cancel-order``."""
        self.cmd = cmd
        self.tail = tail
        """From :class:`~tradeloop.venues.okx.ws_wire.WsFrames` (each send gets a new request id)."""
        self.started: float | None = None
        self.backoff: Backoff | None = None


class WsOrderEntry:
    """Order ops over an :class:`OkxPrivateSocket` (see the module docstring).

    ``on_ack(op, outcome)`` gets each op's final outcome (success or refusal; rate limits are retried
    first); ``fallback(op)`` sends an op the socket cannot take over REST. ``on_wire(client_order_id)``,
    when set, is called right after an op's frame is written (a measurement hook; it must not raise).
    """

    def __init__(
        self,
        socket: OkxPrivateSocket,
        budget: RateBudget,
        *,
        on_ack: Callable[[WsOp, AckOutcome], None],
        fallback: Callable[[WsOp], None],
        patience_s: float = 5.0,
        retry_backoff: BackoffSpec | None = None,
        rng: random.Random | None = None,
        costs: Mapping[str, Mapping[str, int]] = WS_OP_COSTS,
    ) -> None:
        self.socket = socket
        self._budget = budget
        self._on_ack = on_ack
        self._fallback = fallback
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
        if not socket.send(ws_frame(request_id, op.tail)):  # cannot happen while ready; kept safe
            del self._pending[request_id]
            self.fell_back += 1
            self._fallback(op)
            return
        on_wire = self.on_wire
        if on_wire is not None:
            on_wire(op.cmd.client_order_id)
        self.sent += 1

    def handle(self, payload: bytes) -> bool:
        """Route a private-socket frame if it answers one of our ops (``True``); other frames are not ours."""
        if b'"op"' not in payload:
            return False
        reply = ws_reply(payload)
        if reply is None:
            return False
        rid = reply.request_id
        op = self._pending.pop(int(rid), None) if rid.isdigit() else None
        if op is None:
            log.warning("okx reply to an unknown request", id=reply.request_id, op=reply.op)
            return True
        self._answer(op, reply)
        return True

    def connection_lost(self) -> None:
        """The socket dropped: every op in flight has an unknown outcome (the OMS queries it)."""
        if self._pending:
            self.unknown += len(self._pending)
            log.warning("okx order ops in flight when the private socket dropped", count=len(self._pending))
            self._pending.clear()

    def cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- internals ----------------------------------------------------------------------------

    def _answer(self, op: WsOp, reply: WsReply) -> None:
        ack = reply.acks[0]
        if ack.code in OUTCOME_UNKNOWN_CODES:
            self.unknown += 1
            cid = op.cmd.client_order_id
            log.warning("okx order op outcome unknown", op=op.kind, code=ack.code, client_order_id=cid)
            return
        if ack.rate_limited:
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
        self._on_ack(op, ack)

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
