"""A reconnecting WebSocket client on aiohttp: backoff, heartbeats, a stale-feed watchdog and rotation.

One :class:`ReconnectingWebSocket` keeps one logical connection to a venue alive:

* **(Re)connect.** Failed connects and lost connections are retried after an exponential backoff with
  jitter (:mod:`.backoff`); the backoff starts over once a connection has stayed up
  ``healthy_after_s``. After every (re)connect ``on_open(conn)`` runs to log in and (re)subscribe; it
  may read the venue's answers with :meth:`WsConnection.receive` (frames it reads are not passed to
  ``on_frame``). Only when it returns does the feed flow to ``on_frame``.
* **Every loss** (server close, network error, watchdog, heartbeat timeout, rotation, :meth:`close`)
  calls ``on_close(reason)`` exactly once, before any reconnect, so the market-data layer can mark
  the connection's books invalid; the next ``on_open`` resubscribes and the books resync.
* **Heartbeats** are data (:class:`HeartbeatSpec`): WebSocket ping frames, or an application message
  (OKX's text ``ping``, Bybit's ``{"op":"ping"}``) every ``interval_s`` (or only after that long
  without traffic); frames recognized as pongs are swallowed, and with ``pong_timeout_s`` a missing
  pong drops the connection. Pings from the server are always answered (Binance pings every 20 s).
* **Stale-feed watchdog.** No data frame for ``stale_after_s`` closes the connection and reconnects.
  Only frames passed to ``on_frame`` count: pongs prove the link, not the feed.
* **Rotation.** At ``max_lifetime_s`` (set below the venue's limit, e.g. 23.5 h for Binance's 24 h)
  a new socket is opened *before* the old one is closed; then the old one is closed (``on_close
  ("rotation")``) and ``on_open`` subscribes on the new one. No frame is delivered twice and the gap
  is the venue's subscribe round trip; books resync from the new subscription as after any loss. If
  the new socket cannot be opened the old one stays and rotation is retried after a backoff.

Frames reach ``on_frame`` as aiohttp delivers them: ``str`` for text frames, ``bytes`` for binary,
with the local receive time in ns. Logs name the host only (paths can hold listen keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum

import aiohttp
import msgspec

from tradeloop.core.logging import get_logger
from tradeloop.venues.transport.backoff import Backoff, BackoffSpec
from tradeloop.venues.transport.endpoint import loggable_url, with_endpoint
from tradeloop.venues.transport.ratelimit import RateBudget, acquire

__all__ = [
    "HeartbeatKind",
    "HeartbeatSpec",
    "NotConnected",
    "ReconnectingWebSocket",
    "WsConnection",
    "WsCounters",
    "WsSpec",
]

log = get_logger("tradeloop.venues.transport.ws")

Frame = str | bytes
OnOpen = Callable[["WsConnection"], Awaitable[None]]
OnFrame = Callable[[Frame, int], None]
OnClose = Callable[[str], None]

_CONNECT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
_LOG_EVERY_CALLBACK_ERROR = 1000


class HeartbeatKind(StrEnum):
    NONE = "none"
    """Send nothing (the server pings, or a heartbeat channel keeps the connection busy)."""
    WS_PING = "ws_ping"
    """WebSocket ping frames."""
    APP_MESSAGE = "app_message"
    """A venue-defined message, ``message``."""


class HeartbeatSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A venue's keepalive rule, as data."""

    kind: HeartbeatKind = HeartbeatKind.NONE
    interval_s: float = 20.0
    message: str = ""
    """For ``app_message``: the text to send; ``{n}`` is replaced by a counter (request ids)."""
    when_idle: bool = False
    """Send only after ``interval_s`` without receiving anything (OKX), instead of every ``interval_s``."""
    pong_equals: tuple[str, ...] = ()
    """Frames equal to one of these are pongs (OKX: ``("pong",)``)."""
    pong_contains: tuple[str, ...] = ()
    """Short frames containing one of these are pongs (Bybit: ``('"op":"pong"', '"ret_msg":"pong"')``)."""
    pong_max_bytes: int = 512
    """Longer frames are never taken for pongs (keeps the check off large book frames)."""
    pong_timeout_s: float | None = None
    """Drop the connection when a ping gets no pong this long (``None``: leave it to the watchdog)."""

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"heartbeat interval_s must be positive, got {self.interval_s}")
        if self.kind is HeartbeatKind.APP_MESSAGE and not self.message:
            raise ValueError("an app_message heartbeat needs its message")
        if self.pong_timeout_s is not None and not self.pong_timeout_s > 0:
            raise ValueError("heartbeat pong_timeout_s must be positive when set")


class WsSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One WebSocket connection's rules: a venue's spec declares ``url``, ``heartbeat``, ``max_lifetime_s``."""

    url: str
    heartbeat: HeartbeatSpec = HeartbeatSpec()
    stale_after_s: float | None = None
    """Reconnect after this long without a data frame (``None``: never)."""
    max_lifetime_s: float | None = None
    """Rotate to a new connection at this age (``None``: never)."""
    connect_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    """``on_open`` (login, subscribe) must finish within this."""
    close_timeout_s: float = 2.0
    """How long a close waits for the server's close frame."""
    healthy_after_s: float = 30.0
    """A connection that lived this long resets the reconnect backoff."""
    backoff: BackoffSpec = BackoffSpec()
    max_frame_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("stale_after_s", "max_lifetime_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive when set, got {value}")
        for name in ("connect_timeout_s", "open_timeout_s", "close_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


class WsCounters(msgspec.Struct, kw_only=True):
    """Connection health, readable at any time (:attr:`ReconnectingWebSocket.counters`)."""

    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    stale_timeouts: int = 0
    heartbeat_timeouts: int = 0
    rotations: int = 0
    rotation_failures: int = 0
    frames: int = 0
    """Data frames received (delivered to ``on_frame`` or read by ``on_open``)."""
    pings_sent: int = 0
    pongs_received: int = 0
    server_pings: int = 0
    callback_errors: int = 0


class NotConnected(RuntimeError):
    """:meth:`ReconnectingWebSocket.send` while no connection is open."""


class PongMatcher:
    """Whether a frame is a pong under a :class:`HeartbeatSpec` (short frames only)."""

    __slots__ = ("_contains", "_contains_b", "_equals", "_equals_b", "_max")

    def __init__(self, spec: HeartbeatSpec) -> None:
        self._equals = frozenset(spec.pong_equals)
        self._equals_b = frozenset(p.encode() for p in spec.pong_equals)
        self._contains = spec.pong_contains
        self._contains_b = tuple(p.encode() for p in spec.pong_contains)
        self._max = spec.pong_max_bytes

    def __call__(self, data: Frame) -> bool:
        if len(data) > self._max:
            return False
        if isinstance(data, str):
            return data in self._equals or any(p in data for p in self._contains)
        return data in self._equals_b or any(p in data for p in self._contains_b)


class WsConnection:
    """One open socket, as ``on_open`` sees it."""

    def __init__(
        self,
        conn_id: int,
        ws: aiohttp.ClientWebSocketResponse,
        is_pong: PongMatcher,
        counters: WsCounters,
        now_ns: Callable[[], int],
        close_timeout_s: float,
    ) -> None:
        self.id = conn_id
        self._ws = ws
        self._is_pong = is_pong
        self._counters = counters
        self._now_ns = now_ns
        self._close_timeout_s = close_timeout_s
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self.opened_at = now
        self.last_data_at = now
        self.last_rx_at = now
        self.last_ping_at = now
        self.awaiting_pong_since: float | None = None
        self.loss_reason: str | None = None
        self.ended = asyncio.Event()
        """Set when the connection has ended (wakes its supervisor)."""

    @property
    def closed(self) -> bool:
        return self._ws.closed or self.loss_reason is not None or self.ended.is_set()

    async def send(self, data: Frame) -> None:
        """Send a text (``str``) or binary (``bytes``) frame."""
        if self.closed:
            raise NotConnected(f"connection {self.id} is closed ({self.loss_reason or 'socket closed'})")
        if isinstance(data, str):
            await self._ws.send_str(data)
        else:
            await self._ws.send_bytes(data)

    async def receive(self, timeout_s: float | None = None) -> Frame:
        """The next data frame (pings answered, pongs swallowed); ``NotConnected`` if the socket closes,
        ``TimeoutError`` after ``timeout_s``."""
        got = await asyncio.wait_for(self.next_frame(), timeout_s) if timeout_s else await self.next_frame()
        if got is None:
            raise NotConnected(f"connection {self.id} closed: {self.loss_reason}")
        return got[0]

    async def next_frame(self) -> tuple[Frame, int] | None:
        """(data frame, receive time ns), or ``None`` once the socket is closed (``loss_reason`` set)."""
        ws = self._ws
        while True:
            msg = await ws.receive()
            ts = self._now_ns()
            kind = msg.type
            if kind is aiohttp.WSMsgType.TEXT or kind is aiohttp.WSMsgType.BINARY:
                now = self._loop.time()
                self.last_rx_at = now
                data: Frame = msg.data
                if self._is_pong(data):
                    self._pong()
                    continue
                self.last_data_at = now
                self._counters.frames += 1
                return data, ts
            if kind is aiohttp.WSMsgType.PING:
                self.last_rx_at = self._loop.time()
                self._counters.server_pings += 1
                with contextlib.suppress(*_CONNECT_ERRORS):
                    await ws.pong(msg.data)
                continue
            if kind is aiohttp.WSMsgType.PONG:
                self.last_rx_at = self._loop.time()
                self._pong()
                continue
            self.note_loss(self._describe(msg))
            return None

    def _pong(self) -> None:
        self.awaiting_pong_since = None
        self._counters.pongs_received += 1

    def _describe(self, msg: aiohttp.WSMessage) -> str:
        if msg.type is aiohttp.WSMsgType.CLOSE:
            extra = f": {msg.extra}" if msg.extra else ""
            return f"closed by server (code {msg.data}{extra})"
        if msg.type is aiohttp.WSMsgType.ERROR:
            return f"connection error ({type(msg.data).__name__})"
        code = self._ws.close_code
        return "connection lost" + (f" (code {code})" if code else "")

    def note_loss(self, reason: str) -> None:
        """Record why the connection ends (the first reason wins)."""
        if self.loss_reason is None:
            self.loss_reason = reason

    async def close_socket(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), self._close_timeout_s + 0.5)

    async def ping(self, n: int) -> None:
        await self._ws.ping(str(n).encode())

    def lifetime(self) -> float:
        """Seconds since the socket opened."""
        return self._loop.time() - self.opened_at


