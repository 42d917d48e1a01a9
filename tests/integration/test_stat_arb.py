"""stat_arb end to end: the example configs on the synthetic market and on the Binance spot/perp
recordings, checked against the strategy's own rules (entries only with the gate open and |z| in
[entry, stop), exits and stops where the thresholds say, legs in the hedge ratio, positions back to
the start), balances respected, an unrelated pair refused, and the same run giving the same journal."""

from __future__ import annotations

import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.core.config import ConfigError, decode_config
from tradeloop.data.synthetic import SyntheticConfig, SyntheticInstrument, SyntheticMarket
from tradeloop.model.enums import OrderStatus, Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig
from tradeloop.runtime.runner import BacktestRequest, open_market, run_backtest
from tradeloop.strategies.pairs_signal import SignalAction
from tradeloop.strategies.stat_arb import PairTrade, StatArbConfig, StatisticalArbitrage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SYNTHETIC_EXAMPLE = EXAMPLES / "stat_arb_synthetic.toml"
BINANCE_EXAMPLE = EXAMPLES / "stat_arb_binance.toml"
SIM_A = InstrumentId("simA", "BTCUSDT")
SIM_B = InstrumentId("simB", "BTCUSDT")
ENTRIES = (SignalAction.ENTER_LONG, SignalAction.ENTER_SHORT)


