"""Compare runs: load run records (or journals) and lay their numbers side by side.

A run is named by a folder holding ``run.json`` (or ``*.run.json`` files), a run record file, or a
SQLite journal; a folder without records stands for the run folders in it (``runs/``).

A journal is matched to the run record that names it and carries its sha256 (in the journal's
folder, or in the folder named like it). Without one, its numbers are rebuilt from the journal
alone (:func:`~tradeloop.trading.rebuild.rebuild_state`): fills, volume, fees and realized PnL are
exact, but a journal does not hold end-of-run marks, so unrealized and total PnL (and drawdown and
return) are unknown unless every position is flat.

Every amount stays ``int`` nanos here; formatting is exact (:mod:`tradeloop.runtime.summary`).
The console table and the HTML page are in :mod:`tradeloop.runtime.compare_page`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from tradeloop.model.enums import LiquiditySide
from tradeloop.model.events import InstrumentAdded, OrderFilled, OrderInitialized
from tradeloop.persistence import JournalError, JournalRecord, SQLiteJournal
from tradeloop.runtime.results import (
    RUN_RECORD_NAME,
    RUN_RECORD_SUFFIX,
    EquityCurve,
    RunRecord,
    RunRecordError,
    read_run_record,
)
from tradeloop.trading.rebuild import RebuildError, rebuild_state

__all__ = [
    "ComparisonRow",
    "LoadedRun",
    "NotARun",
    "comparison_json",
    "load_runs",
    "row_from_record",
    "summarize_journal",
]

_SQLITE_MAGIC = b"SQLite format 3\x00"


class NotARun(ValueError):
    """A path given as a run is not one (no run record, not a journal, unreadable)."""


class ComparisonRow(msgspec.Struct, frozen=True, kw_only=True):
    """One run's line in a comparison. Money is ``int`` quote nanos; ``None`` means unknown.

    ``origin`` is ``"run record"`` or ``"journal"`` (numbers rebuilt from the journal alone).
    ``return_nanos`` is total PnL / initial equity as a fraction in nanos (``10**9`` = 100 %).
    """

    label: str
    source: str
    origin: str
    strategy: str
    data: str | None
    seed: int | None
    start_ts: int | None
    end_ts: int | None
    events: int | None
    fills: int
    maker_fills: int
    taker_fills: int
    volume: int
    fees: int
    realized_pnl: int
    unrealized_pnl: int | None
    total_pnl: int | None
    max_drawdown: int | None
    max_drawdown_bps: int | None
    initial_equity: int | None
    return_nanos: int | None
    alerts: int | None
    quote_currency: str
    journal_sha256: str | None
    note: str = ""


@dataclass(frozen=True)
class LoadedRun:
    """A run ready to compare: its row, and its equity curve when its record has one."""

    row: ComparisonRow
    curve: EquityCurve | None = None


def row_from_record(record: RunRecord, label: str, source: str, note: str = "") -> ComparisonRow:
    """The comparison row of a run record (every figure known)."""
    s = record.summary
    return ComparisonRow(
        label=label,
        source=source,
        origin="run record",
        strategy=record.strategy,
        data=record.data.description,
        seed=record.seed,
        start_ts=s.start_ts,
        end_ts=s.end_ts,
        events=s.events_processed,
        fills=s.fills,
        maker_fills=s.maker_fills,
        taker_fills=s.taker_fills,
        volume=s.volume,
        fees=s.fees,
        realized_pnl=s.realized_pnl,
        unrealized_pnl=s.unrealized_pnl,
        total_pnl=s.total_pnl,
        max_drawdown=s.max_drawdown,
        max_drawdown_bps=s.max_drawdown_bps,
        initial_equity=s.initial_equity,
        return_nanos=s.return_nanos(),
        alerts=sum(record.alert_counts.values()),
        quote_currency=s.quote_currency,
        journal_sha256=s.journal_sha256,
        note=note,
    )


# -- journals -------------------------------------------------------------------------------------


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


@dataclass
class _JournalFacts:
    """What one pass over a journal notices besides the rebuilt state."""

    first_ts: int | None = None
    last_ts: int | None = None
    strategy_ids: set[str] | None = None
    maker: int = 0
    taker: int = 0

    def tap(self, records: Iterator[tuple[int, int, JournalRecord]]) -> Iterator[JournalRecord]:
        known: set[str] = set()
        self.strategy_ids = set()
        for _, ts, record in records:
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
            if isinstance(record, OrderInitialized):
                known.add(record.client_order_id)
                self.strategy_ids.add(record.strategy_id)
            elif isinstance(record, OrderFilled) and record.client_order_id in known:
                if record.liquidity is LiquiditySide.MAKER:
                    self.maker += 1
                else:
                    self.taker += 1
            yield record


def summarize_journal(path: str | Path, label: str | None = None) -> tuple[ComparisonRow, str]:
    """Rebuild a run's figures from its journal alone; returns ``(row, journal sha256)``.

    Exact: fills (maker/taker), volume, fees, realized PnL, initial equity (the journal holds the
    first mark of every instrument). Unknown (``None``): events, seed, the market, and, unless every
    position is flat at the end, unrealized and total PnL, drawdown and return.
    """
    src = Path(path)
    try:
        journal = SQLiteJournal(src, readonly=True)
    except JournalError as exc:
        raise NotARun(f"{src}: not a tradeloop journal ({exc})") from None
    try:
        digest = journal.digest()
        records = journal.read()
        first = next(records, None)
        if first is None:
            raise NotARun(f"{src}: the journal is empty")
        valuation = first[2].instrument.quote if isinstance(first[2], InstrumentAdded) else "USDT"
        instruments: list[str] = []
        facts = _JournalFacts()

        def with_instruments() -> Iterator[JournalRecord]:
            for record in facts.tap(itertools.chain([first], records)):
                if isinstance(record, InstrumentAdded):
                    instruments.append(str(record.instrument.id))
                yield record

        state = rebuild_state(with_instruments(), valuation=valuation)
    except (JournalError, RebuildError) as exc:
        raise NotARun(f"{src}: cannot rebuild the journal: {exc}") from None
    finally:
        journal.close()
    p = state.portfolio
    assert p is not None  # rebuild_state always returns a portfolio
    flat = all(pos.qty == 0 for pos in p.positions.values())
    unrealized = 0 if flat else None
    total = p.realized_pnl() - p.fees() if flat else None
    ids = ", ".join(sorted(facts.strategy_ids or ())) or "none"
    note = "rebuilt from the journal alone"
    if not flat:
        note += "; it holds no end-of-run marks, so unrealized and total PnL are unknown (use its run.json)"
    row = ComparisonRow(
        label=label or src.stem,
        source=str(src),
        origin="journal",
        strategy=f"strategy id {ids}",
        data="journal of " + ", ".join(instruments) if instruments else None,
        seed=None,
        start_ts=facts.first_ts,
        end_ts=facts.last_ts,
        events=None,
        fills=p.fill_count,
        maker_fills=facts.maker,
        taker_fills=facts.taker,
        volume=p.volume(),
        fees=p.fees(),
        realized_pnl=p.realized_pnl(),
        unrealized_pnl=unrealized,
        total_pnl=total,
        max_drawdown=None,
        max_drawdown_bps=None,
        initial_equity=p.initial_equity,
        return_nanos=None,
        alerts=None,
        quote_currency=valuation,
        journal_sha256=digest,
        note=note,
    )
    return row, digest


def _records_naming(journal: Path) -> list[tuple[Path, RunRecord]]:
    """Run records that name this journal file, in its folder or in the folder named like it
    (``runs/x.sqlite`` with ``runs/x/report.html`` puts the record in ``runs/x/``)."""
    target = journal.resolve()
    found: list[tuple[Path, RunRecord]] = []
    candidates: list[Path] = []
    for folder in (journal.parent, journal.parent / journal.stem):
        candidates += [folder / RUN_RECORD_NAME, *sorted(folder.glob("*" + RUN_RECORD_SUFFIX))]
    for candidate in candidates:
        if not candidate.is_file():
            continue
        try:
            record = read_run_record(candidate)
        except RunRecordError:
            continue
        named = record.summary.journal_path
        if named and "://" not in named and named != ":memory:" and Path(named).resolve() == target:
            found.append((candidate, record))
    return found


def _load_journal(path: Path, label: str) -> LoadedRun:
    row, digest = summarize_journal(path, label)
    records = _records_naming(path)
    for record_path, record in records:
        if record.summary.journal_sha256 == digest:
            note = f"journal sha256 verified against {record_path.name}"
            return LoadedRun(row_from_record(record, label, str(path), note), record.equity)
    if records:
        names = ", ".join(p.name for p, _ in records)
        row = msgspec.structs.replace(row, note=row.note + f"; {names} names this journal but its sha256 differs")
    return LoadedRun(row)


# -- loading --------------------------------------------------------------------------------------


def _record_label(path: Path) -> str:
    if path.name == RUN_RECORD_NAME:
        return path.resolve().parent.name or "run"
    if path.name.endswith(RUN_RECORD_SUFFIX):
        return path.name[: -len(RUN_RECORD_SUFFIX)]
    return path.stem


def _load_record(path: Path) -> LoadedRun:
    try:
        record = read_run_record(path)
    except RunRecordError as exc:
        raise NotARun(str(exc)) from None
    return LoadedRun(row_from_record(record, _record_label(path), str(path)), record.equity)


def _records_in(folder: Path) -> list[Path]:
    records = [folder / RUN_RECORD_NAME] if (folder / RUN_RECORD_NAME).is_file() else []
    return records + sorted(folder.glob("*" + RUN_RECORD_SUFFIX))


def _load_path(path: Path) -> list[LoadedRun]:
    if path.is_dir():
        records = _records_in(path)
        if not records:  # a folder of run folders, e.g. runs/
            records = [r for sub in sorted(p for p in path.iterdir() if p.is_dir()) for r in _records_in(sub)]
        if not records:
            raise NotARun(f"{path}: no {RUN_RECORD_NAME} or *{RUN_RECORD_SUFFIX} in this folder or its subfolders")
        return [_load_record(p) for p in records]
    if not path.exists():
        raise NotARun(f"{path}: no such file or folder")
    if _is_sqlite(path):
        return [_load_journal(path, path.stem)]
    if path.suffix == ".json":
        return [_load_record(path)]
    raise NotARun(f"{path}: not a run (expected a run folder, a run.json or a SQLite journal)")


def _unique_labels(runs: list[LoadedRun]) -> list[LoadedRun]:
    seen: dict[str, int] = {}
    out: list[LoadedRun] = []
    for run in runs:
        label = run.row.label
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} ({seen[label]})"
            run = LoadedRun(msgspec.structs.replace(run.row, label=label), run.curve)
        out.append(run)
    return out


def load_runs(paths: Sequence[str | Path]) -> list[LoadedRun]:
    """Load every run named by ``paths`` (folders may hold several), in order, with distinct labels.

    Raises :class:`NotARun` for the first path that is not a run.
    """
    if not paths:
        raise NotARun("no runs given")
    runs: list[LoadedRun] = []
    for p in paths:
        runs.extend(_load_path(Path(p)))
    return _unique_labels(runs)


def comparison_json(runs: Sequence[LoadedRun]) -> bytes:
    """Machine-readable comparison: ``{"scale": 10**9, "runs": [row, ...]}``, money in int nanos."""
    return msgspec.json.encode({"scale": 1_000_000_000, "runs": [r.row for r in runs]})
