"""Binance order replies -> engine events, the same for REST and the WebSocket API.

A WebSocket API reply carries the REST reply's body (``result``, or ``error`` with the same
``{"code","msg"[,"data"]}``) and an HTTP-like status, so both paths hand ``(status, body)`` to
:class:`ReplyMapper`, which maps it with the pure functions of :mod:`tradeloop.venues.binance.orders`
and passes every event through the :class:`~tradeloop.venues.binance.tracker.OrderTracker` (a report
the user data stream already gave is not emitted twice).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from tradeloop.model.enums import RejectReason
from tradeloop.model.events import Event
from tradeloop.model.instrument import Instrument
from tradeloop.venues.binance import orders
from tradeloop.venues.binance.schemas import AmendReply
from tradeloop.venues.binance.spec import RATE_LIMITED_STATUS, BinanceMarket
from tradeloop.venues.binance.tracker import OrderTracker, TrackedOrder

__all__ = ["ReplyMapper"]


class ReplyMapper:
    """Order replies to events: ``out(event, venue_order_id)`` emits through the tracker's filter;
    ``on_clock_skew()`` runs after a -1021 (timestamp outside ``recvWindow``) refusal."""

    def __init__(
        self,
        tracker: OrderTracker,
        market: BinanceMarket,
        out: Callable[[Event, str | None], None],
        on_clock_skew: Callable[[], None],
    ) -> None:
        self.tracker = tracker
        self.market = market
        self._out = out
        self._on_clock_skew = on_clock_skew

    def placed(self, inst: Instrument, cid: str, status: int, body: bytes, ts: int) -> None:
        """The reply to a new order."""
        if status != 200:
            self.refused("place", inst, cid, status, body, ts)
            return
        reply = orders.decode_order(body)
        for event in orders.order_reply_events(reply, inst, cid, ts):
            self._out(event, str(reply.orderId))

    def canceled(self, inst: Instrument, cid: str, status: int, body: bytes, ts: int) -> None:
        """The reply to a cancel by client order id."""
        if status != 200:
            self.refused("cancel", inst, cid, status, body, ts)
            return
        reply = orders.decode_order(body)
        for event in orders.cancel_reply_events(reply, inst, cid, ts):
            self._out(event, str(reply.orderId))

    def amended(self, inst: Instrument, cid: str, status: int, body: bytes, ts: int) -> None:
        """The reply to an amend in place (spot keep-priority, USD-M modify)."""
        if status != 200:
            self.refused("amend", inst, cid, status, body, ts)
            return
        if self.market is BinanceMarket.USDM:
            events = orders.amend_reply_events(AmendReply(amendedOrder=orders.decode_order(body)), inst, cid, ts)
        else:
            events = orders.amend_reply_events(orders.decode_amend(body), inst, cid, ts)
        for event in events:
            self._out(event, None)

    def replaced(
        self, inst: Instrument, order: TrackedOrder, price: int, qty: int, status: int, body: bytes, ts: int
    ) -> None:
        """The reply to a cancel/replace (``qty``: the order's new total size)."""
        cid = order.cmd.client_order_id
        if status in RATE_LIMITED_STATUS:
            self.tracker.amend_failed(order)
            code, msg = orders.decode_error(body)
            reason = RejectReason.RATE_LIMITED
            self._out(orders.rejection("amend", inst, cid, code or -1003, msg or "rate limited", ts, reason), None)
            return
        try:
            events, new_id = orders.cancel_replace_events(status, body, inst, cid, price, qty, ts)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.refused("amend", inst, cid, status, body, ts)
            return
        if status == 200:
            self.tracker.replaced(order, new_id, qty, price)
        for event in events:
            self._out(event, new_id)

    def refused(self, request: str, inst: Instrument, cid: str, status: int, body: bytes, ts: int) -> None:
        """A ``place``/``cancel``/``amend`` the venue refused: its rejection, the reason from the error code
        (``RATE_LIMITED`` for a 429/418)."""
        code, msg = orders.decode_error(body)
        reason = RejectReason.RATE_LIMITED if status in RATE_LIMITED_STATUS else None
        event = orders.rejection(request, inst, cid, code, msg or f"HTTP {status}", ts, reason)
        if code == -1021:
            self._on_clock_skew()
        if request == "amend":
            order = self.tracker.get(cid)
            if order is not None:
                self.tracker.amend_failed(order)
        self._out(event, None)
