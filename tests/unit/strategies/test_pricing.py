"""Pricing math of the market maker against values worked out by hand (Decimal, 40 digits)."""

from __future__ import annotations

import math

import pytest

from tradeloop.core import fixed
from tradeloop.strategies import pricing

P = fixed.parse
TICK = P("0.01")


def test_reservation_price_moves_against_inventory() -> None:
    # r = s - q*gamma*sigma^2*(T-t) = 100 - 2 * 0.1 * 4 * 0.5
    assert pricing.reservation_price(100.0, 2.0, 0.1, 2.0, 0.5) == pytest.approx(99.6, abs=1e-12)
    # short 3 units: 100 + 3 * 0.1 * 4 * 0.5
    assert pricing.reservation_price(100.0, -3.0, 0.1, 2.0, 0.5) == pytest.approx(100.6, abs=1e-12)
    assert pricing.reservation_price(100.0, 0.0, 0.1, 2.0, 0.5) == 100.0


def test_optimal_spread_matches_hand_computed_value() -> None:
    # 0.1 * 4 * 0.5 + (2 / 0.1) * ln(1 + 0.1 / 1.5) = 0.2 + 20 * ln(16/15)
    assert pricing.optimal_spread(0.1, 2.0, 0.5, 1.5) == pytest.approx(1.4907704227514234, abs=1e-12)


def test_optimal_spread_tends_to_two_over_kappa_without_risk_aversion() -> None:
    assert pricing.optimal_spread(1e-9, 2.0, 0.5, 4.0) == pytest.approx(0.5, rel=1e-6)


def test_optimal_spread_refuses_non_positive_gamma_or_kappa() -> None:
    with pytest.raises(ValueError):
        pricing.optimal_spread(0.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        pricing.optimal_spread(0.1, 1.0, 1.0, 0.0)


def test_avellaneda_stoikov_quotes_sit_half_the_spread_around_the_reservation_price() -> None:
    bid, ask, r, spread = pricing.avellaneda_stoikov_quotes(100.0, 2.0, 0.1, 2.0, 0.5, 1.5)
    assert r == pytest.approx(99.6, abs=1e-12)
    assert spread == pytest.approx(1.4907704227514234, abs=1e-12)
    assert bid == pytest.approx(99.6 - 0.7453852113757117, abs=1e-12)
    assert ask == pytest.approx(99.6 + 0.7453852113757117, abs=1e-12)


def test_imbalance_fair_price_hand_computed() -> None:
    # bid volume 3, ask volume 1: imbalance (3 - 1) / 4 = 0.5; skew 2 bps of 100 = 0.02 at full imbalance.
    assert pricing.book_imbalance(3.0, 1.0) == 0.5
    assert pricing.imbalance_fair_price(100.0, 3.0, 1.0, 2.0) == pytest.approx(100.01, abs=1e-12)
    assert pricing.imbalance_fair_price(100.0, 1.0, 3.0, 2.0) == pytest.approx(99.99, abs=1e-12)
    assert pricing.imbalance_fair_price(100.0, 0.0, 0.0, 2.0) == 100.0
    assert pricing.book_imbalance(5.0, 0.0) == 1.0


def test_imbalance_quotes_shift_against_inventory_and_spread_around_the_centre() -> None:
    # centre = 100.01 * (1 - 4e-4 * 0.5) = 99.989998; half = 0.1 % of it.
    bid, ask = pricing.imbalance_quotes(100.01, 0.5, 4.0, 10.0)
    assert bid == pytest.approx(99.890008002, abs=1e-9)
    assert ask == pytest.approx(100.089987998, abs=1e-9)


def test_time_left_rolling_is_constant_and_finite_counts_down_per_session() -> None:
    s = 1_000_000_000
    assert pricing.time_left_s("rolling", 60.0, 0, 25 * s) == 60.0
    assert pricing.time_left_s("finite", 60.0, 0, 25 * s) == 35.0
    assert pricing.time_left_s("finite", 60.0, 0, 70 * s) == 50.0  # second session
    assert pricing.time_left_s("finite", 60.0, 0, 60 * s) == 60.0  # a session starts exactly at 60 s
    with pytest.raises(ValueError):
        pricing.time_left_s("finite", 0.0, 0, 0)


def test_bid_ladder_rounds_down_to_the_tick_and_spaces_levels() -> None:
    assert pricing.bid_ladder(100.037, TICK, 3, 2, P("99.5"), P("101"), None) == [P("100.03"), P("100.01"), P("99.99")]
    # A float that prints as 100.03 stays 100.03 (no binary noise pushes it a tick down).
    assert pricing.bid_ladder(100.03, TICK, 1, 1, None, None, None) == [P("100.03")]


def test_bid_ladder_never_crosses_or_locks_the_ask_and_improves_at_most_as_allowed() -> None:
    assert pricing.bid_ladder(100.037, TICK, 2, 2, P("99.5"), P("100.02"), None) == [P("100.01"), P("99.99")]
    assert pricing.bid_ladder(100.037, TICK, 2, 2, P("100.00"), P("100.05"), 0) == [P("100.00"), P("99.98")]
    assert pricing.bid_ladder(100.037, TICK, 1, 1, P("100.00"), P("100.05"), 1) == [P("100.01")]
    # A bid below the touch is left where the model put it.
    assert pricing.bid_ladder(99.5, TICK, 1, 1, P("100.00"), P("100.05"), 0) == [P("99.50")]


def test_bid_ladder_drops_non_positive_prices() -> None:
    assert pricing.bid_ladder(0.025, TICK, 4, 1, None, None, None) == [P("0.02"), P("0.01")]


def test_ask_ladder_rounds_up_and_stays_above_the_bid() -> None:
    assert pricing.ask_ladder(100.031, TICK, 3, 2, P("99"), P("99.5"), None) == [P("100.04"), P("100.06"), P("100.08")]
    assert pricing.ask_ladder(100.031, TICK, 1, 1, P("100.05"), P("100.20"), None) == [P("100.06")]
    assert pricing.ask_ladder(100.031, TICK, 1, 1, P("100.00"), P("100.10"), 0) == [P("100.10")]


def test_levels_within_limit_stops_the_heavy_side() -> None:
    qty, limit = P("0.1"), P("0.2")
    assert pricing.levels_within_limit(0, limit, qty, 3, is_bid=True) == 2
    assert pricing.levels_within_limit(0, limit, qty, 3, is_bid=False) == 2
    assert pricing.levels_within_limit(P("0.2"), limit, qty, 3, is_bid=True) == 0  # at +max: no bids
    assert pricing.levels_within_limit(P("0.2"), limit, qty, 3, is_bid=False) == 3
    assert pricing.levels_within_limit(P("-0.15"), limit, qty, 3, is_bid=True) == 3
    assert pricing.levels_within_limit(P("-0.15"), limit, qty, 3, is_bid=False) == 0  # 0.05 left < one quote
    assert pricing.levels_within_limit(P("0.5"), limit, qty, 3, is_bid=True) == 0  # beyond the limit
    with pytest.raises(ValueError):
        pricing.levels_within_limit(0, limit, 0, 3, is_bid=True)


def test_spread_terms_are_consistent_with_the_formula_for_many_inputs() -> None:
    for gamma, sigma, tau, kappa in [(0.01, 5.0, 30.0, 0.4), (1.0, 0.1, 1.0, 10.0), (0.5, 3.0, 0.0, 2.0)]:
        expected = gamma * sigma**2 * tau + 2 / gamma * math.log(1 + gamma / kappa)
        assert pricing.optimal_spread(gamma, sigma, tau, kappa) == pytest.approx(expected, rel=1e-12)
