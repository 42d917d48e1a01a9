"""The journal: an append-only, sequenced store of every command and event.

State (orders, positions, balances) is a fold over the journal, so replaying it with :meth:`Journal.read`
rebuilds the state exactly. Backends: :class:`~tradeloop.persistence.sqlite.SQLiteJournal` (default,
embedded) and :class:`~tradeloop.persistence.memory.MemoryJournal` (tests and runs without a file).

Write path:

* :meth:`Journal.append` buffers a record and returns its seq; the backend commits in batches.
* :meth:`Journal.flush` commits whatever is buffered.
* :meth:`Journal.append_durable` commits (and syncs) the record, and everything before it, before it
  returns. Live mode journals order intents this way before they are sent to a venue.

Records are committed in seq order and in whole transactions: after a crash the journal holds a
prefix of what was appended (every durable record at least), never a gap or half a record.

The journal's identity is :meth:`Journal.digest`: the sha256 of its canonical stream (see
:mod:`tradeloop.persistence.codec`), independent of the backend. ``tradeloop backtest`` prints it.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

from tradeloop.persistence.codec import (
    JournalCorruptError,
    JournalEntry,
    JournalError,
    JournalRecord,
    RecordCodec,
    Row,
    canonical_chunks,
    verify_entry,
)

StrPath = str | os.PathLike[str]


@runtime_checkable
class Journal(Protocol):
    """What every journal backend provides. Single-threaded: one engine, one writer."""

    def append(self, record: JournalRecord) -> int:
        """Append ``record`` (buffered; committed with the next batch or :meth:`flush`). Returns its seq."""
        ...

    def append_many(self, records: Iterable[JournalRecord]) -> int:
        """Append ``records`` in order (buffered). Returns the last seq (``last_seq()`` if empty)."""
        ...

    def append_durable(self, record: JournalRecord) -> int:
        """Append ``record`` and commit (and sync) it with everything buffered before returning its seq."""
        ...

    def flush(self, *, durable: bool = False) -> None:
        """Commit every buffered record; with ``durable``, sync it as :meth:`append_durable` does.

        ``append`` of several intents then one ``flush(durable=True)`` makes them all durable with
        one sync (group commit).
        """
        ...

    def read(self, from_seq: int = 1) -> Iterator[tuple[int, int, JournalRecord]]:
        """Yield ``(seq, ts, record)`` for every record from ``from_seq`` on, in order.

        Includes records appended but not yet committed. Raises :class:`JournalCorruptError` at
        the first damaged, missing or unknown record.
        """
        ...

    def entries(self, from_seq: int = 1) -> Iterator[JournalEntry]:
        """Yield the stored (still encoded) entries from ``from_seq`` on, CRC and seq checked."""
        ...

    def last_seq(self) -> int:
        """The seq of the last appended record (0 when empty)."""
        ...

    def digest(self) -> str:
        """sha256 hex of the canonical stream of every record, in order."""
        ...

    def export(self, path: StrPath) -> str:
        """Write the canonical stream to ``path`` (a flat file); returns its sha256 hex (= :meth:`digest`)."""
        ...

    def close(self) -> None:
        """Commit what is buffered and release the backend. Further appends raise :class:`JournalError`."""
        ...


class JournalBase(ABC):
    """Shared behaviour of the backends: checked and decoded reads, digest and export.

    Subclasses implement the write path, ``last_seq``, ``close`` and ``_raw_entries``.
    """

    def __init__(self) -> None:
        self._codec = RecordCodec()
        self._closed = False

    # -- to implement -------------------------------------------------------------------------
    @abstractmethod
    def append(self, record: JournalRecord) -> int:
        """Append ``record``; returns its seq."""

    @abstractmethod
    def append_many(self, records: Iterable[JournalRecord]) -> int:
        """Append ``records`` in order; returns the last seq."""

    @abstractmethod
    def append_durable(self, record: JournalRecord) -> int:
        """Append ``record`` and make it (and everything before it) durable; returns its seq."""

    @abstractmethod
    def flush(self, *, durable: bool = False) -> None:
        """Commit every buffered record."""

    @abstractmethod
    def last_seq(self) -> int:
        """The seq of the last appended record (0 when empty)."""

    @abstractmethod
    def close(self) -> None:
        """Commit what is buffered and release the backend."""

    @abstractmethod
    def _raw_entries(self, from_seq: int, to_seq: int) -> Iterator[Row]:
        """Stored rows with ``from_seq <= seq <= to_seq`` in seq order, unchecked."""

    # -- shared -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"{type(self).__name__} is closed")

    def _checked_rows(self, from_seq: int) -> Iterator[Row]:
        """Rows from ``from_seq`` up to the last seq at call time, with seq continuity checked.

        Checks that the journal is open at call time, not at the first ``next``.
        """
        self._check_open()
        return self._continuous(max(from_seq, 1), self.last_seq())

    def _continuous(self, start: int, last: int) -> Iterator[Row]:
        expected = start
        for row in self._raw_entries(start, last):
            seq = row[0]
            if seq != expected:
                raise JournalCorruptError(f"record missing (expected seq {expected}, found {seq})", seq=expected)
            yield row
            expected += 1
        if expected <= last:
            raise JournalCorruptError(f"record missing (stored records end before it; last is {last})", seq=expected)

    def entries(self, from_seq: int = 1) -> Iterator[JournalEntry]:
        """Yield stored entries from ``from_seq`` on; checks seq continuity and each CRC, not the payload."""
        return _verified(self._checked_rows(from_seq))

    def read(self, from_seq: int = 1) -> Iterator[tuple[int, int, JournalRecord]]:
        """Yield ``(seq, ts, record)`` from ``from_seq`` on, decoded and fully checked."""
        decode = self._codec.decode
        rows = self._checked_rows(from_seq)
        return ((row[0], row[1], decode(row)) for row in rows)

    def digest(self) -> str:
        """sha256 hex of the canonical stream (magic, then one frame per record in seq order)."""
        hasher = hashlib.sha256()
        update = hasher.update
        for chunk in canonical_chunks(_verified_rows(self._checked_rows(1))):
            update(chunk)
        return hasher.hexdigest()

    def export(self, path: StrPath) -> str:
        """Write the canonical stream to ``path`` (atomically: temp file, fsync, rename). Returns its sha256."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        hasher = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                buffer: list[bytes] = []
                size = 0
                for chunk in canonical_chunks(_verified_rows(self._checked_rows(1))):
                    hasher.update(chunk)
                    buffer.append(chunk)
                    size += len(chunk)
                    if size >= 1 << 20:
                        out.write(b"".join(buffer))
                        buffer.clear()
                        size = 0
                out.write(b"".join(buffer))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return hasher.hexdigest()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _verified(rows: Iterator[Row]) -> Iterator[JournalEntry]:
    for row in rows:
        verify_entry(row)
        yield JournalEntry(*row)


def _verified_rows(rows: Iterator[Row]) -> Iterator[Row]:
    for row in rows:
        verify_entry(row)
        yield row
