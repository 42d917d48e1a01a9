"""Risk engine pre-trade checks: each one trips, and passes just inside its limit; amends; counters."""

from __future__ import annotations

from typing import Any

import pytest

from tradeloop.core.fixed import parse as P
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import Side, TradingState
from tradeloop.trading.risk_config import InstrumentRiskConfig

from .test_risk_helpers import (
    BTC,
    BYBIT_BTC,
    ETH,
    MS,
    T0,
    UNKNOWN,
    amend,
    buy,
    denied_by,
    make,
    sell,
    state,
    submit,
)

# -- basics ----------------------------------------------------------------------------------------


def test_plain_order_passes_with_default_config() -> None:
    env = make()
    assert env.engine.check_submit(buy("0.1")) is None
    assert env.engine.check_submit(sell("2", "3001", ETH)) is None
    assert state(env.engine) is TradingState.ACTIVE and env.engine.denials == {}


def test_unknown_instrument_is_denied() -> None:
    env = make()
    reason = env.engine.check_submit(buy("0.1", iid=UNKNOWN))
    assert reason == "instrument: unknown instrument binance:DOGEUSDT"


# -- precision -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qty", "price", "fragment"),
    [
        ("0.1", "60000.005", "not a multiple of tick 0.01"),
        ("0.100005", "60000", "not a multiple of lot 0.00001"),
        ("0.00009", "60000", "< min_qty 0.00010"),
        ("9.00001", "60000", "> max_qty 9.00000"),
        ("0.0001", "40000", "notional 4 < min_notional 5"),
        ("0", "60000", "must be positive"),
    ],
)
def test_precision_trips(qty: str, price: str, fragment: str) -> None:
    env = make(price_band_bps=10_000)
    reason = env.engine.check_submit(buy(qty, price))
    assert denied_by(reason, "precision") and reason is not None and fragment in reason, reason


def test_precision_limit_without_price() -> None:
    env = make()
    cmd = SubmitOrder(ts=T0, strategy_id="s", instrument_id=BTC, side=Side.BUY, qty=P("0.1"))
    assert env.engine.check_submit(cmd) == "precision: limit order without a price"


def test_precision_passes_at_the_edges() -> None:
    env = make(price_band_bps=10_000)
    assert env.engine.check_submit(buy("0.0001", "50000")) is None  # min_qty, notional exactly 5
    assert env.engine.check_submit(buy("9", "60000.01")) is None  # max_qty, on tick


def test_precision_min_notional_of_market_order_uses_mid() -> None:
    env = make()
    env.books.set(BTC, "49999", "50001")  # mid 50000 -> 0.0001 is worth exactly 5
    assert env.engine.check_submit(buy("0.0001", None)) is None
    env.books.set(BTC, "49989", "49991")
    assert denied_by(env.engine.check_submit(buy("0.0001", None)), "precision")


# -- order size ------------------------------------------------------------------------------------


def test_max_order_qty_trips_and_passes_at_limit() -> None:
    env = make(max_order_qty="1")
    assert env.engine.check_submit(buy("1")) is None
    assert env.engine.check_submit(buy("1.00001")) == "max_order_qty: 1.00001 > max 1.00000"


def test_max_order_qty_per_instrument_override() -> None:
    env = make(max_order_qty="1", instruments={"binance:BTCUSDT": InstrumentRiskConfig(max_order_qty="0.5")})
    assert env.engine.check_submit(buy("0.5")) is None
    assert denied_by(env.engine.check_submit(buy("0.6")), "max_order_qty")
    assert env.engine.check_submit(buy("1", "3000", ETH)) is None  # default applies elsewhere


def test_max_order_notional_trips_and_passes_at_limit() -> None:
    env = make(max_order_notional="6000")
    assert env.engine.check_submit(buy("0.1", "60000")) is None  # exactly 6000
    reason = env.engine.check_submit(buy("0.1", "60000.01"))
    assert reason == "max_order_notional: 6000.001 USDT > max 6000"


def test_max_order_notional_of_market_order_without_reference_price_is_denied() -> None:
    env = make(max_order_notional="6000", require_valid_book=False)
    del env.books.books[BTC]
    assert denied_by(env.engine.check_submit(buy("0.1", None)), "max_order_notional")
    env.portfolio.marks[BTC] = P("60000")
    assert env.engine.check_submit(buy("0.1", None)) is None  # falls back to the mark


