"""Book manager integrity handling and the market data hub."""

from __future__ import annotations

import json

import pytest

from tests.conftest import sample_path
from tests.unit.data.reference_book import reference_rebuild
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.data.replay import RecordingReplay
from tradeloop.model import topics
from tradeloop.model.book import ApplyResult, OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas, BookStatus, Level, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.binance.parse import BinanceParser

IID = InstrumentId("binance", "BTCUSDT")


def deltas(first: int, last: int, bids: list[Level] | None = None, asks: list[Level] | None = None) -> BookDeltas:
    return BookDeltas(IID, first, first, first, last, bids or [(100, last)], asks or [])


def snapshot(seq: int, bids: list[Level] | None = None, asks: list[Level] | None = None) -> BookDeltas:
    return BookDeltas(IID, 0, 0, seq, seq, bids or [(100, 1), (99, 1)], asks or [(101, 1)], snapshot=True)


class Rig:
    def __init__(self, rule: SequenceRule = SequenceRule.RANGE, **kwargs: object) -> None:
        self.bus = MessageBus(strict_types=True)
        self.clock = SimClock(1_000)
        self.statuses: list[BookStatus] = []
        self.published: list[int] = []
        self.bus.subscribe(topics.BOOK_STATUS, self.statuses.append)
        self.bus.subscribe(topics.BOOK, lambda book: self.published.append(book.last_seq))
        self.manager = BookManager(self.bus, self.clock, {"binance": rule}, **kwargs)  # type: ignore[arg-type]


def test_deltas_before_the_snapshot_are_buffered_then_replayed() -> None:
    rig = Rig()
    m = rig.manager
    assert m.on_deltas(deltas(90, 95)) is ApplyResult.INVALID  # no snapshot yet: held
    assert m.on_deltas(deltas(96, 104)) is ApplyResult.INVALID
    assert m.on_deltas(deltas(105, 106)) is ApplyResult.INVALID
    assert rig.published == [] and rig.statuses == []
    assert m.on_deltas(snapshot(100)) is ApplyResult.APPLIED
    c = m.counters(IID)
    assert (c.stale, c.applied, c.buffered, c.refused, c.snapshots) == (1, 2, 3, 0, 1)
    assert rig.published == [106]  # once, after the snapshot and its replay
    assert [(s.valid, s.reason, s.ts) for s in rig.statuses] == [(True, "snapshot", 1_000)]
    assert m.on_deltas(deltas(107, 107)) is ApplyResult.APPLIED
    assert m.on_deltas(deltas(50, 60)) is ApplyResult.STALE
    assert rig.published == [106, 107] and c.stale == 2


def test_sequence_gap_invalidates_refuses_and_resyncs() -> None:
    rig = Rig()
    m = rig.manager
    m.on_deltas(snapshot(100))
    assert m.on_deltas(deltas(101, 105)) is ApplyResult.APPLIED
    rig.clock.set_time(2_000)
    assert m.on_deltas(deltas(111, 115)) is ApplyResult.INVALID  # 106..110 missing
    assert not m.is_valid(IID)
    last = rig.statuses[-1]
    assert (last.valid, last.ts, last.instrument_id) == (False, 2_000, IID)
    assert "sequence gap" in last.reason
    for first in (116, 121, 126):
        assert m.on_deltas(deltas(first, first + 4)) is ApplyResult.INVALID
    c = m.counters(IID)
    assert (c.gaps, c.refused, c.applied) == (1, 3, 1)
    assert rig.published == [100, 105]  # nothing published while invalid
    rig.clock.set_time(3_000)
    assert (
        m.on_deltas(snapshot(123)) is ApplyResult.APPLIED
    )  # refused batches replay: 116.. stale, 121.. and 126.. apply
    assert m.is_valid(IID)
    assert (c.resyncs, c.applied, c.stale) == (1, 3, 1)
    assert [(s.valid, s.reason) for s in rig.statuses][-1] == (True, "resynced")
    assert rig.statuses[-1].ts == 3_000
    assert rig.published[-1] == 130
    assert m.on_deltas(deltas(131, 131)) is ApplyResult.APPLIED


