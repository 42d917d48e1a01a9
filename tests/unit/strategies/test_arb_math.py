"""Arbitrage and cross-venue quoting math, checked against values worked out by hand."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tradeloop.core import fixed
from tradeloop.model.enums import Side
from tradeloop.strategies import arb_math as am

P = fixed.parse
FEE_10BPS = P("0.001")  # 0.1 % as a nano fraction: 1_000_000
FEE_5BPS = P("0.0005")


def test_bps_strings_become_exact_rates() -> None:
    assert am.bps_to_rate("1") == 100_000 == am.BPS
    assert am.bps_to_rate("0.5") == 50_000
    assert am.bps_to_rate("-3.6") == -360_000
    assert am.bps_to_rate("0.00001") == 1
    with pytest.raises(ValueError, match="more than 5 decimals"):
        am.bps_to_rate("0.000001")
    assert am.rate_to_bps(-360_000) == pytest.approx(-3.6)


def test_edge_after_both_taker_fees() -> None:
    # Buy 100.0 paying 0.1 %, sell 100.5 paying 0.1 %: proceeds 100.3995, cost 100.1.
    kw = {"buy_fee": FEE_10BPS, "sell_fee": FEE_10BPS}
    assert am.edge_bps(P("100"), P("100.5"), **kw) == pytest.approx((100.3995 / 100.1 - 1) * 10_000)
    assert am.edge_bps(P("100"), P("100.5"), **kw) == pytest.approx(29.92008, abs=1e-5)
    assert am.has_edge(P("100"), P("100.5"), min_edge=am.bps_to_rate("29.92"), **kw)
    assert not am.has_edge(P("100"), P("100.5"), min_edge=am.bps_to_rate("29.93"), **kw)
    # 100.2 x 0.999 = 100.0998 < 100.1: a raw 20 bps gap does not pay two 10 bps fees.
    assert not am.has_edge(P("100"), P("100.2"), **kw)
    # 100.21 x 0.999 = 100.10979 > 100.1.
    assert am.has_edge(P("100"), P("100.21"), **kw)


def test_zero_edge_is_not_traded() -> None:
    assert not am.has_edge(P("100"), P("100"), buy_fee=0, sell_fee=0)
    assert am.has_edge(P("100"), P("100.000000001"), buy_fee=0, sell_fee=0)
    # A negative minimum accepts a small, bounded loss (e.g. to unwind inventory).
    assert am.has_edge(P("100"), P("99.995"), buy_fee=0, sell_fee=0, min_edge=am.bps_to_rate("-1"))
    assert not am.has_edge(P("100"), P("99.99"), buy_fee=0, sell_fee=0, min_edge=am.bps_to_rate("-1"))


def test_expected_basis_counts_only_the_deviation() -> None:
    # The sell venue normally trades 10 bps above: 100.1 against 100 is no edge at all.
    premium = am.bps_to_rate("10")
    assert not am.has_edge(P("100"), P("100.1"), buy_fee=0, sell_fee=0, sell_basis=premium)
    # 100.2 / (100 x 1.001) - 1 = 9.99 bps beyond the expected basis.
    assert am.edge_bps(P("100"), P("100.2"), buy_fee=0, sell_fee=0, sell_basis=premium) == pytest.approx(
        (100.2 / 100.1 - 1) * 10_000
    )
    assert am.has_edge(P("100"), P("100.2"), buy_fee=0, sell_fee=0, sell_basis=premium, min_edge=am.bps_to_rate("9"))
    assert not am.has_edge(
        P("100"), P("100.2"), buy_fee=0, sell_fee=0, sell_basis=premium, min_edge=am.bps_to_rate("10")
    )
    # Buying on the venue with the premium: its price is divided by 1 + basis too.
    assert am.has_edge(P("100.1"), P("100.05"), buy_fee=0, sell_fee=0, buy_basis=premium)


ASKS = [(P("100.0"), P("1")), (P("100.1"), P("2")), (P("100.3"), P("5"))]
BIDS = [(P("100.5"), P("0.5")), (P("100.2"), P("2")), (P("99.9"), P("5"))]
FEES = {"buy_fee": FEE_5BPS, "sell_fee": FEE_5BPS}


def test_fillable_size_walks_both_books() -> None:
    # Needs sell / buy > 1.0005 / 0.9995 = 1.0010005: 100.5 vs 100.0 (0.5), 100.2 vs 100.0 (0.5),
    # then 100.2 vs 100.1 = 1.000999 stops the walk.
    assert am.fillable_qty(ASKS, BIDS, **FEES) == P("1")
    assert am.fillable_qty(ASKS, BIDS, buy_fee=0, sell_fee=0) == P("2.5")  # down to 100.2 vs 100.1
    assert am.fillable_qty([], BIDS, **FEES) == 0
    assert am.fillable_qty(ASKS, [(P("99"), P("1"))], **FEES) == 0


def test_plan_prices_sizes_and_nets_the_arbitrage() -> None:
    plan = am.plan_arbitrage(ASKS, BIDS, max_qty=P("10"), step=P("0.001"), **FEES)
    assert plan is not None
    assert (plan.qty, plan.buy_limit, plan.sell_limit) == (P("1"), P("100.0"), P("100.2"))
    # Buy 1 @ 100.0; sell 0.5 @ 100.5 + 0.5 @ 100.2; fees 0.05 % per level.
    assert plan.buy_notional == P("100") and plan.buy_fee == P("0.05")
    assert plan.sell_notional == P("100.35") and plan.sell_fee == P("0.025125") + P("0.02505")
    assert plan.net == P("100.35") - P("0.050175") - P("100") - P("0.05") == P("0.249825")


def test_plan_respects_size_cap_step_and_minimum() -> None:
    capped = am.plan_arbitrage(ASKS, BIDS, max_qty=P("0.3"), step=P("0.001"), **FEES)
    assert capped is not None
    assert (capped.qty, capped.buy_limit, capped.sell_limit) == (P("0.3"), P("100.0"), P("100.5"))
    assert capped.net == P("30.15") - P("0.015075") - P("30") - P("0.015")
    stepped = am.plan_arbitrage(ASKS, BIDS, max_qty=P("10"), step=P("0.4"), **FEES)
    assert stepped is not None and stepped.qty == P("0.8")
    assert am.plan_arbitrage(ASKS, BIDS, max_qty=P("10"), step=P("0.001"), min_qty=P("1.5"), **FEES) is None
    assert am.plan_arbitrage(ASKS, BIDS, max_qty=0, step=P("0.001"), **FEES) is None
    assert am.plan_arbitrage(ASKS, BIDS, max_qty=-P("1"), step=P("0.001"), **FEES) is None
    with pytest.raises(ValueError):
        am.plan_arbitrage(ASKS, BIDS, max_qty=P("1"), step=0, **FEES)


def test_fees_round_up_like_the_venue() -> None:
    assert am.fee_on(P("100"), FEE_5BPS) == P("0.05")
    assert am.fee_on(3, P("0.0004")) == 1  # 0.0012 nanos rounds up to one nano
    assert am.net_after_fees(P("100"), P("101"), P("0.1"), P("0.1")) == P("0.8")


def test_take_levels() -> None:
    assert am.take_levels(ASKS, P("1.5")) == [(P("100.0"), P("1")), (P("100.1"), P("0.5"))]
    assert am.take_levels(ASKS, P("9")) is None
    assert am.take_levels(ASKS, 0) is None


def _exact_bid(hedge_bid: str, hedge_fee: int, maker_fee: int, min_edge: int, tick: str) -> int:
    s = Fraction(fixed.SCALE)
    limit = Fraction(P(hedge_bid)) * (1 - hedge_fee / s) / ((1 + maker_fee / s) * (1 + min_edge / s))
    return int(limit // P(tick)) * P(tick)


def test_maker_quote_keeps_the_edge_after_hedging() -> None:
    kw = {"hedge_fee": FEE_10BPS, "maker_fee": P("0.0002"), "min_edge": am.bps_to_rate("1"), "tick": P("0.01")}
    # Bid: 100 x 0.999 / (1.0002 x 1.0001) = 99.87003... -> 99.87.
    bid = am.maker_quote(Side.BUY, P("100"), **kw)
    assert bid == P("99.87") == _exact_bid("100", FEE_10BPS, P("0.0002"), am.bps_to_rate("1"), "0.01")
    # Ask: 100 x 1.001 x 1.0001 / 0.9998 = 100.13003... -> 100.14.
    assert am.maker_quote(Side.SELL, P("100"), **kw) == P("100.14")
    # Hedging a 99.87 bid fill by selling at 100: edge after both fees >= 1 bp; one tick higher is not.
    assert am.edge_bps(bid, P("100"), buy_fee=P("0.0002"), sell_fee=FEE_10BPS) >= 1.0
    assert am.edge_bps(bid + P("0.01"), P("100"), buy_fee=P("0.0002"), sell_fee=FEE_10BPS) < 1.0
    # No fees, no edge: quote at the hedge touch itself.
    flat = {"hedge_fee": 0, "maker_fee": 0, "min_edge": 0, "tick": P("0.1")}
    assert am.maker_quote(Side.BUY, P("60000.3"), **flat) == P("60000.3")
    assert am.maker_quote(Side.SELL, P("60000.3"), **flat) == P("60000.3")
    # A maker venue expected 10 bps above the hedge venue quotes 10 bps higher.
    assert am.maker_quote(Side.BUY, P("100"), maker_basis=am.bps_to_rate("10"), **flat) == P("100.1")


def test_account_capacity() -> None:
    # Spot buy: q x 100 x 1.001 <= 1000 -> q <= 9.99000999 -> 9.99 (999 + 0.999 fee).
    assert am.spot_buy_capacity(P("1000"), P("100"), FEE_10BPS, P("0.01")) == P("9.99")
    assert am.spot_buy_capacity(P("999.999"), P("100"), FEE_10BPS, P("0.01")) == P("9.99")
    assert am.spot_buy_capacity(P("999.998"), P("100"), FEE_10BPS, P("0.01")) == P("9.98")
    assert am.spot_buy_capacity(0, P("100"), FEE_10BPS, P("0.01")) == 0
    # Perp: margin 10 % plus 0.1 % fee: q x 100 x 0.101 <= 1000 -> 99.00 (990 + 9.9).
    assert am.perp_capacity(P("1000"), P("100"), P("0.1"), FEE_10BPS, P("0.01")) == P("99")
    assert am.perp_capacity(P("-5"), P("100"), P("0.1"), FEE_10BPS, P("0.01")) == 0


def test_common_step_is_the_least_common_multiple_of_lots() -> None:
    assert am.common_step(P("0.00001"), P("0.001")) == P("0.001")
    assert am.common_step(P("0.4"), P("0.6")) == P("1.2")
    assert am.common_step(P("0.001"), P("0.001")) == P("0.001")
