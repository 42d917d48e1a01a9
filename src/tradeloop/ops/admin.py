"""The admin HTTP API (aiohttp): status, metrics, kill switch and resume, protected by a token.

Every route except the dashboard page and its static files requires ``Authorization: Bearer
<token>``: no (or a malformed) header gives 401, a wrong token 403, compared in constant time. The
token never appears in logs, errors or reprs. Routes (see ``docs/operations.md``):

* ``GET /`` and the dashboard's static files (no token: the page reads it from ``#token=...``);
* ``GET /api/snapshot``: :class:`~tradeloop.ops.snapshot.Snapshot` as JSON;
* ``POST /api/kill`` and ``POST /api/resume`` with ``{"reason": "..."}``: the operator control;
* ``GET /metrics``: the Prometheus text format.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import msgspec
from aiohttp import web

from tradeloop.core.logging import get_logger, register_secret
from tradeloop.ops.metrics import EngineMetrics
from tradeloop.ops.snapshot import Mode, build_snapshot, encode_snapshot

if TYPE_CHECKING:
    from tradeloop.runtime.backtest import BacktestEngine

__all__ = [
    "AdminBackend",
    "AdminConfigError",
    "AdminServer",
    "AdminSettings",
    "EngineAdmin",
    "create_admin_app",
]

log = get_logger("tradeloop.admin")

MIN_TOKEN_LENGTH: Final = 16
MAX_REASON_LENGTH: Final = 500
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
DASHBOARD_DIR: Final = Path(__file__).parent / "dashboard"
_STATIC_TYPES: Final = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
ADMIN_ACTOR: Final = "admin-api"


class AdminConfigError(ValueError):
    """The admin server cannot start as configured (missing or weak token, bad port)."""


@dataclass(frozen=True)
class AdminSettings:
    """Where the admin API listens and the token it requires (kept out of ``repr``)."""

    token: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    """0 picks a free port (see :attr:`AdminServer.port`)."""

    def __post_init__(self) -> None:
        if len(self.token) < MIN_TOKEN_LENGTH:
            raise AdminConfigError(f"the admin token must be at least {MIN_TOKEN_LENGTH} characters")
        if not (self.token.isascii() and self.token.isprintable()) or any(c.isspace() for c in self.token):
            raise AdminConfigError("the admin token must be printable ASCII without spaces")
        if not 0 <= self.port <= 65535:
            raise AdminConfigError(f"admin port {self.port} is not in 0..65535")
        register_secret(self.token)

    @classmethod
    def from_env(
        cls, env_name: str, *, host: str = "127.0.0.1", port: int = 8080, environ: Mapping[str, str] | None = None
    ) -> AdminSettings:
        """Settings with the token read from the environment variable ``env_name``."""
        env = os.environ if environ is None else environ
        token = env.get(env_name)
        if not token:
            raise AdminConfigError(f"no admin token: set the environment variable {env_name}")
        return cls(token=token, host=host, port=port)


class AdminBackend(Protocol):
    """What the admin API reads and controls."""

    def snapshot(self) -> bytes:
        """The snapshot as JSON."""

    def metrics(self) -> bytes:
        """The Prometheus text exposition."""

    def kill(self, actor: str, reason: str) -> str:
        """Engage the kill switch; returns the trading state after it."""

    def resume(self, actor: str, reason: str) -> str:
        """Resume trading; returns the trading state after it."""


class EngineAdmin:
    """:class:`AdminBackend` of one engine: snapshot, metrics and ``engine.control``."""

    def __init__(
        self,
        engine: BacktestEngine,
        metrics: EngineMetrics,
        mode: Mode,
        connected: Mapping[str, bool] | None = None,
    ) -> None:
        self.engine = engine
        self._metrics = metrics
        self._mode: Mode = mode
        self._connected = connected

    def snapshot(self) -> bytes:
        return encode_snapshot(
            build_snapshot(self.engine, mode=self._mode, metrics=self._metrics, connected=self._connected)
        )

    def metrics(self) -> bytes:
        return self._metrics.render()

    def kill(self, actor: str, reason: str) -> str:
        self.engine.control.kill(actor, reason)
        return self.engine.risk.state.value

    def resume(self, actor: str, reason: str) -> str:
        self.engine.control.resume(actor, reason)
        return self.engine.risk.state.value


class ControlRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /api/kill`` and ``POST /api/resume``. The kill switch takes an empty reason (a
    panic button must not fail on a form field); resume requires one."""

    reason: str = ""


