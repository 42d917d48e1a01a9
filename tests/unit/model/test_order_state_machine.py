"""Every (status, event) pair: legal ones land in the expected status, illegal ones are refused and
leave the order untouched. The expected table is written out here, independently of the code."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tradeloop.core import fixed
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
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
    OrderPendingAmend,
    OrderPendingCancel,
    OrderRejected,
    OrderSubmitted,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import IllegalTransition, Order

IID = InstrumentId("sim", "BTCUSDT")
CID = "BT1"
S = OrderStatus
QTY = fixed.parse("1")
HALF = fixed.parse("0.5")


def base() -> dict[str, object]:
    return {"ts": 1, "instrument_id": IID, "client_order_id": CID}


_trade = iter(range(1, 10**9))


def fill(qty: int) -> OrderFilled:
    return OrderFilled(
        **base(),
        venue_order_id="V1",
        trade_id=f"T{next(_trade)}",
        side=Side.BUY,  # type: ignore[arg-type]
        last_qty=qty,
        last_price=fixed.parse("100"),
        fee=0,
        fee_currency="USDT",
        liquidity=LiquiditySide.MAKER,
    )


EVENTS: dict[str, Callable[[], OrderEvent]] = {
    "denied": lambda: OrderDenied(**base(), reason="risk"),  # type: ignore[arg-type]
    "submitted": lambda: OrderSubmitted(**base()),  # type: ignore[arg-type]
    "accepted": lambda: OrderAccepted(**base(), venue_order_id="V1"),  # type: ignore[arg-type]
    "rejected": lambda: OrderRejected(**base(), reason=RejectReason.INSUFFICIENT_BALANCE),  # type: ignore[arg-type]
    "fill_part": lambda: fill(HALF),
    "fill_all": lambda: fill(QTY),
    "pending_cancel": lambda: OrderPendingCancel(**base()),  # type: ignore[arg-type]
    "canceled": lambda: OrderCanceled(**base()),  # type: ignore[arg-type]
    "cancel_rejected": lambda: OrderCancelRejected(**base(), reason=RejectReason.UNKNOWN_ORDER),  # type: ignore[arg-type]
    "pending_amend": lambda: OrderPendingAmend(**base(), price=fixed.parse("101")),  # type: ignore[arg-type]
    "amended": lambda: OrderAmended(**base(), price=fixed.parse("101"), qty=QTY),  # type: ignore[arg-type]
    "amend_rejected": lambda: OrderAmendRejected(**base(), reason=RejectReason.OTHER),  # type: ignore[arg-type]
    "expired": lambda: OrderExpired(**base()),  # type: ignore[arg-type]
}

# How to reach each status from a fresh order.
PATHS: dict[OrderStatus, list[str]] = {
    S.INITIALIZED: [],
    S.DENIED: ["denied"],
    S.SUBMITTED: ["submitted"],
    S.ACCEPTED: ["submitted", "accepted"],
    S.PARTIALLY_FILLED: ["submitted", "accepted", "fill_part"],
    S.FILLED: ["submitted", "accepted", "fill_all"],
    S.PENDING_CANCEL: ["submitted", "accepted", "pending_cancel"],
    S.PENDING_AMEND: ["submitted", "accepted", "pending_amend"],
    S.CANCELED: ["submitted", "accepted", "canceled"],
    S.REJECTED: ["submitted", "rejected"],
    S.EXPIRED: ["submitted", "accepted", "expired"],
}

# The specification: (status, event) -> status after. Anything absent is illegal.
LEGAL: dict[tuple[OrderStatus, str], OrderStatus] = {
    (S.INITIALIZED, "denied"): S.DENIED,
    (S.INITIALIZED, "submitted"): S.SUBMITTED,
    (S.INITIALIZED, "canceled"): S.CANCELED,
    (S.SUBMITTED, "accepted"): S.ACCEPTED,
    (S.SUBMITTED, "rejected"): S.REJECTED,
    (S.SUBMITTED, "fill_part"): S.PARTIALLY_FILLED,
    (S.SUBMITTED, "fill_all"): S.FILLED,
    (S.SUBMITTED, "pending_cancel"): S.PENDING_CANCEL,
    (S.SUBMITTED, "canceled"): S.CANCELED,
    (S.SUBMITTED, "expired"): S.EXPIRED,
    (S.ACCEPTED, "fill_part"): S.PARTIALLY_FILLED,
    (S.ACCEPTED, "fill_all"): S.FILLED,
    (S.ACCEPTED, "pending_cancel"): S.PENDING_CANCEL,
    (S.ACCEPTED, "pending_amend"): S.PENDING_AMEND,
    (S.ACCEPTED, "canceled"): S.CANCELED,
    (S.ACCEPTED, "expired"): S.EXPIRED,
    (S.PARTIALLY_FILLED, "fill_part"): S.FILLED,  # 0.5 + 0.5
    (S.PARTIALLY_FILLED, "pending_cancel"): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, "pending_amend"): S.PENDING_AMEND,
    (S.PARTIALLY_FILLED, "canceled"): S.CANCELED,
    (S.PARTIALLY_FILLED, "expired"): S.EXPIRED,
    (S.PENDING_CANCEL, "fill_part"): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, "fill_all"): S.FILLED,
    (S.PENDING_CANCEL, "canceled"): S.CANCELED,
    (S.PENDING_CANCEL, "cancel_rejected"): S.ACCEPTED,
    (S.PENDING_CANCEL, "expired"): S.EXPIRED,
    (S.PENDING_CANCEL, "accepted"): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, "amended"): S.PENDING_CANCEL,  # the amend's reply overtaken by a cancel request
    (S.PENDING_CANCEL, "amend_rejected"): S.PENDING_CANCEL,
    (S.PENDING_AMEND, "fill_part"): S.PENDING_AMEND,
    (S.PENDING_AMEND, "fill_all"): S.FILLED,
    (S.PENDING_AMEND, "amended"): S.ACCEPTED,
    (S.PENDING_AMEND, "amend_rejected"): S.ACCEPTED,
    (S.PENDING_AMEND, "pending_cancel"): S.PENDING_CANCEL,
    (S.PENDING_AMEND, "canceled"): S.CANCELED,
    (S.PENDING_AMEND, "expired"): S.EXPIRED,
    (S.PENDING_AMEND, "accepted"): S.PENDING_AMEND,
}


def make_order(status: OrderStatus) -> Order:
    order = Order(
        OrderInitialized(
            **base(),
            strategy_id="s",
            side=Side.BUY,
            qty=QTY,  # type: ignore[arg-type]
            price=fixed.parse("100"),
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            post_only=False,
            reduce_only=False,
        )
    )
    for step in PATHS[status]:
        order.apply(EVENTS[step]())
    assert order.status is status
    return order


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("event", list(EVENTS))
def test_transition(status: OrderStatus, event: str) -> None:
    order = make_order(status)
    if (status, event) == (S.PARTIALLY_FILLED, "fill_all"):
        # Overfill: more than the remaining quantity is never applied.
        with pytest.raises(IllegalTransition):
            order.apply(EVENTS[event]())
        assert order.status is S.PARTIALLY_FILLED and order.filled_qty == HALF
        return
    expected = LEGAL.get((status, event))
    if expected is None:
        before = (order.status, order.filled_qty, order.qty, order.price, order.events)
        with pytest.raises(IllegalTransition):
            order.apply(EVENTS[event]())
        assert (order.status, order.filled_qty, order.qty, order.price, order.events) == before
    else:
        order.apply(EVENTS[event]())
        assert order.status is expected


def test_rejection_after_a_cancel_was_sent_for_a_never_accepted_order() -> None:
    # submit -> (cancel sent before any reply) -> the venue refuses the order (post-only would cross)
    order = make_order(S.SUBMITTED)
    order.apply(EVENTS["pending_cancel"]())
    assert order.status is S.PENDING_CANCEL
    order.apply(EVENTS["rejected"]())
    assert order.status is S.REJECTED and order.outcome_unknown is False


def test_every_terminal_status_refuses_everything() -> None:
    for status in (S.DENIED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED):
        assert status.is_terminal
        assert not any((status, e) in LEGAL for e in EVENTS)


def test_partial_fill_during_pending_cancel_then_cancel_rejected_restores_partial() -> None:
    order = make_order(S.PENDING_CANCEL)
    order.apply(fill(HALF))
    order.apply(EVENTS["cancel_rejected"]())
    assert order.status is S.PARTIALLY_FILLED and order.leaves_qty == HALF


def test_duplicate_fill_ignored_and_amend_updates_price() -> None:
    order = make_order(S.ACCEPTED)
    f = fill(HALF)
    order.apply(f)
    order.apply(f)
    assert order.filled_qty == HALF
    order.apply(EVENTS["pending_amend"]())
    order.apply(EVENTS["amended"]())
    assert order.price == fixed.parse("101") and order.status is S.PARTIALLY_FILLED


def test_amend_reply_after_cancel_request_keeps_cancel_pending_and_applies_new_terms() -> None:
    order = make_order(S.PENDING_AMEND)
    order.apply(EVENTS["pending_cancel"]())
    order.apply(EVENTS["amended"]())
    assert order.status is S.PENDING_CANCEL and order.price == fixed.parse("101")
    order.apply(EVENTS["cancel_rejected"]())
    assert order.status is S.ACCEPTED
