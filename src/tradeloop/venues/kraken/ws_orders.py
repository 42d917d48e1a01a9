"""Kraken order entry over the WebSocket: ``add_order``/``amend_order``/``cancel_order`` on ``ws-auth``.

A connection of its own (an :class:`~tradeloop.venues.transport.order_socket.OrderSocket`, picows),
next to the private stream's: Kraken has no login frame (``login=None``), each request carries the
session token the private stream fetched from ``GetWebSocketsToken`` (held by the
:class:`~tradeloop.venues.kraken.ws_wire.KrakenOpWire`, replaced on each new token), and this socket
subscribes to nothing, so it keeps alive with the v2 ping alone. Ops go through a
:class:`~tradeloop.venues.transport.order_entry.WsOrderEntry` on the client's rate budget (the
trading engine's counter, :data:`~tradeloop.venues.kraken.spec.WS_OP_COSTS`); replies go through
the client's :class:`~tradeloop.venues.kraken.private.OrderTracker`, like REST replies, while fills,
cancels and amends keep arriving on the ``executions`` stream.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from typing import overload

from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.enums import RejectReason
from tradeloop.model.events import Event, OrderAmendRejected, OrderCancelRejected, OrderRejected
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.private import OrderTracker
from tradeloop.venues.kraken.ws_wire import (
    KrakenOpWire,
    WsFrames,
    WsOrderReply,
    amend_event,
    cancel_refusal,
    place_event,
)
from tradeloop.venues.transport.order_entry import WsOp, WsOrderEntry
from tradeloop.venues.transport.order_socket import OrderSocket
from tradeloop.venues.transport.ratelimit import RateBudget
from tradeloop.venues.transport.ws import WsSpec

__all__ = ["KrakenWsOrders", "refusal"]

log = get_logger("tradeloop.venues.kraken.ws_orders")

OrderCommand = SubmitOrder | AmendOrder | CancelOrder


class KrakenWsOrders:
    """The order socket and its order entry (see the module docstring).

    ``emit`` receives the events of replies; ``stream_live()`` says whether the ``executions`` stream
    is subscribed (a confirmed cancel is then reported from there); ``fallback(op)`` sends an op the
    socket cannot take over REST.
    """

    def __init__(
        self,
        ws_spec: WsSpec,
        instruments: Mapping[InstrumentId, Instrument],
        tracker: OrderTracker,
        budget: RateBudget,
        *,
        emit: Callable[[Event], None],
        stream_live: Callable[[], bool],
        fallback: Callable[[WsOp], None],
        patience_s: float,
        now_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        self._tracker = tracker
        self._emit = emit
        self._stream_live = stream_live
        self._now = now_ns
        self._frames = {iid.symbol: WsFrames(inst) for iid, inst in instruments.items()}
        self.wire = KrakenOpWire()
        self.socket = OrderSocket(
            ws_spec,
            on_frame=self._on_frame,
            on_close=self._on_close,
            now_ns=now_ns,
            rng=rng,
            name="kraken-orders",
        )
        self.entry: WsOrderEntry[WsOrderReply] = WsOrderEntry(
            self.socket,
            budget,
            self.wire,
            costs=spec.WS_OP_COSTS,
            on_ack=self._on_ack,
            fallback=fallback,
            patience_s=patience_s,
            rng=rng,
            name="kraken-orders",
        )

    def set_token(self, token: str) -> None:
        """The session token requests carry from now on (base64 text: nothing to escape in JSON)."""
        if '"' in token or "\\" in token:
            raise ValueError("kraken: a WebSocket token with JSON-special characters")
        self.wire.token = token.encode()

    async def start(self, timeout_s: float) -> None:
        """Connect; returns once the socket takes orders."""
        self.socket.start()
        await self.socket.wait_open(timeout_s)

    async def close(self) -> None:
        self.entry.cancel_timers()
        await self.socket.close()

    def send(self, cmd: OrderCommand) -> bool:
        """Write ``cmd``'s op now (unless the rate budget holds it); ``False`` when the socket is down and
        REST must take it. A command Kraken cannot take as asked is refused without sending."""
        entry = self.entry
        if not self.socket.ready:
            entry.fell_back += 1
            return False
        frames = self._frames.get(cmd.instrument_id.symbol)
        try:
            if frames is None:
                raise ValueError(f"unknown instrument {cmd.instrument_id}")
            if isinstance(cmd, SubmitOrder):
                kind, tail = "add_order", frames.place(cmd)
            elif isinstance(cmd, AmendOrder):
                tracked = self._tracker.get(cmd.client_order_id)
                post_only = tracked.post_only if tracked is not None else False
                kind, tail = "amend_order", frames.amend(cmd, post_only=post_only)
            else:
                kind, tail = "cancel_order", frames.cancel(cmd)
        except ValueError as exc:
            refused = refusal(self._now(), cmd, RejectReason.INVALID_ORDER, str(exc))
            asyncio.get_running_loop().call_soon(self._emit, refused)  # not from inside the engine's call
            return True
        if isinstance(cmd, SubmitOrder):
            self._tracker.track(cmd)
        entry.send(WsOp(kind, cmd, tail))
        return True

    # -- socket callbacks -------------------------------------------------------------------------

    def _on_ack(self, op: WsOp, reply: WsOrderReply) -> None:
        """An op's final reply (rate limits already retried by the order entry), mapped like REST's."""
        cmd, now = op.cmd, self._now()
        events: list[Event]
        if isinstance(cmd, SubmitOrder):
            placed = place_event(reply, cmd, now)
            if placed is None:
                log.warning("order outcome unknown", venue=spec.VENUE, client_order_id=cmd.client_order_id)
                return
            events = self._tracker.on_place_reply(placed)
        elif isinstance(cmd, AmendOrder):
            tracked = self._tracker.get(cmd.client_order_id)
            if tracked is None:  # terms unknown here: the executions stream reports the amend
                events = [amend_event(reply, cmd, now, None, 0)] if not reply.success else []
            else:
                price = cmd.price if cmd.price is not None else tracked.price
                qty = cmd.qty if cmd.qty is not None else tracked.qty
                events = self._tracker.on_amend_reply(amend_event(reply, cmd, now, price, qty))
        else:
            refused = cancel_refusal(reply, cmd, now)
            if refused is not None:
                events = [refused]
            elif not self._stream_live():
                events = self._tracker.on_cancel_confirmed(cmd.client_order_id, now, "canceled (WebSocket)")
            else:
                events = []
        for event in events:
            self._emit(event)

    def _on_frame(self, payload: bytes, ts_recv: int) -> None:
        # Replies only: this socket subscribes to nothing (status and heartbeat frames are not ours).
        self.entry.handle(payload)

    def _on_close(self, reason: str) -> None:
        self.entry.connection_lost()
        log.info("kraken order socket lost", venue=spec.VENUE, reason=reason)


@overload
def refusal(ts: int, cmd: SubmitOrder, reason: RejectReason, message: str) -> OrderRejected: ...
@overload
def refusal(ts: int, cmd: AmendOrder, reason: RejectReason, message: str) -> OrderAmendRejected: ...
@overload
def refusal(ts: int, cmd: CancelOrder, reason: RejectReason, message: str) -> OrderCancelRejected: ...
def refusal(ts: int, cmd: OrderCommand, reason: RejectReason, message: str) -> Event:
    """The rejection of a command, by its kind (``OrderRejected``, ``OrderAmendRejected``, ``OrderCancelRejected``)."""
    iid, cid = cmd.instrument_id, cmd.client_order_id
    if isinstance(cmd, SubmitOrder):
        return OrderRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)
    if isinstance(cmd, AmendOrder):
        return OrderAmendRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)
    return OrderCancelRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)