# -- price band ------------------------------------------------------------------------------------


def test_price_band_trips_with_readable_reason() -> None:
    env = make()
    env.books.set(BTC, "61837.62", "61837.64")
    reason = env.engine.check_submit(buy("0.01", "71000.00"))
    assert reason == "price_band: 71000.00 is 1482 bps from mid 61837.63 (max 500)"


@pytest.mark.parametrize(
    ("side", "inside", "outside"),
    [(Side.BUY, "63005.25", "63005.26"), (Side.SELL, "57004.75", "57004.74")],
)
def test_price_band_passes_exactly_at_band(side: Side, inside: str, outside: str) -> None:
    env = make()  # mid 60005; 500 bps of it = 3000.25
    assert env.engine.check_submit(submit(side, "0.01", inside, BTC)) is None
    assert denied_by(env.engine.check_submit(submit(side, "0.01", outside, BTC)), "price_band")


def test_price_band_per_instrument_override() -> None:
    env = make(instruments={"binance:BTCUSDT": InstrumentRiskConfig(price_band_bps=10)})
    assert env.engine.check_submit(buy("0.01", "60065.00")) is None  # 9.99 bps
    assert denied_by(env.engine.check_submit(buy("0.01", "60066.00")), "price_band")


@pytest.mark.parametrize("price", ["60000", None])
def test_missing_or_invalid_book_denies_limit_and_market(price: str | None) -> None:
    env = make()
    del env.books.books[BTC]
    assert env.engine.check_submit(buy("0.1", price)) == "no_valid_book: no book for binance:BTCUSDT"
    env.books.set(BTC, "60000", "60010").invalidate("sequence gap")
    reason = env.engine.check_submit(buy("0.1", price))
    assert reason == "no_valid_book: book for binance:BTCUSDT is invalid (sequence gap)"


def test_missing_book_allowed_when_configured() -> None:
    env = make(require_valid_book=False)
    del env.books.books[BTC]
    assert env.engine.check_submit(buy("0.1", "99999")) is None


def test_disabled_price_band_lets_far_price_through() -> None:
    env = make(disabled_checks=("price_band",))
    assert env.engine.check_submit(buy("0.01", "99999")) is None


# -- position and exposure -------------------------------------------------------------------------


def test_max_position_counts_position_and_same_side_open_orders() -> None:
    env = make(max_position="1")
    env.portfolio.positions[BTC] = P("0.5")
    env.orders.add(Side.BUY, "0.4", "59990", filled="0.1")  # leaves 0.3
    env.orders.add(Side.SELL, "2", "60020")  # other side: not counted
    assert env.engine.check_submit(buy("0.2")) is None  # 0.5 + 0.3 + 0.2 = 1
    reason = env.engine.check_submit(buy("0.20001"))
    assert reason is not None and reason.startswith("max_position: ") and "would be 1.00001" in reason


def test_max_position_short_side() -> None:
    env = make(max_position="1")
    env.portfolio.positions[BTC] = -P("0.9")
    assert env.engine.check_submit(sell("0.1")) is None
    assert denied_by(env.engine.check_submit(sell("0.10001")), "max_position")


def test_max_position_allows_an_order_that_shrinks_an_oversized_position() -> None:
    env = make(max_position="1")
    env.portfolio.positions[BTC] = P("3")
    assert env.engine.check_submit(sell("1")) is None
    assert denied_by(env.engine.check_submit(buy("0.001")), "max_position")


def test_max_exposure_trips_and_passes_at_limit() -> None:
    env = make(max_exposure="100000")
    env.portfolio.gross = P("94000")
    assert env.engine.check_submit(buy("0.1", "60000", BYBIT_BTC)) is None  # 94000 + 6000
    reason = env.engine.check_submit(buy("0.1", "60000.01", BYBIT_BTC))
    assert reason == "max_exposure: gross exposure 94000 + order 6000.001 > max 100000"


def test_max_exposure_does_not_block_a_reducing_order() -> None:
    env = make(max_exposure="100000")
    env.portfolio.gross = P("120000")
    env.portfolio.positions[BTC] = P("2")
    assert env.engine.check_submit(sell("1")) is None
    assert denied_by(env.engine.check_submit(sell("2.5")), "max_exposure")  # would flip


