"""xarb end to end: hand-built books with a known edge, fee and balance limits, leg risk, the
synthetic market and the Binance spot/USD-M recordings."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, cast

import pytest

from tests.conftest import sample_path
from tests.integration.test_leg_risk import START, A, B, snapshot, spot
from tradeloop.core import fixed
from tradeloop.core.config import ConfigError
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import RejectReason, Side
from tradeloop.model.events import StrategyAlert
from tradeloop.model.instrument import Instrument
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, SimSection, StrategySection, VenueSection
from tradeloop.runtime.report import write_html_report
from tradeloop.runtime.runner import BacktestOutcome, BacktestRequest, MarketSource, build_summary, run_backtest
from tradeloop.strategies.base import StrategyContext
from tradeloop.strategies.xarb import CrossExchangeArbitrage
from tradeloop.venues.sim.execution import SimExecutionClient

P = fixed.parse
MS = 1_000_000
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPOT_FILE = "marketdata/binance_spot_btcusdt_20240808.gz"
USDM_FILE = "marketdata/binance_usdm_btcusdt_20240808.gz"


def two_venue_engine(
    strategy: str,
    params: dict[str, Any],
    *,
    balances: dict[str, dict[str, str]] | None = None,
    sim: SimSection | None = None,
    instruments: list[Instrument] | None = None,
) -> BacktestEngine:
    """simA and simB (spot BTCUSDT, tick 0.1, lot 0.001) running ``strategy`` with ``params``."""
    balances = balances or {}
    venues = {
        v: VenueSection(balances=balances.get(v, {"USDT": "100000", "BTC": "2"}), sim=sim or SimSection())
        for v in ("simA", "simB")
    }
    config = BacktestConfig(venues=venues, strategy=StrategySection(name=strategy, id="S1", params=params))
    return BacktestEngine(
        config,
        instruments or [spot(A), spot(B)],
        START,
        sequence_rules={"simA": SequenceRule.NONE, "simB": SequenceRule.NONE},
        journal=MemoryJournal(),
        check_invariants=True,
    )


def deliver(engine: BacktestEngine, items: list[Any]) -> None:
    """Market data reaches venue and engine at the current engine time."""
    for item in items:
        engine.venues[item.instrument_id.venue].on_market_data(item)
        engine.hub.on_data(item)


def start_with_books(engine: BacktestEngine, b_bids: list[tuple[str, str]]) -> None:
    engine.strategy.on_start()
    deliver(
        engine,
        [
            snapshot(A, START, [("60000.0", "5")], [("60000.1", "0.3"), ("60001.0", "5")]),
            snapshot(B, START, b_bids, [("60060.1", "5")]),
        ],
    )


def run_for(engine: BacktestEngine, ns: int) -> None:
    engine.clock.advance_to(engine.clock.now_ns() + ns)


def changes(engine: BacktestEngine, start: dict[str, str] | None = None) -> tuple[int, int]:
    start = start or {"simA": "2", "simB": "2"}
    return (
        engine.portfolio.position_qty(A) - P(start["simA"]),
        engine.portfolio.position_qty(B) - P(start["simB"]),
    )


XARB = {"instruments": ["simA:BTCUSDT", "simB:BTCUSDT"], "order_qty": "1", "max_inventory": "1", "min_edge_bps": "0.5"}
EDGE_BIDS = [("60060.0", "0.2"), ("60040.0", "5")]


def test_takes_exactly_the_size_that_keeps_the_edge_after_fees() -> None:
    # Default sim fees: 4 bps taker on both venues. Buying at 60000.1 and selling at 60060.0 earns
    # 60060 x 0.9996 / (60000.1 x 1.0004) - 1 = 1.98 bps > 0.5; 60040.0 against 60000.1 would lose.
    engine = two_venue_engine("xarb", XARB)
    start_with_books(engine, EDGE_BIDS)
    run_for(engine, 50 * MS)
    strategy = cast(CrossExchangeArbitrage, engine.strategy)
    assert strategy.groups == 1
    fills = sorted((f.instrument, f.side, f.price, f.qty, f.fee) for f in engine.series.fills)
    assert fills == [
        ("simA:BTCUSDT", Side.BUY, P("60000.1"), P("0.2"), P("4.800008")),  # 12000.02 x 0.0004
        ("simB:BTCUSDT", Side.SELL, P("60060.0"), P("0.2"), P("4.8048")),  # 12012 x 0.0004
    ]
    assert strategy.expected_net == P("12012") - P("4.8048") - P("12000.02") - P("4.800008") == P("2.375192")
    assert changes(engine) == (P("0.2"), -P("0.2"))
    # The replayed book still shows the bid we took; the strategy does not chase it again.
    run_for(engine, 500 * MS)
    deliver(engine, [snapshot(A, START, [("60000.0", "5")], [("60000.1", "0.3"), ("60001.0", "5")])])
    run_for(engine, 50 * MS)
    assert strategy.groups == 1 and len(engine.series.fills) == 2
    assert engine.series.alerts == []


def test_no_trade_when_fees_eat_the_edge() -> None:
    engine = two_venue_engine("xarb", XARB, sim=SimSection(maker_fee="0.001", taker_fee="0.001"))
    start_with_books(engine, EDGE_BIDS)
    run_for(engine, 50 * MS)
    assert cast(CrossExchangeArbitrage, engine.strategy).groups == 0
    assert engine.oms.orders == {}


def test_config_fee_override_wins_over_the_venue() -> None:
    params = {**XARB, "fees": {"simB": {"maker": "0.001", "taker": "0.002"}}}
    engine = two_venue_engine("xarb", params)
    start_with_books(engine, EDGE_BIDS)
    run_for(engine, 50 * MS)
    assert engine.oms.orders == {}


def test_size_is_capped_by_the_base_balance_and_the_inventory_limit() -> None:
    deep_bids = [("60060.0", "5")]
    engine = two_venue_engine("xarb", XARB, balances={"simB": {"USDT": "100000", "BTC": "0.05"}})
    start_with_books(engine, deep_bids)
    run_for(engine, 50 * MS)
    assert changes(engine, {"simA": "2", "simB": "0.05"}) == (P("0.05"), -P("0.05"))
    # The sell side of simB is now empty: no further arbitrage in that direction.
    run_for(engine, 500 * MS)
    deliver(engine, [snapshot(B, START, [("60060.0", "4")], [("60060.1", "5")])])
    run_for(engine, 50 * MS)
    assert changes(engine, {"simA": "2", "simB": "0.05"}) == (P("0.05"), -P("0.05"))

    engine = two_venue_engine("xarb", {**XARB, "max_inventory": "0.12"})
    start_with_books(engine, deep_bids)
    run_for(engine, 50 * MS)
    assert changes(engine) == (P("0.12"), -P("0.12"))


def test_rejected_leg_is_hedged_and_reported(tmp_path: Path) -> None:
    engine = two_venue_engine("xarb", XARB)
    strategy = cast(CrossExchangeArbitrage, engine.strategy)
    cast(SimExecutionClient, engine.execution.client("simB")).reject_next(1, RejectReason.OTHER)
    start_with_books(engine, EDGE_BIDS)
    run_for(engine, 100 * MS)
    assert strategy.groups == 1 and strategy.leg_risk_groups == 1
    a, b = changes(engine)
    assert a == P("0.2") and abs(a + b) < spot(A).lot_size
    ((_, kind, message),) = engine.series.alerts
    assert kind == "leg_risk" and "rejected (OTHER" in message and "residual 0" in message
    journaled = [r for _, _, r in engine.journal.read() if isinstance(r, StrategyAlert)]
    assert [(r.kind, r.message) for r in journaled] == [(kind, message)]
    # And the run report lists it in its alerts table.
    source = MarketSource(iter(()), [spot(A), spot(B)], {}, START, None, "hand-built books")
    summary = build_summary(engine, engine.config, BacktestRequest(), source)
    page = write_html_report(summary, engine.series, tmp_path / "report.html").read_text()
    assert "leg_risk" in page and html.escape(message) in page


def test_bad_config_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="unknown instrument"):
        two_venue_engine("xarb", {**XARB, "instruments": ["simA:BTCUSDT", "simC:BTCUSDT"]})
    with pytest.raises(ConfigError, match="at least two instruments"):
        two_venue_engine("xarb", {**XARB, "instruments": ["simA:BTCUSDT"]})
    with pytest.raises(ConfigError, match="decimal"):
        two_venue_engine("xarb", {**XARB, "order_qty": "0.0000000001"})
    with pytest.raises(ConfigError, match="basis_bps"):
        two_venue_engine("xarb", {**XARB, "basis_bps": {"simC:BTCUSDT": "1"}})
    with pytest.raises(ConfigError):
        two_venue_engine("xarb", {**XARB, "min_edge_bps": 0.5})  # a float, not a decimal string


def run_config(
    config_file: Path, tmp_path: Path, data: list[str] | None = None, *, report: bool = True
) -> BacktestOutcome:
    report_path = str(tmp_path / f"{config_file.stem}.html") if report else None
    return run_backtest(BacktestRequest(config_path=config_file, data=data or [], report=report_path))


def shortened(example: str, tmp_path: Path, duration_s: int) -> Path:
    """A copy of an example config with a shorter synthetic market (keeps test runs short)."""
    text = (EXAMPLES / example).read_text()
    assert "duration_s = 300.0" in text
    path = tmp_path / example
    path.write_text(text.replace("duration_s = 300.0", f"duration_s = {duration_s}.0"))
    return path


def assert_hedged_across_venues(outcome: BacktestOutcome, start: dict[str, int]) -> None:
    positions = outcome.summary.final_positions
    net = sum(positions[k] - start[k] for k in start)
    assert abs(net) < P("0.001"), positions


def test_synthetic_example_trades_hedged_and_repeatably(tmp_path: Path) -> None:
    config = shortened("xarb_synthetic.toml", tmp_path, 120)
    first = run_config(config, tmp_path)
    strategy = cast(CrossExchangeArbitrage, first.engine.strategy)
    assert strategy.groups > 20 and first.summary.fills >= 2 * strategy.groups
    assert first.summary.taker_fills == first.summary.fills
    assert_hedged_across_venues(first, {"simA:BTCUSDT": P("1"), "simB:BTCUSDT": P("1")})
    for iid in ("simA:BTCUSDT", "simB:BTCUSDT"):
        assert abs(first.summary.final_positions[iid] - P("1")) <= P("0.5")  # max_inventory
    assert all(r.clean for r in strategy.legs.results)
    assert first.report_path is not None and first.report_path.stat().st_size > 10_000
    assert any(name.startswith("edge_bps/") for name in first.series.extra_panels)
    assert any(name.startswith("basis_bps/") for name in first.series.extra_panels)
    second = run_config(config, tmp_path, report=False)
    assert second.summary.journal_sha256 == first.summary.journal_sha256


@pytest.mark.slow
def test_binance_spot_and_usdm_recordings(tmp_path: Path) -> None:
    files = [str(sample_path(SPOT_FILE)), str(sample_path(USDM_FILE))]
    outcome = run_config(EXAMPLES / "xarb_binance.toml", tmp_path, files)
    strategy = cast(CrossExchangeArbitrage, outcome.engine.strategy)
    assert strategy.groups > 0 and outcome.summary.fills > 0
    assert_hedged_across_venues(outcome, {"binance:BTCUSDT": P("1"), "binance_usdm:BTCUSDT": 0})
    # Only the spot BTC the account held could be sold.
    assert outcome.summary.final_positions["binance:BTCUSDT"] >= 0
    assert outcome.report_path is not None and outcome.report_path.exists()
    assert not outcome.errors


def _premium_books(engine: BacktestEngine, b_bid: str, b_ask: str) -> None:
    deliver(
        engine,
        [
            snapshot(A, START, [("60000.0", "5")], [("60000.1", "5")]),
            snapshot(B, START, [(b_bid, "5")], [(b_ask, "5")]),
        ],
    )


def test_learned_basis_trades_only_the_deviation() -> None:
    # simB trades ~10 bps above simA. Without fees that gap is an arbitrage to the fixed-basis
    # strategy, but the EMA mode learns it as the usual basis and waits for a deviation.
    free = SimSection(maker_fee="0", taker_fee="0")
    params = {**XARB, "min_edge_bps": "1", "order_qty": "0.1"}
    fixed_mode = two_venue_engine("xarb", params, sim=free)
    fixed_mode.strategy.on_start()
    _premium_books(fixed_mode, "60060.0", "60060.1")
    run_for(fixed_mode, 10 * MS)
    assert cast(CrossExchangeArbitrage, fixed_mode.strategy).groups == 1

    ema = {**params, "basis_mode": "ema", "basis_halflife_s": 1.0, "basis_warmup_s": 0.5}
    engine = two_venue_engine("xarb", ema, sim=free)
    strategy = cast(CrossExchangeArbitrage, engine.strategy)
    strategy.on_start()
    for _ in range(10):
        _premium_books(engine, "60060.0", "60060.1")
        run_for(engine, 100 * MS)
    assert strategy.groups == 0
    # log(60060.05 / 60000.05) = 9.995 bps
    assert strategy.basis(B) == pytest.approx(P("0.0009995"), rel=1e-3) and strategy.basis(A) == 0
    # simB moves 5 bps further up: about 4.6 bps beyond the (slowly following) basis.
    _premium_books(engine, "60090.0", "60090.1")
    run_for(engine, 10 * MS)
    assert strategy.groups == 1
    fills = sorted((f.instrument, f.side, f.price) for f in engine.series.fills)
    assert fills == [("simA:BTCUSDT", Side.BUY, P("60000.1")), ("simB:BTCUSDT", Side.SELL, P("60090.0"))]
    assert any(name.startswith("basis_bps/expected") for name in engine.series.extra_panels)


def test_context_fee_rates_come_from_the_venue_config() -> None:
    engine = two_venue_engine("xarb", XARB, sim=SimSection(maker_fee="-0.0001", taker_fee="0.0003"))
    assert engine.ctx.fee_rates(A) == (-100_000, 300_000)
    ctx = engine.ctx
    by_venue = StrategyContext(
        "S2", ctx.clock, engine.bus, engine.ids, ctx.instruments, engine.book_manager, engine.portfolio, engine.oms,
        fee_rates={"simA": (1, 2)},
    )  # fmt: skip
    assert by_venue.fee_rates(A) == (1, 2)
    with pytest.raises(LookupError, match="simB"):
        by_venue.fee_rates(B)
    bare = StrategyContext(
        "S3", ctx.clock, engine.bus, engine.ids, ctx.instruments, engine.book_manager, engine.portfolio, engine.oms
    )
    with pytest.raises(LookupError):
        bare.fee_rates(A)
