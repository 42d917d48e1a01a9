"""Balances, locks and perp positions of the simulated venue."""

from __future__ import annotations

from tradeloop.model.enums import RejectReason, Side
from tradeloop.model.events import OrderRejected
from tradeloop.venues.sim.config import SimVenueConfig

from .helpers import PERP_ID, Harness, d


def test_spot_buy_locks_notional_plus_max_fee_and_settles_fills() -> None:
    h = Harness(SimVenueConfig(maker_fee=100_000, taker_fee=1_000_000), balances={"USDT": d("1000")})
    h.book(bids=[("99", "1")], asks=[("101", "0.5")], snapshot=True)
    cid = h.submit(Side.BUY, "2", "100")
    # 200 notional + 0.2 reserved for the highest fee (0.001)
    assert h.balance("USDT") == (d("1000"), d("200.2"))
    h.trade("100", "0.5", Side.SELL)  # ahead is 0: fills 0.5 as maker, fee 0.005
    assert h.filled_qty(cid) == d("0.5")
    assert h.balance("BTC") == (d("0.5"), 0)
    assert h.balance("USDT") == (d("949.995"), d("150.15"))
    h.cancel(cid)
    assert h.balance("USDT") == (d("949.995"), 0)


def test_spot_sell_locks_base_and_credits_quote_minus_fee() -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=1_000_000), balances={"USDT": d("0"), "BTC": d("1")})
    h.book(bids=[("100", "0.3")], asks=[("101", "1")], snapshot=True)
    h.submit(Side.SELL, "1", "100")  # takes 0.3 at 100, rests 0.7
    assert h.balance("BTC") == (d("0.7"), d("0.7"))
    assert h.balance("USDT") == (d("29.97"), 0)


def test_spot_insufficient_balance() -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=1_000_000), balances={"USDT": d("100.1"), "BTC": d("0.5")})
    h.book(bids=[("99", "1")], asks=[("101", "1")], snapshot=True)
    ok = h.submit(Side.BUY, "1", "100")  # exactly 100 + 0.1 fee reserve
    short = h.submit(Side.BUY, "0.1", "50")
    too_much_base = h.submit(Side.SELL, "0.6", "102")
    assert h.of(OrderRejected, ok) == []
    assert [r.reason for r in h.of(OrderRejected)] == [RejectReason.INSUFFICIENT_BALANCE] * 2
    assert {r.client_order_id for r in h.of(OrderRejected)} == {short, too_much_base}


def test_market_buy_checks_the_cost_of_walking_the_book() -> None:
    h = Harness(balances={"USDT": d("150")})
    h.book(bids=[("99", "1")], asks=[("100", "1"), ("110", "1")], snapshot=True)
    rej = h.submit(Side.BUY, "1.5")  # 100 + 55 > 150
    assert h.of(OrderRejected, rej)[0].reason is RejectReason.INSUFFICIENT_BALANCE
    ok = h.submit(Side.BUY, "1.4")  # 100 + 44
    assert h.filled_qty(ok) == d("1.4")
    assert h.balance("USDT") == (d("6"), 0)


def test_perp_locks_initial_margin_and_rejects_when_short() -> None:
    h = Harness(balances={"USDT": d("15")})  # margin 10% of notional
    h.book(bids=[("99", "1")], asks=[("101", "1")], snapshot=True, iid=PERP_ID)
    ok = h.submit(Side.BUY, "1", "100", iid=PERP_ID)
    assert h.balance("USDT") == (d("15"), d("10"))
    short = h.submit(Side.SELL, "0.5", "120", iid=PERP_ID)  # needs 6, 5 free
    assert h.of(OrderRejected, ok) == []
    assert h.of(OrderRejected, short)[0].reason is RejectReason.INSUFFICIENT_BALANCE


def test_perp_fills_move_pnl_and_fees_into_quote_and_track_position() -> None:
    h = Harness(SimVenueConfig(maker_fee=0, taker_fee=500_000), balances={"USDT": d("1000")})
    h.book(bids=[("99", "2")], asks=[("100", "2")], snapshot=True, iid=PERP_ID)
    h.submit(Side.BUY, "1", "100", iid=PERP_ID)  # taker: fee 0.05
    [pos] = h.venue.positions()
    assert (pos.instrument_id, pos.qty, pos.cost, pos.margin) == (PERP_ID, d("1"), d("100"), d("10"))
    assert h.balance("USDT") == (d("999.95"), d("10"))

    h.book(bids=[("110", "2")], iid=PERP_ID)
    h.submit(Side.SELL, "1", "110", iid=PERP_ID)  # taker: +10 realized, fee 0.055
    [pos] = h.venue.positions()
    assert (pos.qty, pos.cost, pos.realized, pos.fees, pos.margin) == (0, 0, d("10"), d("0.105"), 0)
    assert h.balance("USDT") == (d("1009.895"), 0)


def test_perp_reduce_only_needs_a_position_to_reduce() -> None:
    h = Harness(balances={"USDT": d("1000")})
    h.book(bids=[("99", "2")], asks=[("100", "2")], snapshot=True, iid=PERP_ID)
    flat = h.submit(Side.SELL, "1", "120", iid=PERP_ID, reduce_only=True)
    assert h.of(OrderRejected, flat)[0].reason is RejectReason.INVALID_ORDER
    h.submit(Side.BUY, "1", "100", iid=PERP_ID)
    locked_before = h.balance("USDT")[1]
    close = h.submit(Side.SELL, "1", "120", iid=PERP_ID, reduce_only=True)
    assert h.of(OrderRejected, close) == []
    assert h.balance("USDT")[1] == locked_before  # no margin for a reducing order (fees are 0)
    too_big = h.submit(Side.SELL, "1.5", "120", iid=PERP_ID, reduce_only=True)
    assert h.of(OrderRejected, too_big)[0].reason is RejectReason.INVALID_ORDER
