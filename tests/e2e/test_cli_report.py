"""``tradeloop report`` as a user runs it: two backtests, then the comparison on the console, JSON, HTML."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from tradeloop.runtime.results import read_run_record
from tradeloop.runtime.summary import format_money

ENV = {**os.environ, "TRADELOOP__SYNTHETIC__DURATION_S": "20", "COLUMNS": "200"}


def tradeloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradeloop.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for name, seed in (("seed7", "7"), ("seed11", "11")):
        result = tradeloop(
            "backtest", "--no-progress", "--seed", seed, "--report", str(root / name / "report.html"),
            "--journal", str(root / name / "journal.sqlite"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"run record: {root / name / 'run.json'}" in result.stderr
    return root


def test_table_compares_the_runs(runs: Path) -> None:
    result = tradeloop("report", str(runs / "seed7"), str(runs / "seed11"))
    assert result.returncode == 0, result.stderr
    out = result.stderr
    a = read_run_record(runs / "seed7" / "run.json").summary
    b = read_run_record(runs / "seed11" / "run.json").summary
    assert a.journal_sha256 != b.journal_sha256
    for summary in (a, b):
        for expected in (
            format_money(summary.total_pnl),
            format_money(summary.fees),
            format_money(summary.volume),
            f"{summary.fills:,} ({summary.maker_fills:,}/{summary.taker_fills:,})",
            f"{summary.events_processed:,}",
            (summary.journal_sha256 or "")[:12],
        ):
            assert expected in out, expected
    assert re.search(r"seed7\s.*seed11", out)


def test_json_output_is_exact_and_on_stdout(runs: Path) -> None:
    result = tradeloop("report", "--json", str(runs / "seed7" / "run.json"), str(runs / "seed11" / "journal.sqlite"))
    assert result.returncode == 0, result.stderr
    data = msgspec.json.decode(result.stdout)
    a = read_run_record(runs / "seed7" / "run.json").summary
    b = read_run_record(runs / "seed11" / "run.json").summary
    first, second = data["runs"]
    assert (first["total_pnl"], first["volume"], first["max_drawdown"]) == (a.total_pnl, a.volume, a.max_drawdown)
    # The journal is matched to the run record next to it (same sha256), so every figure is known.
    assert second["total_pnl"] == b.total_pnl and second["journal_sha256"] == b.journal_sha256
    assert "verified" in second["note"]


def test_html_comparison_of_a_folder_of_runs(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    result = tradeloop("report", str(runs / "seed7" / "journal.sqlite"), str(tmp_path), "--html", str(out))
    # A folder without run records (here or one level down): a clear error, exit 2, nothing written.
    assert result.returncode == 2 and "not a run" in result.stderr and not out.exists()
    result = tradeloop("report", str(runs), "--html", str(out))  # the folder of run folders
    assert result.returncode == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 1
    assert html.index("<td>seed11</td>") < html.index("<td>seed7</td>")  # sorted by folder name


def test_a_path_that_is_not_a_run_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("x")
    result = tradeloop("report", str(junk))
    assert result.returncode == 2 and "not a run" in result.stderr and "junk.txt" in result.stderr
    result = tradeloop("report", str(tmp_path / "nope"))
    assert result.returncode == 2 and "no such file" in result.stderr
