"""``tradeloop backtest``: choose the market (synthetic or recordings), run the node, report.

Progress is shown while the run goes; at the end a summary is printed and, when asked, an HTML
report is written. Malformed recording lines are reported with file and line and skipped (or stop
the run with ``strict``). A run with a report or a journal file also gets a run record
(``run.json`` next to the report, see :func:`~tradeloop.runtime.results.run_record_path`), which
``tradeloop report`` reads to compare runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tradeloop.core.config import ConfigError
from tradeloop.data.recording import LineIssue
from tradeloop.data.replay import RecordingReplay
from tradeloop.data.synthetic import SyntheticMarket
from tradeloop.model.book import SequenceRule
from tradeloop.model.data import MarketData
from tradeloop.model.enums import LiquiditySide
from tradeloop.model.instrument import Instrument
from tradeloop.persistence import open_journal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, load_backtest_config
from tradeloop.runtime.report import write_html_report
from tradeloop.runtime.results import (
    BookIntegrity,
    RunData,
    RunRecord,
    RunSeries,
    RunSummary,
    equity_curve,
    run_record_path,
    write_run_record,
)
from tradeloop.runtime.summary import render_summary


@dataclass
class BacktestRequest:
    config_path: Path | None = None
    strategy: str | None = None
    data: list[str] = field(default_factory=list)
    journal: str | None = None
    report: str | None = None
    seed: int | None = None
    strict: bool = False
    progress: bool = False
    check_invariants: bool = False


@dataclass
class BacktestOutcome:
    summary: RunSummary
    series: RunSeries
    engine: BacktestEngine
    report_path: Path | None
    errors: list[str] = field(default_factory=list)
    issues: list[LineIssue] = field(default_factory=list)
    record_path: Path | None = None


@dataclass
class MarketSource:
    items: Iterator[tuple[int, MarketData]]
    instruments: list[Instrument]
    sequence_rules: dict[str, SequenceRule]
    start_ns: int
    end_ns: int | None
    description: str
    replay: RecordingReplay | None = None


def prepare_config(request: BacktestRequest) -> BacktestConfig:
    config = load_backtest_config(request.config_path)
    if request.seed is not None:
        config = msgspec.structs.replace(
            config, seed=request.seed, synthetic=msgspec.structs.replace(config.synthetic, seed=request.seed)
        )
    if request.journal is not None:
        config = msgspec.structs.replace(config, journal=msgspec.structs.replace(config.journal, path=request.journal))
    if request.report is not None:
        config = msgspec.structs.replace(config, report=msgspec.structs.replace(config.report, path=request.report))
    if request.data:
        config = msgspec.structs.replace(config, data=msgspec.structs.replace(config.data, files=request.data))
    if request.strict:
        config = msgspec.structs.replace(config, data=msgspec.structs.replace(config.data, strict=True))
    return config


def open_market(config: BacktestConfig, issues: list[LineIssue]) -> MarketSource:
    """The synthetic market, or the configured recordings (with their first timestamp peeked)."""
    if not config.data.files:
        market = SyntheticMarket(config.synthetic)
        names = ", ".join(str(i.id) for i in market.instruments())
        return MarketSource(
            iter(market),
            market.instruments(),
            market.sequence_rules(),
            market.start_ns,
            market.end_ns,
            f"synthetic market (seed {config.synthetic.seed}, {config.synthetic.duration_s:g}s: {names})",
        )
    for f in config.data.files:
        if not Path(f).is_file():
            raise ConfigError(f"data file not found: {f}")
    replay = RecordingReplay(config.data.files, strict=config.data.strict, on_error=issues.append)
    instruments = replay.instruments()
    if not instruments:
        raise ConfigError(f"no known instrument found in {', '.join(config.data.files)}")
    items = iter(replay)
    first = next(items, None)
    if first is None:
        raise ConfigError("the recordings contain no market data")

    def chained() -> Iterator[tuple[int, MarketData]]:
        yield first
        yield from items

    files = ", ".join(Path(f).name for f in config.data.files)
    return MarketSource(chained(), instruments, replay.sequence_rules(), first[0], None, f"replay of {files}", replay)


def run_backtest(request: BacktestRequest, console: Console | None = None) -> BacktestOutcome:
    """Run one backtest as the CLI does; returns the summary, series and engine for inspection."""
    console = console or Console(stderr=True, quiet=True)
    config = prepare_config(request)
    issues: list[LineIssue] = []
    source = open_market(config, issues)
    journal = open_journal(config.journal.path)
    if journal.last_seq() > 0:
        raise ConfigError(f"journal {config.journal.path} already has records; use a new path per run")
    engine = BacktestEngine(
        config,
        source.instruments,
        source.start_ns,
        sequence_rules=source.sequence_rules,
        journal=journal,
        strategy_spec=request.strategy,
        check_invariants=request.check_invariants,
    )
    console.print(
        f"[bold]tradeloop backtest[/bold]: {source.description}; strategy {request.strategy or config.strategy.name}"
    )
    if request.progress:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[events]:>10,} events"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar:
            span = (source.end_ns - source.start_ns) if source.end_ns else None
            task = bar.add_task("backtest", total=span, events=0)

            def report_progress(n: int, ts: int) -> None:
                bar.update(task, completed=(ts - source.start_ns) if span else None, events=n)

            engine.run(source.items, report_progress)
            if span:
                bar.update(task, completed=span)
    else:
        engine.run(source.items)
    summary = build_summary(engine, config, request, source)
    journal.close()
    errors: list[str] = []
    for issue in issues:
        console.print(f"[yellow]skipped[/yellow] {issue}")
    for iid, integrity in summary.book_integrity.items():
        if integrity.gaps:
            errors.append(f"{iid}: {integrity.gaps} sequence gaps")
    report_path = None
    if config.report.path:
        report_path = write_html_report(summary, engine.series, config.report.path)
    record_path = run_record_path(config.report.path, config.journal.path)
    if record_path is not None:
        write_run_record(build_run_record(engine, config, request, source, summary, report_path), record_path)
    console.print(render_summary(summary))
    if report_path is not None:
        console.print(f"report: {report_path}")
    if record_path is not None:
        console.print(f"run record: {record_path}")
    return BacktestOutcome(summary, engine.series, engine, report_path, errors, issues, record_path)


def build_run_record(
    engine: BacktestEngine,
    config: BacktestConfig,
    request: BacktestRequest,
    source: MarketSource,
    summary: RunSummary,
    report_path: Path | None,
) -> RunRecord:
    """What ``run.json`` keeps of a run: summary, set-up (effective config) and equity curve."""
    return RunRecord(
        summary=summary,
        strategy=request.strategy or config.strategy.name,
        strategy_id=config.strategy.id,
        strategy_params=dict(config.strategy.params),
        seed=config.seed,
        data=RunData(description=source.description, files=list(config.data.files)),
        report_path=str(report_path) if report_path is not None else None,
        equity=equity_curve(engine.series),
        alert_counts=dict(sorted(Counter(kind for _, kind, _ in engine.series.alerts).items())),
        config=msgspec.to_builtins(config),
    )


def build_summary(
    engine: BacktestEngine, config: BacktestConfig, request: BacktestRequest, source: MarketSource
) -> RunSummary:
    p = engine.portfolio
    stats = engine.stats
    fills = engine.series.fills
    dd, dd_bps = engine.series.drawdown.result()
    integrity = {}
    for iid in sorted(engine.instruments):
        book = engine.book_manager.book(iid)
        counters = engine.book_manager.counters(iid) if book is not None else None
        integrity[str(iid)] = BookIntegrity(
            applied=counters.applied if counters else 0,
            gaps=counters.gaps if counters else 0,
            resyncs=counters.resyncs if counters else 0,
            valid_at_end=bool(book is not None and book.valid),
        )
    return RunSummary(
        strategy=request.strategy or config.strategy.name,
        seed=config.seed,
        data_source=source.description,
        start_ts=stats.first_ts,
        end_ts=stats.last_ts,
        events_processed=stats.events,
        wall_seconds=stats.wall_seconds,
        events_per_second=stats.events / stats.wall_seconds if stats.wall_seconds > 0 else 0.0,
        fills=len(fills),
        maker_fills=sum(1 for f in fills if f.liquidity is LiquiditySide.MAKER),
        taker_fills=sum(1 for f in fills if f.liquidity is LiquiditySide.TAKER),
        volume=p.volume(),
        fees=p.fees(),
        realized_pnl=p.realized_pnl(),
        unrealized_pnl=p.unrealized_pnl(),
        total_pnl=p.pnl(),
        max_drawdown=dd,
        max_drawdown_bps=dd_bps,
        final_positions={str(iid): pos.qty for iid, pos in sorted(p.positions.items())},
        journal_path=config.journal.path or ":memory:",
        journal_sha256=engine.journal.digest(),
        book_integrity=integrity,
        quote_currency=config.valuation,
        initial_equity=p.initial_equity if p.initial_equity is not None else p.equity() - p.pnl(),
    )
