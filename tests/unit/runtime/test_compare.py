"""Comparing runs: loading run records and journals, the figures, the table, JSON and HTML."""

from __future__ import annotations

import base64
import re
import shutil
import sqlite3
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from tests.unit.runtime.test_report import SEC, T0, fixed_summary
from tradeloop.runtime.compare import NotARun, comparison_json, load_runs, summarize_journal
from tradeloop.runtime.compare_page import comparison_rows, comparison_table, write_comparison_html
from tradeloop.runtime.results import EquityCurve, RunData, RunRecord, read_run_record, write_run_record
from tradeloop.runtime.runner import BacktestOutcome, BacktestRequest, run_backtest


def _record(strategy: str, **summary: object) -> RunRecord:
    return RunRecord(
        summary=fixed_summary(**summary),
        strategy=strategy,
        strategy_id="S1",
        seed=int(str(summary.get("seed", 42))),
        data=RunData(description=f"data for {strategy}"),
        equity=EquityCurve([T0, T0 + SEC, T0 + 2 * SEC], [10**14, 10**14 - 10**11, 10**14 + 2 * 10**11]),
        alert_counts={"leg_risk": 2, "risk.drawdown": 1},
    )


@pytest.fixture
def two_records(tmp_path: Path) -> tuple[Path, Path]:
    a = write_run_record(
        _record("alpha", total_pnl=1_234_567_890_123, initial_equity=10**14, seed=1), tmp_path / "alpha" / "run.json"
    )
    b = write_run_record(
        _record("beta", total_pnl=-5 * 10**9, fees=10**9, initial_equity=10**14, seed=2, journal_sha256="cd" * 32),
        tmp_path / "beta.run.json",
    )
    return a, b


def test_rows_carry_the_records_numbers(two_records: tuple[Path, Path], tmp_path: Path) -> None:
    runs = load_runs([tmp_path / "alpha", two_records[1]])
    assert [r.row.label for r in runs] == ["alpha", "beta"]
    a, b = (r.row for r in runs)
    assert (a.strategy, a.seed, a.total_pnl, a.fees, a.alerts) == ("alpha", 1, 1_234_567_890_123, 4_005_000_000, 3)
    assert (b.strategy, b.seed, b.total_pnl, b.fees) == ("beta", 2, -5 * 10**9, 10**9)
    assert a.return_nanos == 12_345_679  # 1,234.567890123 / 100,000 = 1.2345678...% -> nanos, half-even
    assert b.return_nanos == -50_000  # -5 / 100,000
    assert runs[0].curve is not None and runs[0].curve.equity[1] == 10**14 - 10**11


def test_formatted_figures(two_records: tuple[Path, Path], tmp_path: Path) -> None:
    runs = load_runs(list(two_records))
    table = {label: cells for label, cells, _ in comparison_rows(runs)}
    assert table["Strategy"] == ["alpha", "beta"]
    assert table["Total PnL, net (USDT)"] == ["1,234.57", "-5.00"]
    assert table["Fees (USDT)"] == ["4.00", "1.00"]
    assert table["Return"] == ["1.2346%", "-0.0050%"]
    assert table["Max drawdown (USDT)"] == ["322.00 (12.34%)", "322.00 (12.34%)"]
    assert table["Fills (maker/taker)"] == ["12 (9/3)", "12 (9/3)"]
    assert table["Engine time"] == ["01:02:03", "01:02:03"]
    assert table["Journal sha256"] == ["0f" * 6, "cd" * 6]
    console = Console(record=True, width=200, color_system=None)
    console.print(comparison_table(runs))
    text = console.export_text()
    for expected in ("alpha", "beta", "1,234.57", "-5.00", "1.2346%", "0f0f0f0f0f0f"):
        assert expected in text


def test_mixed_currencies_label_each_cell(tmp_path: Path) -> None:
    write_run_record(_record("a", quote_currency="USDT"), tmp_path / "a.run.json")
    write_run_record(_record("b", quote_currency="USDC"), tmp_path / "b.run.json")
    table = {label: cells for label, cells, _ in comparison_rows(load_runs([tmp_path]))}
    assert table["Fees"] == ["4.00 USDT", "4.00 USDC"]


def test_json_is_exact(two_records: tuple[Path, Path]) -> None:
    data = msgspec.json.decode(comparison_json(load_runs(list(two_records))))
    assert data["scale"] == 10**9
    assert [r["total_pnl"] for r in data["runs"]] == [1_234_567_890_123, -5 * 10**9]
    assert data["runs"][1]["journal_sha256"] == "cd" * 32


def test_html_page_has_table_and_overlay(two_records: tuple[Path, Path], tmp_path: Path) -> None:
    out = write_comparison_html(load_runs(list(two_records)), tmp_path / "cmp" / "index.html")
    html = out.read_text(encoding="utf-8")
    assert html.count("<tr>") == 3  # header + two runs
    assert '<td class="n pos">1,234.57</td>' in html and '<td class="n neg">-5.00</td>' in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(b"\x89PNG")
    assert "<script" not in html and "http" not in html


