"""The local venue simulator's HTTP/WebSocket server: an aiohttp app on loopback.

The venue's :class:`~tradeloop.venues.simulator.dialect.Dialect` installs its REST routes and
WebSocket endpoints (same paths as production); the server adds the control routes every simulator
has:

* ``POST /__sim/fault`` with ``{"fault": "skip_sequence", "count": 2}`` (any fault of
  :class:`~tradeloop.venues.simulator.faults.FaultPlan`, its arguments as keys; ``send_malformed``
  takes ``payload`` as text). Unknown faults or arguments: 400 naming the known faults.
* ``GET /__sim/state``: open orders, balances, fault counters and the number of open WebSockets.
  Amounts are integer nanos.
* ``GET /__sim/requests`` (optionally ``?path=/api/...``): every API request the server received, as
  ``[monotonic seconds, method, path]`` in arrival order (the venue's view of a client's request rate;
  :func:`max_in_window` counts the busiest window). Control routes are not recorded.

Dialects call :meth:`VenueSimulator.track` on every WebSocket they accept, so ``drop_connections``
and :meth:`VenueSimulator.stop` can close them, and may start background tasks with
:meth:`VenueSimulator.spawn` so ``stop()`` cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSCloseCode, web

from tradeloop.core.logging import get_logger
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.faults import FAULTS, FaultError, FaultPlan

if TYPE_CHECKING:
    from tradeloop.security.credentials import Credentials
    from tradeloop.venues.simulator.dialect import Dialect

__all__ = ["REQUEST_LOG_MAX", "VenueSimulator", "max_in_window"]

_log = get_logger(__name__)

_CLOSE_TIMEOUT_S = 1.0
"""How long a server-side close waits for the client's close frame before the socket is cut."""
REQUEST_LOG_MAX = 100_000
"""Requests kept in :attr:`VenueSimulator.request_log` (the oldest are dropped past it)."""


class VenueSimulator:
    """One venue's simulator: ``core`` (the exchange), ``dialect`` (its wire format), ``credentials``
    (the one API key it accepts), served on ``base_url`` once started."""

    def __init__(self, core: SimulatorCore, dialect: Dialect, credentials: Credentials) -> None:
        self.core = core
        self.dialect = dialect
        self.faults: FaultPlan = core.faults
        self.credentials = credentials
        self.request_log: deque[tuple[float, str, str]] = deque(maxlen=REQUEST_LOG_MAX)
        """``(time.monotonic(), method, path)`` of every API request on arrival (control routes excluded)."""
        self.app = web.Application(middlewares=[self._record_request])
        self.base_url = ""
        """``"http://127.0.0.1:PORT"`` once :meth:`start` returned."""
        self.port = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self.connections_accepted = 0
        """WebSockets tracked since the start."""
        self.connections_dropped = 0
        """WebSockets the server closed (``drop_connections`` and ``stop``)."""
        self.app.router.add_post("/__sim/fault", self._post_fault)
        self.app.router.add_get("/__sim/state", self._get_state)
        self.app.router.add_get("/__sim/requests", self._get_requests)
        self.faults.add_drop_listener(self._on_drop)
        dialect.install(self)

    @property
    def venue(self) -> str:
        return self.core.venue

    # -- sockets and tasks --------------------------------------------------------------------

    def track(self, ws: web.WebSocketResponse) -> None:
        """Register an accepted WebSocket so ``drop_connections`` and ``stop`` close it."""
        self._prune()
        if ws not in self._sockets:
            self._sockets.add(ws)
            self.connections_accepted += 1

    def untrack(self, ws: web.WebSocketResponse) -> None:
        """Forget a WebSocket (optional: closed ones are forgotten anyway)."""
        self._sockets.discard(ws)

    @property
    def connection_count(self) -> int:
        """Tracked WebSockets that are still open."""
        self._prune()
        return len(self._sockets)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task that :meth:`stop` cancels; its exception (if any) is logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("simulator task failed", venue=self.venue, task=task.get_name(), error=repr(task.exception()))

    def _prune(self) -> None:
        for ws in [ws for ws in self._sockets if ws.closed]:
            self._sockets.discard(ws)

    def _on_drop(self) -> None:
        self._prune()
        sockets = list(self._sockets)
        self._sockets.clear()
        if not sockets:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: nothing can be open
            loop = asyncio.get_running_loop()
            for ws in sockets:
                self.connections_dropped += 1
                task = loop.create_task(self._close(ws, "simulated disconnect"))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    async def _close(self, ws: web.WebSocketResponse, reason: str) -> None:
        # aiohttp cuts the transport itself when the close handshake is cancelled by the timeout.
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode()), _CLOSE_TIMEOUT_S)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port`` (0: a free port); sets :attr:`base_url`."""
        if self._runner is not None:
            raise RuntimeError(f"simulator {self.venue} already started on {self.base_url}")
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        self.port = int(bound[1])
        self.base_url = f"http://{host}:{self.port}"
        _log.info("venue simulator started", venue=self.venue, url=self.base_url)

    async def stop(self) -> None:
        """Close every tracked WebSocket, cancel spawned tasks and stop serving."""
        self._prune()
        sockets = list(self._sockets)
        self._sockets.clear()
        self.connections_dropped += len(sockets)
        if sockets:
            await asyncio.gather(*(self._close(ws, "simulator stopping") for ws in sockets))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.faults.remove_drop_listener(self._on_drop)
        _log.info("venue simulator stopped", venue=self.venue)

    # -- request-rate recorder ----------------------------------------------------------------

    @web.middleware
    async def _record_request(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/__sim/"):
            self.request_log.append((time.monotonic(), request.method, request.path))
        return await handler(request)

    async def _get_requests(self, request: web.Request) -> web.Response:
        path = request.query.get("path")
        rows = [row for row in self.request_log if path is None or row[2] == path]
        return web.Response(body=msgspec.json.encode({"requests": rows}), content_type="application/json")

    # -- control routes -----------------------------------------------------------------------

    async def _post_fault(self, request: web.Request) -> web.Response:
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return _json_error(400, 'body must be a JSON object like {"fault": "skip_sequence", "count": 2}')
        if not isinstance(body, dict) or not isinstance(body.get("fault"), str):
            return _json_error(
                400, f'body must be a JSON object with a "fault" name; known faults: {", ".join(FAULTS)}'
            )
        kwargs = {k: v for k, v in body.items() if k != "fault"}
        name: str = body["fault"]
        try:
            self.faults.arm(name, **kwargs)
        except FaultError as exc:
            message = str(exc)
            if "known faults" not in message:
                message += f" (known faults: {', '.join(FAULTS)})"
            return _json_error(400, message)
        return web.json_response({"ok": True, "fault": name, "pending": self.faults.pending()})

    async def _get_state(self, request: web.Request) -> web.Response:
        state = {
            "venue": self.venue,
            "open_orders": msgspec.to_builtins(self.core.open_orders()),
            "balances": msgspec.to_builtins(self.core.balances().balances),
            "positions": msgspec.to_builtins(self.core.positions()),
            "faults": self.faults.snapshot(),
            "connections": self.connection_count,
            "connections_accepted": self.connections_accepted,
            "connections_dropped": self.connections_dropped,
            "market_items": self.core.market_items,
            "requests": len(self.request_log),
            "fencing": self.core.fence.snapshot() if self.core.fence is not None else None,
        }
        return web.Response(body=msgspec.json.encode(state), content_type="application/json")


def max_in_window(times: Sequence[float], window_s: float) -> int:
    """The most of ``times`` (seconds, any order) that fall in one window ``[t, t + window_s)``."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