# -- open orders, rate -----------------------------------------------------------------------------


def test_max_open_orders_per_instrument() -> None:
    env = make(max_open_orders_per_instrument=2)
    env.orders.add(Side.BUY, "0.1", "59000")
    assert env.engine.check_submit(buy("0.1")) is None
    env.orders.add(Side.BUY, "0.1", "59001")
    assert env.engine.check_submit(buy("0.1")) == "max_open_orders: 2 open orders on binance:BTCUSDT (max 2)"
    assert env.engine.check_submit(buy("0.1", "3000", ETH)) is None


def test_max_open_orders_total() -> None:
    env = make(max_open_orders_total=3)
    env.orders.add(Side.BUY, "0.1", "59000")
    env.orders.add(Side.BUY, "1", "2990", ETH)
    assert env.engine.check_submit(buy("0.1", "60000", BYBIT_BTC)) is None
    env.orders.add(Side.BUY, "0.1", "59000", BYBIT_BTC)
    assert env.engine.check_submit(buy("0.1", "60000", BYBIT_BTC)) == "max_open_orders: 3 open orders in total (max 3)"


def test_order_rate_per_venue_slides_with_the_clock() -> None:
    env = make(order_rate_max=3, order_rate_window_ms=1000)
    engine, clock = env.engine, env.clock
    for i in range(3):
        clock.advance_to(T0 + i * 100 * MS)
        assert engine.check_submit(buy("0.1")) is None
    clock.advance_to(T0 + 999 * MS)
    assert engine.check_submit(buy("0.1")) == "order_rate: 3 submits on binance in the last 1000 ms (max 3)"
    assert engine.check_submit(buy("0.1", "60000", BYBIT_BTC)) is None  # other venue has its own budget
    clock.advance_to(T0 + 1000 * MS)  # the first submit leaves the window
    assert engine.check_submit(buy("0.1")) is None
    assert denied_by(engine.check_submit(buy("0.1")), "order_rate")


def test_order_rate_records_only_accepted_submits() -> None:
    env = make(order_rate_max=2)
    assert env.engine.check_submit(buy("0.1", iid=UNKNOWN)) is not None
    assert env.engine.check_submit(buy("0.1", "1")) is not None  # price band
    assert env.engine.check_submit(buy("0.1")) is None
    assert env.engine.check_submit(buy("0.1")) is None
    assert denied_by(env.engine.check_submit(buy("0.1")), "order_rate")


def test_order_rate_venue_override() -> None:
    env = make(order_rate_max=5, venue_order_rate_max={"bybit": 1})
    assert env.engine.check_submit(buy("0.1", "60000", BYBIT_BTC)) is None
    assert denied_by(env.engine.check_submit(buy("0.1", "60000", BYBIT_BTC)), "order_rate")
    assert env.engine.check_submit(buy("0.1")) is None


# -- self-trade prevention -------------------------------------------------------------------------


def test_self_trade_buy_at_or_above_own_sell() -> None:
    env = make()
    own = env.orders.add(Side.SELL, "0.1", "60005")
    assert env.engine.check_submit(buy("0.1", "60004.99")) is None
    reason = env.engine.check_submit(buy("0.1", "60005"))
    assert reason == f"self_trade: BUY at 60005.00 would trade with own open SELL {own.client_order_id} at 60005.00"


def test_self_trade_sell_at_or_below_own_buy() -> None:
    env = make()
    env.orders.add(Side.BUY, "0.1", "60005")
    env.orders.add(Side.BUY, "0.1", "60001", ETH)  # other instrument: irrelevant
    assert env.engine.check_submit(sell("0.1", "60005.01")) is None
    assert denied_by(env.engine.check_submit(sell("0.1", "60004")), "self_trade")


def test_self_trade_market_order_against_own_resting_order() -> None:
    env = make()
    env.orders.add(Side.SELL, "0.1", "60010")
    assert denied_by(env.engine.check_submit(buy("0.1", None)), "self_trade")
    assert env.engine.check_submit(sell("0.1", None)) is None


# -- amend -----------------------------------------------------------------------------------------


