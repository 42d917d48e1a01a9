"""The live Kraken v1 ``book-1000`` recording rebuilt through our parser and books: every checksum matches."""

from __future__ import annotations

from collections import Counter

from tests.conftest import sample_path
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager
from tradeloop.data.cryptofeed import Direction, read_cryptofeed
from tradeloop.model.data import BookDeltas
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.parse import KrakenV1Parser

RECORDING = "kraken/ws_recording/cryptofeed_KRAKEN.ws.50.0"


def _replay(depth: int) -> tuple[BookManager, Counter[str]]:
    parser = KrakenV1Parser()
    manager = BookManager(
        MessageBus(),
        SimClock(0),
        {spec.VENUE: spec.SEQUENCE_RULE},
        {spec.VENUE: parser.precisions.book_checksum},
        depth_limits={spec.VENUE: depth},
    )
    carried = Counter[str]()
    for frame in read_cryptofeed(sample_path(RECORDING)):
        if frame.direction is not Direction.RECEIVED:
            continue
        for item in parser.parse(frame.payload, frame.ts_recv):
            if isinstance(item, BookDeltas):
                if item.checksum is not None:
                    carried[item.instrument_id.symbol] += 1
                manager.on_deltas(item)
    return manager, carried


def test_every_book_checksum_in_the_recording_matches() -> None:
    manager, carried = _replay(1000)
    books = manager.books()
    assert len(books) == 10
    assert "BTC/CHF" in {iid.symbol for iid in books}  # v1's XBT is BTC in our (v2) names
    assert sum(carried.values()) == 4269
    assert {iid.symbol: book.checksums_verified for iid, book in books.items()} == dict(carried)
    for iid, book in books.items():
        assert book.valid, f"{iid}: {book.invalid_reason}"
        assert manager.counters(iid).checksum_failures == 0
        assert len(book.bids) <= 1000 and len(book.asks) <= 1000


def test_without_cutting_to_the_subscribed_depth_the_book_can_go_wrong() -> None:
    # A shallower cut than subscribed drops levels Kraken still counts: checksums then fail and
    # the books are invalidated, rather than silently drifting.
    manager, _ = _replay(5)
    assert sum(manager.counters(iid).checksum_failures for iid in manager.books()) > 0
