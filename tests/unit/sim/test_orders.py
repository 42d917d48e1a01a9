"""Order requests at the venue: amend, cancel, cancel-all, duplicates, validation, query."""

from __future__ import annotations

import pytest

from tradeloop.model.enums import OrderStatus, RejectReason, Side
from tradeloop.model.events import (
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId

from .helpers import PERP_ID, SPOT_ID, Harness, d


def ahead(h: Harness, cid: str) -> int:
    view = h.venue.order(cid)
    assert view is not None
    return view.queue_ahead


def resting_bid_behind_queue() -> tuple[Harness, str]:
    h = Harness()
    h.book(bids=[("100", "5"), ("99.99", "4")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.trade("100", "2", Side.SELL)
    assert ahead(h, cid) == d("3")
    return h, cid


def test_amend_qty_down_keeps_queue_position() -> None:
    h, cid = resting_bid_behind_queue()
    h.amend(cid, qty="0.5")
    [amended] = h.of(OrderAmended, cid)
    assert (amended.price, amended.qty) == (d("100"), d("0.5"))
    assert ahead(h, cid) == d("3")
    assert h.balance("USDT")[1] == d("50")  # the lock follows the smaller size


def test_amend_qty_up_loses_queue_position() -> None:
    h, cid = resting_bid_behind_queue()
    h.amend(cid, qty="2")
    assert ahead(h, cid) == d("5")  # the whole level as the book shows it now


def test_amend_price_loses_queue_position() -> None:
    h, cid = resting_bid_behind_queue()
    h.amend(cid, price="99.99")
    assert ahead(h, cid) == d("4")
    view = h.venue.order(cid)
    assert view is not None and view.price == d("99.99")


def test_amend_reorders_own_orders_at_one_price() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True)
    first = h.submit(Side.BUY, "1", "100")
    second = h.submit(Side.BUY, "1", "100")
    h.amend(first, qty="0.8")  # keeps its place in front of `second`
    h.trade("100", "1.5", Side.SELL)
    assert (h.filled_qty(first), h.filled_qty(second)) == (d("0.5"), 0)

    h.amend(first, qty="1.2")  # now behind `second`
    h.trade("100", "2", Side.SELL)  # the level (1) is ahead of `first`, not of `second` which is at the front
    assert h.filled_qty(second) == d("1")
    assert h.filled_qty(first) == d("0.5")


def test_amend_to_crossing_price_takes_liquidity() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "0.4"), ("102", "1")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.amend(cid, price="101")
    assert [type(e) for e in h.events[-2:]] == [OrderAmended, OrderFilled]
    assert h.filled_qty(cid) == d("0.4")
    assert ahead(h, cid) == 0


def test_amend_post_only_to_crossing_price_is_rejected() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "1")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100", post_only=True)
    h.amend(cid, price="101")
    [rej] = h.of(OrderAmendRejected, cid)
    assert rej.reason is RejectReason.POST_ONLY_WOULD_CROSS
    view = h.venue.order(cid)
    assert view is not None and view.price == d("100")


def test_amend_to_qty_at_or_below_filled_cancels_the_rest() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.trade("100", "1.4", Side.SELL)
    assert h.filled_qty(cid) == d("0.4")
    h.amend(cid, qty="0.3")
    [canceled] = h.of(OrderCanceled, cid)
    assert canceled.client_order_id == cid
    assert h.venue.open_orders() == []
    assert h.balance("USDT")[1] == 0


@pytest.mark.parametrize(
    ("price", "qty", "reason"),
    [
        ("100.005", None, RejectReason.INVALID_ORDER),
        (None, "0.000001", RejectReason.INVALID_ORDER),
        (None, "0.00004", RejectReason.INVALID_ORDER),  # notional 0.004 < 5
        (None, None, RejectReason.INVALID_ORDER),
    ],
)
def test_invalid_amend_is_rejected(price: str | None, qty: str | None, reason: RejectReason) -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.amend(cid, price=price, qty=qty)
    [rej] = h.of(OrderAmendRejected, cid)
    assert rej.reason is reason
    assert h.of(OrderAmended) == []


def test_amend_unknown_order_is_rejected() -> None:
    h = Harness()
    h.amend("nope", qty="1")
    [rej] = h.of(OrderAmendRejected)
    assert rej.reason is RejectReason.UNKNOWN_ORDER


def test_amend_needing_more_funds_than_free_is_rejected() -> None:
    h = Harness(balances={"USDT": d("150")})
    h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.amend(cid, qty="2")
    [rej] = h.of(OrderAmendRejected, cid)
    assert rej.reason is RejectReason.INSUFFICIENT_BALANCE
    assert h.balance("USDT") == (d("150"), d("100"))


