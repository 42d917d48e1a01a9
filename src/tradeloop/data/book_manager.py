"""Book manager: one L2 book per instrument, built from snapshots and deltas, with integrity checks.

Life of a book:

1. The first data for an instrument creates its :class:`~tradeloop.model.book.OrderBook` with the
   venue's :class:`~tradeloop.model.book.SequenceRule` (and checksum function, if any).
2. Deltas that arrive before the first snapshot are buffered (at most ``max_buffer``; the oldest
   are dropped). When the snapshot arrives it is applied and the buffer replayed through the
   book's sequence rule: deltas the snapshot already covers are stale and dropped.
3. A sequence gap, a checksum mismatch or a crossed book marks the book invalid:
   ``BookStatus(valid=False, reason)`` is published on ``topics.BOOK_STATUS`` and deltas are
   refused (counted) until the next snapshot. Refused deltas are kept in the same bounded buffer
   and replayed after that snapshot, as the venues' resync procedures require; then
   ``BookStatus(valid=True, "resynced")`` is published.
4. After each successful apply the book is published on ``topics.BOOK`` (once after a snapshot
   and its buffer replay).

The first snapshot publishes ``BookStatus(valid=True, "snapshot")`` so strategies know when a
book becomes usable. Status timestamps are the manager's clock. :class:`MarketDataHub` routes
parsed market data: deltas to the manager, trades and quotes to their topics.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Final

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import Clock
from tradeloop.model import topics
from tradeloop.model.book import ApplyResult, ChecksumFn, OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas, BookStatus, MarketData, Quote, Trade
from tradeloop.model.identifiers import InstrumentId

__all__ = ["BookCounters", "BookManager", "MarketDataHub"]

_APPLIED: Final = ApplyResult.APPLIED
_STALE: Final = ApplyResult.STALE
_INVALID: Final = ApplyResult.INVALID
_BOOK: Final = topics.BOOK


class BookCounters:
    """What happened to one book. Plain mutable counters, read them any time."""

    __slots__ = (
        "applied",
        "buffer_dropped",
        "buffered",
        "checksum_failures",
        "crossed",
        "gaps",
        "refused",
        "resyncs",
        "snapshots",
        "stale",
    )

    def __init__(self) -> None:
        self.applied = 0
        """Delta batches applied (not counting snapshots)."""
        self.stale = 0
        """Delta batches older than the book, dropped (normal right after a snapshot)."""
        self.gaps = 0
        """Sequence gaps detected."""
        self.checksum_failures = 0
        self.crossed = 0
        """Times the book was found crossed after an update."""
        self.refused = 0
        """Delta batches refused because the book was invalid."""
        self.resyncs = 0
        """Snapshots that made an invalid book valid again (not counting the first one)."""
        self.snapshots = 0
        self.buffered = 0
        """Delta batches held before a snapshot (before the first one, and while invalid)."""
        self.buffer_dropped = 0
        """Buffered batches dropped because the buffer was full."""

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"BookCounters({', '.join(f'{k}={v}' for k, v in self.as_dict().items())})"


class _Entry:
    __slots__ = ("book", "buffer", "counters", "had_snapshot")

    def __init__(self, book: OrderBook, max_buffer: int) -> None:
        self.book = book
        self.buffer: deque[BookDeltas] = deque(maxlen=max_buffer)
        self.counters = BookCounters()
        self.had_snapshot = False


class BookManager:
    """Owns the books; applies :class:`BookDeltas` and publishes books and their status.

    ``sequence_rules`` maps a venue name to its rule (venues not listed use ``default_rule``);
    ``checksum_fns`` maps a venue name to the function computing its book checksum, checked when
    a batch carries the venue's checksum; ``depth_limits`` the levels per side kept for a venue's books
    (for venues that send no delete when a level leaves the subscribed depth). ``max_buffer`` bounds
    the deltas held while a book has no valid snapshot.
    """

    __slots__ = (
        "_books",
        "_bus",
        "_check_crossed",
        "_checksum_fns",
        "_clock",
        "_default_rule",
        "_depth_limits",
        "_entries",
        "_max_buffer",
        "_rules",
    )

    def __init__(
        self,
        bus: MessageBus,
        clock: Clock,
        sequence_rules: Mapping[str, SequenceRule],
        checksum_fns: Mapping[str, ChecksumFn] | None = None,
        *,
        max_buffer: int = 1000,
        default_rule: SequenceRule = SequenceRule.NONE,
        check_crossed: bool = True,
        depth_limits: Mapping[str, int] | None = None,
    ) -> None:
        if max_buffer < 0:
            raise ValueError("max_buffer must not be negative")
        self._bus = bus
        self._clock = clock
        self._rules = dict(sequence_rules)
        self._checksum_fns = dict(checksum_fns or {})
        self._max_buffer = max_buffer
        self._default_rule = default_rule
        self._check_crossed = check_crossed
        self._depth_limits = dict(depth_limits or {})
        self._entries: dict[InstrumentId, _Entry] = {}
        self._books: dict[InstrumentId, OrderBook] = {}

    # -- reading ----------------------------------------------------------------------------

    def book(self, instrument_id: InstrumentId) -> OrderBook | None:
        """The instrument's book (check ``valid`` before pricing off it), or ``None``."""
        return self._books.get(instrument_id)

    def books(self) -> Mapping[InstrumentId, OrderBook]:
        """Every book, by instrument (read-only view)."""
        return self._books

    def counters(self, instrument_id: InstrumentId) -> BookCounters:
        """Counters of one book; ``KeyError`` if the instrument has no book."""
        return self._entries[instrument_id].counters

    def is_valid(self, instrument_id: InstrumentId) -> bool:
        book = self._books.get(instrument_id)
        return book is not None and book.valid

    # -- applying ---------------------------------------------------------------------------

    def on_deltas(self, deltas: BookDeltas) -> ApplyResult:
        """Apply one batch (or snapshot). Returns APPLIED, STALE, or INVALID (also when refused or
        buffered while the book has no valid snapshot)."""
        entry = self._entries.get(deltas.instrument_id)
        if entry is None:
            entry = self._create(deltas.instrument_id)
        if deltas.snapshot:
            return self._on_snapshot(entry, deltas)
        book = entry.book
        if book.valid:
            result = book.apply_deltas(deltas)
            if result is _APPLIED:
                entry.counters.applied += 1
                self._bus.publish(_BOOK, book)
            elif result is _STALE:
                entry.counters.stale += 1
            else:
                self._invalidated(entry)
            return result
        # No valid snapshot (yet, or since a failure): hold the batch for the next snapshot.
        counters = entry.counters
        if entry.had_snapshot:
            counters.refused += 1
        buffer = entry.buffer
        if buffer.maxlen:
            if len(buffer) == buffer.maxlen:
                counters.buffer_dropped += 1
            buffer.append(deltas)
            counters.buffered += 1
        return _INVALID

    def invalidate(self, instrument_id: InstrumentId, reason: str) -> None:
        """Mark a book unusable until its next snapshot, from outside the book (a connector lost its
        feed, so deltas may have been missed). Publishes the ``BookStatus`` if the book was valid."""
        entry = self._entries.get(instrument_id)
        if entry is None or not entry.book.valid:
            return
        entry.book.invalidate(reason)
        entry.buffer.clear()
        self._invalidated(entry)

    def _create(self, instrument_id: InstrumentId) -> _Entry:
        venue = instrument_id.venue
        book = OrderBook(
            instrument_id,
            self._rules.get(venue, self._default_rule),
            self._checksum_fns.get(venue),
            self._check_crossed,
            self._depth_limits.get(venue, 0),
        )
        entry = _Entry(book, self._max_buffer)
        self._entries[instrument_id] = entry
        self._books[instrument_id] = book
        return entry

    def _on_snapshot(self, entry: _Entry, snapshot: BookDeltas) -> ApplyResult:
        book = entry.book
        counters = entry.counters
        first = not entry.had_snapshot
        was_invalid = entry.had_snapshot and not book.valid
        entry.had_snapshot = True
        counters.snapshots += 1
        result = book.apply_snapshot(snapshot)
        if result is _APPLIED and entry.buffer:
            buffered = list(entry.buffer)
            entry.buffer.clear()
            for deltas in buffered:
                r = book.apply_deltas(deltas)
                if r is _APPLIED:
                    counters.applied += 1
                elif r is _STALE:
                    counters.stale += 1
                else:
                    result = r
                    break
        else:
            entry.buffer.clear()
        if result is not _APPLIED:
            self._invalidated(entry)
            return result
        if first:
            self._publish_status(book, True, "snapshot")
        elif was_invalid:
            counters.resyncs += 1
            self._publish_status(book, True, "resynced")
        self._bus.publish(_BOOK, book)
        return result

    def _invalidated(self, entry: _Entry) -> None:
        book = entry.book
        reason = book.invalid_reason
        counters = entry.counters
        if reason.startswith("sequence gap"):
            counters.gaps += 1
        elif reason.startswith("checksum"):
            counters.checksum_failures += 1
        elif reason.startswith("crossed"):
            counters.crossed += 1
        self._publish_status(book, False, reason)

    def _publish_status(self, book: OrderBook, valid: bool, reason: str) -> None:
        self._bus.publish(
            topics.BOOK_STATUS,
            BookStatus(instrument_id=book.instrument_id, ts=self._clock.now_ns(), valid=valid, reason=reason),
        )


