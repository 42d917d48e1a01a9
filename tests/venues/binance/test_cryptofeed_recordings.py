"""The live cryptofeed Binance recordings (spot and USD-M): WebSocket diffs merged in time with the
REST snapshots taken in the same session, through our parser and books: gap-free for every symbol."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import sample_path
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager
from tradeloop.data.cryptofeed import Direction, read_cryptofeed
from tradeloop.model.data import BookDeltas
from tradeloop.venues.binance.parse import BinanceParser
from tradeloop.venues.binance.spec import MARKETS, BinanceMarket


@pytest.mark.parametrize(
    ("market", "stem", "symbols"),
    [
        (BinanceMarket.SPOT, "cryptofeed_BINANCE", 4),
        (BinanceMarket.USDM, "cryptofeed_BINANCE_FUTURES", 4),
    ],
)
def test_recording_is_gap_free(market: BinanceMarket, stem: str, symbols: int) -> None:
    spec = MARKETS[market]
    ws = read_cryptofeed(sample_path(f"binance/ws_recording/{stem}.ws.1.0"))
    rest = read_cryptofeed(sample_path(f"binance/ws_recording/{stem}.http.0.0"))
    frames = sorted(
        (f for f in [*ws, *rest] if f.direction in (Direction.RECEIVED, Direction.REST)), key=lambda f: f.ts_recv
    )
    parser = BinanceParser(spec.venue)
    manager = BookManager(MessageBus(), SimClock(0), {spec.venue: spec.sequence_rule})
    for frame in frames:
        if frame.direction is Direction.REST:
            symbol = parse_qs(urlparse(frame.url).query)["symbol"][0]
            manager.on_deltas(parser.parse_snapshot(frame.payload, frame.ts_recv, symbol))
            continue
        item = parser.parse(frame.payload, frame.ts_recv)
        if isinstance(item, BookDeltas):
            manager.on_deltas(item)
    books = manager.books()
    assert len(books) == symbols
    for iid, book in books.items():
        counters = manager.counters(iid)
        assert counters.gaps == 0 and counters.snapshots == 1, f"{iid}: {counters}"
        assert counters.applied > 0
        assert book.valid, f"{iid}: {book.invalid_reason}"
