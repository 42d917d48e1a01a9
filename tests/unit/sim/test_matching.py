"""Taking liquidity, crossing fills, time-in-force, market orders, fees."""

from __future__ import annotations

import msgspec

from tradeloop.core import fixed
from tradeloop.model.enums import LiquiditySide, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import OrderAccepted, OrderExpired, OrderFilled, OrderRejected
from tradeloop.venues.sim.config import SimVenueConfig

from .helpers import NO_FEES, Harness, d


def test_taker_walks_levels_at_book_prices_with_taker_fee() -> None:
    h = Harness(SimVenueConfig(maker_fee=100_000, taker_fee=500_000))
    h.book(bids=[("100", "1")], asks=[("101", "0.5"), ("102", "1"), ("103", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "2", "102.5")
    fills = h.fills(cid)
    assert [(f.last_qty, f.last_price, f.liquidity) for f in fills] == [
        (d("0.5"), d("101"), LiquiditySide.TAKER),
        (d("1"), d("102"), LiquiditySide.TAKER),
    ]
    # fee = ceil(notional x 0.0005): 50.5 -> 0.02525, 102 -> 0.051
    assert [f.fee for f in fills] == [d("0.02525"), d("0.051")]
    assert {f.fee_currency for f in fills} == {"USDT"}
    notional = sum(f.last_qty * f.last_price for f in fills)
    filled = sum(f.last_qty for f in fills)
    assert fixed.div_round(notional, filled) == d("101.666666667")  # VWAP of 0.5@101 + 1@102
    assert [f.trade_id for f in fills] == ["sim-T1", "sim-T2"]
    # The rest (0.5) rests at 102.5, ahead of the book (nothing there).
    [view] = h.venue.open_orders()
    assert (view.price, view.filled_qty, view.queue_ahead) == (d("102.5"), d("1.5"), 0)
    assert view.venue_order_id == "sim-O1"


def test_fee_rounds_up_in_the_venues_favour() -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=333_333))
    h.book(asks=[("100.01", "1")], snapshot=True)
    cid = h.submit(Side.BUY, "0.07", "100.01")
    # notional 7.0007 x 0.000333333 = 0.0023335643331 -> rounded up to 0.002333565
    assert h.fills(cid)[0].fee == 2_333_565


def test_consumed_liquidity_is_not_reused_until_the_level_updates() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "1"), ("102", "1")], snapshot=True)
    a = h.submit(Side.BUY, "0.6", "101", time_in_force=TimeInForce.IOC)
    b = h.submit(Side.BUY, "0.6", "101", time_in_force=TimeInForce.IOC)
    assert h.filled_qty(a) == d("0.6")
    assert h.filled_qty(b) == d("0.4")
    assert [e.client_order_id for e in h.of(OrderExpired)] == [b]
    c = h.submit(Side.BUY, "0.6", "101", time_in_force=TimeInForce.IOC)
    assert h.fills(c) == []
    h.book(asks=[("101", "0.9")])  # the feed updates the level: its size is available again
    d_ = h.submit(Side.BUY, "0.6", "101", time_in_force=TimeInForce.IOC)
    assert h.filled_qty(d_) == d("0.6")


def test_book_moving_through_resting_bid_fills_at_our_price_as_maker() -> None:
    h = Harness(SimVenueConfig(maker_fee=-100_000, taker_fee=500_000))
    h.book(bids=[("100", "5")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100.5")
    assert h.fills(cid) == []
    h.book(asks=[("100.4", "0.3")])  # a seller below our bid
    [fill] = h.fills(cid)
    assert (fill.last_qty, fill.last_price, fill.liquidity) == (d("0.3"), d("100.5"), LiquiditySide.MAKER)
    assert fill.fee == -d("0.003015")  # rebate: 30.15 x -0.0001
    h.book(asks=[("100.5", "2")])
    assert h.filled_qty(cid) == d("1")
    assert all(f.last_price == d("100.5") for f in h.fills(cid))


def test_crossing_volume_is_shared_by_our_orders_in_priority() -> None:
    h = Harness()
    h.book(bids=[("100", "5")], asks=[("101", "2")], snapshot=True)
    high = h.submit(Side.BUY, "1", "100.6")
    low = h.submit(Side.BUY, "1", "100.5")
    h.book(asks=[("100.4", "1.5")])
    assert h.filled_qty(high) == d("1")
    assert h.filled_qty(low) == d("0.5")


def test_resting_ask_fills_when_bids_move_through_it() -> None:
    h = Harness()
    h.book(bids=[("100", "5")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.SELL, "1", "100.8")
    h.book(bids=[("100.9", "3")])
    [fill] = h.fills(cid)
    assert (fill.last_qty, fill.last_price, fill.side) == (d("1"), d("100.8"), Side.SELL)


def test_trade_through_our_price_fills_us_first() -> None:
    h = Harness()
    h.book(bids=[("100", "5"), ("99.99", "1")], asks=[("101", "2")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "100")
    assert h.venue.open_orders()[0].queue_ahead == d("5")
    h.trade("99.99", "0.4", Side.SELL)  # the market sold below our bid: the queue at 100 is gone
    [fill] = h.fills(cid)
    assert (fill.last_qty, fill.last_price, fill.liquidity) == (d("0.4"), d("100"), LiquiditySide.MAKER)
    assert h.venue.open_orders()[0].queue_ahead == 0


def test_post_only_that_would_cross_is_rejected() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "1")], snapshot=True)
    bad = h.submit(Side.BUY, "1", "101", post_only=True)
    [rej] = h.of(OrderRejected, bad)
    assert rej.reason is RejectReason.POST_ONLY_WOULD_CROSS
    assert h.fills() == []
    good = h.submit(Side.BUY, "1", "100.99", post_only=True)
    assert h.of(OrderAccepted, good) and h.fills(good) == []
    assert len(h.venue.open_orders()) == 1


def test_ioc_fills_what_is_there_and_expires_the_rest() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "0.3"), ("101.5", "1")], snapshot=True)
    cid = h.submit(Side.BUY, "1", "101", time_in_force=TimeInForce.IOC)
    kinds = [type(e) for e in h.events]
    assert kinds == [OrderAccepted, OrderFilled, OrderExpired]
    assert h.filled_qty(cid) == d("0.3")
    assert h.venue.open_orders() == []
    assert h.balance("USDT")[1] == 0  # nothing stays locked