def test_cancel_and_unknown_cancel() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    assert h.balance("USDT")[1] == d("100")
    h.cancel(cid)
    assert [e.client_order_id for e in h.of(OrderCanceled)] == [cid]
    assert h.balance("USDT")[1] == 0
    h.cancel(cid)  # already canceled
    h.cancel("never")
    rejects = h.of(OrderCancelRejected)
    assert [(r.client_order_id, r.reason) for r in rejects] == [
        (cid, RejectReason.UNKNOWN_ORDER),
        ("never", RejectReason.UNKNOWN_ORDER),
    ]


def test_cancel_of_filled_order_is_rejected() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "101")
    assert h.filled_qty(cid) == d("1")
    h.cancel(cid)
    assert h.of(OrderCancelRejected, cid)[0].reason is RejectReason.UNKNOWN_ORDER


def test_cancel_with_wrong_instrument_is_unknown() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.cancel(cid, iid=PERP_ID)
    assert h.of(OrderCancelRejected, cid)[0].reason is RejectReason.UNKNOWN_ORDER
    assert len(h.venue.open_orders()) == 1


def test_cancel_all_by_instrument_then_everything() -> None:
    h = Harness()
    for iid in (SPOT_ID, PERP_ID):
        h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True, iid=iid)
    s1 = h.submit(Side.BUY, "1", "100")
    p1 = h.submit(Side.SELL, "1", "102", iid=PERP_ID)
    s2 = h.submit(Side.SELL, "1", "101.5")
    h.cancel_all(SPOT_ID)
    assert [e.client_order_id for e in h.of(OrderCanceled)] == [s1, s2]
    assert [o.client_order_id for o in h.venue.open_orders()] == [p1]
    h.cancel_all()
    assert [e.client_order_id for e in h.of(OrderCanceled)] == [s1, s2, p1]
    assert h.venue.open_orders() == []
    assert all(b.locked == 0 for b in h.venue.balances().balances)


def test_duplicate_open_client_id_is_rejected() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "2")], snapshot=True)
    h.submit(Side.BUY, "1", "100", cid="abc")
    h.submit(Side.BUY, "1", "99", cid="abc")
    [rej] = h.of(OrderRejected, "abc")
    assert rej.reason is RejectReason.DUPLICATE_CLIENT_ID
    assert len(h.venue.open_orders()) == 1
    h.cancel("abc")
    h.submit(Side.BUY, "1", "99", cid="abc")  # no longer open: the id may be used again
    assert len(h.of(OrderRejected)) == 1
    [view] = h.venue.open_orders()
    assert view.price == d("99")


@pytest.mark.parametrize(
    ("price", "qty", "iid"),
    [
        ("100.005", "1", SPOT_ID),  # off tick
        ("100", "0.000015", SPOT_ID),  # off lot
        ("100", "0.00004", SPOT_ID),  # notional 0.004 below min_notional 5
        ("100", "0", SPOT_ID),
        ("0", "1", SPOT_ID),
        ("100", "1", InstrumentId("sim", "ETHUSDT")),  # unknown instrument
    ],
)
def test_invalid_orders_are_rejected(price: str, qty: str, iid: InstrumentId) -> None:
    h = Harness()
    h.book(bids=[("99", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, qty, price, iid=iid)
    [rej] = h.of(OrderRejected, cid)
    assert rej.reason is RejectReason.INVALID_ORDER
    assert h.venue.order(cid) is None
    assert h.balance("USDT")[1] == 0


def test_invalid_client_order_id_is_rejected() -> None:
    h = Harness()
    h.submit(Side.BUY, "1", "100", cid="bad id!")
    assert h.of(OrderRejected)[0].reason is RejectReason.INVALID_ORDER


def test_query_reemits_fills_then_status_report() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "0.4")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "101")
    fills = h.fills(cid)
    h.clear()
    h.query(cid)
    *again, report = h.events
    assert again == fills
    assert isinstance(report, OrderStatusReport)
    assert (report.status, report.filled_qty, report.venue_order_id) == (
        OrderStatus.PARTIALLY_FILLED,
        d("0.4"),
        "sim-O1",
    )
    assert (report.price, report.qty) == (d("101"), d("1"))


def test_query_of_unknown_order_reports_no_status() -> None:
    h = Harness()
    h.query("ghost")
    [report] = h.events
    assert isinstance(report, OrderStatusReport)
    assert report.status is None and report.venue_order_id is None
