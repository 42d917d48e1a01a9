"""What the Binance execution client knows about its orders, and which venue reports become events.

Binance tells the same thing twice: the REST reply of a request and the user-data stream both
report an acceptance, a cancel or a fill, in either order. :class:`OrderTracker` lets the first
report through and drops the repeat, so the OMS sees each fact once: one acceptance per order,
each fill once (by trade id), one end (canceled / expired / rejected), one answer per amend.

It also carries a cancel/replace through: the venue cancels the old order (a ``CANCELED`` report
for the old ``orderId``) and places the replacement under the same client id (a ``NEW`` report);
neither is news to the OMS, which sees one ``OrderAmended`` (or ``OrderCanceled`` when only the
cancel half succeeded). The replacement is sized to what is left to fill, so the tracker keeps the
quantity filled before the replace to report the order's total size.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from tradeloop.model.commands import AmendOrder, SubmitOrder
from tradeloop.model.enums import OrderType, RejectReason
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.binance.spec import BinanceMarket

__all__ = ["AmendPlan", "OrderTracker", "TrackedOrder", "plan_amend"]

_MAX_ENDED: Final = 10_000


class TrackedOrder:
    """One order this client placed: its parameters and what has been reported so far."""

    __slots__ = (
        "accepted",
        "amend_pending",
        "cmd",
        "ended",
        "filled",
        "inst",
        "price",
        "qty",
        "qty_offset",
        "replacing_from",
        "retired_ids",
        "trade_ids",
        "venue_order_id",
    )

    def __init__(self, cmd: SubmitOrder, inst: Instrument) -> None:
        self.cmd = cmd
        self.inst = inst
        self.price = cmd.price
        self.qty = cmd.qty
        """The order's total size as the engine sees it (amends change it)."""
        self.filled = 0
        self.qty_offset = 0
        """Filled before the last cancel/replace (the replacement's own size excludes it)."""
        self.venue_order_id: str | None = None
        self.accepted = False
        self.ended = False
        self.amend_pending = False
        self.replacing_from: str | None = None
        self.retired_ids: set[str] = set()
        self.trade_ids: set[str] = set()

    @property
    def leaves(self) -> int:
        return max(self.qty - self.filled, 0)


class AmendPlan(NamedTuple):
    """What an amend becomes on Binance (the same over REST and the WebSocket API)."""

    kind: str
    """``amend`` (spot keep-priority size reduction, USD-M modify), ``cancel_replace``, ``cancel`` (the new
    size is already filled) or ``refuse`` (``reason``, ``message``)."""
    price: int = 0
    qty: int = 0
    """The order's new total size (the replacement of a cancel/replace gets what is left of it)."""
    reason: RejectReason = RejectReason.OTHER
    message: str = ""


def plan_amend(cmd: AmendOrder, order: TrackedOrder | None, market: BinanceMarket) -> AmendPlan:
    """Spot has no general amend: a smaller size at the same price keeps priority (``keepPriority``);
    anything else is a cancel/replace. USD-M modifies in place."""
    if order is None or order.ended or order.inst.id != cmd.instrument_id:
        return AmendPlan("refuse", reason=RejectReason.UNKNOWN_ORDER, message="order not open at this client")
    price = cmd.price if cmd.price is not None else order.price
    qty = cmd.qty if cmd.qty is not None else order.qty
    if price is None or order.cmd.order_type is OrderType.MARKET:
        return AmendPlan("refuse", reason=RejectReason.INVALID_ORDER, message="only limit orders can be amended")
    if market is BinanceMarket.USDM or (price == order.price and qty < order.qty):
        return AmendPlan("amend", price, qty)
    return AmendPlan("cancel_replace" if qty > order.filled else "cancel", price, qty)


