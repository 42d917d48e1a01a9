"""Opening Bybit's private socket (``/v5/private``): ``auth``, then ``order``/``execution``/``wallet``.

:func:`open_stream` starts the socket and waits until it is open or its login refused. :func:`log_in`
is the socket's ``on_open`` step: it signs ``auth`` with the offset-corrected clock, waits for the
answer, subscribes and waits for that answer; topic messages that arrive meanwhile are handed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from tradeloop.core.logging import get_logger
from tradeloop.security.credentials import Credentials
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.auth import ws_auth_args
from tradeloop.venues.bybit.private import PrivateFrameError, PrivateMessage, decode_private
from tradeloop.venues.transport.ws import ReconnectingWebSocket, WsConnection

__all__ = ["StreamRefused", "log_in", "open_stream"]

log = get_logger("tradeloop.venues.bybit.private_stream")

AUTH_TIMEOUT_S = 8.0
"""How long the private socket waits for the answer to ``auth``, and to ``subscribe``."""
_SUBSCRIBE = '{"req_id":"sub","op":"subscribe","args":["order","execution","wallet"]}'


class StreamRefused(PermissionError):
    """Bybit refused the private socket's ``auth`` or ``subscribe`` (``op``)."""

    def __init__(self, op: str, reason: str) -> None:
        super().__init__(f"bybit private {op} refused: {reason}")
        self.op = op


async def open_stream(ws: ReconnectingWebSocket, refused: asyncio.Event, timeout_s: float, venue: str) -> None:
    """Start ``ws`` and return once it is open; ``PermissionError`` (``ws`` closed) when ``refused`` is set
    (its login was refused) or it is not open after ``timeout_s``."""
    ws.start()
    opened = asyncio.ensure_future(ws.wait_open())
    refusal = asyncio.ensure_future(refused.wait())
    try:
        await asyncio.wait({opened, refusal}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        opened.cancel()
        refusal.cancel()
    if not ws.connected:
        await ws.close()
        why = "login refused" if refused.is_set() else f"not open after {timeout_s}s"
        raise PermissionError(f"{venue} private stream: {why}")


async def log_in(
    conn: WsConnection,
    credentials: Credentials,
    now_ms: int,
    *,
    on_message: Callable[[PrivateMessage], None],
    on_malformed: Callable[[str, Exception], None],
    venue: str,
    timeout_s: float = AUTH_TIMEOUT_S,
) -> None:
    """Authenticate and subscribe on ``conn`` (each answer within ``timeout_s``); :class:`StreamRefused`."""
    expires = now_ms + spec.WS_AUTH_EXPIRES_MS
    args = ws_auth_args(credentials.api_key.reveal(), credentials.secret.reveal(), expires)
    await conn.send(msgspec.json.encode({"req_id": "auth", "op": "auth", "args": args}).decode())
    await _await_op(conn, "auth", on_message, on_malformed, timeout_s, venue)
    await conn.send(_SUBSCRIBE)
    await _await_op(conn, "subscribe", on_message, on_malformed, timeout_s, venue)


async def _await_op(
    conn: WsConnection,
    op: str,
    on_message: Callable[[PrivateMessage], None],
    on_malformed: Callable[[str, Exception], None],
    timeout_s: float,
    venue: str,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        frame = await conn.receive(max(deadline - loop.time(), 0.01))
        data = frame.encode() if isinstance(frame, str) else frame
        try:
            msg = decode_private(data)
        except PrivateFrameError as exc:
            on_malformed("private", exc)
            continue
        if not isinstance(msg, dict):
            on_message(msg)
            continue
        if msg.get("op") != op:
            continue
        if msg.get("success") is True or msg.get("retCode") == 0:
            return
        reason = str(msg.get("ret_msg") or msg.get("retMsg") or "refused")
        log.error("bybit private stream refused", venue=venue, op=op, reason=reason)
        raise StreamRefused(op, reason)
