"""Recording replay: acceptance on the Binance captures, merging, malformed lines, strict mode."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import sample_path
from tests.unit.data.reference_book import reference_rebuild
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.core.fixed import parse as px
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.data.recording import LineIssue, RecordingError
from tradeloop.data.replay import RecordingReplay
from tradeloop.model import topics
from tradeloop.model.book import OrderBook, SequenceRule
from tradeloop.model.data import BookStatus
from tradeloop.model.identifiers import InstrumentId

FIXTURES = Path(__file__).parent / "fixtures"
SPOT_FILES = ("marketdata/binance_spot_btcusdt_20240808.gz", "marketdata/binance_spot_btcusdt_20240809.gz")
USDM_FILE = "marketdata/binance_usdm_btcusdt_20240808.gz"


def as_decimal(side: dict[int, int]) -> dict[Decimal, Decimal]:
    return {Decimal(p).scaleb(-9): Decimal(q).scaleb(-9) for p, q in side.items()}


def run(replay: RecordingReplay) -> tuple[BookManager, list[BookStatus]]:
    bus, clock = MessageBus(), SimClock()
    statuses: list[BookStatus] = []
    bus.subscribe(topics.BOOK_STATUS, statuses.append)
    manager = BookManager(bus, clock, replay.sequence_rules())
    hub = MarketDataHub(bus, manager)
    for ts, item in replay:
        clock.set_time(ts)
        hub.on_data(item)
    return manager, statuses


# -- acceptance --------------------------------------------------------------------------------


def test_spot_two_days_replay_matches_an_independent_rebuild() -> None:
    paths = [sample_path(p) for p in SPOT_FILES]
    replay = RecordingReplay(paths)
    assert replay.venues() == ["binance"] and replay.sequence_rules() == {"binance": SequenceRule.RANGE}
    manager, statuses = run(replay)
    iid = InstrumentId("binance", "BTCUSDT")
    book = manager.book(iid)
    counters = manager.counters(iid)
    assert book is not None and book.valid
    assert counters.applied == 6493
    assert counters.gaps == 0 and counters.refused == 0 and counters.snapshots == 1
    assert [s.valid for s in statuses] == [True]
    assert replay.stats.skipped == 0 and replay.stats.out_of_order == 0
    assert replay.stats.by_type["deltas"] == 6495 and replay.stats.by_type["snapshot"] == 1

    ref = reference_rebuild(paths, futures=False)
    assert ref.applied == 6493
    assert book.last_seq == ref.last
    assert as_decimal(book.bids) == ref.bids
    assert as_decimal(book.asks) == ref.asks
    assert book.best_bid() == px(str(max(ref.bids or {})))
    assert book.best_ask() == px(str(min(ref.asks)))


def test_usdm_replay_is_gap_free_under_prev_link() -> None:
    path = sample_path(USDM_FILE)
    replay = RecordingReplay(path)
    assert replay.sequence_rules() == {"binance_usdm": SequenceRule.PREV_LINK}
    assert [i.id for i in replay.instruments()] == [InstrumentId("binance_usdm", "BTCUSDT")]
    manager, statuses = run(replay)
    iid = InstrumentId("binance_usdm", "BTCUSDT")
    book, counters = manager.book(iid), manager.counters(iid)
    assert book is not None and book.valid and book.sequence_rule is SequenceRule.PREV_LINK
    assert counters.applied == 6547 and counters.gaps == 0 and counters.refused == 0
    assert [s.valid for s in statuses] == [True]
    ref = reference_rebuild([path], futures=True)
    assert ref.applied == 6547
    assert (as_decimal(book.bids), as_decimal(book.asks)) == (ref.bids, ref.asks)


def test_spot_and_usdm_interleave_by_receive_time() -> None:
    replay = RecordingReplay([sample_path(USDM_FILE), *(sample_path(p) for p in reversed(SPOT_FILES))])
    last, switches, venue = -1, 0, ""
    for ts, item in replay:
        assert ts >= last
        last = ts
        if item.instrument_id.venue != venue:
            switches += 1
            venue = item.instrument_id.venue
    assert switches > 1000
    assert replay.stats.out_of_order == 0
    manager, _ = run(replay)  # a second pass re-reads the files
    assert manager.counters(InstrumentId("binance", "BTCUSDT")).applied == 6493
    assert manager.counters(InstrumentId("binance_usdm", "BTCUSDT")).applied == 6547


# -- malformed lines ---------------------------------------------------------------------------


def test_malformed_lines_are_reported_with_file_and_line_and_skipped() -> None:
    path = FIXTURES / "spot_capture_malformed.txt"
    issues: list[LineIssue] = []
    replay = RecordingReplay(path, on_error=issues.append)
    manager, _ = run(replay)
    stats = replay.stats
    assert (stats.lines, stats.parsed, stats.ignored, stats.skipped) == (12, 6, 1, 5)
    assert stats.by_type == {"deltas": 3, "snapshot": 1, "trade": 1, "quote": 1}
    assert [(i.source, i.line_no) for i in issues] == [(str(path), n) for n in (4, 5, 6, 7, 8)]
    assert stats.issues == issues
    messages = [i.message for i in issues]
    assert "no space" in messages[0] and "bad timestamp" in messages[1]
    assert "truncated" in messages[2] and "$.data.t" in messages[3] and "`u`" in messages[4]
    book = manager.book(InstrumentId("binance", "BTCUSDT"))
    assert book is not None and book.valid
    assert book.bids == {px("100"): px("3")} and book.asks == {px("101"): px("1.5"), px("102"): px("1")}


def test_without_a_handler_issues_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    replay = RecordingReplay(FIXTURES / "spot_capture_malformed.txt")
    list(replay)
    assert replay.stats.skipped == 5
    assert sum("spot_capture_malformed.txt:" in r.getMessage() for r in caplog.records) == 5


def test_strict_mode_stops_at_the_first_bad_line(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"spot_capture_malformed\.txt:4: no space"):
        list(RecordingReplay(FIXTURES / "spot_capture_malformed.txt", strict=True))
    lines = (FIXTURES / "spot_capture_malformed.txt").read_bytes().splitlines()
    path = tmp_path / "parse_error.txt"
    path.write_bytes(b"\n".join([lines[0], lines[1], lines[6]]) + b"\n")
    seen = []
    with pytest.raises(RecordingError, match=r"parse_error\.txt:3: binance trade frame .*\$\.data\.t") as info:
        for _, item in RecordingReplay(path, strict=True):
            seen.append(item)
    assert len(seen) == 2 and info.value.issue.line_no == 3
    assert isinstance(info.value.__cause__, ValueError)


def test_forced_venue_and_symbol(tmp_path: Path) -> None:
    path = tmp_path / "snap_only.txt"
    path.write_bytes(b'5 {"lastUpdateId":7,"bids":[["1.0","2.0"]],"asks":[["2.0","1.0"]]}\n')
    items = list(RecordingReplay(path, venue="binance_usdm", symbol="ethusdt"))
    assert len(items) == 1
    assert items[0][1].instrument_id == InstrumentId("binance_usdm", "ETHUSDT")
    with pytest.raises(ValueError):
        RecordingReplay([])


def test_book_of_reference_and_ours_agree_mid_stream() -> None:
    # Spot-check the reference itself: our book after the first file equals its rebuild.
    path = sample_path(SPOT_FILES[0])
    manager, _ = run(RecordingReplay(path))
    book = manager.book(InstrumentId("binance", "BTCUSDT"))
    assert isinstance(book, OrderBook)
    ref = reference_rebuild([path], futures=False)
    assert (as_decimal(book.bids), as_decimal(book.asks), book.last_seq) == (ref.bids, ref.asks, ref.last)
