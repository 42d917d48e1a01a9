"""Bybit's trade socket (``/v5/trade``) for one execution client: the connection and its order entry.

:class:`TradeSocket` puts the Bybit dialect (:mod:`.ws_wire`) into the venue-neutral
:class:`~tradeloop.venues.transport.order_socket.OrderSocket` (``auth`` signed at each connect with the
offset-corrected clock, ``{"op":"ping"}`` keepalive, reconnect with backoff) and
:class:`~tradeloop.venues.transport.order_entry.WsOrderEntry` (request ids, the shared per-UID rate
budget, rate-limit retries, REST fallback while down, unknown outcomes when the socket drops with ops
in flight). The execution client supplies what to do with an op's final reply and with an op the
socket cannot take.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tradeloop.core.logging import get_logger
from tradeloop.security.credentials import Credentials
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.ws_wire import BybitOpWire, TradeReply, auth_frame, read_auth_reply
from tradeloop.venues.transport.order_entry import WsOp, WsOrderEntry
from tradeloop.venues.transport.order_socket import OrderSocket
from tradeloop.venues.transport.ratelimit import RateBudget
from tradeloop.venues.transport.ws import WsSpec

__all__ = ["TradeSocket"]

log = get_logger("tradeloop.venues.bybit.trade_socket")

_AUTH_TIMEOUT_S = 8.0


class TradeSocket:
    """One authenticated trade socket and the order entry on it (see the module docstring).

    ``now_ms()`` is the signing clock (local clock corrected by the offset to Bybit's), read for the
    ``auth`` expiry and each op's ``X-BAPI-TIMESTAMP``; ``on_ack(op, reply)`` gets each op's final
    reply, ``fallback(op)`` an op to send over REST.
    """

    def __init__(
        self,
        ws: WsSpec,
        credentials: Credentials,
        budget: RateBudget,
        *,
        now_ms: Callable[[], int],
        now_ns: Callable[[], int],
        on_ack: Callable[[WsOp, TradeReply], None],
        fallback: Callable[[WsOp], None],
        recv_window_ms: int,
        patience_s: float,
        rng: random.Random,
        name: str,
    ) -> None:
        self._creds = credentials
        self._now_ms = now_ms
        self.name = name
        self.socket = OrderSocket(
            ws,
            login=self._auth_frame,
            read_login_reply=read_auth_reply,
            on_frame=self._on_frame,
            on_close=self._on_close,
            login_timeout_s=min(_AUTH_TIMEOUT_S, ws.open_timeout_s),
            now_ns=now_ns,
            rng=rng,
            name=f"{name}-trade",
        )
        self.entry: WsOrderEntry[TradeReply] = WsOrderEntry(
            self.socket,
            budget,
            BybitOpWire(now_ms, recv_window_ms),
            costs=spec.WS_OP_COSTS,
            on_ack=on_ack,
            fallback=fallback,
            patience_s=patience_s,
            rng=rng,
            name=f"{name}-orders",
        )

    async def open(self, timeout_s: float) -> bool:
        """Connect and authenticate; whether it is open after ``timeout_s`` (it keeps trying either way)."""
        self.socket.start()
        try:
            await self.socket.wait_open(timeout_s)
        except TimeoutError:
            log.warning("bybit trade socket not open: orders go over REST meanwhile", name=self.name)
            return False
        return True

    async def close(self) -> None:
        self.entry.cancel_timers()
        await self.socket.close()

    def _auth_frame(self) -> bytes:
        expires = self._now_ms() + spec.WS_AUTH_EXPIRES_MS
        return auth_frame(self._creds.api_key.reveal(), self._creds.secret.reveal(), expires)

    def _on_frame(self, payload: bytes, ts_recv: int) -> None:
        if not self.entry.handle(payload):
            log.debug("bybit trade socket frame ignored", name=self.name, size=len(payload))

    def _on_close(self, reason: str) -> None:
        self.entry.connection_lost()
        log.info("bybit trade socket lost", name=self.name, reason=reason)
