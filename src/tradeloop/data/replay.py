"""Replay of recorded Binance captures as a time-ordered stream of normalized market data.

:class:`RecordingReplay` reads one or more recordings (see :mod:`tradeloop.data.recording`),
parses each line with a :class:`~tradeloop.venues.binance.parse.BinanceParser` for the file's
market (spot ``binance``, USD-M ``binance_usdm``, COIN-M ``binance_coinm``; detected from the
file unless ``venue`` is given) and yields ``(ts_recv, item)``. Several files are merged by
``ts_recv``: consecutive captures of one stream (``..._20240808`` then ``..._20240809``) follow each
other, captures of different markets over the same hours interleave. Equal timestamps keep the
order of ``paths``, then file order, so a replay is deterministic. Files of the same venue and
symbol share one parser.

Malformed lines and frames that fail to parse are reported to ``on_error`` as
:class:`~tradeloop.data.recording.LineIssue` (file and line) and skipped, or raise
:class:`~tradeloop.data.recording.RecordingError` when ``strict``. :class:`ReplayStats` counts
everything; without ``on_error`` the first issues are also logged.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Final

from tradeloop.data.recording import CaptureInfo, ErrorHandler, LineIssue, RecordingError, detect_binance_capture
from tradeloop.data.recording import iter_lines as _iter_lines
from tradeloop.model.book import SequenceRule
from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.binance.parse import BinanceParser, MarketItem, ParseError
from tradeloop.venues.binance.spec import MARKETS, get_instrument, market_of_venue

__all__ = ["RecordingReplay", "ReplayStats"]

_log = logging.getLogger(__name__)
_MAX_KEPT_ISSUES: Final = 1000
_MAX_LOGGED_ISSUES: Final = 100


class ReplayStats:
    """Counters of one replay. ``lines`` = ``parsed`` + ``ignored`` + ``skipped``."""

    __slots__ = ("_counts", "ignored", "issues", "lines", "out_of_order", "parsed", "skipped", "snapshots")

    def __init__(self) -> None:
        self.lines = 0
        """Non-blank lines read."""
        self.parsed = 0
        """Lines that became market data items."""
        self.ignored = 0
        """Valid frames without market data (acks, unknown streams)."""
        self.skipped = 0
        """Malformed lines and frames that failed to parse."""
        self.snapshots = 0
        self.out_of_order = 0
        """Items whose ``ts_recv`` is earlier than the previous item's (a file not in time order)."""
        self.issues: list[LineIssue] = []
        """The first skipped lines (up to 1000), with file, line and reason."""
        self._counts: dict[type, int] = {}

    @property
    def by_type(self) -> dict[str, int]:
        """Parsed items by kind: ``deltas``, ``snapshot``, ``trade``, ``quote``."""
        out = {
            "deltas": self._counts.get(BookDeltas, 0) - self.snapshots,
            "snapshot": self.snapshots,
            "trade": self._counts.get(Trade, 0),
            "quote": self._counts.get(Quote, 0),
        }
        return {k: v for k, v in out.items() if v}

    def as_dict(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "parsed": self.parsed,
            "ignored": self.ignored,
            "skipped": self.skipped,
            "out_of_order": self.out_of_order,
            "by_type": self.by_type,
        }

    def __repr__(self) -> str:
        return f"ReplayStats({self.as_dict()})"


class RecordingReplay:
    """Iterate ``(ts_recv, item)`` over Binance recordings, merged by receive time.

    ``paths``: one path or several. ``venue`` forces the venue name of every file (otherwise each
    file's market is detected); ``symbol`` names the instrument of REST snapshots when a file's
    depth stream does not tell. Each iteration re-reads the files and resets :attr:`stats`.
    """

    def __init__(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        strict: bool = False,
        on_error: ErrorHandler | None = None,
        venue: str | None = None,
        symbol: str | None = None,
    ) -> None:
        self.paths: list[Path] = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no recordings to replay")
        self.strict = strict
        self.on_error = on_error
        self.stats = ReplayStats()
        self.captures: list[CaptureInfo] = []
        """Market, venue and symbol of each file, in ``paths`` order."""
        for path in self.paths:
            if venue is None:
                self.captures.append(detect_binance_capture(path))
            else:
                self.captures.append(CaptureInfo(market_of_venue(venue), venue, symbol.upper() if symbol else None))
        self._symbol = symbol

    # -- what the replay contains -----------------------------------------------------------

    def venues(self) -> list[str]:
        """Venue names of the files, sorted, without repeats."""
        return sorted({c.venue for c in self.captures})

    def sequence_rules(self) -> dict[str, SequenceRule]:
        """Venue -> book sequence rule, for :class:`~tradeloop.data.book_manager.BookManager`."""
        return {c.venue: MARKETS[c.market].sequence_rule for c in self.captures}

    def instruments(self) -> list[Instrument]:
        """Known specs of the instruments whose depth streams the files carry (when detected)."""
        out = []
        for iid in sorted({InstrumentId(c.venue, c.symbol) for c in self.captures if c.symbol}):
            try:
                out.append(get_instrument(iid))
            except KeyError:
                continue
        return out

    # -- iteration --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[int, MarketItem]]:
        self.stats = stats = ReplayStats()
        parsers: dict[tuple[str, str | None], BinanceParser] = {}
        streams = []
        for index, (path, capture) in enumerate(zip(self.paths, self.captures, strict=True)):
            symbol = self._symbol or capture.symbol
            key = (capture.venue, symbol)
            parser = parsers.get(key)
            if parser is None:
                parser = parsers[key] = BinanceParser(capture.venue, symbol)
            streams.append(self._file_items(index, path, parser, stats))
        merged: Iterator[tuple[int, int, MarketItem]]
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_BY_TIME)
        last = -1
        for ts, _, item in merged:
            if ts < last:
                stats.out_of_order += 1
            last = ts
            yield ts, item

    def _file_items(
        self, index: int, path: Path, parser: BinanceParser, stats: ReplayStats
    ) -> Iterator[tuple[int, int, MarketItem]]:
        parse = parser.parse
        counts = stats._counts
        source = str(path)
        for ts, payload, line_no in _iter_lines(path, on_error=self._issue_handler(stats)):
            stats.lines += 1
            try:
                item = parse(payload, ts)
            except ParseError as exc:
                self._report(stats, LineIssue(source, line_no, str(exc)), exc)
                continue
            if item is None:
                stats.ignored += 1
                continue
            stats.parsed += 1
            tp = type(item)
            counts[tp] = counts.get(tp, 0) + 1
            if type(item) is BookDeltas and item.snapshot:
                stats.snapshots += 1
            yield ts, index, item

    def _issue_handler(self, stats: ReplayStats) -> ErrorHandler:
        def handle(issue: LineIssue) -> None:
            stats.lines += 1
            self._report(stats, issue, None)

        return handle

    def _report(self, stats: ReplayStats, issue: LineIssue, cause: Exception | None) -> None:
        stats.skipped += 1
        if len(stats.issues) < _MAX_KEPT_ISSUES:
            stats.issues.append(issue)
        if self.strict:
            raise RecordingError(issue) from cause
        if self.on_error is not None:
            self.on_error(issue)
        elif stats.skipped <= _MAX_LOGGED_ISSUES:
            _log.warning("skipped %s", issue)
            if stats.skipped == _MAX_LOGGED_ISSUES:
                _log.warning("further skipped lines are counted but not logged")


_BY_TIME: Final = itemgetter(0, 1)
