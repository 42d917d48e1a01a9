"""Keeping one OKX ``books`` book in sync: both documented procedures, as a pure state machine.

**WebSocket snapshot (classic).** After the subscription ack OKX pushes ``action: snapshot``
(``prevSeqId`` -1), then ``update`` frames whose ``prevSeqId`` equals the previous frame's
``seqId`` (idle keep-alives repeat it: ``seqId == prevSeqId``). The snapshot's ``checksum`` and
every update's are CRC32s of the top 25 levels (0 when OKX no longer computes them: not checked).

**REST snapshot (2026).** OKX stops sending the WebSocket snapshot (and the checksum): subscribe,
buffer updates and note the first one's ``prevSeqId``, fetch ``GET /api/v5/market/books`` (which
now carries ``seqId``), fetch again while its ``seqId`` is older than that ``prevSeqId``, drop the
buffered updates it covers (``seqId <= snapshot``), and apply the rest: the first must satisfy
``prevSeqId <= snapshot.seqId < seqId``, then the chain continues. A snapshot action that still
arrives is ignored in this mode.

``AUTO`` (the default) takes the WebSocket snapshot when one comes before any update and falls
back to the REST procedure when an update comes first, so it works before and after OKX's switch.

Every frame goes through a shadow :class:`OrderBook` with OKX's rule (``PREV_LINK``) and checksum,
so the client sees a gap, a failed checksum, a crossed book or a sequence reset (``seqId`` lower
than ``prevSeqId`` after maintenance: resynced to be safe) itself: :attr:`SyncStep.failure` tells
the caller to mark the book invalid and resync it. Only frames that pass are handed on.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum, StrEnum
from typing import Final, NamedTuple

from tradeloop.model.book import ApplyResult, ChecksumFn, OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas
from tradeloop.model.identifiers import InstrumentId

__all__ = ["BookProcedure", "OkxBookSync", "SyncState", "SyncStep"]

_APPLIED: Final = ApplyResult.APPLIED
_INVALID: Final = ApplyResult.INVALID


class BookProcedure(StrEnum):
    AUTO = "auto"
    """The WebSocket snapshot when OKX sends one first, else the REST procedure."""
    WS_SNAPSHOT = "ws_snapshot"
    """Classic: the snapshot pushed after subscribing."""
    REST_SNAPSHOT = "rest_snapshot"
    """2026: buffer updates, link them to ``GET /api/v5/market/books`` by ``seqId``."""


class SyncState(IntEnum):
    SUBSCRIBING = 0
    """(Re)subscription sent: frames of the old subscription are ignored until the ack."""
    AWAITING = 1
    """Subscribed; waiting for the snapshot (WebSocket) or the first update (REST)."""
    FETCHING = 2
    """Buffering updates while the REST snapshot is fetched."""
    LIVE = 3


class SyncStep(NamedTuple):
    """What the caller does after a frame: hand on ``emit`` (in order), start a REST snapshot fetch,
    and on ``failure`` mark the book invalid and resync it."""

    emit: list[BookDeltas]
    fetch: bool = False
    failure: str = ""


_NOTHING: Final = SyncStep([])


class OkxBookSync:
    """The sync state of one book (see the module docstring)."""

    def __init__(
        self,
        instrument_id: InstrumentId,
        procedure: BookProcedure = BookProcedure.AUTO,
        checksum_fn: ChecksumFn | None = None,
        *,
        max_buffer: int = 5000,
    ) -> None:
        self.instrument_id = instrument_id
        self.procedure = procedure
        self.book = OrderBook(instrument_id, SequenceRule.PREV_LINK, checksum_fn)
        """The shadow book every frame is checked against."""
        self.state = SyncState.SUBSCRIBING
        self.generation = 0
        """Bumped whenever an in-flight REST snapshot becomes useless (its reply is then ignored)."""
        self._buffer: deque[BookDeltas] = deque()
        self._max_buffer = max_buffer
        self._first_prev = -1
        self.ws_snapshots = 0
        self.rest_snapshots = 0
        self.rest_retries = 0
        self.failures = 0
        self.ignored = 0
        """Frames dropped: before the ack, old-subscription updates, snapshots the procedure ignores."""

    @property
    def resubscribe_on_failure(self) -> bool:
        """A failure is repaired by resubscribing (WebSocket snapshot) or by a new REST snapshot."""
        return self.procedure is not BookProcedure.REST_SNAPSHOT

    # -- subscription -------------------------------------------------------------------------

    def subscribing(self) -> None:
        """A (re)subscription was sent (or the connection was lost): wait for the ack."""
        self._reset(SyncState.SUBSCRIBING)

    def subscribed(self) -> None:
        """OKX acknowledged the subscription."""
        if self.state is SyncState.SUBSCRIBING:
            self.state = SyncState.AWAITING

    def restart(self, reason: str) -> None:
        """Start over on the same subscription (REST procedure): the next update triggers a fetch."""
        self.book.invalidate(reason)
        self._reset(SyncState.AWAITING)

    def _reset(self, state: SyncState) -> None:
        self.state = state
        self.generation += 1
        self._buffer.clear()
        self._first_prev = -1

    def _fail(self, reason: str, emit: list[BookDeltas] | None = None) -> SyncStep:
        self.failures += 1
        self.book.invalidate(reason)
        self._reset(SyncState.SUBSCRIBING if self.resubscribe_on_failure else SyncState.AWAITING)
        return SyncStep(emit or [], failure=reason)

    # -- frames -------------------------------------------------------------------------------

    def on_deltas(self, d: BookDeltas) -> SyncStep:
        """One parsed ``books`` frame of this instrument."""
        state = self.state
        if state is SyncState.SUBSCRIBING:
            self.ignored += 1
            return _NOTHING
        if d.snapshot:
            if self.procedure is BookProcedure.REST_SNAPSHOT:
                self.ignored += 1
                return _NOTHING
            return self._ws_snapshot(d)
        if state is SyncState.LIVE:
            return self._live_update(d)
        if self.procedure is BookProcedure.WS_SNAPSHOT:
            self.ignored += 1  # an update before the snapshot belongs to an earlier subscription
            return _NOTHING
        if len(self._buffer) >= self._max_buffer:
            return self._fail(f"more than {self._max_buffer} updates buffered while waiting for the REST snapshot")
        self._buffer.append(d)
        if state is SyncState.AWAITING:
            self.state = SyncState.FETCHING
            self._first_prev = d.prev_seq
            self.generation += 1
            return SyncStep([], fetch=True)
        return _NOTHING

    def _ws_snapshot(self, d: BookDeltas) -> SyncStep:
        self.generation += 1  # a REST snapshot in flight is not needed any more
        self._buffer.clear()
        if self.book.apply_snapshot(d) is _INVALID:
            return self._fail(f"snapshot refused: {self.book.invalid_reason}")
        self.state = SyncState.LIVE
        self.ws_snapshots += 1
        return SyncStep([d])

    def _live_update(self, d: BookDeltas) -> SyncStep:
        last = self.book.last_seq
        if d.prev_seq >= 0 and d.prev_seq == last and d.last_seq < d.prev_seq:
            return self._fail(f"sequence reset: seqId {d.last_seq} after {d.prev_seq}")
        result = self.book.apply_deltas(d)
        if result is _APPLIED:
            return SyncStep([d])
        if result is _INVALID:
            return self._fail(self.book.invalid_reason)
        self.ignored += 1  # stale: already in the book
        return _NOTHING

    def on_rest_snapshot(self, snap: BookDeltas, generation: int) -> SyncStep:
        """The REST snapshot fetched for ``generation`` (``snap.last_seq`` is its ``seqId``).

        ``fetch`` asks for another (older than the first buffered update's ``prevSeqId``).
        """
        if generation != self.generation or self.state is not SyncState.FETCHING:
            self.ignored += 1
            return _NOTHING
        if snap.last_seq < self._first_prev:
            self.rest_retries += 1
            return SyncStep([], fetch=True)
        if self.book.apply_snapshot(snap) is _INVALID:
            return self._fail(f"REST snapshot refused: {self.book.invalid_reason}")
        self.rest_snapshots += 1
        emit = [snap]
        buffered = list(self._buffer)
        self._buffer.clear()
        self.state = SyncState.LIVE
        for d in buffered:
            if d.last_seq <= snap.last_seq:
                continue  # covered by the snapshot
            result = self.book.apply_deltas(d)
            if result is _APPLIED:
                emit.append(d)
            elif result is _INVALID:
                return self._fail(self.book.invalid_reason, emit)
        return SyncStep(emit)

    def fetch_failed(self, generation: int, reason: str) -> SyncStep:
        """The REST snapshot could not be had (after retries): resync."""
        if generation != self.generation or self.state is not SyncState.FETCHING:
            return _NOTHING
        return self._fail(f"REST snapshot failed: {reason}")
