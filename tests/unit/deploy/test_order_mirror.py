"""The strategy service's view of the OMS's orders: the OMS's events in the OMS's order, and what the OMS
does at once inside a strategy's call done at once here too (and its copy skipped when it comes)."""

from __future__ import annotations

from tradeloop.deploy.order_mirror import OrderMirror
from tradeloop.model.commands import AmendOrder, CancelAllOrders, SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderStatus, RejectReason, Side
from tradeloop.model.events import (
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderInitialized,
    OrderPendingAmend,
    OrderPendingCancel,
    OrderSubmitted,
    OrderTransitionRefused,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import Order
from tradeloop.trading.state import capture_order

IID = InstrumentId("okx", "BTC-USDT")
OTHER = InstrumentId("okx", "ETH-USDT")


def submit(cid: str, iid: InstrumentId = IID, strategy: str = "mm", side: Side = Side.BUY) -> SubmitOrder:
    return SubmitOrder(ts=1, strategy_id=strategy, instrument_id=iid, side=side, qty=10, price=100, client_order_id=cid)


def working(mirror: OrderMirror, cid: str, iid: InstrumentId = IID, strategy: str = "mm") -> None:
    """An order submitted here, then as the OMS reports it: initialized, submitted, accepted."""
    cmd = submit(cid, iid, strategy)
    mirror.submitted(cmd, 1)
    assert not mirror.apply(_init(cmd))  # the OMS's copy of what the mirror did at once
    assert mirror.apply(OrderSubmitted(ts=2, instrument_id=iid, client_order_id=cid))
    assert mirror.apply(OrderAccepted(ts=3, instrument_id=iid, client_order_id=cid, venue_order_id="V" + cid))


def _init(cmd: SubmitOrder) -> OrderInitialized:
    return OrderInitialized(
        ts=5,
        instrument_id=cmd.instrument_id,
        client_order_id=cmd.client_order_id,
        strategy_id=cmd.strategy_id,
        side=cmd.side,
        qty=cmd.qty,
        price=cmd.price,
        order_type=cmd.order_type,
        time_in_force=cmd.time_in_force,
        post_only=cmd.post_only,
        reduce_only=cmd.reduce_only,
    )


def fill(cid: str, trade: str, qty: int) -> OrderFilled:
    return OrderFilled(
        ts=4,
        instrument_id=IID,
        client_order_id=cid,
        venue_order_id="V" + cid,
        trade_id=trade,
        side=Side.BUY,
        last_qty=qty,
        last_price=100,
        fee=1,
        fee_currency="USDT",
        liquidity=LiquiditySide.MAKER,
    )


def test_a_submitted_order_exists_and_is_open_before_the_oms_reports_it() -> None:
    mirror = OrderMirror()
    init = mirror.submitted(submit("A1"), 7)
    assert init is not None and init.client_order_id == "A1" and init.ts == 7
    order = mirror.order("A1")
    assert order is not None and order.status is OrderStatus.INITIALIZED
    assert [o.client_order_id for o in mirror.open_orders(IID)] == ["A1"]
    assert mirror.submitted(submit("A1"), 8) is None  # an id already used: the OMS ignores it too
    assert mirror.submitted(submit(""), 8) is None


def test_fills_apply_once_and_a_filled_order_is_closed() -> None:
    mirror = OrderMirror()
    working(mirror, "A1")
    assert mirror.apply(fill("A1", "T1", 4))
    assert not mirror.apply(fill("A1", "T1", 4))  # the same trade again
    assert mirror.duplicate_fills == 1
    assert mirror.apply(fill("A1", "T2", 6))
    order = mirror.order("A1")
    assert order is not None and order.status is OrderStatus.FILLED and order.filled_qty == 10
    assert mirror.open_orders() == []


def test_a_denied_order_is_closed_and_refused_transitions_are_not_applied() -> None:
    mirror = OrderMirror()
    mirror.submitted(submit("A1"), 1)
    assert mirror.apply(OrderDenied(ts=2, instrument_id=IID, client_order_id="A1", reason="risk"))
    assert mirror.open_orders() == []
    refused = OrderTransitionRefused(
        ts=3, instrument_id=IID, client_order_id="A1", status=OrderStatus.DENIED, event="X"
    )
    assert not mirror.apply(refused)
    # An event the state machine cannot take (the mirror and the OMS disagree) is counted, not applied.
    assert not mirror.apply(OrderAccepted(ts=4, instrument_id=IID, client_order_id="A1", venue_order_id="V"))
    assert mirror.refused == 1
    # Events of orders this mirror never knew (ended before its snapshot) are ignored.
    assert not mirror.apply(OrderCanceled(ts=5, instrument_id=IID, client_order_id="ZZ"))


def test_an_order_the_oms_created_itself_is_taken_from_its_event() -> None:
    mirror = OrderMirror()
    assert mirror.apply(_init(submit("OMS1", strategy="mm")))
    assert [o.client_order_id for o in mirror.open_orders()] == ["OMS1"]


def test_cancel_and_amend_are_pending_at_once_and_the_oms_copy_is_skipped() -> None:
    mirror = OrderMirror()
    working(mirror, "A1")
    amend = AmendOrder(ts=5, strategy_id="mm", instrument_id=IID, client_order_id="A1", price=101)
    pending = mirror.amend_requested(amend, 6)
    assert isinstance(pending, OrderPendingAmend) and pending.price == 101
    order = mirror.order("A1")
    assert order is not None and order.status is OrderStatus.PENDING_AMEND
    assert mirror.amend_requested(amend, 7) is None  # not working: the OMS would ignore it too
    assert not mirror.apply(OrderPendingAmend(ts=8, instrument_id=IID, client_order_id="A1", price=101))
    assert mirror.apply(OrderAmended(ts=9, instrument_id=IID, client_order_id="A1", price=101, qty=10))
    assert order.status is OrderStatus.ACCEPTED and order.price == 101
    cancel = mirror.cancel_requested("A1", 10)
    assert isinstance(cancel, OrderPendingCancel) and order.status is OrderStatus.PENDING_CANCEL
    assert mirror.cancel_requested("A1", 11) is None
    assert not mirror.apply(OrderPendingCancel(ts=12, instrument_id=IID, client_order_id="A1"))
    assert mirror.apply(OrderCanceled(ts=13, instrument_id=IID, client_order_id="A1"))
    assert mirror.open_orders() == []


def test_an_amend_the_oms_refused_restores_the_order() -> None:
    mirror = OrderMirror()
    working(mirror, "A1")
    mirror.amend_requested(AmendOrder(ts=5, strategy_id="mm", instrument_id=IID, client_order_id="A1", price=1), 6)
    assert not mirror.apply(OrderPendingAmend(ts=7, instrument_id=IID, client_order_id="A1", price=1))
    reject = OrderAmendRejected(
        ts=8, instrument_id=IID, client_order_id="A1", reason=RejectReason.OTHER, message="band"
    )
    assert mirror.apply(reject)
    order = mirror.order("A1")
    assert order is not None and order.status is OrderStatus.ACCEPTED and order.price == 100


def test_an_order_that_ended_before_the_oms_marked_it_drops_the_expected_copy() -> None:
    mirror = OrderMirror()
    working(mirror, "A1")
    mirror.cancel_requested("A1", 5)
    # The OMS had it filled already: no PENDING_CANCEL copy will come, the fill ends it.
    assert mirror.apply(fill("A1", "T1", 10))
    order = mirror.order("A1")
    assert order is not None and order.status is OrderStatus.FILLED
    assert mirror._echoes == {}


def test_cancel_all_marks_the_open_orders_in_its_scope() -> None:
    mirror = OrderMirror()
    working(mirror, "A1")
    working(mirror, "A2", iid=OTHER)
    working(mirror, "B1", strategy="other")
    mirror.submitted(submit("A3"), 9)  # still INITIALIZED: the OMS cancels it itself
    ahead = mirror.cancel_all_requested(
        CancelAllOrders(ts=10, strategy_id="mm", instrument_id=IID, only_strategy=True), 11
    )
    assert [e.client_order_id for e in ahead] == ["A1"]
    ahead = mirror.cancel_all_requested(CancelAllOrders(ts=12, strategy_id="mm", only_strategy=True), 13)
    assert [e.client_order_id for e in ahead] == ["A2"]
    ahead = mirror.cancel_all_requested(CancelAllOrders(ts=14, strategy_id="live", venue="okx"), 15)
    assert [e.client_order_id for e in ahead] == ["B1"]


def test_reset_starts_from_the_oms_snapshot() -> None:
    source = OrderMirror()
    working(source, "A1")
    snapshot = [capture_order(o) for o in source.orders.values()]
    mirror = OrderMirror()
    mirror.submitted(submit("OLD"), 1)
    mirror.reset(snapshot)
    assert list(mirror.orders) == ["A1"]
    restored = mirror.order("A1")
    assert isinstance(restored, Order) and restored.status is OrderStatus.ACCEPTED and restored.venue_order_id == "VA1"
    assert [o.client_order_id for o in mirror.open_orders()] == ["A1"]
    assert mirror.apply(fill("A1", "T9", 10))
