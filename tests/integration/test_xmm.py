"""xmm end to end: quote prices, a maker fill hedged on the other venue, a hedge venue that refuses,
the synthetic market and the Binance recordings."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import cast

import pytest

from tests.conftest import sample_path
from tests.integration.test_leg_risk import START, A, B, snapshot
from tests.integration.test_xarb import (
    EXAMPLES,
    SPOT_FILE,
    USDM_FILE,
    deliver,
    run_config,
    run_for,
    shortened,
    two_venue_engine,
)
from tradeloop.core import fixed
from tradeloop.core.config import ConfigError
from tradeloop.model.data import Trade
from tradeloop.model.enums import LiquiditySide, RejectReason, Side
from tradeloop.model.events import StrategyAlert
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.strategies.xmm import CrossExchangeMarketMaking
from tradeloop.venues.sim.execution import SimExecutionClient

P = fixed.parse
MS = 1_000_000
XMM = {
    "maker": "simB:BTCUSDT",
    "hedge": "simA:BTCUSDT",
    "order_qty": "0.01",
    "min_edge_bps": "0.5",
    "max_unhedged": "0.015",
}
# Default simulated fees: maker 0.02 %, taker 0.04 %.
MAKER_FEE, TAKER_FEE, MIN_EDGE = Fraction(2, 10_000), Fraction(4, 10_000), Fraction(5, 100_000)


def expected_quotes(hedge_bid: str, hedge_ask: str, tick: str = "0.1") -> tuple[int, int]:
    """The quotes that keep MIN_EDGE after both fees, worked out with exact fractions."""
    t = Fraction(P(tick))
    bid = Fraction(P(hedge_bid)) * (1 - TAKER_FEE) / ((1 + MAKER_FEE) * (1 + MIN_EDGE))
    ask = Fraction(P(hedge_ask)) * (1 + TAKER_FEE) * (1 + MIN_EDGE) / (1 - MAKER_FEE)
    return int(bid // t * t), int(-(-ask // t) * t)


def start(engine: BacktestEngine) -> None:
    engine.strategy.on_start()
    deliver(
        engine,
        [
            snapshot(A, START, [("60000.0", "5")], [("60000.1", "5")]),  # hedge venue
            snapshot(B, START, [("59900.0", "1")], [("60100.0", "1")]),  # maker venue, wide
        ],
    )
    run_for(engine, 10 * MS)


def quotes(engine: BacktestEngine) -> dict[Side, int | None]:
    return {o.side: o.price for o in engine.oms.open_orders(B)}


def sell_into_bid(engine: BacktestEngine, price: int, qty: str = "0.01") -> None:
    now = engine.clock.now_ns()
    deliver(engine, [Trade(B, now, now, price, P(qty), Side.SELL, "t1")])


def test_quotes_are_priced_off_the_hedge_touch() -> None:
    engine = two_venue_engine("xmm", XMM)
    start(engine)
    bid, ask = expected_quotes("60000.0", "60000.1")
    assert (bid, ask) == (P("59961.0"), P("60039.2"))  # 59961.0097..., 60039.11...
    assert quotes(engine) == {Side.BUY: bid, Side.SELL: ask}
    assert all(o.post_only for o in engine.oms.open_orders(B))
    # The hedge bid drops by 5.0: the bid is now too high for the edge and moves at once.
    deliver(engine, [snapshot(A, START, [("59995.0", "5")], [("60000.1", "5")])])
    run_for(engine, 10 * MS)
    assert quotes(engine)[Side.BUY] == expected_quotes("59995.0", "60000.1")[0] == P("59956.0")


def test_maker_fill_is_hedged_on_the_other_venue() -> None:
    engine = two_venue_engine("xmm", XMM)
    strategy = cast(CrossExchangeMarketMaking, engine.strategy)
    start(engine)
    bid = quotes(engine)[Side.BUY]
    assert bid is not None
    sell_into_bid(engine, bid)
    run_for(engine, 20 * MS)
    fills = sorted((f.instrument, f.side, f.price, f.qty, f.liquidity, f.fee) for f in engine.series.fills)
    assert fills == [
        ("simA:BTCUSDT", Side.SELL, P("60000.0"), P("0.01"), LiquiditySide.TAKER, P("0.24")),  # 600 x 0.04 %
        ("simB:BTCUSDT", Side.BUY, P("59961.0"), P("0.01"), LiquiditySide.MAKER, P("0.119922")),  # 599.61 x 0.02 %
    ]
    # Result of the round trip: 600 - 0.24 - 599.61 - 0.119922 = 0.030078 (0.5 bps of 600).
    net = sum((-1 if f.side is Side.BUY else 1) * fixed.mul(f.price, f.qty) - f.fee for f in engine.series.fills)
    assert net == P("0.030078")
    assert strategy.unhedged() == 0 and strategy.hedges == 1
    assert engine.series.alerts == []


def test_refused_hedge_is_reported_and_retried_later() -> None:
    engine = two_venue_engine("xmm", {**XMM, "rehedge_cooldown_ms": 500})
    strategy = cast(CrossExchangeMarketMaking, engine.strategy)
    start(engine)
    bid = quotes(engine)[Side.BUY]
    assert bid is not None
    # The hedge, both retries and the aggressive hedge are all refused by simA.
    cast(SimExecutionClient, engine.execution.client("simA")).reject_next(4, RejectReason.OTHER)
    sell_into_bid(engine, bid)
    run_for(engine, 50 * MS)
    assert strategy.unhedged() == P("0.01") and strategy.unclean_hedges == 1
    ((_, kind, message),) = engine.series.alerts
    assert kind == "leg_risk" and "UNHEDGED residual simA:BTCUSDT 0.01" in message
    journaled = [r for _, _, r in engine.journal.read() if isinstance(r, StrategyAlert)]
    assert [(r.kind, r.message) for r in journaled] == [(kind, message)]
    # Unhedged 0.01 + another 0.01 bid would exceed max_unhedged: the bid is pulled.
    assert Side.BUY not in quotes(engine)
    # After the cooldown the next book update hedges again, and this time it goes through.
    run_for(engine, 500 * MS)
    deliver(engine, [snapshot(A, START, [("60000.0", "5")], [("60000.1", "5")])])
    run_for(engine, 20 * MS)
    assert strategy.unhedged() == 0 and strategy.hedges == 2
    assert Side.BUY in quotes(engine)


def test_bad_config_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="different venues"):
        two_venue_engine("xmm", {**XMM, "hedge": "simB:BTCUSDT"})
    with pytest.raises(ConfigError, match="unknown instrument"):
        two_venue_engine("xmm", {**XMM, "maker": "simC:BTCUSDT"})
    with pytest.raises(ConfigError, match="multiple of the maker lot"):
        two_venue_engine("xmm", {**XMM, "order_qty": "0.0105"})
    with pytest.raises(ConfigError, match="maker and a hedge"):
        two_venue_engine("xmm", {"order_qty": "0.01", "instruments": ["simA:BTCUSDT"]})


def test_synthetic_example_makes_and_hedges(tmp_path: Path) -> None:
    outcome = run_config(shortened("xmm_synthetic.toml", tmp_path, 120), tmp_path)
    strategy = cast(CrossExchangeMarketMaking, outcome.engine.strategy)
    assert strategy.maker_fills > 5 and strategy.hedges > 0
    fills = outcome.series.fills
    assert {f.liquidity for f in fills if f.instrument == "simB:BTCUSDT"} == {LiquiditySide.MAKER}
    assert {f.liquidity for f in fills if f.instrument == "simA:BTCUSDT"} == {LiquiditySide.TAKER}
    assert abs(strategy.unhedged()) <= P("0.02")  # max_unhedged
    assert outcome.report_path is not None and outcome.report_path.stat().st_size > 10_000
    assert any(name.startswith("quote_bps/") for name in outcome.series.extra_panels)


@pytest.mark.slow
def test_binance_spot_maker_usdm_hedge(tmp_path: Path) -> None:
    files = [str(sample_path(SPOT_FILE)), str(sample_path(USDM_FILE))]
    outcome = run_config(EXAMPLES / "xmm_binance.toml", tmp_path, files)
    strategy = cast(CrossExchangeMarketMaking, outcome.engine.strategy)
    assert strategy.maker_fills > 0 and strategy.hedges > 0
    # What is left unhedged is below what USD-M accepts as an order (100 USDT minimum).
    assert abs(strategy.unhedged()) < P("0.002")

    assert outcome.report_path is not None and outcome.report_path.exists()
    assert not outcome.errors