def test_amend_checks_new_price_and_size() -> None:
    env = make(max_order_qty="1")
    order = env.orders.add(Side.BUY, "0.5", "60000")
    assert env.engine.check_amend(amend(order, price="60001"), order) is None
    assert denied_by(env.engine.check_amend(amend(order, price="70000"), order), "price_band")
    assert denied_by(env.engine.check_amend(amend(order, price="60000.001"), order), "precision")
    assert env.engine.check_amend(amend(order, qty="1"), order) is None
    assert denied_by(env.engine.check_amend(amend(order, qty="1.1"), order), "max_order_qty")


def test_amend_position_counts_new_leaves_not_the_old_order() -> None:
    env = make(max_position="1")
    order = env.orders.add(Side.BUY, "0.5", "60000", filled="0.2")
    env.portfolio.positions[BTC] = P("0.2")
    assert env.engine.check_amend(amend(order, qty="1"), order) is None  # 0.2 + 0.8
    assert denied_by(env.engine.check_amend(amend(order, qty="1.00001"), order), "max_position")


def test_amend_self_trade() -> None:
    env = make()
    order = env.orders.add(Side.BUY, "0.1", "60000")
    env.orders.add(Side.SELL, "0.1", "60008")
    assert env.engine.check_amend(amend(order, price="60007.99"), order) is None
    assert denied_by(env.engine.check_amend(amend(order, price="60008"), order), "self_trade")


def test_amend_that_only_shrinks_needs_only_precision() -> None:
    env = make(max_order_qty="1")
    order = env.orders.add(Side.BUY, "2", "60000")  # placed before a limit was tightened
    env.books.set(BTC, "80000", "80010")  # market ran away: price now far out of band
    assert env.engine.check_amend(amend(order, qty="1.5"), order) is None
    assert denied_by(env.engine.check_amend(amend(order, qty="1.000001"), order), "precision")
    assert denied_by(env.engine.check_amend(amend(order, qty="2.5"), order), "price_band")


def test_amend_in_reducing_state() -> None:
    env = make()
    env.portfolio.positions[BTC] = P("1")
    order = env.orders.add(Side.SELL, "0.5", "60010")
    env.engine.set_state(TradingState.REDUCING, "operator")
    assert env.engine.check_amend(amend(order, qty="1"), order) is None
    assert denied_by(env.engine.check_amend(amend(order, qty="1.1"), order), "trading_state")


def test_amend_unknown_instrument() -> None:
    env = make()
    order = env.orders.add(Side.BUY, "1", "1", UNKNOWN)
    assert env.engine.check_amend(amend(order, price="2"), order) == "instrument: unknown instrument binance:DOGEUSDT"


# -- counters, disabling ---------------------------------------------------------------------------


def test_denials_are_counted_by_check() -> None:
    env = make(max_order_qty="1")
    env.engine.check_submit(buy("2"))
    env.engine.check_submit(buy("3"))
    env.engine.check_submit(buy("0.1", "70000"))
    env.engine.check_submit(buy("0.1", iid=UNKNOWN))
    env.engine.check_submit(buy("0.1"))
    assert env.engine.denials == {"max_order_qty": 2, "price_band": 1, "instrument": 1}


@pytest.mark.parametrize(
    ("check", "config", "cmd"),
    [
        ("precision", {}, buy("0.000001")),
        ("max_order_qty", {"max_order_qty": "0.01"}, buy("1")),
        ("max_order_notional", {"max_order_notional": "1"}, buy("1")),
        ("max_position", {"max_position": "0.01"}, buy("1")),
        ("max_exposure", {"max_exposure": "1"}, buy("1")),
        ("max_open_orders", {"max_open_orders_total": 0}, buy("1")),
        ("order_rate", {"order_rate_max": 0}, buy("1")),
    ],
)
def test_each_check_can_be_disabled(check: str, config: dict[str, Any], cmd: SubmitOrder) -> None:
    assert denied_by(make(**config).engine.check_submit(cmd), check)
    assert make(**config, disabled_checks=(check,)).engine.check_submit(cmd) is None


def test_self_trade_can_be_disabled() -> None:
    env = make(disabled_checks=("self_trade",))
    env.orders.add(Side.SELL, "0.1", "60000")
    assert env.engine.check_submit(buy("0.1", "60001")) is None
