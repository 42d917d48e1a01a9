"""The live OKX ``books`` recording rebuilt through our parser and book manager: every checksum matches."""

from __future__ import annotations

from collections import Counter

from tests.conftest import sample_path
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager
from tradeloop.data.cryptofeed import Direction, read_cryptofeed
from tradeloop.model.data import BookDeltas
from tradeloop.venues.okx import spec
from tradeloop.venues.okx.parse import OkxParser, book_checksum

RECORDING = "okx/ws_recording/cryptofeed_OKX.ws.1.0"


def test_every_book_checksum_in_the_recording_matches() -> None:
    path = sample_path(RECORDING)
    parser = OkxParser()
    manager = BookManager(MessageBus(), SimClock(0), {spec.VENUE: spec.SEQUENCE_RULE}, {spec.VENUE: book_checksum})
    carried = Counter[str]()
    for frame in read_cryptofeed(path):
        if frame.direction is not Direction.RECEIVED:
            continue
        for item in parser.parse(frame.payload, frame.ts_recv):
            if isinstance(item, BookDeltas):
                if item.checksum is not None:
                    carried[item.instrument_id.symbol] += 1
                manager.on_deltas(item)
    books = manager.books()
    assert sorted(b.symbol for b in books) == ["BTC-USD-220527", "BTC-USDT", "UNI-USD-SWAP"]
    verified = {iid.symbol: book.checksums_verified for iid, book in books.items()}
    assert sum(carried.values()) == 290
    assert verified == dict(carried)
    for iid, book in books.items():
        assert book.valid, f"{iid}: {book.invalid_reason}"
        assert manager.counters(iid).checksum_failures == 0


def test_a_changed_level_fails_the_checksum_and_invalidates_only_that_book() -> None:
    path = sample_path(RECORDING)
    parser = OkxParser()
    manager = BookManager(MessageBus(), SimClock(0), {spec.VENUE: spec.SEQUENCE_RULE}, {spec.VENUE: book_checksum})
    tampered = False
    for frame in read_cryptofeed(path):
        if frame.direction is not Direction.RECEIVED:
            continue
        for item in parser.parse(frame.payload, frame.ts_recv):
            if not isinstance(item, BookDeltas):
                continue
            if not tampered and not item.snapshot and item.instrument_id.symbol == "BTC-USDT" and item.bids:
                price, qty = item.bids[0]
                item = BookDeltas(
                    item.instrument_id,
                    item.ts_event,
                    item.ts_recv,
                    item.first_seq,
                    item.last_seq,
                    [(price, qty + 1_000_000), *item.bids[1:]],
                    item.asks,
                    prev_seq=item.prev_seq,
                    checksum=item.checksum,
                )
                tampered = True
            manager.on_deltas(item)
    assert tampered
    by_symbol = {iid.symbol: iid for iid in manager.books()}
    assert manager.counters(by_symbol["BTC-USDT"]).checksum_failures == 1
    assert not manager.books()[by_symbol["BTC-USDT"]].valid
    assert manager.books()[by_symbol["UNI-USD-SWAP"]].valid