def test_fok_fills_completely_or_not_at_all() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], asks=[("101", "0.3"), ("102", "0.5"), ("103", "5")], snapshot=True)
    no = h.submit(Side.BUY, "1", "102", time_in_force=TimeInForce.FOK)
    [rej] = h.of(OrderRejected, no)
    assert rej.reason is RejectReason.FOK_NOT_FILLABLE
    assert h.fills() == []
    yes = h.submit(Side.BUY, "0.8", "102", time_in_force=TimeInForce.FOK)
    assert [(f.last_qty, f.last_price) for f in h.fills(yes)] == [(d("0.3"), d("101")), (d("0.5"), d("102"))]
    assert h.of(OrderExpired) == []


def test_market_order_on_empty_side_is_rejected() -> None:
    h = Harness()
    h.book(bids=[("100", "1")], snapshot=True)
    cid = h.submit(Side.BUY, "1")
    [rej] = h.of(OrderRejected, cid)
    assert rej.reason is RejectReason.NO_LIQUIDITY


def test_market_order_takes_what_is_there_then_expires() -> None:
    h = Harness()
    h.book(bids=[("100", "0.5"), ("99", "0.25")], asks=[("101", "1")], snapshot=True)
    cid = h.submit(Side.SELL, "1")
    assert [(f.last_qty, f.last_price) for f in h.fills(cid)] == [(d("0.5"), d("100")), (d("0.25"), d("99"))]
    [exp] = h.of(OrderExpired, cid)
    assert exp.client_order_id == cid
    assert h.balance("BTC") == (d("99.25"), 0)
    assert h.balance("USDT") == (d("1000074.75"), 0)


def test_market_order_with_order_type_and_fok() -> None:
    h = Harness()
    h.book(asks=[("101", "0.5")], snapshot=True)
    cid = h.submit(Side.BUY, "1", order_type=OrderType.MARKET, time_in_force=TimeInForce.FOK)
    assert h.of(OrderRejected, cid)[0].reason is RejectReason.FOK_NOT_FILLABLE


def test_quotes_drive_matching_without_depth_data() -> None:
    from tradeloop.model.data import Quote

    from .helpers import SPOT_ID

    h = Harness()
    h.venue.on_market_data(Quote(SPOT_ID, 1, 1, d("100"), d("1"), d("101"), d("2")))
    cid = h.submit(Side.BUY, "0.5", "101")
    assert h.filled_qty(cid) == d("0.5")


def test_same_inputs_give_identical_events() -> None:
    def run() -> tuple[bytes, bytes, int]:
        h = Harness(SimVenueConfig(maker_fee=-50_000, taker_fee=400_000, queue_model="proportional"))
        h.book(bids=[("100", "5"), ("99.5", "2")], asks=[("100.5", "1"), ("101", "3")], snapshot=True)
        a = h.submit(Side.BUY, "2", "100")
        h.submit(Side.SELL, "0.7", "101")
        h.submit(Side.BUY, "1.5", "100.5", time_in_force=TimeInForce.IOC)
        h.book(bids=[("100", "8")])
        h.trade("100", "6", Side.SELL)
        h.book(bids=[("100", "1")])
        h.amend(a, qty="3")
        h.trade("100", "3", Side.SELL)
        h.book(bids=[("101.2", "4")])
        h.submit(Side.SELL, "0.3")
        h.cancel_all()
        return msgspec.json.encode(h.events), msgspec.json.encode(h.venue.balances()), len(h.fills())

    first, second = run(), run()
    assert first == second
    assert first[2] >= 5  # the scenario really trades


def test_no_fees_config_is_used_by_default_in_harness() -> None:
    assert NO_FEES.maker_fee == 0 and NO_FEES.taker_fee == 0
