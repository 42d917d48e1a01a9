"""A journal held in memory: for tests, and for runs that ask for no journal file.

Records are encoded exactly as the SQLite journal encodes them, so the digest of a memory journal
equals the digest of a SQLite journal holding the same records. Nothing survives the process:
"durable" means nothing here, and snapshots are kept in the same list-like way as records.

Every append is "durable" at once, so durable-progress listeners are called on the caller's thread
for every append (``append_many``: once, with its last seq). Fencing works as on the other backends
for the one object that holds the journal: :meth:`MemoryJournal.claim` refuses a token smaller than
the greatest claimed so far (and the journal then refuses writes); no second writer can share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tradeloop.persistence.codec import JournalEntry, JournalRecord, Row, read_canonical
from tradeloop.persistence.journal import SNAPSHOTS_KEPT, JournalBase, SnapshotRow, StrPath, check_token


class MemoryJournal(JournalBase):
    """A :class:`~tradeloop.persistence.journal.Journal` in a Python list. Every append is "committed" at once."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[Row] = []
        self._snapshots: list[SnapshotRow] = []
        self._owner = 0
        """The stored owner token (the greatest claimed)."""
        self._row = self._codec.encode_row

    @classmethod
    def load(cls, path: StrPath) -> MemoryJournal:
        """A memory journal holding the records of an exported canonical stream (see ``export``).

        A torn last frame is dropped with a warning and counted in ``dropped_tail``; any other damage
        raises :class:`~tradeloop.persistence.codec.JournalCorruptError` naming its byte offset.
        """
        journal = cls()
        with open(path, "rb") as stream:
            reader = read_canonical(stream, name=str(path))
            journal._rows.extend(reader)
        journal.dropped_tail = reader.dropped_tail
        return journal

    def _writable(self) -> None:
        self._check_open()
        if self._failure is not None:
            raise self._failed()

    def append(self, record: JournalRecord) -> int:
        """Append ``record``; returns its seq."""
        if self._stopped:
            self._writable()
        rows = self._rows
        seq = len(rows) + 1
        rows.append(self._row(seq, record))
        if self._durable_listeners.listeners:
            self._durable_listeners.advanced(seq)
        return seq

    def append_many(self, records: Iterable[JournalRecord]) -> int:
        """Append ``records`` in order (all or none, if one cannot be journaled); returns the last seq."""
        self._writable()
        rows = self._codec.encode_rows(len(self._rows) + 1, records)
        if rows:
            self._rows.extend(rows)
            if self._durable_listeners.listeners:
                self._durable_listeners.advanced(len(self._rows))
        return len(self._rows)

    def append_durable(self, record: JournalRecord) -> int:
        """Same as :meth:`append`: memory has nothing to sync."""
        return self.append(record)

    def flush(self, *, durable: bool = False) -> None:
        """Nothing is buffered."""
        self._writable()

    def flush_if_due(self, period_s: float = 0.25) -> None:
        """Nothing is buffered."""
        self._writable()

    def request_durable(self) -> int:
        """Nothing to sync: returns the last seq."""
        self._writable()
        return len(self._rows)

    def durable_seq(self) -> int:
        """The last seq (memory has nothing to sync)."""
        return len(self._rows)

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """True at once for any appended seq."""
        if seq > len(self._rows):
            raise ValueError(f"seq {seq} was never appended (last is {len(self._rows)})")
        return True

    def save_snapshot(self, seq: int, ts: int, payload: bytes) -> None:
        """Keep the snapshot (and the :data:`SNAPSHOTS_KEPT` newest ones)."""
        self._writable()
        row = self._check_snapshot(seq, ts, payload)
        snapshots = self._snapshots
        snapshots.append(row)
        del snapshots[:-SNAPSHOTS_KEPT]

    def claim(self, token: int) -> None:
        """Take ``token`` unless a greater one was claimed before (then the journal refuses writes)."""
        token = check_token(token)
        self._writable()
        owner = self._owner
        if owner > token:
            raise self._claim_refused(token, owner)
        self._owner = self._fence = token

    def _snapshot_rows(self) -> Iterator[SnapshotRow]:
        return reversed(list(self._snapshots))

    def last_seq(self) -> int:
        """The last seq (0 when empty)."""
        return len(self._rows)

    def _raw_entries(self, from_seq: int, to_seq: int) -> Iterator[Row]:
        rows = self._rows
        for i in range(from_seq - 1, min(to_seq, len(rows))):
            yield rows[i]

    def entry_at(self, seq: int) -> JournalEntry:
        """The stored entry at ``seq`` (``IndexError`` if there is none)."""
        if not 1 <= seq <= len(self._rows):
            raise IndexError(f"no record at seq {seq} (last is {len(self._rows)})")
        return JournalEntry(*self._rows[seq - 1])

    def close(self) -> None:
        """Mark the journal closed: further appends and reads raise ``JournalError``."""
        self._closed = True
        self._stopped = True