def test_duplicate_labels_are_made_distinct(two_records: tuple[Path, Path]) -> None:
    runs = load_runs([two_records[0], two_records[0]])
    assert [r.row.label for r in runs] == ["alpha", "alpha (2)"]


def test_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARun, match="no such file"):
        load_runs([tmp_path / "missing"])
    with pytest.raises(NotARun, match=r"no run\.json"):
        load_runs([tmp_path / "empty"])
    (tmp_path / "empty" / "sub").mkdir()
    with pytest.raises(NotARun, match=r"no run\.json .* or its subfolders"):
        load_runs([tmp_path / "empty"])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(NotARun, match="not a run"):
        load_runs([text])
    other = tmp_path / "other.json"
    other.write_text('{"format": "x"}')
    with pytest.raises(NotARun, match="not a tradeloop run record"):
        load_runs([other])
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    before = db.read_bytes()
    with pytest.raises(NotARun, match="not a tradeloop journal"):
        load_runs([db])
    assert db.read_bytes() == before  # opened read-only
    with pytest.raises(NotARun, match="no runs"):
        load_runs([])


# -- a real run -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BacktestOutcome]:
    root = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRADELOOP__SYNTHETIC__DURATION_S", "20")
    try:
        outcome = run_backtest(
            BacktestRequest(journal=str(root / "demo" / "journal.sqlite"), report=str(root / "demo" / "report.html"))
        )
    finally:
        mp.undo()
    return root, outcome


def test_run_record_is_written_next_to_the_report(real_run: tuple[Path, BacktestOutcome]) -> None:
    root, outcome = real_run
    assert outcome.record_path == root / "demo" / "run.json"
    record = read_run_record(root / "demo" / "run.json")
    assert record.summary == outcome.summary
    assert outcome.summary.fills > 0
    assert record.strategy == "market_making" and record.seed == 7
    assert record.config["synthetic"]["duration_s"] == 20.0
    p = outcome.engine.portfolio
    assert record.summary.initial_equity == p.equity() - p.pnl()
    assert record.equity.ts[0] == outcome.series.ts[0] and record.equity.equity[-1] == outcome.series.equity[-1]


def test_journal_alone_gives_the_same_exact_figures(real_run: tuple[Path, BacktestOutcome], tmp_path: Path) -> None:
    root, outcome = real_run
    s = outcome.summary
    lone = tmp_path / "journal.sqlite"
    shutil.copy(root / "demo" / "journal.sqlite", lone)  # no run record next to this copy
    row, digest = summarize_journal(lone)
    assert digest == s.journal_sha256
    assert (row.fills, row.maker_fills, row.taker_fills) == (s.fills, s.maker_fills, s.taker_fills)
    assert (row.volume, row.fees, row.realized_pnl) == (s.volume, s.fees, s.realized_pnl)
    assert row.initial_equity == s.initial_equity
    assert row.origin == "journal" and row.strategy == "strategy id S1"
    assert row.total_pnl is None and row.unrealized_pnl is None  # positions are open: no end marks in a journal
    assert "no end-of-run marks" in row.note
    (loaded,) = load_runs([lone])
    assert loaded.row == msgspec.structs.replace(row, label="journal") and loaded.curve is None


def test_journal_next_to_its_record_is_verified_and_complete(real_run: tuple[Path, BacktestOutcome]) -> None:
    root, outcome = real_run
    (loaded,) = load_runs([root / "demo" / "journal.sqlite"])
    assert loaded.row.origin == "run record" and "verified against run.json" in loaded.row.note
    assert loaded.row.total_pnl == outcome.summary.total_pnl and loaded.curve is not None


def test_journal_with_a_stale_record_falls_back_to_the_journal(
    real_run: tuple[Path, BacktestOutcome], tmp_path: Path
) -> None:
    root, outcome = real_run
    journal = tmp_path / "journal.sqlite"
    shutil.copy(root / "demo" / "journal.sqlite", journal)
    record = read_run_record(root / "demo" / "run.json")
    stale = msgspec.structs.replace(
        record, summary=msgspec.structs.replace(record.summary, journal_path=str(journal), journal_sha256="00" * 32)
    )
    write_run_record(stale, tmp_path / "run.json")
    (loaded,) = load_runs([journal])
    assert loaded.row.origin == "journal" and "run.json names this journal but its sha256 differs" in loaded.row.note
    assert loaded.row.fees == outcome.summary.fees


def test_journal_beside_a_folder_of_the_same_name_finds_its_record(
    real_run: tuple[Path, BacktestOutcome], tmp_path: Path
) -> None:
    # The `make demo`-like layout: --journal runs/x.sqlite --report runs/x/report.html
    root, outcome = real_run
    journal = tmp_path / "x.sqlite"
    shutil.copy(root / "demo" / "journal.sqlite", journal)
    record = read_run_record(root / "demo" / "run.json")
    moved = msgspec.structs.replace(record, summary=msgspec.structs.replace(record.summary, journal_path=str(journal)))
    write_run_record(moved, tmp_path / "x" / "run.json")
    (loaded,) = load_runs([journal])
    assert loaded.row.origin == "run record" and loaded.row.total_pnl == outcome.summary.total_pnl