class OrderTracker:
    """The client's orders by client id, and the filter between venue reports and the engine."""

    def __init__(self) -> None:
        self.orders: dict[str, TrackedOrder] = {}
        self.dropped = 0
        """Reports filtered out as repeats (counted for tests and metrics)."""

    def register(self, cmd: SubmitOrder, inst: Instrument) -> TrackedOrder:
        """A new order is about to be sent (a resubmitted client id starts over)."""
        order = TrackedOrder(cmd, inst)
        self.orders[cmd.client_order_id] = order
        self._prune()
        return order

    def get(self, client_order_id: str) -> TrackedOrder | None:
        return self.orders.get(client_order_id)

    def open_orders(self) -> list[TrackedOrder]:
        return [o for o in self.orders.values() if not o.ended]

    def start_amend(self, order: TrackedOrder, replace: bool) -> None:
        """An amend was sent; ``replace``: by cancel/replace (the current ``orderId`` will be canceled)."""
        order.amend_pending = True
        order.replacing_from = order.venue_order_id if replace else None

    def amend_failed(self, order: TrackedOrder) -> None:
        """The amend request got no answer we can use (rejected before sending, outcome unknown)."""
        order.amend_pending = False
        order.replacing_from = None

    def replaced(self, order: TrackedOrder, new_venue_order_id: str | None, qty: int, price: int | None) -> None:
        """A cancel/replace completed: the replacement is the order now."""
        if order.replacing_from is not None:
            order.retired_ids.add(order.replacing_from)
        order.replacing_from = None
        if new_venue_order_id is not None:
            order.venue_order_id = new_venue_order_id
        order.qty_offset = order.filled
        order.qty = qty
        order.price = price

    def admit(self, event: Event, venue_order_id: str | None = None) -> bool:
        """Whether ``event`` is news for the engine (and record it). ``venue_order_id`` is the
        ``orderId`` the report was about, when it names one."""
        if not isinstance(
            event, OrderAccepted | OrderFilled | OrderCanceled | OrderExpired | OrderRejected | OrderAmended
        ):
            if isinstance(event, OrderAmendRejected):
                order = self.orders.get(event.client_order_id)
                if order is not None:
                    self.amend_failed(order)
            return True
        order = self.orders.get(event.client_order_id)
        if order is None:
            return True  # not ours (another session's order): let the OMS decide
        ok = self._admit(order, event, venue_order_id)
        if not ok:
            self.dropped += 1
        return ok

    def _admit(self, order: TrackedOrder, event: Event, venue_order_id: str | None) -> bool:
        if isinstance(event, OrderFilled):
            if event.trade_id in order.trade_ids:
                return False
            order.trade_ids.add(event.trade_id)
            order.accepted = True  # a later acceptance report is old news
            if order.venue_order_id is None:
                order.venue_order_id = event.venue_order_id
            order.filled += event.last_qty
            if order.filled >= order.qty:
                order.ended = True
            return True
        if isinstance(event, OrderAmended):
            if not order.amend_pending:
                return False
            order.amend_pending = False
            order.qty = event.qty
            order.price = event.price
            return True
        if isinstance(event, OrderAccepted):
            if order.replacing_from is not None or order.accepted:
                return False
            order.accepted = True
            order.venue_order_id = event.venue_order_id
            return True
        # an end: canceled, expired, rejected
        if venue_order_id is not None and (
            venue_order_id in order.retired_ids or venue_order_id == order.replacing_from
        ):
            return False  # the cancel half of a cancel/replace
        if order.ended:
            return False
        order.ended = True
        order.accepted = True
        order.amend_pending = False
        return True

    def adjust_report(self, report: OrderStatusReport) -> OrderStatusReport:
        """A query of a replaced order answers for the replacement: add what was filled before."""
        order = self.orders.get(report.client_order_id)
        if order is None or not order.qty_offset or report.status is None:
            return report
        return OrderStatusReport(
            ts=report.ts,
            instrument_id=report.instrument_id,
            client_order_id=report.client_order_id,
            venue_order_id=report.venue_order_id,
            status=report.status,
            filled_qty=report.filled_qty + order.qty_offset,
            price=report.price,
            qty=None if report.qty is None else report.qty + order.qty_offset,
        )

    def _prune(self) -> None:
        if len(self.orders) <= _MAX_ENDED:
            return
        for cid in [cid for cid, o in self.orders.items() if o.ended][: len(self.orders) - _MAX_ENDED]:
            del self.orders[cid]
