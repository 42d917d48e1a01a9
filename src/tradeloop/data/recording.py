"""Reader for raw market-data recordings in the hftbacktest capture format.

Each line is ``<local receive time, ns> <raw frame>``, for example::

    1723161254087896568 {"stream":"btcusdt@trade","data":{...}}

Files are gzip (detected by their magic bytes, not their name) or plain text. The reader yields
:class:`Record` tuples ``(ts_recv, payload, source, line_no)`` with the payload bytes untouched
(the trailing newline removed). Line numbers count from 1, blank lines included.

A malformed line (no space after the timestamp, a timestamp that is not a non-negative integer,
an empty payload) is reported to ``on_error`` with its file and line number and skipped, or
raises :class:`RecordingError` when ``strict``. Undecodable gzip data (a truncated or corrupt
tail) is reported the same way, at the line after the last good one, and ends that file. Blank
lines are skipped silently.

:func:`detect_binance_capture` tells a Binance spot capture from a USD-M (or COIN-M) one: futures
depth diffs carry ``pu``, spot ones do not.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import msgspec

from tradeloop.venues.binance.spec import MARKETS, BinanceMarket

__all__ = [
    "CaptureInfo",
    "ErrorHandler",
    "LineIssue",
    "Record",
    "RecordingError",
    "detect_binance_capture",
    "iter_lines",
    "open_recording",
    "read_recording",
]

_GZIP_MAGIC = b"\x1f\x8b"


class Record(NamedTuple):
    """One recorded frame."""

    ts_recv: int
    """Local receive time, ns since the epoch."""
    payload: bytes
    source: str
    """The file it came from."""
    line_no: int


class LineIssue(msgspec.Struct, frozen=True):
    """A line that could not be used: where it is and what is wrong with it."""

    source: str
    line_no: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line_no}: {self.message}"


ErrorHandler = Callable[[LineIssue], None]
"""Receives every skipped line."""


class RecordingError(ValueError):
    """A malformed line in strict mode (or an unusable file); names the file and line."""

    def __init__(self, issue: LineIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def open_recording(path: str | Path) -> io.BufferedIOBase:
    """Open a recording for binary line reading, decompressing it if it is gzip."""
    p = Path(path)
    with p.open("rb") as f:
        magic = f.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(p, "rb")
    return p.open("rb")


def iter_lines(
    path: str | Path, *, strict: bool = False, on_error: ErrorHandler | None = None
) -> Iterator[tuple[int, bytes, int]]:
    """``(ts_recv, payload, line_no)`` for each good line: the lean form of :func:`read_recording`."""
    source = str(path)

    def problem(line_no: int, message: str) -> None:
        issue = LineIssue(source, line_no, message)
        if strict:
            raise RecordingError(issue)
        if on_error is not None:
            on_error(issue)

    line_no = 0
    with open_recording(path) as f:
        lines = iter(f)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as exc:
                problem(line_no + 1, f"undecodable data after line {line_no}: {exc}")
                return
            line_no += 1
            if line.endswith(b"\n"):
                line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            sp = line.find(b" ")
            if sp <= 0:
                if line.strip():
                    what = "no timestamp" if sp == 0 else "no space between timestamp and payload"
                    problem(line_no, f"{what}: {line[:40]!r}")
                continue
            stamp = line[:sp]
            if not stamp.isdigit():
                problem(line_no, f"bad timestamp {stamp[:40]!r}")
                continue
            payload = line[sp + 1 :]
            if not payload.strip():
                problem(line_no, "empty payload")
                continue
            yield int(stamp), payload, line_no


def read_recording(path: str | Path, *, strict: bool = False, on_error: ErrorHandler | None = None) -> Iterator[Record]:
    """Every good line of one recording as a :class:`Record`, in file order."""
    source = str(path)
    for ts, payload, line_no in iter_lines(path, strict=strict, on_error=on_error):
        yield Record(ts, payload, source, line_no)


class CaptureInfo(NamedTuple):
    """What a Binance capture holds: its market, the matching venue name and its symbol."""

    market: BinanceMarket
    venue: str
    symbol: str | None
    """Upper-case symbol of its first depth stream, if one was seen."""


def detect_binance_capture(path: str | Path, max_lines: int = 20_000) -> CaptureInfo:
    """Tell a spot capture from a USD-M or COIN-M one by its first frames.

    Futures depth diffs carry ``pu`` (COIN-M symbols contain ``_``, e.g. ``BTCUSD_PERP``); when no
    depth diff appears, futures ``bookTicker``/``trade`` events (which carry ``e``/``X``) decide.
    Raises :class:`RecordingError` if nothing in the first ``max_lines`` lines tells.
    """
    futures: bool | None = None
    symbol: str | None = None
    hint: bool | None = None
    for _, payload, _ in iter_lines(path):
        max_lines -= 1
        if max_lines < 0:
            break
        if b'"e":"depthUpdate"' in payload:
            futures = b'"pu":' in payload
            symbol = _stream_symbol(payload)
            break
        if hint is None and b"bookTicker" in payload:
            hint = b'"e":"bookTicker"' in payload
        elif hint is None and b'"e":"trade"' in payload:
            hint = b'"X":' in payload
    if futures is None:
        futures = hint
    if futures is None:
        raise RecordingError(LineIssue(str(path), 0, "cannot tell the Binance market: no depth, trade or ticker frame"))
    if not futures:
        market = BinanceMarket.SPOT
    elif symbol is not None and "_" in symbol:
        market = BinanceMarket.COINM
    else:
        market = BinanceMarket.USDM
    return CaptureInfo(market, MARKETS[market].venue, symbol)


def _stream_symbol(payload: bytes) -> str | None:
    start = payload.find(b'"stream":"')
    if start < 0:
        start = payload.find(b'"s":"')
        if start < 0:
            return None
        start += 5
        return payload[start : payload.find(b'"', start)].decode("utf-8", "replace").upper()
    start += 10
    return payload[start : payload.find(b"@", start)].decode("utf-8", "replace").upper()