def test_replayed_buffer_with_a_hole_stays_invalid() -> None:
    rig = Rig()
    m = rig.manager
    m.on_deltas(deltas(101, 105))
    m.on_deltas(deltas(110, 112))
    assert m.on_deltas(snapshot(100)) is ApplyResult.INVALID
    assert not m.is_valid(IID) and m.counters(IID).gaps == 1
    assert [s.valid for s in rig.statuses] == [False]


def test_prev_link_rule() -> None:
    rig = Rig(SequenceRule.PREV_LINK)
    m = rig.manager
    m.on_deltas(snapshot(100))
    ok = BookDeltas(IID, 0, 0, 98, 103, [(100, 2)], [], prev_seq=97)
    assert m.on_deltas(ok) is ApplyResult.APPLIED
    assert m.on_deltas(BookDeltas(IID, 0, 0, 104, 110, [], [], prev_seq=103)) is ApplyResult.APPLIED
    assert m.on_deltas(BookDeltas(IID, 0, 0, 115, 120, [], [], prev_seq=112)) is ApplyResult.INVALID
    assert m.counters(IID).gaps == 1


def test_buffer_is_bounded() -> None:
    rig = Rig(max_buffer=2)
    m = rig.manager
    for first in (101, 102, 103):
        m.on_deltas(deltas(first, first))
    c = m.counters(IID)
    assert (c.buffered, c.buffer_dropped) == (3, 1)
    m.on_deltas(snapshot(100))  # 101 was dropped: 102 does not link
    assert not m.is_valid(IID) and c.gaps == 1


def test_checksum_failure_invalidates_until_resync() -> None:
    def checksum(book: OrderBook) -> int:
        return sum(book.bids) + sum(book.asks)

    rig = Rig(checksum_fns={"binance": checksum})
    m = rig.manager
    m.on_deltas(snapshot(100))
    good = sum((100, 99, 101, 98))
    ok = BookDeltas(IID, 0, 0, 101, 101, [(98, 5)], [], checksum=good)
    assert m.on_deltas(ok) is ApplyResult.APPLIED
    bad = BookDeltas(IID, 0, 0, 102, 102, [(97, 5)], [], checksum=good)
    assert m.on_deltas(bad) is ApplyResult.INVALID
    c = m.counters(IID)
    assert (c.checksum_failures, c.gaps) == (1, 0)
    assert "checksum mismatch" in rig.statuses[-1].reason and not rig.statuses[-1].valid
    assert m.on_deltas(deltas(103, 103)) is ApplyResult.INVALID and c.refused == 1
    m.on_deltas(snapshot(200))
    assert m.is_valid(IID) and rig.statuses[-1].reason == "resynced"


def test_crossed_book_invalidates() -> None:
    rig = Rig()
    m = rig.manager
    m.on_deltas(snapshot(100))
    assert m.on_deltas(deltas(101, 101, bids=[(101, 1)])) is ApplyResult.INVALID
    assert m.counters(IID).crossed == 1
    assert "crossed" in rig.statuses[-1].reason
    # A crossed snapshot is invalid from the start.
    rig2 = Rig()
    assert rig2.manager.on_deltas(snapshot(1, bids=[(105, 1)], asks=[(101, 1)])) is ApplyResult.INVALID
    assert [s.valid for s in rig2.statuses] == [False]


