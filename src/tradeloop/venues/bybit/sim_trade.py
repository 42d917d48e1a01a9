"""The Bybit simulator's trade socket (``/v5/trade``): ``auth``, ``ping`` and ``order.create|amend|cancel``.

An op is executed by the dialect's REST handler of its endpoint (the ``args`` item is the REST body),
under the same fault plan as REST: ``rate_limit_next`` answers ``retCode`` 10006, ``reject_next`` the
given code (an ``EC_*`` value is passed on: the order is taken and canceled on the stream),
``delay_next_reply`` holds the reply (the op is executed at once), ``drop_connections`` closes the
socket. Checked like Bybit: ``auth`` first (the private socket's HMAC), ``header.X-BAPI-TIMESTAMP``
within ``X-BAPI-RECV-WINDOW``, one ``args`` item, ``reqId`` unique on the connection (20006). Replies
have Bybit's shape: ``{"reqId","retCode","retMsg","op","data":{"orderId","orderLinkId"},"retExtInfo",
"header":{"X-Bapi-Limit",...,"Timenow"},"connId"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.sim_requests import RequestError, auth_ok, body_params, check_timestamp
from tradeloop.venues.bybit.sim_wire import MESSAGES, Answer, encode

if TYPE_CHECKING:
    from tradeloop.venues.bybit.simulator import BybitDialect

__all__ = ["Call", "TradeConn", "TradeOps"]

_NOT_AUTHED = 10003  # (?) the code Bybit answers an op sent before ``auth`` is not documented


@dataclass(frozen=True)
class Call:
    """A verified request: its parameters, and an injected ``EC_*`` refusal for the order stream."""

    params: dict[str, str]
    stream_reject: str | None = None


class TradeConn(Protocol):
    """What the trade socket needs of a connection."""

    id: str
    authed: bool
    req_ids: set[str]

    def push(self, frame: str, market: bool = False) -> None: ...


class TradeOps:
    """Answers the frames of one dialect's trade sockets (see the module docstring)."""

    def __init__(self, dialect: BybitDialect, handlers: Mapping[str, Callable[[Call], Awaitable[Answer]]]) -> None:
        self._dialect = dialect
        self._handlers = handlers

    def _now_ms(self) -> int:
        return self._dialect.core.clock.now_ns() // 1_000_000

    def on_op(self, conn: TradeConn, op: dict[str, Any]) -> None:
        """One decoded frame from ``conn``."""
        name, req_id = op.get("op"), op.get("reqId")
        ids = {"reqId": str(req_id)} if req_id is not None else {}
        sim = self._dialect.sim
        if name == "ping":
            if not sim.faults.stalled():
                pong = {**ids, "retCode": 0, "retMsg": "OK", "op": "pong", "data": [str(self._now_ms())]}
                conn.push(encode(pong | {"connId": conn.id}))
            return
        if name == "auth":
            ok = auth_ok(op.get("args"), sim.credentials, self._now_ms())
            code = 20001 if ok and conn.authed else (0 if ok else 10004)
            conn.authed = conn.authed or ok
            msg = {0: "OK", 20001: "Repeat auth"}.get(code, "Invalid sign")
            conn.push(encode({**ids, "retCode": code, "retMsg": msg, "op": "auth", "connId": conn.id}))
            return
        sim.spawn(self._order_op(conn, str(name), op, str(req_id) if req_id is not None else ""), name="bybit-trade")

    async def _order_op(self, conn: TradeConn, name: str, op: dict[str, Any], req_id: str) -> None:
        dialect = self._dialect
        handler = self._handlers.get(name)
        delay = 0.0
        if handler is None:
            answer = Answer(10404, {}, MESSAGES[10404])
        elif not conn.authed:
            answer = Answer(_NOT_AUTHED, {}, "Request not authorized")
        elif req_id and req_id in conn.req_ids:
            answer = Answer(20006, {}, MESSAGES[20006])
        else:
            if req_id:
                conn.req_ids.add(req_id)
            dialect.requests[f"ws:{name}"] += 1
            args = op.get("args")
            item = args[0] if isinstance(args, list) and len(args) == 1 else None
            dialect.ws_ops.append((name, item if isinstance(item, dict) else {}))
            answer, delay = await self._execute(handler, op.get("header"), item)
        if delay:
            await asyncio.sleep(delay)
        conn.push(encode(self._reply(conn, name, req_id, answer)))

    async def _execute(
        self, handler: Callable[[Call], Awaitable[Answer]], header: object, item: object
    ) -> tuple[Answer, float]:
        """The op's answer, and how long to hold it (``delay_next_reply``: only for an op that was executed)."""
        dialect = self._dialect
        faults = dialect.sim.faults
        try:
            if not isinstance(header, dict) or "X-BAPI-TIMESTAMP" not in header:
                raise RequestError(10001, "header X-BAPI-TIMESTAMP is required")
            window = str(header.get("X-BAPI-RECV-WINDOW", spec.DEFAULT_RECV_WINDOW_MS))
            check_timestamp(str(header["X-BAPI-TIMESTAMP"]), window, self._now_ms())
            if item is None:
                raise RequestError(10001, "args must hold one order")
            params = body_params(item, dialect.category)
        except RequestError as exc:
            return Answer(exc.code, {}, str(exc)), 0.0
        if faults.take_rate_limit():
            return Answer(10006, {}, MESSAGES[10006]), 0.0
        error = faults.take_reject()
        if error is not None and not error.startswith("EC_"):
            code = int(error) if error.lstrip("-").isdigit() else 10001
            return Answer(code, {}, MESSAGES.get(code, error)), 0.0
        delay = faults.take_delay()
        try:
            return await handler(Call(params, error)), delay
        except RequestError as exc:
            return Answer(exc.code, {}, str(exc)), delay

    def _reply(self, conn: TradeConn, name: str, req_id: str, answer: Answer) -> dict[str, Any]:
        now = self._now_ms()
        status = "0" if answer.code == 10006 else "19"
        header = {
            "X-Bapi-Limit": "20",
            "X-Bapi-Limit-Status": status,
            "X-Bapi-Limit-Reset-Timestamp": str(now + 1000),
            "Traceid": f"sim{now}",
            "Timenow": str(now),
        }
        out: dict[str, Any] = {"reqId": req_id} if req_id else {}
        return out | {
            "retCode": answer.code,
            "retMsg": answer.msg,
            "op": name,
            "data": answer.result,
            "retExtInfo": {},
            "header": header,
            "connId": conn.id,
        }
