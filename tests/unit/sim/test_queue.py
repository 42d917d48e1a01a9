"""Queue position of resting orders: trades, book decreases per queue model, own price-time priority."""

from __future__ import annotations

import pytest

from tradeloop.model.enums import LiquiditySide, OrderStatus, Side
from tradeloop.venues.sim.config import SimVenueConfig

from .helpers import Harness, d


def ahead(h: Harness, cid: str) -> int:
    view = h.venue.order(cid)
    assert view is not None
    return view.queue_ahead


def test_resting_bid_fills_only_after_volume_ahead_traded() -> None:
    h = Harness()
    h.book(bids=[("100", "5"), ("99", "3")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    assert ahead(h, cid) == d("5")

    h.trade("100", "3", Side.SELL)
    assert h.fills(cid) == []
    assert ahead(h, cid) == d("2")

    # Buy-aggressor trades hit asks, not our bid.
    h.trade("100", "4", Side.BUY)
    assert h.fills(cid) == [] and ahead(h, cid) == d("2")

    h.trade("100", "2.4", Side.SELL)  # 2 clears the queue, the 0.4 excess fills us
    [fill] = h.fills(cid)
    assert (fill.last_qty, fill.last_price, fill.liquidity) == (d("0.4"), d("100"), LiquiditySide.MAKER)
    assert ahead(h, cid) == 0

    h.trade("100", "5", Side.SELL)
    assert h.filled_qty(cid) == d("1")
    view = h.venue.order(cid)
    assert view is not None and view.status is OrderStatus.FILLED
    assert h.venue.open_orders() == []


def test_trades_at_other_prices_do_not_move_the_queue() -> None:
    h = Harness()
    h.book(bids=[("100", "5"), ("99", "3")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.trade("101", "1", Side.SELL)  # a sell at a higher price never reaches our bid
    assert ahead(h, cid) == d("5") and h.fills(cid) == []


def test_own_orders_keep_time_priority_at_one_price() -> None:
    h = Harness()
    h.book(bids=[("100", "5")], asks=[("101", "2")], snapshot=True)
    first = h.submit(Side.BUY, "0.5", "100")
    h.book(bids=[("100", "7")])  # 2 more join behind the first order
    second = h.submit(Side.BUY, "0.5", "100")
    assert (ahead(h, first), ahead(h, second)) == (d("5"), d("7"))

    h.trade("100", "6", Side.SELL)  # 5 ahead, 0.5 to the first order, 0.5 to the volume in between
    assert h.filled_qty(first) == d("0.5")
    assert h.fills(second) == []
    assert ahead(h, second) == d("1.5")


@pytest.mark.parametrize(
    ("model", "expected"),
    [("proportional", "5"), ("pessimistic", "7"), ("optimistic", "3")],
)
def test_unexplained_book_decrease_per_queue_model(model: str, expected: str) -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=0, queue_model=model))  # type: ignore[arg-type]
    h.book(bids=[("100", "10")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.book(bids=[("100", "14")])  # 4 join behind us
    assert ahead(h, cid) == d("10")
    h.book(bids=[("100", "7")])  # 7 canceled, no trade
    # proportional: 10 - 7 * 10 / 14 = 5; pessimistic: capped by the level, 7; optimistic: 10 - 7 = 3
    assert ahead(h, cid) == d(expected)
    assert h.fills(cid) == []


def test_proportional_rounds_in_favour_of_staying_behind() -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=0, queue_model="proportional"))
    h.book(bids=[("100", "0.00003")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.book(bids=[("100", "0.00009")])
    h.book(bids=[("100", "0.00008")])  # decrease 1e-5 * 3e-5 / 9e-5 = 3333.33 nanos -> 3333
    assert ahead(h, cid) == d("0.00003") - 3333


def test_decrease_explained_by_trades_is_not_counted_twice() -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=0, queue_model="optimistic"))
    h.book(bids=[("100", "10")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.trade("100", "4", Side.SELL)
    assert ahead(h, cid) == d("6")
    h.book(bids=[("100", "6")])  # the feed catches up with the trade
    assert ahead(h, cid) == d("6")
    h.book(bids=[("100", "5")])  # a genuine cancel
    assert ahead(h, cid) == d("5")


def test_level_removed_puts_order_at_front() -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=0, queue_model="pessimistic"))
    h.book(bids=[("100", "10"), ("99", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.book(bids=[("100", "0")])
    assert ahead(h, cid) == 0
    h.trade("100", "0.25", Side.SELL)
    assert h.filled_qty(cid) == d("0.25")


def test_snapshot_moves_queue_like_deltas() -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=0, queue_model="optimistic"))
    h.book(bids=[("100", "10")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    h.book(bids=[("100", "8")], asks=[("101", "2")], snapshot=True)
    assert ahead(h, cid) == d("8")
