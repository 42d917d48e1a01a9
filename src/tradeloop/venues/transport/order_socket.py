"""A logged-in WebSocket for order entry, on picows: the venue-neutral part of every WebSocket order API.

:class:`OrderSocket` keeps one connection open: after every (re)connect it sends the venue's login
frame (when it has one), waits for the venue's answer, sends the subscription frames (if any) and
only then counts as :attr:`~OrderSocket.ready`. The venue's keepalive rule (a
:class:`~tradeloop.venues.transport.ws.HeartbeatSpec`: an application ping after ``interval_s``
without a frame, or WebSocket pings) keeps it open; a missing pong drops it. A lost connection is
reported once (``on_close``) and reopened after a backoff. Every data frame but pongs goes to
``on_frame`` with its receive time.

:meth:`~OrderSocket.send` writes a frame synchronously: picows hands it to the socket (``send(2)``
on plain TCP, the TLS transport's write otherwise) before it returns, with no task and no await in
between. That is what makes an order op leave inside the strategy's call.

What differs per venue is data and pure functions passed in: the login frame (signed when it is
called, at each connect), the reader that recognizes the login answer, the subscription frames and
the heartbeat spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import msgspec
from picows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from tradeloop.core.logging import get_logger
from tradeloop.venues.transport.backoff import Backoff
from tradeloop.venues.transport.endpoint import loggable_url
from tradeloop.venues.transport.ws import HeartbeatKind, HeartbeatSpec, PongMatcher, WsSpec

__all__ = ["LoginReply", "OrderSocket", "SocketCounters"]

log = get_logger("tradeloop.venues.transport.order_socket")


class LoginReply(NamedTuple):
    """The venue's answer to a login frame."""

    accepted: bool
    detail: str = ""
    """Code and message of a refusal (logged)."""


class SocketCounters(msgspec.Struct, kw_only=True):
    """Health of the connection."""

    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    login_failures: int = 0
    frames: int = 0
    frames_sent: int = 0
    callback_errors: int = 0


class _Listener(WSListener):
    """picows callbacks, forwarded to the socket that opened the connection."""

    def __init__(self, owner: OrderSocket) -> None:
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
        self._owner._send_ping(transport)

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        return self._owner._is_pong_frame(frame)


class OrderSocket:
    """One logged-in connection for order entry, kept open until :meth:`close` (see the module docstring).

    ``spec`` gives the URL, heartbeat, backoff and timeouts (the login must be answered within
    ``login_timeout_s``, by default the spec's ``open_timeout_s``). ``login()`` returns the login frame,
    signed at the time it is called (``None``, the default: the venue has no login step, or
    authenticates each request); ``read_login_reply(payload)`` returns the verdict when ``payload``
    answers it, ``None`` for other frames. ``subscribe()`` returns the frames sent once logged in
    (none by default). ``on_open()`` runs after every successful login, ``on_close(reason)`` once per lost
    connection, ``on_frame(payload, ts_recv_ns)`` for every data frame but pongs.
    """

    def __init__(
        self,
        spec: WsSpec,
        *,
        on_frame: Callable[[bytes, int], None],
        on_close: Callable[[str], None],
        login: Callable[[], bytes] | None = None,
        read_login_reply: Callable[[bytes], LoginReply | None] | None = None,
        subscribe: Callable[[], Sequence[bytes]] = tuple,
        on_open: Callable[[], None] = lambda: None,
        login_timeout_s: float | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        name: str,
    ) -> None:
        if login is not None and read_login_reply is None:
            raise ValueError(f"{name}: a login frame needs a reader for its answer")
        self.url = spec.url
        self.name = name
        self._login = login
        self._read_login_reply = read_login_reply
        self._subscribe = subscribe
        self._on_frame = on_frame
        self._on_open = on_open
        self._on_close = on_close
        self._heartbeat = heartbeat = spec.heartbeat
        self._is_pong = PongMatcher(heartbeat)
        self._pings = 0
        self._backoff = Backoff(spec.backoff, rng or random.Random())
        self._connect_timeout_s = spec.connect_timeout_s
        self._login_timeout_s = spec.open_timeout_s if login_timeout_s is None else login_timeout_s
        self._now_ns = now_ns
        self.counters = SocketCounters()
        self._transport: WSTransport | None = None
        self.ready = False
        """Logged in and subscribed: a :meth:`send` now goes out on this connection (read-only; a plain
        attribute, since the send path reads it on every order)."""
        self._logged_in = False
        """This connection's login was accepted (its loss is reported to ``on_close``)."""
        self._login_reply: asyncio.Future[LoginReply] | None = None
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
                    enable_auto_ping=hb.kind is not HeartbeatKind.NONE,
                    auto_ping_idle_timeout=hb.interval_s,
                    auto_ping_reply_timeout=hb.pong_timeout_s or hb.interval_s,
                    auto_ping_strategy=_ping_strategy(hb),
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
        opened_at = loop.time()
        if self._login is not None:
            self._login_reply = loop.create_future()
            try:
                transport.send(WSMsgType.TEXT, self._login())
                reply = await asyncio.wait_for(asyncio.shield(self._login_reply), self._login_timeout_s)
            except (TimeoutError, asyncio.CancelledError, ConnectionError) as exc:
                self.counters.login_failures += 1
                self._note_loss(f"login not answered ({type(exc).__name__})")
                return False
            finally:
                self._login_reply = None
            if not reply.accepted:
                self.counters.login_failures += 1
                self._note_loss(f"login refused: {reply.detail}")
                log.error("websocket login refused", name=self.name, detail=reply.detail)
                return False
        if transport.is_disconnected:
            return False
        for frame in self._subscribe():
            transport.send(WSMsgType.TEXT, frame)
        self.ready = self._logged_in = True
        self._backoff.reset()
        self._opened.set()
        log.info(
            "order socket open",
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
            if waiter.done() or self._read_login_reply is None:
                return
            try:
                reply = self._read_login_reply(payload)
            except Exception as exc:
                self._callback_error("read_login_reply", exc)
                return
            if reply is not None:
                waiter.set_result(reply)
            return
        if self._is_pong(payload):
            return
        try:
            self._on_frame(payload, ts)
        except Exception as exc:
            self._callback_error("on_frame", exc)

    def _send_ping(self, transport: WSTransport) -> None:
        hb = self._heartbeat
        if hb.kind is HeartbeatKind.APP_MESSAGE:
            self._pings += 1
            transport.send(WSMsgType.TEXT, hb.message.replace("{n}", str(self._pings)).encode())
        else:
            transport.send_ping()

    def _is_pong_frame(self, frame: WSFrame) -> bool:
        if self._heartbeat.kind is not HeartbeatKind.APP_MESSAGE:
            return frame.msg_type is WSMsgType.PONG
        kind = frame.msg_type
        return (kind is WSMsgType.TEXT or kind is WSMsgType.BINARY) and self._is_pong(frame.get_payload_as_bytes())

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
        log.info("order socket disconnected", name=self.name, reason=reason)
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
            log.error(f"order socket {where} raised", name=self.name, error=f"{type(exc).__name__}: {exc}")


def _ping_strategy(hb: HeartbeatSpec) -> WSAutoPingStrategy:
    """picows pings after ``interval_s`` of silence, or every ``interval_s`` (``when_idle=False``)."""
    return WSAutoPingStrategy.PING_WHEN_IDLE if hb.when_idle else WSAutoPingStrategy.PING_PERIODICALLY
