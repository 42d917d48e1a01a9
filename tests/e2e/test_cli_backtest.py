"""``tradeloop backtest`` as a user runs it: a subprocess, files on disk, exit codes and output."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import sample_path

SHORT = {"TRADELOOP__SYNTHETIC__DURATION_S": "20"}


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **SHORT, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tradeloop.cli", "backtest", "--no-progress", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def journal_sha(output: str) -> str:
    flat = re.sub(r"[│\s]", "", output)
    match = re.search(r"Journalsha256([0-9a-f]{64})", flat)
    assert match, output
    return match.group(1)


def test_default_run_writes_report_and_journal(tmp_path: Path) -> None:
    result = run_cli("--journal", str(tmp_path / "j.sqlite"), "--report", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.html").stat().st_size > 20_000
    assert (tmp_path / "j.sqlite").stat().st_size > 0
    assert "Fills" in result.stderr and "Max drawdown" in result.stderr and "Events/s" in result.stderr


def test_same_seed_same_journal_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    a = run_cli("--journal", str(tmp_path / "a.sqlite"), env={"PYTHONHASHSEED": "1"})
    b = run_cli("--journal", str(tmp_path / "b.sqlite"), env={"PYTHONHASHSEED": "2"})
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert journal_sha(a.stderr) == journal_sha(b.stderr)
    assert (tmp_path / "a.sqlite").read_bytes() == (tmp_path / "b.sqlite").read_bytes()
    c = run_cli("--seed", "99")
    assert journal_sha(c.stderr) != journal_sha(a.stderr)


def test_invalid_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[risk]\nmax_ordr_qty = "1"\n')
    result = run_cli("--config", str(config))
    assert result.returncode == 2
    assert "max_ordr_qty" in result.stderr and "config error" in result.stderr
    config.write_text('[venues.simA]\nbalances = { USDT = "lots" }\n')
    result = run_cli("--config", str(config))
    assert result.returncode == 2 and "balances" in result.stderr


def test_unknown_strategy_is_a_clear_error() -> None:
    result = run_cli("--strategy", "no_such_strategy")
    assert result.returncode == 2 and "unknown strategy 'no_such_strategy'" in result.stderr


def _broken_recording(tmp_path: Path) -> Path:
    src = sample_path("marketdata/binance_spot_btcusdt_20240808.gz")
    with gzip.open(src, "rt") as f:
        lines = f.read().splitlines()[:3000]
    lines.insert(500, 'not-a-timestamp {"stream":"btcusdt@trade"}')
    lines.insert(900, lines[901][: len(lines[901]) // 2])  # truncated JSON
    path = tmp_path / "broken.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_malformed_lines_are_reported_with_file_and_line_and_skipped(tmp_path: Path) -> None:
    path = _broken_recording(tmp_path)
    result = run_cli("--data", str(path))
    assert result.returncode == 0, result.stderr
    assert "broken.gz:501" in result.stderr and "broken.gz:901" in result.stderr
    assert "skipped" in result.stderr


def test_strict_mode_stops_at_the_first_malformed_line(tmp_path: Path) -> None:
    path = _broken_recording(tmp_path)
    result = run_cli("--data", str(path), "--strict")
    assert result.returncode != 0
    assert "broken.gz:501" in result.stderr
