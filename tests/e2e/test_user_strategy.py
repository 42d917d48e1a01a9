"""Strategies from outside tradeloop: the example file strategy and the example entry-point plugin."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import IID, START, book_snapshot, feed, instrument, trade
from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import LiquiditySide, Side
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, StrategySection, VenueSection
from tradeloop.runtime.results import read_run_record
from tradeloop.strategies.loader import ENTRY_POINT_GROUP, load_strategy_class

EXAMPLES = ROOT / "examples"
PLUGIN = EXAMPLES / "plugin"
SPEC = "examples/user_strategy.py:TradeFlowMomentum"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "TRADELOOP__SYNTHETIC__DURATION_S": "40", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tradeloop.cli", "backtest", "--no-progress", *args],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip


def test_example_user_strategy_runs_from_its_file_and_trades(tmp_path: Path) -> None:
    report = tmp_path / "flow" / "report.html"
    result = run_cli("--strategy", SPEC, "--config", "examples/user_strategy.toml", "--report", str(report))
    assert result.returncode == 0, result.stderr
    record = read_run_record(tmp_path / "flow" / "run.json")
    s = record.summary
    assert record.strategy == SPEC and s.strategy == SPEC
    assert s.fills > 0 and s.taker_fills == s.fills  # a taker: every fill took liquidity
    assert record.strategy_params["max_position"] == "0.02"
    # It flattens at the stop: the traded instrument ends at the starting holdings (1 BTC by default).
    assert s.final_positions["simA:BTCUSDT"] == fixed.from_int(1)
    html = report.read_text(encoding="utf-8")
    assert 'id="extras"' in html and "trade flow" in html


def flow_engine(**params: object) -> BacktestEngine:
    """A one-instrument node (simA:BTCUSDT, tick 0.01) running the example strategy from its file."""
    config = BacktestConfig(
        venues={"simA": VenueSection(balances={"USDT": "100000", "BTC": "2"})},
        strategy=StrategySection(params=params),
    )
    return BacktestEngine(
        config, [instrument()], START, sequence_rules={"simA": SequenceRule.RANGE}, journal=MemoryJournal(),
        strategy_spec=str(EXAMPLES / "user_strategy.py") + ":TradeFlowMomentum", check_invariants=True,
    )  # fmt: skip


def test_flow_imbalance_decays_with_the_half_life() -> None:
    engine = flow_engine(half_life_ms=1000)
    strategy = engine.strategy
    t0 = START + 10**9
    feed(engine, [book_snapshot(t0), trade(t0, "100.05", "1", Side.BUY)])
    assert strategy.imbalance() == 1.0  # type: ignore[attr-defined]
    feed(engine, [trade(t0 + 10**9, "100.00", "1", Side.SELL)])
    # One half-life later the buy volume weighs 0.5: (0.5 - 1) / (0.5 + 1) = -1/3.
    assert strategy.imbalance() == pytest.approx(-1 / 3)  # type: ignore[attr-defined]


def test_example_takes_liquidity_when_the_flow_leans() -> None:
    engine = flow_engine(order_qty="0.1", max_position="0.1", entry=0.5, exit=0.1)
    engine.strategy.on_start()
    t0 = START + 10**9
    # Aggressive buying; then a second of decisions (every 250 ms) and replies.
    feed(engine, [book_snapshot(t0), *(trade(t0 + i, "100.10", "0.5", Side.BUY) for i in range(5))])
    fills = engine.series.fills
    assert [(f.side, f.qty, f.liquidity) for f in fills] == [(Side.BUY, fixed.parse("0.1"), LiquiditySide.TAKER)]
    assert fills[0].price == fixed.parse("100.10")  # the best ask, inside the slippage limit
    assert engine.portfolio.position_qty(IID) == fixed.parse("2.1")  # long max_position from the start


# -- the plugin, found by entry point -------------------------------------------------------------


def _declared_entry_points() -> dict[str, str]:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return dict(project["entry-points"][ENTRY_POINT_GROUP])


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[Path]:
    """The plugin as pip would lay it out: its package on the path, plus a dist-info whose
    ``entry_points.txt`` is generated from the plugin's own ``pyproject.toml``."""
    dist = tmp_path / "site" / "tradeloop_example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tradeloop-example-plugin\nVersion: 0.1.0\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in _declared_entry_points().items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    paths = [str(tmp_path / "site"), str(PLUGIN / "src")]
    sys.path[:0] = paths
    importlib.invalidate_caches()
    try:
        yield tmp_path / "site"
    finally:
        for p in paths:
            sys.path.remove(p)
        sys.modules.pop("tradeloop_example_plugin", None)
        importlib.invalidate_caches()


def test_plugin_declares_its_strategy() -> None:
    assert _declared_entry_points() == {"example_grid": "tradeloop_example_plugin:GridQuoter"}


def test_entry_point_is_found_by_name(installed_plugin: Path) -> None:
    cls = load_strategy_class("example_grid")
    assert cls.__name__ == "GridQuoter" and cls.__module__ == "tradeloop_example_plugin"
    assert Path(sys.modules[cls.__module__].__file__ or "").is_relative_to(PLUGIN / "src")


def test_without_the_plugin_the_name_is_unknown() -> None:
    from tradeloop.strategies.loader import StrategyNotFound

    with pytest.raises(StrategyNotFound, match="unknown strategy 'example_grid'"):
        load_strategy_class("example_grid")


def test_plugin_strategy_runs_by_name(installed_plugin: Path) -> None:
    pythonpath = os.pathsep.join([str(installed_plugin), str(PLUGIN / "src")])
    result = run_cli("--strategy", "example_grid", env={"PYTHONPATH": pythonpath})
    assert result.returncode == 0, result.stderr
    assert "example_grid" in result.stderr and "(maker " in result.stderr


def test_grid_prices_are_exact_and_away_from_the_centre(installed_plugin: Path) -> None:
    from tradeloop_example_plugin import grid_prices

    tick = fixed.parse("0.1")
    bids, asks = grid_prices(fixed.parse("60000"), tick, 3, 2)
    # 60000 x (1 -/+ k x 0.0002): 59988, 59976, 59964 / 60012, 60024, 60036, already on the tick grid.
    assert bids == [fixed.parse(v) for v in ("59988", "59976", "59964")]
    assert asks == [fixed.parse(v) for v in ("60012", "60024", "60036")]
    bids, asks = grid_prices(fixed.parse("100.05"), tick, 1, 3)  # 100.019985 / 100.080015
    assert (bids, asks) == ([fixed.parse("100.0")], [fixed.parse("100.1")])
