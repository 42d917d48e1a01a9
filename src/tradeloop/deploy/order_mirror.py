"""The strategy service's view of the orders the execution service's OMS owns.

The OMS is the single writer of order state. The mirror starts from its snapshot
(:class:`~tradeloop.trading.state.OrderState` of every order that is not terminal) and applies the
order events the OMS published, in the order it applied them, through the same state machine
(:class:`~tradeloop.model.order.Order`); a ``OrderTransitionRefused`` is never applied, as in the OMS.

What the OMS does synchronously inside a strategy's call in one process, the mirror does at once
too, so the strategy sees the same thing before the call returns: a ``submit`` creates the order
(``OrderInitialized``, :meth:`OrderMirror.submitted`), a ``cancel`` or ``cancel_all`` marks the orders
``PENDING_CANCEL`` and an ``amend`` marks the order ``PENDING_AMEND``, under the OMS's own conditions
(:meth:`~OrderMirror.cancel_requested`, :meth:`~OrderMirror.amend_requested`,
:meth:`~OrderMirror.cancel_all_requested`). The OMS's own copy of such an event, when it comes back, is
skipped. Open-ness follows the OMS's rule: an order counts as open from its submit (the OMS counts it
once it passed risk) until a terminal event; an ``OrderDenied`` closes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Final, TypeVar

from tradeloop.model.commands import AmendOrder, CancelAllOrders, SubmitOrder
from tradeloop.model.enums import OrderStatus
from tradeloop.model.events import (
    OrderEvent,
    OrderFilled,
    OrderInitialized,
    OrderPendingAmend,
    OrderPendingCancel,
    OrderTransitionRefused,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import IllegalTransition, Order
from tradeloop.trading.oms import order_initialized
from tradeloop.trading.state import OrderState, restore_order

__all__ = ["OrderMirror"]

P = TypeVar("P", OrderPendingCancel, OrderPendingAmend)
_WORKING: Final = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})


class OrderMirror:
    """Orders by client order id, with the OMS's ``open_orders`` / ``order`` views (``_Orders`` of the
    strategy context)."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self.refused = 0
        """Events the mirror's state machine refused (it and the OMS disagree: a bug or a lost event)."""
        self.duplicate_fills = 0
        self._echoes: dict[str, deque[type[OrderEvent]]] = {}
        """Events applied ahead of the OMS, per order, whose copy from the OMS is still to come."""

    # -- views --------------------------------------------------------------------------------

    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[Order]:
        if instrument_id is None:
            return list(self._open.values())
        return [o for o in self._open.values() if o.instrument_id == instrument_id]

    def order(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    # -- changes ------------------------------------------------------------------------------

    def reset(self, states: Iterable[OrderState]) -> None:
        """Start over from the OMS's snapshot (its orders that are not terminal)."""
        self.orders.clear()
        self._open.clear()
        self._echoes.clear()
        for state in states:
            order = restore_order(state)
            self.orders[order.client_order_id] = order
            if order.is_open or order.status is OrderStatus.INITIALIZED:
                self._open[order.client_order_id] = order

    def submitted(self, cmd: SubmitOrder, ts: int) -> OrderInitialized | None:
        """The order a strategy just submitted, as the OMS will initialize it (``None`` if the id is taken,
        which the OMS ignores too)."""
        cid = cmd.client_order_id
        if not cid or cid in self.orders:
            return None
        init = order_initialized(cmd, cid, ts)
        order = Order(init)
        self.orders[cid] = order
        self._open[cid] = order
        return init

    def cancel_requested(self, client_order_id: str, ts: int) -> OrderPendingCancel | None:
        """A strategy asked to cancel the order: ``PENDING_CANCEL`` now, where the OMS would do so."""
        order = self.orders.get(client_order_id)
        if order is None or not order.is_open or order.status in (OrderStatus.INITIALIZED, OrderStatus.PENDING_CANCEL):
            return None
        return self._ahead(
            order, OrderPendingCancel(ts=ts, instrument_id=order.instrument_id, client_order_id=order.client_order_id)
        )

    def amend_requested(self, cmd: AmendOrder, ts: int) -> OrderPendingAmend | None:
        """A strategy asked to amend the order: ``PENDING_AMEND`` now, where the OMS would do so."""
        order = self.orders.get(cmd.client_order_id)
        if order is None or order.status not in _WORKING:
            return None
        event = OrderPendingAmend(
            ts=ts,
            instrument_id=order.instrument_id,
            client_order_id=order.client_order_id,
            price=cmd.price,
            qty=cmd.qty,
        )
        return self._ahead(order, event)

    def cancel_all_requested(self, cmd: CancelAllOrders, ts: int) -> list[OrderPendingCancel]:
        """A strategy's cancel-all: ``PENDING_CANCEL`` now for every open order in its scope that the OMS
        would mark (orders still ``INITIALIZED`` the OMS cancels itself, with their own events)."""
        out = []
        for order in list(self._open.values()):
            if cmd.instrument_id is not None and order.instrument_id != cmd.instrument_id:
                continue
            if cmd.venue is not None and order.instrument_id.venue != cmd.venue:
                continue
            if cmd.only_strategy and order.strategy_id != cmd.strategy_id:
                continue
            event = self.cancel_requested(order.client_order_id, ts)
            if event is not None:
                out.append(event)
        return out

    def _ahead(self, order: Order, event: P) -> P | None:
        try:
            order.apply(event)
        except IllegalTransition:
            return None
        self._echoes.setdefault(order.client_order_id, deque()).append(type(event))
        return event

    def apply(self, event: OrderEvent) -> bool:
        """Apply one event the OMS published; ``False`` when there was nothing to apply (a refused
        transition, an order this mirror created already, a fill it has, or an illegal transition)."""
        cid = event.client_order_id
        if type(event) is OrderTransitionRefused:
            return False
        if type(event) is OrderInitialized:
            if cid in self.orders:
                return False
            assert isinstance(event, OrderInitialized)
            order = self.orders[cid] = Order(event)
            self._open[cid] = order  # as one this strategy submitted; an OrderDenied closes it
            return True
        known = self.orders.get(cid)
        if known is None:
            return False  # an order that ended before this mirror's snapshot
        order = known
        echoes = self._echoes.get(cid)
        if echoes and echoes[0] is type(event):
            echoes.popleft()  # the OMS's copy of an event applied ahead
            if not echoes:
                del self._echoes[cid]
            return False
        if type(event) is OrderFilled and event.trade_id and event.trade_id in order.trade_ids:
            self.duplicate_fills += 1
            return False
        try:
            order.apply(event)
        except IllegalTransition:
            self.refused += 1
            return False
        status = order.status
        if status.is_open:
            self._open[cid] = order
        elif status is not OrderStatus.INITIALIZED:
            self._open.pop(cid, None)
            if status.is_terminal:
                self._echoes.pop(cid, None)  # the OMS had not marked it: no copy will come
        return True