def example_data(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def quick_synthetic(**params: Any) -> dict[str, Any]:
    """The synthetic example made cheap: 400 s of thinner order flow, equal noise, a 2-minute window."""
    data = example_data(SYNTHETIC_EXAMPLE)
    data["synthetic"]["duration_s"] = 400.0
    data["synthetic"]["flow"] = {"limit_rate": 20.0, "market_rate": 2.0}
    data["synthetic"]["instruments"][1]["noise_bps"] = 0.5
    data["strategy"]["params"].update({"window": 120, "coint_every": 10, "min_spread_bps": 0.0, **params})
    return data


def run(data: dict[str, Any]) -> BacktestEngine:
    config = decode_config(data, BacktestConfig)
    source = open_market(config, [])
    engine = BacktestEngine(
        config,
        source.instruments,
        source.start_ns,
        sequence_rules=source.sequence_rules,
        journal=MemoryJournal(),
        check_invariants=True,
    )
    engine.run(source.items)
    return engine


def strategy_of(engine: BacktestEngine) -> StatisticalArbitrage:
    strategy = engine.strategy
    assert isinstance(strategy, StatisticalArbitrage)
    return strategy


def last_p_value(strategy: StatisticalArbitrage, ts: int) -> float | None:
    seen = [p for t, p in strategy.p_values if t <= ts]
    return seen[-1] if seen else None


def check_rules(strategy: StatisticalArbitrage) -> None:
    """Every decision the run made follows the configured rules."""
    cfg = strategy.config
    position: SignalAction | None = None  # the entry of the open pair
    stopped_at: int | None = None
    for trade in strategy.trades:
        assert trade.result is not None, f"group {trade.group_id} never finished"
        p = last_p_value(strategy, trade.ts)
        if trade.action in ENTRIES:
            assert position is None
            assert p is not None and p < cfg.coint_pvalue, "entered with the cointegration gate closed"
            assert trade.zscore is not None and cfg.entry_z <= abs(trade.zscore) < cfg.stop_z
            assert trade.spread is not None and abs(trade.spread) * 1e4 >= cfg.min_spread_bps
            assert (trade.zscore < 0) == (trade.action is SignalAction.ENTER_LONG)
            assert trade.hedge_ratio is not None and cfg.min_hedge_ratio <= trade.hedge_ratio <= cfg.max_hedge_ratio
            if stopped_at is not None:
                assert trade.ts >= stopped_at + cfg.cooldown_ms * 1_000_000, "entered during the cool-down"
            y_sign = 1 if trade.action is SignalAction.ENTER_LONG else -1
            y_qty = trade.result.filled[str(strategy.y_id)]
            x_qty = trade.result.filled[str(strategy.x_id)]
            if any(trade.result.filled.values()):
                position = trade.action
            if trade.result.clean and y_qty:
                assert y_qty * y_sign > 0 and x_qty * y_sign < 0  # long spread: buy y, sell x
                # Same asset on both venues (prices equal within a few bps): |x| = beta |y| within a lot.
                lot = fixed.parse("0.001")
                assert abs(abs(x_qty) - trade.hedge_ratio * abs(y_qty)) <= lot + abs(y_qty) * 0.01
        elif trade.action is SignalAction.STOP:
            assert position is not None and trade.zscore is not None
            assert abs(trade.zscore) >= cfg.stop_z and (trade.zscore < 0) == (position is SignalAction.ENTER_LONG)
            position, stopped_at = None, trade.ts
        else:
            assert trade.action is SignalAction.EXIT
            if position is None:
                continue  # flattening a leftover, not closing a pair
            gate_closed = p is not None and p >= cfg.coint_pvalue
            z = trade.zscore
            took_profit = z is not None and (
                z >= -cfg.exit_z if position is SignalAction.ENTER_LONG else z <= cfg.exit_z
            )
            assert gate_closed or took_profit, f"exit at z={z} with the gate open"
            position = None
    check_gate_exits(strategy)


def check_gate_exits(strategy: StatisticalArbitrage) -> int:
    """A pair open when a test finds no cointegration is closed at that same sample; returns how often."""
    events: list[tuple[int, int, object]] = [(ts, 0, p) for ts, p in strategy.p_values]
    events += [(t.ts, 1, t) for t in strategy.trades]
    events.sort(key=lambda e: (e[0], e[1]))  # at one sample the test runs before the decision
    open_pair = False
    closes = 0
    for i, (ts, kind, item) in enumerate(events):
        if kind == 1:
            assert isinstance(item, PairTrade) and item.result is not None
            open_pair = item.action in ENTRIES and any(item.result.filled.values())
            continue
        assert isinstance(item, float)
        if open_pair and item >= strategy.config.coint_pvalue:
            following = next(e[2] for e in events[i + 1 :] if e[1] == 1)
            assert isinstance(following, PairTrade)
            assert (following.ts, following.action) == (ts, SignalAction.EXIT), "gate closed but the pair stayed open"
            closes += 1
    return closes


def offsets(engine: BacktestEngine, strategy: StatisticalArbitrage) -> dict[str, int]:
    start = {iid: engine.config.venue(iid.venue).balances_fixed().get("BTC", 0) for iid in strategy.instrument_ids}
    return {str(iid): engine.portfolio.position_qty(iid) - start[iid] for iid in strategy.instrument_ids}


@pytest.fixture(scope="module")
def example_run() -> BacktestEngine:
    """The synthetic example as shipped, shortened to 15 minutes (window 5 minutes so it gets to trade)."""
    data = example_data(SYNTHETIC_EXAMPLE)
    data["synthetic"]["duration_s"] = 900.0
    data["strategy"]["params"]["window"] = 300
    return run(data)


@pytest.mark.slow
def test_synthetic_example_trades_by_its_rules(example_run: BacktestEngine) -> None:
    strategy = strategy_of(example_run)
    actions = [t.action for t in strategy.trades]
    assert any(a in ENTRIES for a in actions), "no entry in the synthetic example"
    assert SignalAction.EXIT in actions or SignalAction.STOP in actions
    assert strategy.p_values and min(p for _, p in strategy.p_values) < 0.05
    check_rules(strategy)
    # Positions are back where they started unless the last decision opened a pair.
    if strategy.trades[-1].action not in ENTRIES:
        assert not any(offsets(example_run, strategy).values())
    assert example_run.stats.invariant_checks == len(example_run.series.fills) > 0
    panels = example_run.series.extra_panels
    for name in ("zscore", "spread", "hedge_ratio", "coint_pvalue"):
        assert panels.get(name), f"no {name} panel"
    assert len(panels["coint_pvalue"]) == len(strategy.p_values)


def test_same_run_twice_same_journal() -> None:
    a, b = run(quick_synthetic()), run(quick_synthetic())
    assert strategy_of(a).trades, "the quick synthetic pair should trade"
    check_rules(strategy_of(a))
    assert check_gate_exits(strategy_of(a)) >= 1  # this run has a pair closed by the gate
    assert a.journal.digest() == b.journal.digest()
    assert [(t.ts, t.action, t.result) for t in strategy_of(a).trades] == [
        (t.ts, t.action, t.result) for t in strategy_of(b).trades
    ]


def test_kalman_hedge_ratio_trades_by_the_same_rules() -> None:
    engine = run(quick_synthetic(hedge_method="kalman", kalman_obs_var=2e-9, kalman_warmup=60))
    strategy = strategy_of(engine)
    assert any(t.action in ENTRIES for t in strategy.trades)
    check_rules(strategy)
    # The Kalman z-score is the forecast error over its predicted deviation: roughly unit variance.
    zs = [v for _, v in engine.series.extra_panels["zscore"]]
    assert 0.7 < float(sum(z * z for z in zs) / len(zs)) ** 0.5 < 1.5


def test_spot_short_leg_needs_base_balance() -> None:
    # With no BTC on simA, a short spread (sell simA) cannot be entered; long spreads still can.
    data = quick_synthetic()
    data["venues"]["simA"]["balances"]["BTC"] = "0"
    engine = run(data)
    strategy = strategy_of(engine)
    messages = [m for _, kind, m in engine.series.alerts if kind == "stat_arb"]
    assert any("selling" in m and "simA" in m for m in messages), messages
    assert SignalAction.ENTER_SHORT not in [t.action for t in strategy.trades]
    held = 0
    for f in engine.series.fills:
        if f.instrument == str(SIM_A):
            held += f.qty if f.side is Side.BUY else -f.qty
            assert held >= 0, "sold BTC on simA that the account did not hold"
    assert not [o for o in engine.oms.orders.values() if o.status is OrderStatus.REJECTED]
    check_rules(strategy)


def test_denied_entries_leave_the_pair_flat_and_back_off() -> None:
    data = quick_synthetic(cooldown_ms=30_000)
    data["risk"]["max_order_notional"] = "10"  # every leg is denied by the risk engine
    engine = run(data)
    strategy = strategy_of(engine)
    entries = [t for t in strategy.trades if t.action in ENTRIES]
    assert entries, "the signal should have tried to enter"
    assert all(t.result is not None and not any(t.result.filled.values()) for t in entries)
    assert [t.action for t in strategy.trades] == [t.action for t in entries]  # nothing to exit
    assert all(b.ts - a.ts >= 30 * 10**9 for a, b in pairwise(entries))
    assert not engine.series.fills
    failed = [m for _, kind, m in engine.series.alerts if kind == "stat_arb" and "traded nothing" in m]
    assert len(failed) == len(entries)


def test_gate_refuses_an_unrelated_pair() -> None:
    # simB lists ETH instead: its fair value is an independent random walk, not cointegrated with BTC.
    data = quick_synthetic(instruments=["simA:BTCUSDT", "simB:ETHUSDT"], min_hedge_ratio=0.0, max_hedge_ratio=10.0)
    data["synthetic"]["duration_s"] = 600.0
    data["synthetic"]["instruments"][1].update(symbol="ETHUSDT", base="ETH", start_price="3000", volatility=0.7)
    data["venues"]["simB"]["balances"] = {"USDT": "100000", "ETH": "2"}
    engine = run(data)
    strategy = strategy_of(engine)
    ps = sorted(p for _, p in strategy.p_values)
    assert len(ps) > 30
    assert ps[len(ps) // 2] > 0.3  # typically far from cointegrated
    assert sum(p < 0.05 for p in ps) <= len(ps) // 10
    check_rules(strategy)  # and whatever was entered, was entered only while the gate was open


def test_binance_spot_perp_pair(tmp_path: Path) -> None:
    spot = sample_path("marketdata/binance_spot_btcusdt_20240808.gz")
    perp = sample_path("marketdata/binance_usdm_btcusdt_20240808.gz")
    outcome = run_backtest(
        BacktestRequest(config_path=BINANCE_EXAMPLE, data=[str(spot), str(perp)], report=str(tmp_path / "report.html"))
    )
    strategy = strategy_of(outcome.engine)
    assert (strategy.y_id, strategy.x_id) == (
        InstrumentId("binance_usdm", "BTCUSDT"),
        InstrumentId("binance", "BTCUSDT"),
    )
    actions = [t.action for t in strategy.trades]
    assert any(a in ENTRIES for a in actions) and SignalAction.EXIT in actions
    check_rules(strategy)
    check_rules_binance(strategy)
    assert outcome.report_path is not None and outcome.report_path.exists()
    assert {"zscore", "spread", "hedge_ratio"} <= set(outcome.series.extra_panels)
    assert not outcome.errors


def check_rules_binance(strategy: StatisticalArbitrage) -> None:
    """The Binance pair: entries sized by notional (perp lot 0.001, spot lot 0.00001) and hedged by beta."""
    notional = fixed.parse(strategy.config.notional)
    for trade in strategy.trades:
        assert trade.result is not None
        if trade.action not in ENTRIES or not trade.result.clean:
            continue
        y_qty = abs(trade.result.filled[str(strategy.y_id)])
        x_qty = abs(trade.result.filled[str(strategy.x_id)])
        # qty_y = notional / perp mid; the perp traded between 61,590 and 61,840 in this recording:
        # 2000 / 61,590 = 0.03247 and 2000 / 61,840 = 0.03234 -> always 0.032 on the 0.001 lot.
        assert y_qty == fixed.parse("0.032")
        assert fixed.mul(y_qty, fixed.parse("61840")) <= notional
        assert trade.hedge_ratio is not None
        assert x_qty == pytest.approx(trade.hedge_ratio * y_qty, rel=0.003)


def test_leg_sizes_are_exact() -> None:
    market = SyntheticMarket(
        SyntheticConfig(
            instruments=[
                SyntheticInstrument(venue="simA"),
                SyntheticInstrument(venue="simB", lot="0.00001"),
            ]
        )
    )
    data = quick_synthetic(notional="1000")
    config = decode_config(data, BacktestConfig)
    engine = BacktestEngine(config, market.instruments(), market.start_ns, journal=MemoryJournal())
    strategy = strategy_of(engine)
    # y: 1000 / 60000 = 0.01666 -> 0.016 (lot 0.001, rounded down); its value 0.016 x 60000 = 960;
    # x: 0.95 x 960 / 30000 = 0.0304 -> 0.0304 on the 0.00001 lot.
    assert strategy.leg_sizes(0.95, fixed.parse("60000"), fixed.parse("30000")) == (
        fixed.parse("0.016"),
        fixed.parse("0.0304"),
    )
    # beta 1.2345678: x = 1.2345678 x 960 / 30000 = 0.039506170 -> 0.03951 (half-even on the lot).
    assert strategy.leg_sizes(1.2345678, fixed.parse("60000"), fixed.parse("30000")) == (
        fixed.parse("0.016"),
        fixed.parse("0.03951"),
    )
    # Below one lot / the minimum notional (5 USDT): no entry.
    assert strategy.leg_sizes(1.0, fixed.parse("600000000"), fixed.parse("30000")) is None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"instruments": ["simA:BTCUSDT"]}, "exactly two"),
        ({"entry_z": 0.4, "exit_z": 0.5}, "exit < entry"),
        ({"notional": "12.3456789012"}, "notional"),
        ({"notional": "-5"}, "positive"),
        ({"window": 5}, "window"),
        ({"hedge_method": "lasso"}, "hedge_method"),
        ({"kalman_delta": 2.0, "hedge_method": "kalman"}, "delta"),
        ({"coint_pvalue": 0.0}, "coint_pvalue"),
        ({"entry_zz": 2.0}, "entry_zz"),
    ],
)
def test_bad_config_is_refused_clearly(change: dict[str, Any], match: str) -> None:
    params = {"instruments": ["simA:BTCUSDT", "simB:BTCUSDT"], **change}
    with pytest.raises(ConfigError, match=match):
        decode_config(params, StatArbConfig)


def test_unknown_instrument_is_refused() -> None:
    data = quick_synthetic(instruments=["simA:BTCUSDT", "simC:BTCUSDT"])
    config = decode_config(data, BacktestConfig)
    market = SyntheticMarket(config.synthetic)
    with pytest.raises(ValueError, match=r"(?i)unknown instrument simc:BTCUSDT"):
        BacktestEngine(config, market.instruments(), market.start_ns, journal=MemoryJournal())
