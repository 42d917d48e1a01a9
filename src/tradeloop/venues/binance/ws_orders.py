"""Spot order entry on the Binance WebSocket API (``/ws-api/v3``): one :class:`OrderSocket` of its own.

:class:`WsOrderPath` keeps a connection to the WebSocket API for order requests only (the user data
stream stays on its own connection, ``user_stream.py``): no login frame (every request is signed,
``login=None``), no subscriptions, WebSocket pings both ways. ``submit``/``cancel``/``amend`` build the
request's parameters (the REST query's: :mod:`tradeloop.venues.binance.ws_wire`) and hand it to a
:class:`WsOrderEntry`, which signs it and writes it before the call returns (or holds it for the rate
budget, shared with REST). Each returns ``False`` when the socket is down: the caller sends over REST.
Replies are mapped by the :class:`~tradeloop.venues.binance.replies.ReplyMapper` REST replies use.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping

from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.enums import RejectReason
from tradeloop.model.events import Event
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.binance import orders
from tradeloop.venues.binance.replies import ReplyMapper
from tradeloop.venues.binance.spec import WS_OP_COSTS, BinanceMarket
from tradeloop.venues.binance.tracker import OrderTracker, TrackedOrder, plan_amend
from tradeloop.venues.binance.ws_wire import (
    BinanceOpWire,
    WsApiReply,
    ws_cancel_params,
    ws_cancel_replace_params,
    ws_keep_priority_params,
    ws_place_params,
)
from tradeloop.venues.transport.order_entry import WsOp, WsOrderEntry
from tradeloop.venues.transport.order_socket import OrderSocket
from tradeloop.venues.transport.ratelimit import RateBudget
from tradeloop.venues.transport.ws import WsSpec

__all__ = ["AmendOp", "WsOrderPath"]

log = get_logger("tradeloop.venues.binance.ws_orders")


class AmendOp(WsOp):
    """An amend sent as ``order.amend.keepPriority`` or ``order.cancelReplace``: the order's new price and
    total size, as planned when it was sent."""

    __slots__ = ("order", "price", "qty")

    def __init__(self, kind: str, cmd: AmendOrder, tail: bytes, order: TrackedOrder, price: int, qty: int) -> None:
        super().__init__(kind, cmd, tail)
        self.order = order
        self.price = price
        self.qty = qty


class WsOrderPath:
    """Spot order requests on the WebSocket API (see the module docstring). ``fallback(op)`` sends an op
    the socket cannot take over REST; ``later(event)`` emits a refusal outside the caller's call."""

    def __init__(
        self,
        spec: WsSpec,
        credentials: Credentials,
        budget: RateBudget,
        instruments: Mapping[InstrumentId, Instrument],
        tracker: OrderTracker,
        replies: ReplyMapper,
        *,
        now_ms: Callable[[], int],
        now_ns: Callable[[], int] = time.time_ns,
        fallback: Callable[[WsOp], None],
        later: Callable[[Event], None],
        patience_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self._budget = budget
        self._instruments = instruments
        self._tracker = tracker
        self._replies = replies
        self._now_ns = now_ns
        self._later = later
        self.socket = OrderSocket(
            spec,
            on_frame=self._on_frame,
            on_close=self._on_close,
            now_ns=now_ns,
            rng=rng,
            name="binance-orders",
        )
        self._wire = BinanceOpWire(credentials, now_ms, self._sync_usage)
        self.entry: WsOrderEntry[WsApiReply] = WsOrderEntry(
            self.socket,
            budget,
            self._wire,
            costs=WS_OP_COSTS,
            on_ack=self._on_ack,
            fallback=fallback,
            on_unknown=self._on_unknown,
            patience_s=patience_s,
            rng=rng,
            name="binance-orders",
        )

    async def start(self, timeout_s: float) -> None:
        """Connect (returns once the socket is open, or after ``timeout_s``: orders go over REST until it is)."""
        self.socket.start()
        try:
            await self.socket.wait_open(timeout_s)
        except TimeoutError:
            log.warning("binance order socket not open yet; orders go over REST", venue="binance")

    async def stop(self) -> None:
        self.entry.cancel_timers()
        await self.socket.close()

    # -- order requests -------------------------------------------------------------------------

    def submit(self, cmd: SubmitOrder) -> bool:
        """``order.place`` now (``False``: the socket is down or the instrument unknown; REST must)."""
        inst = self._instruments.get(cmd.instrument_id)
        if inst is None or not self._ready():
            return False
        try:
            params = ws_place_params(cmd, inst)
        except orders.OrderRequestError as exc:
            self._refuse("place", inst, cmd.client_order_id, str(exc), RejectReason.INVALID_ORDER)
            return True
        self._tracker.register(cmd, inst)
        self.entry.send(WsOp("place", cmd, self._wire.tail("place", params)))
        return True

    def cancel(self, cmd: CancelOrder) -> bool:
        """``order.cancel`` by client order id now (``False``: REST must)."""
        if cmd.instrument_id not in self._instruments or not self._ready():
            return False
        self.entry.send(WsOp("cancel", cmd, self._wire.tail("cancel", ws_cancel_params(cmd))))
        return True

    def amend(self, cmd: AmendOrder) -> bool:
        """``order.amend.keepPriority`` or ``order.cancelReplace`` now, as :func:`plan_amend` decides
        (``False``: REST must)."""
        inst = self._instruments.get(cmd.instrument_id)
        if inst is None or not self._ready():
            return False
        order = self._tracker.get(cmd.client_order_id)
        plan = plan_amend(cmd, order, BinanceMarket.SPOT)
        if plan.kind == "refuse" or order is None:
            self._refuse("amend", inst, cmd.client_order_id, plan.message, plan.reason)
            return True
        cid, c = cmd.client_order_id, order.cmd
        if plan.kind == "cancel":
            return self.cancel(
                CancelOrder(ts=cmd.ts, strategy_id=c.strategy_id, instrument_id=inst.id, client_order_id=cid)
            )
        try:
            if plan.kind == "amend":
                params = ws_keep_priority_params(inst, cid, plan.qty)
            else:
                leaves = plan.qty - order.filled
                params = ws_cancel_replace_params(inst, cid, c.side, c.time_in_force, c.post_only, leaves, plan.price)
        except orders.OrderRequestError as exc:
            self._refuse("amend", inst, cid, str(exc), RejectReason.INVALID_ORDER)
            return True
        self._tracker.start_amend(order, replace=plan.kind == "cancel_replace")
        self.entry.send(AmendOp(plan.kind, cmd, self._wire.tail(plan.kind, params), order, plan.price, plan.qty))
        return True

    # -- replies --------------------------------------------------------------------------------

    def _on_ack(self, op: WsOp, reply: WsApiReply) -> None:
        """An op's final reply (rate limits already retried by the order entry)."""
        cmd, ts = op.cmd, self._now_ns()
        inst = self._instruments[cmd.instrument_id]
        cid, status, body = cmd.client_order_id, reply.status, reply.body
        if isinstance(op, AmendOp):
            if op.kind == "cancel_replace":
                self._replies.replaced(inst, op.order, op.price, op.qty, status, body, ts)
            else:
                self._replies.amended(inst, cid, status, body, ts)
        elif isinstance(cmd, SubmitOrder):
            self._replies.placed(inst, cid, status, body, ts)
        else:
            self._replies.canceled(inst, cid, status, body, ts)

    def _on_unknown(self, op: WsOp) -> None:
        """A keep-priority amend whose reply is lost is no longer expected (as over REST); a lost
        cancel/replace keeps its old order id retired-to-be until the OMS's query settles it."""
        if isinstance(op, AmendOp) and op.kind == "amend":
            self._tracker.amend_failed(op.order)

    def _sync_usage(self, reply: WsApiReply) -> None:
        for window, used in reply.usage:
            self._budget.sync_used(window, used)

    def _on_frame(self, payload: bytes, ts_recv: int) -> None:
        if not self.entry.handle(payload):
            log.warning(
                "binance order socket: unexpected frame", venue="binance", head=payload[:120].decode("utf-8", "replace")
            )

    def _on_close(self, reason: str) -> None:
        self.entry.connection_lost()
        log.info("binance order socket lost", venue="binance", reason=reason)

    def _ready(self) -> bool:
        if self.socket.ready:
            return True
        self.entry.fell_back += 1
        return False

    def _refuse(self, request: str, inst: Instrument, cid: str, message: str, reason: RejectReason) -> None:
        """A command that cannot become a request (nothing sent): refused after the caller's call returns."""
        event = orders.rejection(request, inst, cid, 0, message, self._now_ns(), reason)
        asyncio.get_running_loop().call_soon(self._later, event)