def test_books_are_created_per_instrument_with_the_venue_rule() -> None:
    rig = Rig()
    other = InstrumentId("kraken", "XBTUSD")
    rig.manager.on_deltas(BookDeltas(other, 0, 0, 1, 1, [(1, 1)], [(2, 1)], snapshot=True))
    rig.manager.on_deltas(snapshot(100))
    books = rig.manager.books()
    assert set(books) == {IID, other}
    assert books[IID].sequence_rule is SequenceRule.RANGE
    assert books[other].sequence_rule is SequenceRule.NONE
    assert rig.manager.book(InstrumentId("x", "Y")) is None
    with pytest.raises(KeyError):
        rig.manager.counters(InstrumentId("x", "Y"))
    assert "applied=0" in repr(rig.manager.counters(IID))


def test_hub_dispatches_by_type() -> None:
    rig = Rig()
    hub = MarketDataHub(rig.bus, rig.manager, publish_deltas=True)
    trades: list[Trade] = []
    quotes: list[Quote] = []
    raw: list[BookDeltas] = []
    rig.bus.subscribe(topics.TRADES, trades.append)
    rig.bus.subscribe(topics.QUOTES, quotes.append)
    rig.bus.subscribe(topics.BOOK_DELTAS, raw.append)
    trade = Trade(IID, 1, 1, 100, 1, Side.BUY, "1")
    quote = Quote(IID, 1, 1, 100, 1, 101, 1)
    status = BookStatus(instrument_id=IID, ts=1, valid=False, reason="feed lost")
    for item in (snapshot(100), trade, quote, deltas(101, 101), status):
        hub.on_data(item)
    assert trades == [trade] and quotes == [quote] and len(raw) == 2
    assert rig.published == [100, 101]
    # A connector's "feed lost" invalidates the book until the next snapshot.
    book = rig.manager.book(IID)
    assert book is not None and not book.valid and book.invalid_reason == "feed lost"
    assert rig.statuses[-1].valid is False and rig.statuses[-1].reason == "feed lost"
    hub.on_data(deltas(102, 102))
    assert rig.published == [100, 101] and rig.manager.counters(IID).refused == 1
    hub.on_data(status)  # already invalid: nothing more is published
    assert sum(1 for s in rig.statuses if not s.valid) == 1
    hub.on_data(snapshot(200))
    assert book.valid and rig.statuses[-1].valid and rig.manager.counters(IID).resyncs == 1
    with pytest.raises(TypeError):
        hub.on_data("nonsense")  # type: ignore[arg-type]


def test_skipped_diff_in_real_data_then_snapshot_resyncs() -> None:
    """Drop one real diff: the book goes invalid and refuses diffs until a snapshot arrives (built
    by the independent reference rebuild at a later update id); then it resyncs and ends equal
    to the uninterrupted replay."""
    path = sample_path("marketdata/binance_spot_btcusdt_20240808.gz")
    dropped = 103  # the 100th diff applied (3 diffs precede the snapshot)
    ref = reference_rebuild([path], futures=False, stop_after=200)
    snap = BinanceParser(symbol="BTCUSDT").parse(json.dumps(ref.snapshot_message()).encode(), 0)
    assert isinstance(snap, BookDeltas) and snap.snapshot and snap.last_seq == ref.last

    rig = Rig()
    full = Rig()
    diffs = 0
    injected = False
    for _, item in RecordingReplay(path):
        if not isinstance(item, BookDeltas):
            continue
        full.manager.on_deltas(item)
        if not item.snapshot:
            diffs += 1
            if diffs == dropped:
                continue
        if not injected and item.last_seq > snap.last_seq:
            rig.manager.on_deltas(snap)
            injected = True
        rig.manager.on_deltas(item)
    c = rig.manager.counters(IID)
    assert c.gaps == 1 and c.resyncs == 1 and c.refused > 50
    assert [(s.valid, s.reason.split(":")[0]) for s in rig.statuses] == [
        (True, "snapshot"),
        (False, "sequence gap"),
        (True, "resynced"),
    ]
    ours, reference = rig.manager.book(IID), full.manager.book(IID)
    assert ours is not None and reference is not None and ours.valid
    assert (ours.bids, ours.asks, ours.last_seq) == (reference.bids, reference.asks, reference.last_seq)
