"""The Kraken simulator's WebSocket v2 order methods: ``add_order``, ``amend_order``, ``cancel_order``.

Requests ``{"method","params":{...,"token"},"req_id"}`` on the ``/v2`` endpoint (``ws-auth`` in
production) need a token from ``GetWebSocketsToken``, checked like the private subscriptions
(``ESession:Invalid session``). Each is translated to its REST params and executed by the same
handler as ``AddOrder`` / ``AmendOrder`` / ``CancelOrder`` (:class:`~.sim_rest.RestHandlers`), so the
core, the ``executions`` pushes and the refusals (Kraken's error strings) are those of REST. The
reply is ``{"method","req_id","success","result"|"error","time_in","time_out"}``.

Faults, as for the REST order methods: ``rate_limit_next`` (``EOrder:Rate limit exceeded``),
``reject_next`` (the given error, nothing executed) and ``delay_next_reply`` (executed at once, the
reply held); ``drop_connections`` is the server's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import msgspec

from tradeloop.venues.kraken.sim_rest import KrakenRestState, Refusal, RestHandlers

if TYPE_CHECKING:
    from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["WsOrderDesk", "rfc3339"]

_RATE_LIMITED: Final = "EOrder:Rate limit exceeded"
_INVALID_SESSION: Final = "ESession:Invalid session"


def rfc3339(ts_ns: int) -> str:
    """``2024-08-08T12:00:00.123456Z`` (microseconds, as Kraken writes them)."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000:06d}Z"


class _Request(msgspec.Struct, frozen=True):
    method: str
    params: msgspec.Raw = msgspec.Raw(b"{}")
    req_id: int | None = None


class _AddOrder(msgspec.Struct, frozen=True):
    order_type: str = ""
    side: str = ""
    order_qty: Decimal | None = None
    symbol: str = ""
    limit_price: Decimal | None = None
    time_in_force: str = "gtc"
    post_only: bool = False
    cl_ord_id: str = ""
    token: str = ""


class _AmendOrder(msgspec.Struct, frozen=True):
    cl_ord_id: str = ""
    order_id: str = ""
    order_qty: Decimal | None = None
    limit_price: Decimal | None = None
    post_only: bool = False
    token: str = ""


class _CancelOrder(msgspec.Struct, frozen=True):
    cl_ord_id: list[str] = []
    order_id: list[str] = []
    token: str = ""


def _text(value: Decimal) -> str:
    """A JSON number, read exactly, as the REST handlers' decimal text."""
    return format(value, "f")


class WsOrderDesk:
    """Answers the order methods of one simulator (see the module docstring)."""

    def __init__(self, sim: VenueSimulator, state: KrakenRestState, handlers: RestHandlers) -> None:
        self.sim = sim
        self.state = state
        self.handlers = handlers
        self.ops: deque[tuple[str, dict[str, Any]]] = deque(maxlen=1000)
        """The order requests received: method and params as sent (token removed)."""

    def handle(self, send: Callable[[str], None], text: str) -> None:
        """Serve one order request (``send`` writes to the connection it came on)."""
        time_in = rfc3339(self.sim.core.clock.now_ns())
        try:
            request = msgspec.json.decode(text, type=_Request)
            params = msgspec.json.decode(request.params, type=dict[str, Any])
        except (msgspec.DecodeError, msgspec.ValidationError):
            send(self._reply("", None, time_in, error="EGeneral:Invalid arguments"))
            return
        method, req_id = request.method, request.req_id
        self.state.requests[f"ws:{method}"] += 1
        self.ops.append((method, {k: v for k, v in params.items() if k != "token"}))
        faults = self.sim.faults
        if params.get("token") not in self.state.tokens:
            send(self._reply(method, req_id, time_in, error=_INVALID_SESSION))
            return
        if faults.take_rate_limit():
            send(self._reply(method, req_id, time_in, error=_RATE_LIMITED))
            return
        injected = faults.take_reject()
        if injected is not None:
            send(self._reply(method, req_id, time_in, error=injected))
            return
        try:
            result = self._execute(method, request.params)
            reply = self._reply(method, req_id, time_in, result=result)
        except Refusal as exc:
            reply = self._reply(method, req_id, time_in, error=str(exc))
        except (msgspec.DecodeError, msgspec.ValidationError):
            reply = self._reply(method, req_id, time_in, error="EGeneral:Invalid arguments")
        delay = faults.take_delay()
        if delay:
            self.sim.spawn(self._send_later(send, delay, reply), name="kraken-sim-held-reply")
            return
        send(reply)

    def _execute(self, method: str, raw: msgspec.Raw) -> dict[str, Any]:
        handlers = self.handlers
        if method == "add_order":
            add = msgspec.json.decode(raw, type=_AddOrder)
            if add.order_qty is None:
                raise Refusal("EGeneral:Invalid arguments:order_qty")
            rest = {"pair": add.symbol, "type": add.side, "ordertype": add.order_type, "volume": _text(add.order_qty)}
            if add.limit_price is not None:
                rest["price"] = _text(add.limit_price)
            rest["timeinforce"] = add.time_in_force.upper()
            if add.post_only:
                rest["oflags"] = "post"
            if add.cl_ord_id:
                rest["cl_ord_id"] = add.cl_ord_id
            placed = handlers.add_order(rest)
            return {"order_id": placed["txid"][0], **({"cl_ord_id": add.cl_ord_id} if add.cl_ord_id else {})}
        if method == "amend_order":
            amend = msgspec.json.decode(raw, type=_AmendOrder)
            named = {"cl_ord_id": amend.cl_ord_id} if amend.cl_ord_id else {"txid": amend.order_id}
            rest = dict(named)
            if amend.order_qty is not None:
                rest["order_qty"] = _text(amend.order_qty)
            if amend.limit_price is not None:
                rest["limit_price"] = _text(amend.limit_price)
            if amend.post_only:
                rest["post_only"] = "true"
            amended = handlers.amend_order(rest)
            named_as = {"cl_ord_id": amend.cl_ord_id} if amend.cl_ord_id else {"order_id": amend.order_id}
            return {"amend_id": amended["amend_id"], **named_as}
        if method == "cancel_order":
            cancel = msgspec.json.decode(raw, type=_CancelOrder)
            targets = [{"cl_ord_id": c} for c in cancel.cl_ord_id] + [{"txid": o} for o in cancel.order_id]
            if not targets:
                raise Refusal("EGeneral:Invalid arguments:cl_ord_id")
            for target in targets:
                handlers.cancel_order(target)
            first = targets[0]
            return {"order_id": first["txid"]} if "txid" in first else {"cl_ord_id": first["cl_ord_id"]}
        raise Refusal(f"EGeneral:Invalid arguments:method {method!r}")

    def _reply(
        self, method: str, req_id: int | None, time_in: str, *, result: dict[str, Any] | None = None, error: str = ""
    ) -> str:
        message: dict[str, Any] = {"method": method, "success": not error}
        if error:
            message["error"] = error
        else:
            message["result"] = result or {}
        message["time_in"] = time_in
        message["time_out"] = rfc3339(self.sim.core.clock.now_ns())
        if req_id is not None:
            message["req_id"] = req_id
        return msgspec.json.encode(message).decode()

    async def _send_later(self, send: Callable[[str], None], delay: float, reply: str) -> None:
        await asyncio.sleep(delay)
        send(reply)
