"""The order and its state machine.

An :class:`Order` changes only through :meth:`Order.apply`, which checks every transition against
one table. An event that would take the order through an illegal transition raises
:class:`IllegalTransition` and leaves the order untouched; the OMS records it as an
``OrderTransitionRefused`` event.
"""

from __future__ import annotations

from tradeloop.model.enums import OrderStatus, OrderType, Side, TimeInForce
from tradeloop.model.events import (
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderOutcomeUnknown,
    OrderPendingAmend,
    OrderPendingCancel,
    OrderRejected,
    OrderStatusReport,
    OrderSubmitted,
    OrderTransitionRefused,
)
from tradeloop.model.identifiers import InstrumentId

S = OrderStatus

# (status, event type) -> status after. Fills are resolved separately (partial vs full).
_FILL = "fill"
TRANSITIONS: dict[tuple[OrderStatus, type[OrderEvent]], OrderStatus | str] = {}


def _allow(sources: tuple[OrderStatus, ...], event: type[OrderEvent], target: OrderStatus | str) -> None:
    for s in sources:
        TRANSITIONS[(s, event)] = target


_WORKING = (S.ACCEPTED, S.PARTIALLY_FILLED)
_allow((S.INITIALIZED,), OrderDenied, S.DENIED)
_allow((S.INITIALIZED,), OrderSubmitted, S.SUBMITTED)
_allow((S.INITIALIZED,), OrderCanceled, S.CANCELED)  # canceled before it left the engine
_allow((S.SUBMITTED,), OrderAccepted, S.ACCEPTED)
_allow((S.SUBMITTED,), OrderRejected, S.REJECTED)
_allow((S.SUBMITTED, *_WORKING, S.PENDING_CANCEL, S.PENDING_AMEND), OrderFilled, _FILL)
_allow((S.SUBMITTED, *_WORKING), OrderPendingCancel, S.PENDING_CANCEL)
_allow((S.PENDING_AMEND,), OrderPendingCancel, S.PENDING_CANCEL)
_allow((S.SUBMITTED, *_WORKING, S.PENDING_CANCEL, S.PENDING_AMEND), OrderCanceled, S.CANCELED)
_allow((S.SUBMITTED, *_WORKING, S.PENDING_CANCEL, S.PENDING_AMEND), OrderExpired, S.EXPIRED)
_allow((S.PENDING_CANCEL,), OrderCancelRejected, "restore")
_allow(_WORKING, OrderPendingAmend, S.PENDING_AMEND)
_allow((S.PENDING_AMEND,), OrderAmended, "restore")
_allow((S.PENDING_AMEND,), OrderAmendRejected, "restore")
# Replies to requests sent before the current one (reply order is not guaranteed): an acceptance
# after a cancel or amend was sent, an amend's answer after a cancel was sent.
_allow((S.PENDING_CANCEL, S.PENDING_AMEND), OrderAccepted, "keep")
_allow((S.PENDING_CANCEL,), OrderAmended, "keep")
_allow((S.PENDING_CANCEL,), OrderAmendRejected, "keep")
# A cancel sent before the venue answered the submit, then the venue refuses the order itself (e.g.
# post-only would cross): the order never existed there. Only legal if it was never accepted.
_allow((S.PENDING_CANCEL,), OrderRejected, S.REJECTED)


# Hot-path constants (an Enum member or a ``A | B`` union costs a lookup or an object on every use).
_PENDING_CANCEL = S.PENDING_CANCEL
_SUBMITTED = S.SUBMITTED
_PENDING = frozenset({S.PENDING_CANCEL, S.PENDING_AMEND})
_RECORDS_ONLY: frozenset[type[OrderEvent]] = frozenset({OrderStatusReport, OrderTransitionRefused})
"""Events that are recorded on the order but change nothing."""
_PENDING_EVENTS: frozenset[type[OrderEvent]] = frozenset({OrderPendingCancel, OrderPendingAmend})
_ENDS_UNKNOWN: frozenset[type[OrderEvent]] = frozenset({OrderRejected, OrderCanceled, OrderExpired})


class IllegalTransition(Exception):
    def __init__(self, order: Order, event: OrderEvent) -> None:
        super().__init__(f"order {order.client_order_id}: {type(event).__name__} not allowed in {order.status.value}")
        self.status = order.status
        self.event_name = type(event).__name__


