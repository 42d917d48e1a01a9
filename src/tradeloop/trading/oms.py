"""Order management: the lifecycle of every order, from command to terminal state.

* A ``SubmitOrder`` gets a client order id (or keeps the one it carries; re-sending an id that
  already exists is ignored, so submits are idempotent), becomes an ``OrderInitialized`` event
  that is journaled before anything else, passes the risk engine (or is ``OrderDenied``), and is
  handed to the execution engine; ``OrderSubmitted`` is journaled right before the bytes go out.
  With ``durable_intents`` (a live node whose ``journal.durability`` is ``intent``) the intents are
  committed and synced as they are journaled: ``OrderInitialized`` and ``OrderSubmitted`` of a
  submit, ``OrderPendingAmend`` (with the ``AmendOrder`` before it) of an amend.
* Venue events are applied through the order state machine; an illegal transition is refused,
  recorded as ``OrderTransitionRefused`` and never applied. Duplicate fills (same trade id) are
  dropped.
* Every request has a deadline. A request whose answer does not come in time makes the order's
  outcome *unknown* (``OrderOutcomeUnknown``); the OMS then queries the venue by client order id
  and resolves the order from the venue's answer. It never guesses and never re-sends a submit.
"""

from __future__ import annotations

from typing import Any, Final, Protocol, TypeVar

import msgspec

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import Clock
from tradeloop.core.failpoints import failpoint
from tradeloop.core.ids import ClientOrderIdGenerator, is_valid_client_order_id
from tradeloop.core.logging import get_logger
from tradeloop.model import topics
from tradeloop.model.commands import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    QueryOrder,
    SubmitOrder,
    TradingCommand,
)
from tradeloop.model.enums import OrderStatus, RejectReason
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderEventBase,
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
    RiskAlert,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import IllegalTransition, Order
from tradeloop.persistence.codec import JournalRecord
from tradeloop.trading.execution import ExecutionEngine

log = get_logger("tradeloop.oms")

E = TypeVar("E", bound=OrderEventBase)


class RecordSink(Protocol):
    """Where the OMS writes what happened (the journal)."""

    def append(self, record: JournalRecord) -> int: ...

    def append_durable(self, record: JournalRecord) -> int: ...


class PreTradeRisk(Protocol):
    def check_submit(self, cmd: SubmitOrder) -> str | None: ...

    def check_amend(self, cmd: AmendOrder, order: Order) -> str | None: ...


_WORKING: Final = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})
_OPEN: Final = frozenset(s for s in OrderStatus if s.is_open)
_TERMINAL: Final = frozenset(s for s in OrderStatus if s.is_terminal)
_INITIALIZED: Final = OrderStatus.INITIALIZED
_ORDER_EVENTS: Final = topics.ORDER_EVENTS

# Which events answer which request.
_ANSWERS: dict[str, tuple[type[OrderEvent], ...]] = {
    "submit": (OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, OrderExpired),
    "cancel": (OrderCanceled, OrderCancelRejected, OrderExpired, OrderRejected),
    "amend": (OrderAmended, OrderAmendRejected, OrderCanceled),
    "query": (),  # a recovered order: only the venue's status report answers
}
_RECOVERY_REQUEST: Final = {
    OrderStatus.INITIALIZED: "query",
    OrderStatus.SUBMITTED: "submit",
    OrderStatus.PENDING_CANCEL: "cancel",
    OrderStatus.PENDING_AMEND: "amend",
}


def order_initialized(cmd: SubmitOrder, client_order_id: str, ts: int) -> OrderInitialized:
    """The ``OrderInitialized`` a submit becomes (under ``client_order_id``, at ``ts``)."""
    return OrderInitialized(
        ts=ts,
        instrument_id=cmd.instrument_id,
        client_order_id=client_order_id,
        strategy_id=cmd.strategy_id,
        side=cmd.side,
        qty=cmd.qty,
        price=cmd.price,
        order_type=cmd.order_type,
        time_in_force=cmd.time_in_force,
        post_only=cmd.post_only,
        reduce_only=cmd.reduce_only,
    )