class ReconnectingWebSocket:
    """Keeps a connection to ``spec.url`` (or ``endpoint``) open until :meth:`close`.

    ``on_open(conn)`` (re)sends login and subscriptions after every (re)connect; ``on_frame(data,
    ts_recv_ns)`` gets every data frame; ``on_close(reason)`` is called once per lost connection.
    ``rng`` seeds the backoff jitter; ``now_ns`` stamps frames (wall clock, like ``LiveClock``).
    ``connect_budget``/``connect_costs`` charge each connect to a rate budget (OKX: 3 per second per IP).
    Use :meth:`start` to run in a task, or await :meth:`run`.
    """

    def __init__(
        self,
        spec: WsSpec,
        *,
        on_open: OnOpen,
        on_frame: OnFrame,
        on_close: OnClose,
        endpoint: str | None = None,
        session: aiohttp.ClientSession | None = None,
        headers: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        connect_budget: RateBudget | None = None,
        connect_costs: Mapping[str, int] | None = None,
        name: str = "ws",
    ) -> None:
        self.spec = spec
        self.url = with_endpoint(spec.url, endpoint)
        self.name = name
        self._on_open = on_open
        self._on_frame = on_frame
        self._on_close = on_close
        self._session = session
        self._headers = dict(headers) if headers else None
        self._rng = rng or random.Random()
        self._backoff = Backoff(spec.backoff, self._rng)
        self._now_ns = now_ns
        self._budget = connect_budget
        self._connect_costs = dict(connect_costs or {})
        self._is_pong = PongMatcher(spec.heartbeat)
        self.counters = WsCounters()
        self._conn: WsConnection | None = None
        self._conn_seq = 0
        self._ping_seq = 0
        self._pending_ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_close_reason: str | None = None

    # ---- public API -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """A connection is open and ``on_open`` has finished on it."""
        return self._opened.is_set()

    @property
    def connection_id(self) -> int | None:
        return self._conn.id if self._conn is not None else None

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` in a task (returned; :meth:`close` ends it)."""
        if self._task is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._task = asyncio.create_task(self.run(), name=f"ws:{self.name}")
        return self._task

    async def wait_open(self, timeout_s: float | None = None) -> None:
        """Wait until a connection is open and subscribed (``TimeoutError`` after ``timeout_s``)."""
        await asyncio.wait_for(self._opened.wait(), timeout_s)

    async def send(self, data: Frame) -> None:
        """Send on the open connection; ``NotConnected`` between connections (subscriptions belong in ``on_open``)."""
        conn = self._conn
        if conn is None or not self._opened.is_set():
            raise NotConnected(f"{self.name}: not connected")
        await conn.send(data)

    async def close(self) -> None:
        """Close the connection and stop reconnecting (``on_close("closed by client")``). Idempotent."""
        self._closing = True
        self._wake.set()
        conn = self._conn
        if conn is not None:
            conn.note_loss("closed by client")
            await conn.close_socket()
        task = self._task
        if task is None or task is asyncio.current_task() or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=self.spec.close_timeout_s + 1.0)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Connect, serve and reconnect until :meth:`close`."""
        if self._task is None:
            self._task = asyncio.current_task()
        own_session = self._session is None
        session = self._session or aiohttp.ClientSession()
        try:
            while not self._closing:
                ws = self._take_pending() or await self._connect_with_retry(session)
                if ws is None:
                    break
                lived = await self._serve(ws, session)
                if lived >= self.spec.healthy_after_s:
                    self._backoff.reset()
                if self._pending_ws is None and not self._closing:
                    await self._pause(self._backoff.next_delay())
        finally:
            pending = self._take_pending()
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending.close()
            if own_session:
                await session.close()

    # ---- connection lifecycle ---------------------------------------------------------------------

    def _take_pending(self) -> aiohttp.ClientWebSocketResponse | None:
        ws, self._pending_ws = self._pending_ws, None
        return ws

    async def _pause(self, delay_s: float) -> None:
        """Sleep ``delay_s`` unless :meth:`close` is called first."""
        self._wake.clear()
        if self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay_s)

    async def _open_socket(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        if self._budget is not None and self._connect_costs:
            await acquire(self._budget, self._connect_costs)
        return await asyncio.wait_for(
            session.ws_connect(
                self.url,
                autoping=False,  # pings answered and pongs recognized by WsConnection
                autoclose=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.spec.close_timeout_s),
                max_msg_size=self.spec.max_frame_bytes,
                headers=self._headers,
            ),
            self.spec.connect_timeout_s,
        )

    async def _connect_with_retry(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse | None:
        while not self._closing:
            try:
                return await self._open_socket(session)
            except _CONNECT_ERRORS as exc:
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

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> float:
        """Run one connection to its end; returns how long it lived (s)."""
        self._conn_seq += 1
        conn = WsConnection(self._conn_seq, ws, self._is_pong, self.counters, self._now_ns, self.spec.close_timeout_s)
        self._conn = conn
        self.counters.connects += 1
        log.info("websocket connected", name=self.name, host=loggable_url(self.url), connection=conn.id)
        supervisor: asyncio.Task[None] | None = None
        try:
            if self._closing:
                conn.note_loss("closed by client")
                return 0.0
            try:
                await asyncio.wait_for(self._on_open(conn), self.spec.open_timeout_s)
            except Exception as exc:
                conn.note_loss(f"on_open failed ({type(exc).__name__}: {exc})")
                return conn.lifetime()
            if conn.closed:
                return conn.lifetime()
            conn.last_data_at = conn.last_rx_at = conn.last_ping_at = asyncio.get_running_loop().time()
            self._opened.set()
            supervisor = asyncio.create_task(self._supervise(conn, session), name=f"ws-supervisor:{self.name}")
            await self._read(conn)
            return conn.lifetime()
        finally:
            self._opened.clear()
            self._conn = None
            conn.ended.set()
            if supervisor is not None:
                if not supervisor.done():  # let it finish a close it started; it exits at once otherwise
                    await asyncio.wait({supervisor}, timeout=self.spec.close_timeout_s + 1.0)
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await supervisor
            await conn.close_socket()
            reason = conn.loss_reason or "connection lost"
            self.counters.disconnects += 1
            self.last_close_reason = reason
            log.info("websocket disconnected", name=self.name, connection=conn.id, reason=reason)
            try:
                self._on_close(reason)
            except Exception as exc:
                self._callback_error("on_close", exc)

    async def _read(self, conn: WsConnection) -> None:
        on_frame = self._on_frame
        while True:
            got = await conn.next_frame()
            if got is None:
                return
            try:
                on_frame(got[0], got[1])
            except Exception as exc:
                self._callback_error("on_frame", exc)

    def _callback_error(self, where: str, exc: Exception) -> None:
        self.counters.callback_errors += 1
        n = self.counters.callback_errors
        if n <= 10 or n % _LOG_EVERY_CALLBACK_ERROR == 0:
            log.error(
                f"websocket {where} callback raised", name=self.name, error=f"{type(exc).__name__}: {exc}", count=n
            )

    async def _supervise(self, conn: WsConnection, session: aiohttp.ClientSession) -> None:
        """Heartbeats, the watchdog and rotation for one connection; ends by closing it (or with it)."""
        spec = self.spec
        hb = spec.heartbeat
        loop = asyncio.get_running_loop()
        rotate_at = conn.opened_at + spec.max_lifetime_s if spec.max_lifetime_s is not None else math.inf
        rotation_backoff = Backoff(spec.backoff, self._rng)
        while not conn.closed:
            now = loop.time()
            stale_at = conn.last_data_at + spec.stale_after_s if spec.stale_after_s is not None else math.inf
            ping_at = math.inf
            if hb.kind is not HeartbeatKind.NONE:
                since = max(conn.last_rx_at, conn.last_ping_at) if hb.when_idle else conn.last_ping_at
                ping_at = since + hb.interval_s
            pong_at = math.inf
            if hb.pong_timeout_s is not None and conn.awaiting_pong_since is not None:
                pong_at = conn.awaiting_pong_since + hb.pong_timeout_s
            wake = min(stale_at, ping_at, pong_at, rotate_at)
            if wake == math.inf:
                return  # nothing to watch on this connection
            if wake > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.ended.wait(), wake - now)
                continue
            if stale_at <= now:
                self.counters.stale_timeouts += 1
                await self._drop(conn, f"stale: no data for {spec.stale_after_s}s")
                return
            if pong_at <= now:
                self.counters.heartbeat_timeouts += 1
                await self._drop(conn, f"heartbeat: no pong within {hb.pong_timeout_s}s")
                return
            if rotate_at <= now:
                try:
                    new_ws = await self._open_socket(session)
                except _CONNECT_ERRORS as exc:
                    self.counters.rotation_failures += 1
                    delay = rotation_backoff.next_delay()
                    rotate_at = loop.time() + delay
                    log.warning("websocket rotation connect failed", name=self.name, error=type(exc).__name__)
                    continue
                self._pending_ws = new_ws  # the run loop serves it next, without a backoff
                if conn.closed:
                    return
                self.counters.rotations += 1
                await self._drop(conn, "rotation")
                return
            if ping_at <= now:
                await self._send_heartbeat(conn, now)

    async def _send_heartbeat(self, conn: WsConnection, now: float) -> None:
        hb = self.spec.heartbeat
        self._ping_seq += 1
        conn.last_ping_at = now
        try:
            if hb.kind is HeartbeatKind.WS_PING:
                await conn.ping(self._ping_seq)
            else:
                await conn.send(hb.message.replace("{n}", str(self._ping_seq)))
        except (*_CONNECT_ERRORS, NotConnected, RuntimeError):
            return  # the reader sees the connection end
        self.counters.pings_sent += 1
        if conn.awaiting_pong_since is None:
            conn.awaiting_pong_since = now

    async def _drop(self, conn: WsConnection, reason: str) -> None:
        conn.note_loss(reason)
        log.warning("websocket dropped", name=self.name, connection=conn.id, reason=reason)
        await conn.close_socket()

    def __repr__(self) -> str:
        return f"ReconnectingWebSocket({self.name!r}, {loggable_url(self.url)}, connected={self.connected})"
