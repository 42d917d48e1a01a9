"""Replay recorded venue frames through that venue's own parser and books, and count what happened.

Formats, told apart by content (not by name):

* tradeloop recordings and hftbacktest captures: ``<ts_ns> <frame>`` per line, gzip or plain;
  ``<ts_ns> REST <url> <body>`` lines are REST responses (book snapshots);
* cryptofeed session recordings (``<unix_ts>: <frame>``, REST files ``<url> -> <ts>: <body>``);
* zip archives of JSON lines (the Bybit public-data dumps), timed by each line's ``ts`` (ms).

Several files are merged by receive time (ties keep file order), so a WebSocket recording and the
REST snapshots of the same session replay as they happened. Malformed frames never stop a replay:
each is counted and reported with file, line, venue and channel.
"""

from __future__ import annotations

import heapq
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import msgspec

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager
from tradeloop.data.cryptofeed import Direction, read_cryptofeed
from tradeloop.data.recording import LineIssue, read_recording
from tradeloop.model.data import BookDeltas
from tradeloop.venues.registry import PARSE_ERRORS, market_data_adapter

__all__ = ["Frame", "MalformedFrame", "ReplayReport", "SymbolReport", "read_frames", "replay_venue"]


class Frame(NamedTuple):
    ts_recv: int
    payload: bytes
    rest_url: str | None
    """Set for a REST response; ``None`` for a WebSocket frame."""
    source: str
    line: int


class MalformedFrame(msgspec.Struct, frozen=True):
    source: str
    line: int
    venue: str
    channel: str
    error: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.venue} {self.channel}: {self.error}"


@dataclass
class SymbolReport:
    messages: int = 0
    trades: int = 0
    snapshots: int = 0
    checksums_verified: int = 0
    checksum_failures: int = 0
    gaps: int = 0
    resyncs: int = 0
    valid_at_end: bool = False
    invalid_reason: str = ""


@dataclass
class ReplayReport:
    venue: str
    frames: int = 0
    symbols: dict[str, SymbolReport] = field(default_factory=dict)
    malformed: list[MalformedFrame] = field(default_factory=list)

    @property
    def all_books_valid(self) -> bool:
        return all(s.valid_at_end for s in self.symbols.values() if s.snapshots or s.messages > s.trades)


def _channel_of(payload: bytes) -> str:
    for key in (b'"channel":"', b'"topic":"', b'"stream":"', b'"type":"'):
        i = payload.find(key)
        if i >= 0:
            start = i + len(key)
            end = payload.find(b'"', start, start + 64)
            if end > start:
                return payload[start:end].decode("utf-8", "replace")
    return "?"


def _sniff(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "capture"
    first = head.split(b"\n", 1)[0]
    token = first.split(b" ", 1)[0]
    if token.isdigit() and len(token) >= 16:
        return "capture"
    return "cryptofeed"


def read_frames(path: str | Path, malformed: list[MalformedFrame], venue: str) -> Iterator[Frame]:
    """The frames of one recording in file order (format detected from the content)."""
    p = Path(path)
    kind = _sniff(p)
    source = str(p)
    if kind == "cryptofeed":

        def bad_line(line: int, message: str) -> None:
            malformed.append(MalformedFrame(source, line, venue, "-", message))

        for f in read_cryptofeed(p, on_error=bad_line):
            if f.direction is Direction.RECEIVED:
                yield Frame(f.ts_recv, f.payload, None, source, f.line)
            elif f.direction is Direction.REST:
                yield Frame(f.ts_recv, f.payload, f.url, source, f.line)
    elif kind == "capture":

        def bad_record(issue: LineIssue) -> None:
            malformed.append(MalformedFrame(issue.source, issue.line_no, venue, "-", issue.message))

        for r in read_recording(p, on_error=bad_record):
            if r.payload.startswith(b"REST "):
                _, url, body = r.payload.split(b" ", 2)
                yield Frame(r.ts_recv, body, url.decode(), r.source, r.line_no)
            else:
                yield Frame(r.ts_recv, r.payload, None, r.source, r.line_no)
    else:
        with zipfile.ZipFile(p) as zf:
            for name in sorted(zf.namelist()):
                with zf.open(name) as fh:
                    for n, line in enumerate(fh, 1):
                        line = line.rstrip(b"\r\n")
                        if line:
                            yield Frame(_json_ts_ns(line) or n, line, None, f"{source}!{name}", n)


def _json_ts_ns(line: bytes) -> int:
    i = line.find(b'"ts":')
    if i < 0:
        return 0
    j = i + 5
    k = j
    while k < len(line) and line[k : k + 1].isdigit():
        k += 1
    return int(line[j:k]) * 1_000_000 if k > j else 0


def replay_venue(venue: str, paths: list[str | Path]) -> ReplayReport:
    """Replay ``paths`` (merged by receive time) through ``venue``'s parser and books."""
    adapter = market_data_adapter(venue)
    report = ReplayReport(venue)
    checksum_fn = adapter.checksum_fn
    manager = BookManager(
        MessageBus(),
        SimClock(0),
        {adapter.venue: adapter.sequence_rule},
        {adapter.venue: checksum_fn} if checksum_fn is not None else {},
        depth_limits={adapter.venue: adapter.depth_limit} if adapter.depth_limit else {},
    )
    streams = [read_frames(p, report.malformed, venue) for p in paths]
    for frame in heapq.merge(*streams, key=lambda f: f.ts_recv):
        report.frames += 1
        try:
            if frame.rest_url is not None:
                items = adapter.parse_rest(frame.rest_url, frame.payload, frame.ts_recv)
            else:
                items = adapter.parse(frame.payload, frame.ts_recv)
        except PARSE_ERRORS as exc:
            report.malformed.append(
                MalformedFrame(frame.source, frame.line, venue, _channel_of(frame.payload), str(exc))
            )
            continue
        for item in items:
            sym = report.symbols.setdefault(item.instrument_id.symbol, SymbolReport())
            sym.messages += 1
            if isinstance(item, BookDeltas):
                manager.on_deltas(item)
            else:
                sym.trades += 1
    for iid, book in manager.books().items():
        sym = report.symbols.setdefault(iid.symbol, SymbolReport())
        counters = manager.counters(iid)
        sym.snapshots = counters.snapshots
        sym.checksums_verified = book.checksums_verified
        sym.checksum_failures = counters.checksum_failures
        sym.gaps = counters.gaps
        sym.resyncs = counters.resyncs
        sym.valid_at_end = book.valid
        sym.invalid_reason = book.invalid_reason
    return report
