from __future__ import annotations

from pathlib import Path

import msgspec

from tradeloop.runtime.config import load_backtest_config
from tradeloop.runtime.runner import BacktestRequest, run_backtest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "backtest.toml"


def test_example_config_decodes_and_runs(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = load_backtest_config(EXAMPLE)
    assert config.venue("simA").balances_fixed()["USDT"] == 100_000 * 10**9
    assert config.strategy.params["order_qty"] == "0.01"
    monkeypatch.setenv("TRADELOOP__SYNTHETIC__DURATION_S", "15")
    monkeypatch.setenv("TRADELOOP__JOURNAL__PATH", str(tmp_path / "j.sqlite"))
    monkeypatch.setenv("TRADELOOP__REPORT__PATH", str(tmp_path / "r.html"))
    run = run_backtest(BacktestRequest(config_path=EXAMPLE))
    assert run.summary.events_processed > 0 and (tmp_path / "r.html").exists()
    assert msgspec.to_builtins(config)["risk"]["max_position"] == "2"