class Order:
    """Mutable order state, changed only by :meth:`apply`."""

    __slots__ = (
        "_resume_status",
        "client_order_id",
        "events",
        "fee_total",
        "filled_notional",
        "filled_qty",
        "instrument_id",
        "order_type",
        "outcome_unknown",
        "post_only",
        "price",
        "qty",
        "reduce_only",
        "side",
        "status",
        "strategy_id",
        "time_in_force",
        "trade_ids",
        "ts_last",
        "venue_order_id",
    )

    def __init__(self, init: OrderInitialized) -> None:
        self.client_order_id = init.client_order_id
        self.instrument_id: InstrumentId = init.instrument_id
        self.strategy_id = init.strategy_id
        self.side: Side = init.side
        self.qty = init.qty
        self.price = init.price
        self.order_type: OrderType = init.order_type
        self.time_in_force: TimeInForce = init.time_in_force
        self.post_only = init.post_only
        self.reduce_only = init.reduce_only
        self.status = S.INITIALIZED
        self.venue_order_id: str | None = None
        self.filled_qty = 0
        self.filled_notional = 0
        self.fee_total = 0
        self.trade_ids: set[str] = set()
        self.outcome_unknown = False
        self.ts_last = init.ts
        self.events: int = 1
        self._resume_status = S.INITIALIZED

    @property
    def leaves_qty(self) -> int:
        return max(self.qty - self.filled_qty, 0)

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def apply(self, event: OrderEvent) -> None:
        """Apply one event; raises :class:`IllegalTransition` (order untouched) if not allowed.

        A fill whose ``trade_id`` was already applied is ignored (venues resend fills).
        """
        # Event types are matched exactly (``type(...) is``): they are final, and this is the hot path.
        kind = type(event)
        if kind is OrderOutcomeUnknown:
            self.outcome_unknown = True
            self.ts_last = event.ts
            return
        if kind in _RECORDS_ONLY:
            self.ts_last = event.ts
            return
        status = self.status
        target = TRANSITIONS.get((status, kind))
        if target is None or (
            kind is OrderRejected and status is _PENDING_CANCEL and self._resume_status is not _SUBMITTED
        ):
            raise IllegalTransition(self, event)
        if type(event) is OrderFilled:
            if event.trade_id and event.trade_id in self.trade_ids:
                return
            if event.last_qty <= 0 or self.filled_qty + event.last_qty > self.qty:
                raise IllegalTransition(self, event)
        self._mutate(event, target)
        self.ts_last = event.ts
        self.events += 1

    def _mutate(self, event: OrderEvent, target: OrderStatus | str) -> None:
        prev = self.status
        kind = type(event)
        if type(event) is OrderFilled:
            self.filled_qty += event.last_qty
            self.filled_notional += event.last_qty * event.last_price
            self.fee_total += event.fee
            if event.trade_id:
                self.trade_ids.add(event.trade_id)
            if event.venue_order_id:
                self.venue_order_id = event.venue_order_id
            self.outcome_unknown = False
            if self.filled_qty >= self.qty:
                self.status = S.FILLED
            elif prev in _PENDING:
                self._resume_status = S.PARTIALLY_FILLED
            else:
                self.status = S.PARTIALLY_FILLED
            return
        if type(event) is OrderAccepted:
            self.venue_order_id = event.venue_order_id
            self.outcome_unknown = False
            if target == "keep" and self._resume_status is S.SUBMITTED:
                self._resume_status = S.ACCEPTED
        elif type(event) is OrderAmended:
            self.qty = event.qty
            self.price = event.price
            if self.filled_qty >= self.qty:
                self.status = S.FILLED
                return
        if target == "keep":
            return
        if kind in _PENDING_EVENTS and prev not in _PENDING:
            self._resume_status = prev
        elif kind in _ENDS_UNKNOWN:
            self.outcome_unknown = False
        if target == "restore":
            self.status = self._resume_status
        else:
            assert isinstance(target, OrderStatus)
            self.status = target

    def __repr__(self) -> str:
        return (
            f"Order({self.client_order_id} {self.instrument_id} {self.side.value} {self.qty}@{self.price} "
            f"{self.status.value} filled={self.filled_qty})"
        )