_control_decoder = msgspec.json.Decoder(ControlRequest)
_json = msgspec.json.Encoder()


def _json_response(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_json.encode(body),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json_response({"error": message}, status, headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_admin_app(backend: AdminBackend, token: str, dashboard_dir: Path = DASHBOARD_DIR) -> web.Application:
    """The aiohttp application. ``token`` is checked on every route but the dashboard files."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise AdminConfigError(f"the admin token must be at least {MIN_TOKEN_LENGTH} characters")
    expected = token.encode()
    public: dict[str, Path] = {}
    if dashboard_dir.is_dir():
        for path in sorted(dashboard_dir.iterdir()):
            if path.is_file() and path.suffix in _STATIC_TYPES:
                public["/" + path.name] = path
        if "/index.html" in public:
            public["/"] = public["/index.html"]

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and request.path in public:
            return await handler(request)
        header = request.headers.get("Authorization")
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _error(
                401, "missing admin token: send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(given.strip().encode(), expected):
            log.warning("admin request with a wrong token refused", path=request.path, remote=request.remote)
            return _error(403, "invalid admin token")
        return await handler(request)

    async def static_file(request: web.Request) -> web.StreamResponse:
        path = public[request.path]
        return web.Response(
            body=path.read_bytes(),
            content_type=_STATIC_TYPES[path.suffix],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    async def snapshot(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=backend.snapshot(), content_type="application/json", headers={"Cache-Control": "no-store"}
        )

    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(body=backend.metrics(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def control(
        request: web.Request, action: Callable[[str, str], str], name: str, reason_required: bool
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = _control_decoder.decode(raw) if raw.strip() else ControlRequest()
        except msgspec.DecodeError as exc:
            return _error(400, f'body must be {{"reason": "..."}}: {exc}')
        reason = body.reason.strip()
        if reason_required and not reason:
            return _error(400, f"{name}: a reason is required")
        if len(reason) > MAX_REASON_LENGTH:
            return _error(400, f"reason is longer than {MAX_REASON_LENGTH} characters")
        try:
            state = action(ADMIN_ACTOR, reason)
        except ValueError as exc:
            return _error(400, f"{name}: {exc}")
        log.warning(f"admin {name}", reason=reason, state=state, remote=request.remote)
        return _json_response({"state": state})

    async def kill(request: web.Request) -> web.StreamResponse:
        return await control(request, backend.kill, "kill switch", reason_required=False)

    async def resume(request: web.Request) -> web.StreamResponse:
        return await control(request, backend.resume, "resume", reason_required=True)

    app = web.Application(middlewares=[require_token], client_max_size=64 * 1024)
    for route in public:
        app.router.add_get(route, static_file)
    app.router.add_get("/api/snapshot", snapshot)
    app.router.add_post("/api/kill", kill)
    app.router.add_post("/api/resume", resume)
    app.router.add_get("/metrics", metrics)
    return app


class AdminServer:
    """Serves :func:`create_admin_app` on the running asyncio loop (``start`` / ``stop``)."""

    def __init__(self, backend: AdminBackend, settings: AdminSettings) -> None:
        self.settings = settings
        self._app = create_admin_app(backend, settings.token)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        """The bound port once started (useful with port 0)."""

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the admin server is not running")
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the admin server is already running")
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.settings.host, self.settings.port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise AdminConfigError(
                f"cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror or exc}"
            ) from None
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        log.info("admin API listening", url=self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.port = None