class MarketDataHub:
    """Entry point for parsed market data: ``BookDeltas`` go to the :class:`BookManager` (which
    publishes books), trades to ``topics.TRADES``, quotes to ``topics.QUOTES``. An invalid
    ``BookStatus`` from a connector (it lost its feed, so deltas may be missing) invalidates that
    book until its next snapshot; only the book manager declares a book valid.

    With ``publish_deltas`` the raw batches are also published on ``topics.BOOK_DELTAS`` before
    they are applied.
    """

    __slots__ = ("_bus", "_on_deltas", "_publish_deltas", "book_manager")

    def __init__(self, bus: MessageBus, book_manager: BookManager, *, publish_deltas: bool = False) -> None:
        self._bus = bus
        self.book_manager = book_manager
        self._on_deltas = book_manager.on_deltas
        self._publish_deltas = publish_deltas

    def on_data(self, item: MarketData) -> None:
        """Dispatch one item by type."""
        if type(item) is BookDeltas:
            if self._publish_deltas:
                self._bus.publish(topics.BOOK_DELTAS, item)
            self._on_deltas(item)
        elif type(item) is Trade:
            self._bus.publish(topics.TRADES, item)
        elif type(item) is Quote:
            self._bus.publish(topics.QUOTES, item)
        elif type(item) is BookStatus:
            if not item.valid:
                self.book_manager.invalidate(item.instrument_id, item.reason)
        else:
            raise TypeError(f"not market data: {type(item).__name__}")