class OrderManager:
    """Owns every :class:`Order`; the single writer of order state."""

    def __init__(
        self,
        *,
        clock: Clock,
        bus: MessageBus,
        ids: ClientOrderIdGenerator,
        risk: PreTradeRisk,
        execution: ExecutionEngine,
        journal: RecordSink,
        request_timeout_ns: int = 5_000_000_000,
        max_queries: int = 5,
        durable_intents: bool = False,
    ) -> None:
        self._clock = clock
        self._bus = bus
        self._ids = ids
        self._risk = risk
        self._execution = execution
        self._journal = journal
        self._timeout_ns = request_timeout_ns
        self._max_queries = max_queries
        self._durable = durable_intents
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self._open_by_instrument: dict[InstrumentId, dict[str, Order]] = {}
        """``_open`` split by instrument, kept by the same operations in the same order."""
        self._pending: dict[str, str] = {}  # client order id -> request awaiting an answer
        self._queries: dict[str, int] = {}
        self._replacements: dict[str, AmendOrder] = {}
        self.duplicate_fills = 0
        self.refused_transitions = 0
        self.unknown_order_events = 0
        self._recovering: dict[str, InstrumentId] = {}
        """Recovered orders whose state at the venue is not confirmed yet (no new order on their instrument)."""

    # -- views (OrderView protocol) -----------------------------------------------------------

    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[Order]:
        if instrument_id is None:
            return list(self._open.values())
        here = self._open_by_instrument.get(instrument_id)
        return list(here.values()) if here else []

    def order(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    # -- commands -----------------------------------------------------------------------------

    def on_command(self, cmd: TradingCommand) -> None:
        """Bus handler for ``topics.COMMANDS``."""
        self.handle_command(cmd)

    def handle_command(self, cmd: TradingCommand) -> str | None:
        """Process one command; for a submit, returns the order's client order id."""
        if isinstance(cmd, SubmitOrder):
            return self._submit(cmd)
        self._journal.append(cmd)
        if isinstance(cmd, AmendOrder):
            self._amend(cmd)
        elif isinstance(cmd, CancelOrder):
            self._cancel(cmd)
        elif isinstance(cmd, CancelAllOrders):
            self._cancel_all(cmd)
        else:
            self._execution.query(cmd)
        return None

    def _submit(self, cmd: SubmitOrder) -> str:
        cid = cmd.client_order_id or self._ids.next()
        if cid in self.orders:
            log.warning("duplicate submit ignored", client_order_id=cid)
            return cid
        if cmd.client_order_id != cid:
            cmd = msgspec.structs.replace(cmd, client_order_id=cid)
        self._journal.append(cmd)
        init = order_initialized(cmd, cid, self._clock.now_ns())
        order = Order(init)
        self.orders[cid] = order
        self._record(init, durable=True)
        self._bus.publish(topics.ORDER_EVENTS, init)
        reason = None if is_valid_client_order_id(cid) else f"client order id {cid!r} is not 1-20 ASCII letters/digits"
        if reason is None and not self._execution.has_venue(cmd.instrument_id.venue):
            reason = f"no venue client for {cmd.instrument_id.venue}"
        if reason is None and self._recovering:
            reason = self._recovery_hold(cmd.instrument_id)
        if reason is None:
            reason = self._risk.check_submit(cmd)
        if reason is not None:
            self._apply(
                order, OrderDenied(ts=init.ts, instrument_id=cmd.instrument_id, client_order_id=cid, reason=reason)
            )
            return cid
        self._set_open(order)  # passed risk: counts as open (risk limits) even while throttled
        self._execution.submit(cmd)
        return cid

    def on_sending(self, cmd: SubmitOrder | AmendOrder) -> bool:
        """Called by the execution engine right before a submit or amend leaves; a submit is
        journaled (``OrderSubmitted``) first. The request's deadline starts now. Returns ``False``
        for an amend that has become moot while it waited in the throttle queue (its order was filled,
        canceled or its amend answered): the execution engine then drops it."""
        order = self.orders[cmd.client_order_id]
        if type(cmd) is AmendOrder:
            if order.status is not OrderStatus.PENDING_AMEND:
                log.info("queued amend dropped: its order is no longer pending it", client_order_id=cmd.client_order_id)
                return False
            self._expect(order, "amend")
            return True
        event = OrderSubmitted(
            ts=self._clock.now_ns(), instrument_id=cmd.instrument_id, client_order_id=cmd.client_order_id
        )
        self._apply(order, event, durable=True)
        self._expect(order, "submit")
        return True

    def on_send_refused(self, cmd: SubmitOrder | AmendOrder | CancelOrder | CancelAllOrders, reason: str) -> None:
        """The execution engine's send gate stopped ``cmd``: nothing left for the venue."""
        if isinstance(cmd, CancelAllOrders):
            log.warning("cancel-all not sent", reason=reason, venue=cmd.venue or "all")
            for order in self._open.values():
                if self._in_scope(order, cmd) and order.status is OrderStatus.PENDING_CANCEL:
                    self._pending.pop(order.client_order_id, None)
                    self._apply(
                        order, self._event(OrderCancelRejected, order, reason=RejectReason.OTHER, message=reason)
                    )
            return
        order = self.orders[cmd.client_order_id]
        if type(cmd) is AmendOrder:
            self._apply(order, self._event(OrderAmendRejected, order, reason=RejectReason.OTHER, message=reason))
        elif type(cmd) is CancelOrder:
            self._pending.pop(order.client_order_id, None)
            if order.status is OrderStatus.PENDING_CANCEL:
                self._apply(order, self._event(OrderCancelRejected, order, reason=RejectReason.OTHER, message=reason))
        else:
            self._apply(order, self._event(OrderDenied, order, reason=reason))

    def _cancel(self, cmd: CancelOrder) -> None:
        order = self.orders.get(cmd.client_order_id)
        if order is None or not (order.is_open or order.status is OrderStatus.INITIALIZED):
            log.info("cancel for an order that is not open", client_order_id=cmd.client_order_id)
            return
        if order.status is OrderStatus.PENDING_CANCEL:
            return
        if order.status is OrderStatus.INITIALIZED:
            if not self._execution.cancel(cmd):
                self._apply(order, self._canceled(order, "canceled before it was sent"))
            return
        self._apply(
            order,
            self._event(OrderPendingCancel, order),
        )
        self._expect(order, "cancel")  # before the send: a client may answer at once
        self._execution.cancel(cmd)

    def _cancel_all(self, cmd: CancelAllOrders) -> None:
        for queued in self._execution.drop_queued(cmd.venue if cmd.instrument_id is None else cmd.instrument_id.venue):
            order = self.orders[queued.client_order_id]
            if not self._in_scope(order, cmd):
                self._execution.send(queued)
            elif isinstance(queued, SubmitOrder):
                self._apply(order, self._canceled(order, "canceled before it was sent"))
            else:
                # The amend never left: the order is still working with its old terms; cancel it below.
                self._apply(
                    order,
                    self._event(
                        OrderAmendRejected,
                        order,
                        reason=RejectReason.OTHER,
                        message="amend dropped by cancel-all before it was sent",
                    ),
                )
        targets = [o for o in self._open.values() if self._in_scope(o, cmd)]
        if not targets:
            if not cmd.only_strategy:
                # The venue may hold orders we do not know (left from before a restart): ask it anyway.
                self._execution.cancel_all(cmd)
            return
        for order in targets:
            if order.status is not OrderStatus.PENDING_CANCEL:
                self._apply(
                    order,
                    self._event(OrderPendingCancel, order),
                )
                self._expect(order, "cancel")
        if cmd.only_strategy:
            for order in targets:
                self._execution.cancel(
                    CancelOrder(
                        ts=cmd.ts,
                        strategy_id=cmd.strategy_id,
                        instrument_id=order.instrument_id,
                        client_order_id=order.client_order_id,
                    )
                )
        else:
            self._execution.cancel_all(cmd)

    @staticmethod
    def _in_scope(order: Order, cmd: CancelAllOrders) -> bool:
        if cmd.instrument_id is not None and order.instrument_id != cmd.instrument_id:
            return False
        if cmd.venue is not None and order.instrument_id.venue != cmd.venue:
            return False
        return not (cmd.only_strategy and order.strategy_id != cmd.strategy_id)

    def _amend(self, cmd: AmendOrder) -> None:
        order = self.orders.get(cmd.client_order_id)
        if order is None or order.status not in _WORKING:
            log.info("amend for an order that is not working", client_order_id=cmd.client_order_id)
            return
        now = self._clock.now_ns()
        self._apply(
            order,
            OrderPendingAmend(
                ts=self._clock.now_ns(),
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                price=cmd.price,
                qty=cmd.qty,
            ),
            durable=True,
        )
        reason = self._risk.check_amend(cmd, order)
        if reason is not None:
            self._apply(
                order,
                self._event(OrderAmendRejected, order, reason=RejectReason.OTHER, message=reason),
            )
            return
        if self._execution.supports_amend(order.instrument_id.venue):
            self._execution.amend(cmd)
            return
        # Cancel/replace: cancel now, submit the replacement once the cancel is confirmed.
        self._replacements[order.client_order_id] = cmd
        self._apply(order, self._event(OrderPendingCancel, order))
        self._execution.cancel(
            CancelOrder(
                ts=now,
                strategy_id=cmd.strategy_id,
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
            )
        )
        self._expect(order, "cancel")

    def _event(self, cls: type[E], order: Order, **fields: Any) -> E:
        """An event of ``order``, stamped now unless ``ts`` is given."""
        fields.setdefault("ts", self._clock.now_ns())
        return cls(instrument_id=order.instrument_id, client_order_id=order.client_order_id, **fields)

    def _canceled(self, order: Order, reason: str) -> OrderCanceled:
        return self._event(OrderCanceled, order, reason=reason)

    # -- venue events ---------------------------------------------------------------------------

    def on_venue_event(self, event: Event) -> None:
        """Entry point for everything a venue client reports."""
        if isinstance(event, AccountSnapshot):
            self._journal.append(event)
            self._bus.publish(topics.ACCOUNT_EVENTS, event)
            return
        if not isinstance(event, OrderEventBase):
            self._journal.append(event)
            return
        if type(event) is OrderFilled:
            failpoint("fill.before_journal")  # the venue reported the fill; the journal has not got it
        order = self.orders.get(event.client_order_id)
        if order is None:
            self.unknown_order_events += 1
            self._alert("unknown_order", f"{type(event).__name__} for unknown client order id {event.client_order_id}")
            self._journal.append(event)
            return
        if isinstance(event, OrderStatusReport):
            self._journal.append(event)
            self._resolve(order, event)
            return
        self._apply(order, event)
        pending = self._pending.get(order.client_order_id)
        if pending is not None and isinstance(event, _ANSWERS[pending]):
            self._answered(order)
        if order.client_order_id in self._replacements and order.status is not OrderStatus.PENDING_CANCEL:
            self._replace(order)

    def _replace(self, order: Order) -> None:
        amend = self._replacements.pop(order.client_order_id)
        if order.status is not OrderStatus.CANCELED or order.leaves_qty == 0:
            return
        qty = (amend.qty if amend.qty is not None else order.qty) - order.filled_qty
        if qty <= 0:
            return
        self._submit(
            SubmitOrder(
                ts=self._clock.now_ns(),
                strategy_id=order.strategy_id,
                instrument_id=order.instrument_id,
                side=order.side,
                qty=qty,
                price=amend.price if amend.price is not None else order.price,
                order_type=order.order_type,
                time_in_force=order.time_in_force,
                post_only=order.post_only,
                reduce_only=order.reduce_only,
            )
        )

    def _apply(self, order: Order, event: OrderEvent, durable: bool = False) -> bool:
        if type(event) is OrderFilled and event.trade_id and event.trade_id in order.trade_ids:
            self.duplicate_fills += 1
            return False
        try:
            order.apply(event)
        except IllegalTransition as exc:
            self.refused_transitions += 1
            refused = self._event(OrderTransitionRefused, order, status=exc.status, event=exc.event_name)
            # A late reply to an order that already ended (e.g. an amend reject after the fill) is a normal
            # race; anything else is an anomaly worth a warning. Both are journaled.
            (log.info if order.is_terminal else log.warning)(
                "illegal order transition refused",
                client_order_id=order.client_order_id,
                status=exc.status.value,
                event_type=exc.event_name,
            )
            self._record(refused)
            self._bus.publish(topics.ORDER_EVENTS, refused)
            return False
        if durable and self._durable:
            self._journal.append_durable(event)
        else:
            self._journal.append(event)
        status = order.status
        if status in _OPEN:
            self._set_open(order)
        elif status is not _INITIALIZED:
            self._set_closed(order)
            if status in _TERMINAL:
                self._answered(order)
        self._bus.publish(_ORDER_EVENTS, event)
        return True

    def _set_open(self, order: Order) -> None:
        cid = order.client_order_id
        self._open[cid] = order
        here = self._open_by_instrument.get(order.instrument_id)
        if here is None:
            here = self._open_by_instrument[order.instrument_id] = {}
        here[cid] = order

    def _set_closed(self, order: Order) -> None:
        cid = order.client_order_id
        if self._open.pop(cid, None) is not None:
            here = self._open_by_instrument[order.instrument_id]
            del here[cid]
            if not here:
                del self._open_by_instrument[order.instrument_id]

    def _record(self, record: JournalRecord, durable: bool = False) -> None:
        if durable and self._durable:
            self._journal.append_durable(record)
        else:
            self._journal.append(record)

    # -- recovery -------------------------------------------------------------------------------

    def restore(self, orders: dict[str, Order], client_order_ids: list[str]) -> None:
        """Adopt the orders a recovery found not terminal, and never hand out an id already used."""
        for cid in client_order_ids:
            self._ids.observe(cid)
        for cid, order in orders.items():
            self._ids.observe(cid)
            self.orders[cid] = order
            if order.status in _OPEN:
                self._set_open(order)

    def reconcile(self, order: Order) -> None:
        """Ask the venue for a recovered order's state now; its answer resolves the order (as after a
        timeout: missed fills first, then the status), and until then no new order goes to its instrument."""
        cid = order.client_order_id
        self._recovering[cid] = order.instrument_id
        self._pending[cid] = _RECOVERY_REQUEST.get(order.status, "query")
        self._queries[cid] = 0
        clock = self._clock
        self._on_timeout("oms.timeout." + cid, clock.now_ns())

    def recovering(self) -> list[str]:
        """Client order ids of recovered orders the venue has not answered for yet."""
        return sorted(self._recovering)

    def _recovery_hold(self, instrument_id: InstrumentId) -> str | None:
        for cid, iid in self._recovering.items():
            if iid == instrument_id:
                return f"recovering: the venue has not confirmed the state of order {cid} yet"
        return None

    # -- unknown outcomes -----------------------------------------------------------------------

    def _expect(self, order: Order, request: str) -> None:
        cid = order.client_order_id
        self._pending[cid] = request
        clock = self._clock
        clock.set_alarm("oms.timeout." + cid, clock.now_ns() + self._timeout_ns, self._on_timeout)

    def _answered(self, order: Order) -> None:
        cid = order.client_order_id
        if self._pending.pop(cid, None) is not None:
            self._clock.cancel_timer("oms.timeout." + cid)
        if self._queries:
            self._queries.pop(cid, None)
        if self._recovering:
            self._recovering.pop(cid, None)

    def _on_timeout(self, name: str, ts: int) -> None:
        cid = name.removeprefix("oms.timeout.")
        request = self._pending.get(cid)
        order = self.orders.get(cid)
        if request is None or order is None:
            return
        if order.is_terminal:  # answered by an event the request did not expect (a fill, a cancel)
            self._answered(order)
            return
        attempts = self._queries.get(cid, 0)
        if attempts == 0 and order.status is not _INITIALIZED:
            self._apply(
                order,
                self._event(OrderOutcomeUnknown, order, ts=ts, request=request, detail="no reply before the deadline"),
            )
        if attempts >= self._max_queries:
            self._alert("unresolved_order", f"order {cid}: outcome still unknown after {attempts} queries")
            return
        self._queries[cid] = attempts + 1
        query = QueryOrder(ts=ts, instrument_id=order.instrument_id, client_order_id=cid)
        self._journal.append(query)
        self._execution.query(query)
        self._clock.set_alarm(name, ts + self._timeout_ns, self._on_timeout)

    def _resolve(self, order: Order, report: OrderStatusReport) -> None:
        """Bring the order in line with the venue's answer to a query."""
        cid = order.client_order_id
        status = report.status
        pending = self._pending.get(cid)
        if order.status is _INITIALIZED:
            # Recovered with only its intent journaled: OrderSubmitted is written before the bytes leave,
            # so normally the venue never saw it; if it did (a batched journal), it was sent.
            if status is None:
                self._apply(order, self._canceled(order, "never sent: the node stopped before sending it"))
                self._answered(order)
                return
            self._apply(order, self._event(OrderSubmitted, order))
        if status is None:
            if order.status is OrderStatus.SUBMITTED:
                # The venue never saw it (the query comes after the venue's receive window).
                self._apply(
                    order,
                    self._event(
                        OrderRejected,
                        order,
                        reason=RejectReason.UNKNOWN_ORDER,
                        message="venue does not know the order after a timeout",
                    ),
                )
            elif order.is_open:
                self._apply(order, self._canceled(order, "venue no longer knows the order"))
        else:
            if order.status is OrderStatus.SUBMITTED and status is not OrderStatus.REJECTED:
                self._apply(
                    order,
                    self._event(OrderAccepted, order, venue_order_id=report.venue_order_id or ""),
                )
            if report.filled_qty > order.filled_qty:
                self._alert(
                    "missing_fills",
                    f"order {cid}: venue reports {report.filled_qty} filled, engine has {order.filled_qty}",
                )
            terminal: OrderEvent | None = None
            if status is OrderStatus.CANCELED:
                terminal = self._canceled(order, "per venue status")
            elif status is OrderStatus.EXPIRED:
                terminal = self._event(OrderExpired, order, reason="per venue status")
            elif status is OrderStatus.REJECTED:
                terminal = self._event(OrderRejected, order, reason=RejectReason.OTHER, message="per venue status")
            if terminal is not None and not order.is_terminal:
                self._apply(order, terminal)
            elif (
                status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
                and order.status is OrderStatus.PENDING_CANCEL
                and pending == "cancel"
            ):
                self._apply(
                    order,
                    self._event(
                        OrderCancelRejected, order, reason=RejectReason.OTHER, message="cancel not applied at the venue"
                    ),
                )
            elif order.status is OrderStatus.PENDING_AMEND and pending == "amend":
                self._apply(
                    order,
                    self._event(
                        OrderAmended,
                        order,
                        price=report.price if report.price is not None else order.price,
                        qty=report.qty if report.qty is not None else order.qty,
                    )
                    if report.price is not None or report.qty is not None
                    else self._event(
                        OrderAmendRejected, order, reason=RejectReason.OTHER, message="amend outcome not confirmed"
                    ),
                )
        self._answered(order)

    def _alert(self, check: str, message: str) -> None:
        alert = RiskAlert(ts=self._clock.now_ns(), check=check, message=message)
        log.warning("oms alert", check=check, detail=message)
        self._journal.append(alert)
        self._bus.publish(topics.RISK_EVENTS, alert)
