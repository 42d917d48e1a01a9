"""Backtest cost per book delta, with a strategy callback per message, as a ratio to ``orjson.loads``.

Measured: the whole backtest node (``BacktestEngine.run``) over the depth stream of the Binance spot
recording, starting from the raw bytes: ``BinanceParser.parse`` -> simulated venue (its own book,
queue bookkeeping) -> ``BookManager`` (sequence rule, integrity checks) -> bus -> a strategy whose
``on_book`` reads the best bid and ask of every book it is given, -> portfolio marks. The OMS,
risk, execution engine, journal and sampling timer are all wired, as in ``tradeloop backtest``.
Floor: ``orjson.loads`` of the same payloads.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
from harness import Benchmark, Case, Timed, register
from samples import BINANCE_SPOT_RECORDING, read_recording

from tradeloop.model.book import OrderBook, SequenceRule
from tradeloop.model.data import MarketData
from tradeloop.model.identifiers import InstrumentId
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig
from tradeloop.strategies.base import Strategy, StrategyConfig
from tradeloop.venues.binance.parse import BinanceParser
from tradeloop.venues.binance.spec import VENUE_SPOT, get_instrument

TARGET_RATIO = 8.0
INSTRUMENT = InstrumentId(VENUE_SPOT, "BTCUSDT")


class TopOfBookReader(Strategy[StrategyConfig]):
    """The per-message strategy callback of the benchmark: read best bid and ask."""

    def on_start(self) -> None:
        self.reads = 0
        self.last: tuple[int | None, int | None] = (None, None)

    def on_book(self, book: OrderBook) -> None:
        self.last = (book.best_bid(), book.best_ask())
        self.reads += 1


def _source(messages: list[tuple[int, bytes]]) -> Iterator[tuple[int, MarketData]]:
    parse = BinanceParser(VENUE_SPOT, "BTCUSDT").parse
    for ts, payload in messages:
        item = parse(payload, ts)
        if item is not None:
            yield ts, item


def _engine(strategy: str) -> BacktestEngine:
    return BacktestEngine(
        BacktestConfig(),
        [get_instrument(INSTRUMENT)],
        0,
        sequence_rules={VENUE_SPOT: SequenceRule.RANGE},
        journal=MemoryJournal(),
        strategy_spec=strategy,
    )


def _setup(strategy: str, depth_only: bool) -> Case:
    recording = read_recording(BINANCE_SPOT_RECORDING)
    if depth_only:
        messages = [m for m in recording if b"@depth" in m[1][:40] or m[1].startswith(b'{"lastUpdateId"')]
    else:
        messages = recording
    n_deltas = sum(1 for _, p in messages if b"@depth" in p[:40])

    def prepare_floor() -> Timed:
        loads = orjson.loads

        def floor() -> None:
            for _, payload in messages:
                loads(payload)

        return floor

    def prepare_measured() -> Timed:
        engine = _engine(strategy)
        engine.clock.set_time(messages[0][0])

        def measured() -> BacktestEngine:
            engine.run(_source(messages))
            return engine

        return measured

    def verify(result: object) -> list[str]:
        assert isinstance(result, BacktestEngine)
        counters = result.book_manager.counters(INSTRUMENT)
        problems = []
        if counters.gaps:
            problems.append(f"{counters.gaps} sequence gaps")
        book = result.book_manager.book(INSTRUMENT)
        if book is None or not book.valid:
            problems.append("book invalid at the end")
        if isinstance(result.strategy, TopOfBookReader) and result.strategy.reads < counters.applied:
            problems.append(f"strategy saw {result.strategy.reads} books for {counters.applied} deltas")
        return problems

    return Case(
        prepare_floor,
        prepare_measured,
        len(messages),
        {"deltas": n_deltas, "strategy": strategy, "messages": "depth only" if depth_only else "all"},
        verify,
    )


register(
    Benchmark(
        name="backtest_per_delta_binance_spot",
        floor_name="orjson.loads",
        target_ratio=TARGET_RATIO,
        setup=lambda: _setup("bench_backtest:TopOfBookReader", depth_only=True),
        description="full backtest node per book delta, strategy callback reading best bid/ask per message",
    )
)
