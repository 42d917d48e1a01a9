"""``tradeloop record`` then ``tradeloop replay``: raw frames recorded from each venue's local simulator replay
through the same parsers into valid books, with no malformed frame, ending on exactly the venue's book."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest

from tests.integration.test_live_session import (
    FEEDS,
    first_instrument,
    first_venue,
    run_cli,
    running_simulator,
    simulator_thread,
    venue_params,
)
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager
from tradeloop.data.venue_replay import MalformedFrame, read_frames, replay_venue
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas
from tradeloop.model.identifiers import InstrumentId
from tradeloop.runtime.recorder import FrameWriter, RecordStats, record_venue
from tradeloop.venues.registry import market_data_adapter

LEVELS = 10


def replayed_book(venue: str, path: Path, iid: InstrumentId) -> OrderBook | None:
    """The book at the end of ``path``, rebuilt the way ``tradeloop replay`` does (registry adapter + book manager)."""
    adapter = market_data_adapter(venue)
    checksum = adapter.checksum_fn
    manager = BookManager(
        MessageBus(),
        SimClock(0),
        {adapter.venue: adapter.sequence_rule},
        {adapter.venue: checksum} if checksum is not None else {},
        depth_limits={adapter.venue: adapter.depth_limit} if adapter.depth_limit else {},
    )
    malformed: list[MalformedFrame] = []
    for frame in read_frames(path, malformed, venue):
        if frame.rest_url is not None:
            items = adapter.parse_rest(frame.rest_url, frame.payload, frame.ts_recv)
        else:
            items = adapter.parse(frame.payload, frame.ts_recv)
        for item in items:
            if isinstance(item, BookDeltas):
                manager.on_deltas(item)
    assert malformed == []
    return manager.book(iid)


@pytest.mark.parametrize("venue", venue_params())
def test_a_recording_replays_to_the_venues_own_book(venue: str, tmp_path: Path) -> None:
    inst = first_instrument(venue)
    out = tmp_path / f"{venue}.gz"

    async def scenario() -> tuple[RecordStats, list[tuple[int, int]], list[tuple[int, int]]]:
        async with running_simulator(venue) as sim:
            stop = asyncio.Event()
            recording = asyncio.create_task(
                record_venue(venue, [inst.id.symbol], out, endpoint=sim.base_url, stop=stop)
            )
            await asyncio.sleep(1.2)
            FEEDS[id(sim)].cancel()  # the market stops moving; what was sent is what the venue's book is
            await asyncio.sleep(0.3)
            book = sim.core.book(inst.id)
            bids, asks = book.top_bids(LEVELS), book.top_asks(LEVELS)
            stop.set()
            return await recording, bids, asks

    stats, bids, asks = asyncio.run(scenario())
    assert stats.frames > 50 and stats.malformed == 0
    assert stats.items > 0
    report = replay_venue(venue, [out])
    assert report.malformed == []
    assert report.all_books_valid and inst.id.symbol in report.symbols
    assert report.frames == stats.frames + stats.rest
    book = replayed_book(venue, out, inst.id)
    assert book is not None and book.valid
    assert (book.top_bids(LEVELS), book.top_asks(LEVELS)) == (bids, asks)


def test_cli_record_then_replay(tmp_path: Path) -> None:
    venue = first_venue()
    inst = first_instrument(venue)
    out = tmp_path / "session.gz"
    with simulator_thread(venue) as sim:
        recorded = run_cli(
            "record",
            "--venue",
            venue,
            "--symbol",
            inst.id.symbol,
            "--out",
            str(out),
            "--endpoint",
            sim.base_url,
            "--duration",
            "2",
            env={},
        )
    assert recorded.returncode == 0, recorded.stderr
    said = " ".join(recorded.stderr.split())  # rich wraps long lines (the tmp path) at the terminal width
    assert "recorded" in said and "0 malformed" in said
    with gzip.open(out, "rb") as fh:
        first = fh.readline()
    assert first.split(b" ", 1)[0].isdigit()
    replayed = run_cli("replay", "--venue", venue, str(out), env={})
    assert replayed.returncode == 0, replayed.stderr
    assert inst.id.symbol in replayed.stderr and "valid" in replayed.stderr
    assert "invalid" not in replayed.stderr and "malformed" not in replayed.stderr
    again = run_cli("record", "--venue", venue, "--symbol", inst.id.symbol, "--out", str(out), env={})
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.parametrize("name", ["plain.rec", "zipped.rec.gz"])
def test_frame_writer_lines_read_back_as_frames(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    writer = FrameWriter(path)
    writer.frame('{"a":\n1}', 1_700_000_000_000_000_001)
    writer.frame(b'{"b":2}', 1_700_000_000_000_000_002)
    writer.rest_response(
        "http://127.0.0.1:1/api/v3/depth?symbol=BTCUSDT&limit=5", b'{"lastUpdateId":1}', 1_700_000_000_000_000_003
    )
    writer.close()
    with pytest.raises(ValueError, match="spaces"):
        FrameWriter(tmp_path / "x.rec").rest_response("http://h/a b", b"{}", 1)
    malformed: list[MalformedFrame] = []
    frames = list(read_frames(path, malformed, "binance"))
    assert malformed == []
    assert [(f.ts_recv, f.payload, f.rest_url) for f in frames] == [
        (1_700_000_000_000_000_001, b'{"a": 1}', None),
        (1_700_000_000_000_000_002, b'{"b":2}', None),
        (1_700_000_000_000_000_003, b'{"lastUpdateId":1}', "http://127.0.0.1:1/api/v3/depth?symbol=BTCUSDT&limit=5"),
    ]
