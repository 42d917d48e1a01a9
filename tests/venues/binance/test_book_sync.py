"""Book sync on live multi-symbol Binance sessions (cryptofeed recordings, used in place).

REST snapshots (``*.http.0.0``: ``<url> -> <ts>: <body>``) and stream frames (``*.ws.1.0``:
``<ts>: <frame>``) are merged by receive time and fed through the parser and the book manager.
Every symbol must end valid and gap-free, with its depth diffs either applied or stale.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import sample_path
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.model import topics
from tradeloop.model.data import BookDeltas, BookStatus, Quote, Trade
from tradeloop.venues.binance import spec
from tradeloop.venues.binance.parse import BinanceParser


def _ns(stamp: str) -> int:
    return int(Decimal(stamp) * 10**9)


def _session(name: str, venue: str) -> tuple[list[tuple[int, object]], dict[str, int]]:
    parser = BinanceParser(venue)
    items: list[tuple[int, object]] = []
    for line in sample_path(f"binance/ws_recording/{name}.http.0.0").read_text().splitlines():
        if not line.strip():
            continue
        head, _, body = line.partition(": ")
        url, _, stamp = head.partition(" -> ")
        symbol = parse_qs(urlparse(url).query)["symbol"][0]
        ts = _ns(stamp)
        items.append((ts, parser.parse_snapshot(body.encode(), ts, symbol)))
    depth_frames: dict[str, int] = {}
    for line in sample_path(f"binance/ws_recording/{name}.ws.1.0").read_text().splitlines():
        stamp, sep, frame = line.partition(": ")
        if not sep or not stamp[:1].isdigit():
            continue  # connect / sent lines
        item = parser.parse(frame.encode(), _ns(stamp))
        if item is not None:
            items.append((_ns(stamp), item))
            if isinstance(item, BookDeltas):
                depth_frames[item.instrument_id.symbol] = depth_frames.get(item.instrument_id.symbol, 0) + 1
    items.sort(key=lambda pair: pair[0])  # stable: snapshot before a frame with the same stamp
    return items, depth_frames


@pytest.mark.parametrize(
    ("name", "venue"), [("cryptofeed_BINANCE", spec.VENUE_SPOT), ("cryptofeed_BINANCE_FUTURES", spec.VENUE_USDM)]
)
def test_live_session_books_sync_gap_free(name: str, venue: str) -> None:
    items, depth_frames = _session(name, venue)
    bus, clock = MessageBus(), SimClock()
    statuses: list[BookStatus] = []
    trades: list[Trade] = []
    quotes: list[Quote] = []
    bus.subscribe(topics.BOOK_STATUS, statuses.append)
    bus.subscribe(topics.TRADES, trades.append)
    bus.subscribe(topics.QUOTES, quotes.append)
    manager = BookManager(bus, clock, spec.sequence_rules())
    hub = MarketDataHub(bus, manager)
    for ts, item in items:
        clock.set_time(ts)
        hub.on_data(item)  # type: ignore[arg-type]
    assert len(manager.books()) == 4
    assert trades and quotes
    assert all(s.valid for s in statuses), statuses
    for iid, book in manager.books().items():
        c = manager.counters(iid)
        assert book.valid, book
        assert c.gaps == 0 and c.refused == 0 and c.snapshots == 1
        assert c.applied + c.stale + c.buffer_dropped == depth_frames[iid.symbol]
        assert c.applied > 0
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None and ask is not None and bid < ask
