"""The Binance simulator's WebSocket API order methods (``/ws-api/v3``), on the REST handlers.

``order.place``, ``order.cancel``, ``order.cancelReplace`` and ``order.amend.keepPriority`` run the
same handler as their REST twin (so the simulator core sees the same commands), after the same
checks, in the same order: the weight is charged, ``rate_limit_next`` answers 429 ``-1015``, the
signature is checked (:func:`~tradeloop.venues.binance.simulator_auth.check_ws_api`), ``reject_next``
refuses with its Binance error and ``delay_next_reply`` holds the reply (the request is acted on at
once). A reply is ``{"id","status","result"|"error","rateLimits"}``; ``error`` is the REST error body
(a half-done cancel/replace answers 409 with its ``data``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from tradeloop.venues.binance.sim_streams import Peer
from tradeloop.venues.binance.simulator_auth import AuthError, check_ws_api
from tradeloop.venues.binance.spec import ERROR_MESSAGES, RATE_LIMITED_CODES, error_for

if TYPE_CHECKING:
    from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["WS_ORDER_METHODS", "VenueError", "WsApiOrders"]

_MS: Final = 1_000_000

WS_ORDER_METHODS: Final[Mapping[str, tuple[str, int]]] = {
    "order.place": ("place", 1),
    "order.cancel": ("cancel", 1),
    "order.cancelReplace": ("cancel_replace", 1),
    "order.amend.keepPriority": ("keep_priority", 4),
}
"""WebSocket API order method -> (the dialect's handler name, request weight)."""

_RATE_LIMITS: Final = (
    ("X-MBX-USED-WEIGHT-1M", "REQUEST_WEIGHT", "MINUTE", 1, 6000),
    ("X-MBX-ORDER-COUNT-10S", "ORDERS", "SECOND", 10, 100),
    ("X-MBX-ORDER-COUNT-1D", "ORDERS", "DAY", 1, 200_000),
)
"""The usage header behind each ``rateLimits`` item, and the item's type, interval and limit."""


class VenueError(Exception):
    """An error reply: HTTP status and Binance's ``{"code","msg"}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


Handler = Callable[[dict[str, str]], tuple[int, Any]]


class WsApiOrders:
    """Order methods on a WebSocket API connection (see the module docstring).

    ``handlers``: handler name (``WS_ORDER_METHODS``) -> the REST handler ``params -> (status, body)``
    (raising :class:`VenueError`); ``charge(weight)`` counts a request; ``usage()`` the usage headers
    the REST replies carry (the ``rateLimits`` counts)."""

    def __init__(
        self,
        sim: VenueSimulator,
        handlers: Mapping[str, Handler],
        charge: Callable[[int], None],
        usage: Callable[[], dict[str, str]],
        on_request: Callable[[str, dict[str, str]], None],
    ) -> None:
        self.sim = sim
        self._handlers = handlers
        self._charge = charge
        self._usage = usage
        self._on_request = on_request

    def handle(self, peer: Peer, request_id: object, method: str, raw: Mapping[str, Any]) -> bool:
        """Answer ``method`` if it is an order method (``True``); other methods are not ours."""
        spec = WS_ORDER_METHODS.get(method)
        if spec is None:
            return False
        name, weight = spec
        params = {str(k): str(v) for k, v in raw.items()}
        self._on_request(method, params)
        self._charge(weight)
        faults = self.sim.faults
        delay = 0.0
        try:
            if faults.take_rate_limit():
                raise VenueError(-1015, ERROR_MESSAGES[-1015], 429)
            try:
                check_ws_api(self.sim.credentials, params, self.sim.core.clock.now_ns() // _MS)
            except AuthError as exc:
                raise VenueError(exc.code, exc.msg, 401 if exc.code in (-2014, -2015) else 400) from None
            rejected = faults.take_reject()
            if rejected is not None:
                code, msg = error_for(rejected)
                raise VenueError(code, msg, 429 if code in RATE_LIMITED_CODES else 400)
            delay = faults.take_delay()
            status, body = self._handlers[name](params)
        except VenueError as err:
            status, body = err.status, {"code": err.code, "msg": err.msg}
        reply = self.reply(request_id, status, body)
        if delay:
            self.sim.spawn(self._later(peer, delay, reply), name="binance-ws-api-held-reply")
        else:
            peer.push(reply)
        return True

    def reply(self, request_id: object, status: int, body: Any) -> str:
        """A WebSocket API reply: ``result`` for a 200, else ``error`` (the REST error body)."""
        usage = self._usage()
        limits = [
            {"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": limit, "count": int(usage[h])}
            for h, kind, interval, num, limit in _RATE_LIMITS
            if h in usage
        ]
        key = "result" if status == 200 else "error"
        return orjson.dumps({"id": request_id, "status": status, key: body, "rateLimits": limits}).decode()

    async def _later(self, peer: Peer, delay: float, reply: str) -> None:
        await asyncio.sleep(delay)
        peer.push(reply)
