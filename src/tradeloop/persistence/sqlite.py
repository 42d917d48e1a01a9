"""The SQLite journal: the default backend, embedded, nothing to start.

Tables ``journal`` and ``snapshots``, and ``fence`` once the journal is claimed (the format is in
:mod:`tradeloop.persistence.sqlite_format`).

Writes:

* The database is switched to WAL mode at the first write. Appends are encoded at once (so a bad
  record fails at ``append``, not later) and buffered; every ``batch_size`` records, on
  :meth:`SQLiteJournal.flush` and on :meth:`SQLiteJournal.close` the buffer is written with one
  prepared ``executemany`` in one transaction. A transaction is all or nothing, so a crash loses
  at most the unflushed tail and never leaves half a record or a gap.
* ``synchronous`` (default ``NORMAL``) applies to batch commits: in WAL mode a committed batch
  survives a crash of the process, and is synced to disk at the next checkpoint.
* :meth:`SQLiteJournal.append_durable` commits the buffer and the record under
  ``durable_synchronous`` (default ``FULL``: the WAL is fsynced before the call returns), so an
  order intent survives a power loss as well as a crash.
* Nothing waits longer than ``max_delay_s`` (default 1 s) for its commit: every 64th append checks
  the clock (one ``monotonic_ns`` call) and commits when the last commit is that old, and
  :meth:`SQLiteJournal.flush_if_due`, called from a timer, does the same while the engine is idle.
  The journal has no thread of its own; without such a timer an idle engine's last few records
  wait for the next append, flush or close.
* :meth:`SQLiteJournal.save_snapshot` commits the buffer, then writes the snapshot and prunes old
  ones (the newest three stay) in one ``durable_synchronous`` transaction.
* Group commit without blocking: :meth:`SQLiteJournal.request_durable` commits the buffer under
  ``synchronous`` and has a :class:`~tradeloop.persistence.walsync.WalSyncer` fsync the WAL in the
  background; :meth:`SQLiteJournal.durable_seq` says how far that got. An engine that holds each
  send until ``durable_seq()`` covers its intent keeps "intent durable before send" with one fsync
  for all the intents appended while the previous fsync ran. A sync requested while the previous
  one ran starts at the opening thread's next ``request_durable``, ``durable_seq``, ``wait_durable``
  or ``flush_if_due`` (the connection is that thread's; from any other thread ``durable_seq`` only
  reads). Durable-progress listeners are called on the syncer's thread after each fsync, and on the
  caller's after a durable commit (``append_durable``, ``flush(durable=True)``, snapshot, claim).
* Fencing: :meth:`SQLiteJournal.claim` writes the ``fence`` row in a durable transaction; a claimed
  journal reads it inside each write transaction. ``BEGIN IMMEDIATE`` takes the file's write lock
  first, so another connection's claim comes wholly before a commit (and refuses it) or after it.

Crash safety of the tail: a transaction is all or nothing, so a row is never torn. What a crash can
tear is the last frame of the WAL file; SQLite's frame checksums make it ignore that frame (and the
transaction it belonged to) at the next open, which the journal reports with a warning naming the
file and the bytes dropped (:attr:`SQLiteJournal.torn_wal_bytes`). The last record is also checked
when the journal is opened: one whose CRC fails is deleted (hidden when read-only) with a warning
and counted in ``dropped_tail``; a damaged record before it is reported by reads, naming its seq.

On :meth:`SQLiteJournal.close` the WAL is checkpointed and truncated and the database switched back
to rollback-journal mode: what remains is one self-contained file, and the same records appended
the same way give the same file bytes. Opening a closed journal only to read it (replay, digest)
writes nothing, so its bytes do not change.

Opening an existing journal continues its seq; a foreign SQLite file is refused. Journals of schema v1
get their ``snapshots`` table at the first :meth:`SQLiteJournal.save_snapshot`.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from time import monotonic_ns
from typing import Final

import msgspec

from tradeloop.core.failpoints import failpoint
from tradeloop.persistence import sqlite_format as fmt
from tradeloop.persistence.codec import KIND_OF, JournalCorruptError, JournalError, JournalRecord, Row, kind_of
from tradeloop.persistence.journal import (
    DEFAULT_MAX_DELAY_S,
    JournalBase,
    SnapshotRow,
    StrPath,
    check_token,
    log,
)
from tradeloop.persistence.walsync import WalSyncer

DEFAULT_BATCH_SIZE: Final[int] = 8192
"""Records per batch commit."""
SYNC_MODES: Final[tuple[str, ...]] = ("OFF", "NORMAL", "FULL", "EXTRA")

_READ_PAGE: Final[int] = 8192
_CRC_HEAD: Final = struct.Struct("<Qq")
_DUE_STRIDE_MASK: Final[int] = 63
"""``append`` looks at the clock when the buffer length is a multiple of 64 (cheap, and often enough)."""


def _sync_mode(value: str, name: str) -> str:
    mode = value.upper()
    if mode not in SYNC_MODES:
        raise ValueError(f"{name} must be one of {', '.join(SYNC_MODES)}, got {value!r}")
    return mode


class SQLiteJournal(JournalBase):
    """A :class:`~tradeloop.persistence.journal.Journal` in one SQLite file.

    :param path: the database file; created (with its parent directories) if missing.
    :param batch_size: buffered records per commit.
    :param synchronous: SQLite ``synchronous`` for batch commits (``OFF``, ``NORMAL``, ``FULL``, ``EXTRA``).
    :param durable_synchronous: ``synchronous`` for :meth:`append_durable` commits.
    :param readonly: open an existing journal for reading only (appends raise, the file is not touched).
    :param max_delay_s: longest wait of a buffered record for its commit (see the module docstring).

    Single-threaded (the thread that opened it), single writer. A second writer on the same file is
    detected at its first commit (the seq it wants is taken) and gets a
    :class:`~tradeloop.persistence.codec.JournalError`; after a :meth:`claim` by a newer owner, a stale
    writer gets :class:`~tradeloop.persistence.codec.JournalFenced` before it writes anything.
    """

    def __init__(
        self,
        path: StrPath,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        synchronous: str = "NORMAL",
        durable_synchronous: str = "FULL",
        readonly: bool = False,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not (isinstance(max_delay_s, int | float) and math.isfinite(max_delay_s) and max_delay_s > 0):
            raise ValueError(f"max_delay_s must be a positive number of seconds, got {max_delay_s!r}")
        self.path = Path(path)
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise ValueError("SQLiteJournal needs a file path; use MemoryJournal for a journal in memory")
        self._batch_size = batch_size
        self._sync = _sync_mode(synchronous, "synchronous")
        self._durable_sync = _sync_mode(durable_synchronous, "durable_synchronous")
        self._readonly = readonly
        self._stopped = readonly
        self._owner = threading.get_ident()
        self._buffer: list[Row] = []
        self._wal = False
        self._has_snapshots = False
        self._max_delay_ns = int(max_delay_s * 1e9)
        self._due_ns = monotonic_ns() + self._max_delay_ns
        self._encode = msgspec.msgpack.Encoder().encode
        self.torn_wal_bytes = fmt.torn_wal_tail(self.path.with_name(self.path.name + "-wal"))
        """Bytes of a torn last WAL frame found at open (SQLite ignores them); 0 if none."""
        self._conn = self._connect()
        try:
            self._committed = self._open_schema()
            self._check_tail()
        except BaseException:
            self._conn.close()
            raise
        self._last = self._committed
        self._durable = self._committed
        self._want = self._committed
        self._syncer: WalSyncer | None = None

    # -- opening ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._readonly:
            if not self.path.exists():
                raise JournalError(f"journal not found: {self.path}")
            uri = f"{self.path.resolve().as_uri().replace('file://', 'file:', 1)}?mode=ro"
            return sqlite3.connect(uri, uri=True, isolation_level=None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA synchronous={self._sync}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalError(f"{self.path}: not a usable SQLite database: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_schema(self) -> int:
        conn = self._conn
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: not a usable SQLite database: {exc}") from None
        if app_id == 0 and not tables:
            if self._readonly:
                raise JournalError(f"{self.path}: empty database, not a journal")
            self._ensure_wal()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"PRAGMA application_id={fmt.APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={fmt.SCHEMA_VERSION}")
            conn.execute(fmt.CREATE_JOURNAL)
            conn.execute(fmt.CREATE_SNAPSHOTS)
            conn.execute("COMMIT")
            self._has_snapshots = True
            return 0
        if app_id != fmt.APPLICATION_ID or "journal" not in tables:
            raise JournalError(f"{self.path}: not a tradeloop journal (application_id {app_id:#x})")
        if version > fmt.SCHEMA_VERSION:
            raise JournalError(
                f"{self.path}: journal schema v{version} is newer than this tradeloop (v{fmt.SCHEMA_VERSION})"
            )
        self._has_snapshots = "snapshots" in tables
        # Two queries: SQLite answers a lone min() or max() from the b-tree edge, a pair by a full scan.
        (last,) = conn.execute("SELECT max(seq) FROM journal").fetchone()
        (first,) = conn.execute("SELECT min(seq) FROM journal").fetchone()
        if last is None:
            return 0
        if first != 1:
            raise JournalCorruptError(f"record missing: {self.path} starts at seq {first}", seq=1)
        return int(last)

    def _check_tail(self) -> None:
        """Drop (delete, or hide when read-only) a last record whose CRC fails, with a warning."""
        if self._committed == 0:
            return
        row: Row = self._conn.execute(fmt.SELECT_LAST).fetchone()
        problem = self._tail_problem(row)
        if problem is None:
            return
        seq = row[0]
        if not self._readonly:
            self._ensure_wal()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM journal WHERE seq = ?", (seq,))
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        self._committed = seq - 1
        self.dropped_tail = 1
        log.warning(
            "torn last journal record dropped",
            journal=str(self.path),
            seq=seq,
            problem=problem,
            deleted=not self._readonly,
        )

    # -- writing ------------------------------------------------------------------------------
    def _writable(self) -> None:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        if self._failure is not None:
            raise self._failed()
        if self._readonly:
            raise JournalError(f"journal {self.path} is open read-only")

    def append(self, record: JournalRecord) -> int:
        """Encode and buffer ``record``; commits when the batch is full. Returns its seq."""
        # The hot path: everything inlined (this runs for every event of a backtest).
        if self._stopped:
            self._writable()
        kind = KIND_OF.get(type(record))
        if kind is None:
            kind = kind_of(record)  # raises TypeError naming the type
        seq = self._last + 1
        ts = record.ts
        try:
            head = _CRC_HEAD.pack(seq, ts)
        except struct.error:
            raise ValueError(f"ts {ts!r} of {kind} out of range for a journal entry (i64 ns)") from None
        payload = self._encode(record)
        buffer = self._buffer
        buffer.append((seq, ts, kind, payload, zlib.crc32(payload, zlib.crc32(head))))
        self._last = seq
        n = len(buffer)
        # The clock is read on every 64th buffered record only: the max_delay_s check costs ~nothing.
        if n >= self._batch_size or (not n & _DUE_STRIDE_MASK and monotonic_ns() >= self._due_ns):
            self._commit(durable=False)
        return seq

    def append_many(self, records: Iterable[JournalRecord]) -> int:
        """Encode and buffer ``records`` (all or none if one cannot be journaled). Returns the last seq.

        Commits in the same batches as appending the records one by one would, so the file is the same.
        """
        self._writable()
        rows = self._codec.encode_rows(self._last + 1, records)
        if rows:
            buffer = self._buffer
            buffer.extend(rows)
            self._last = rows[-1][0]
            while len(buffer) >= self._batch_size:
                self._commit(durable=False, count=self._batch_size)
            if buffer and monotonic_ns() >= self._due_ns:
                self._commit(durable=False)
        return self._last

    def append_durable(self, record: JournalRecord) -> int:
        """Append ``record`` and commit it, with everything buffered before it, under ``durable_synchronous``."""
        self._writable()
        seq = self._last + 1
        self._buffer.append(self._codec.encode_row(seq, record))
        self._last = seq
        self._commit(durable=True)
        return seq

    def flush(self, *, durable: bool = False) -> None:
        """Commit the buffered records under ``synchronous`` (``durable_synchronous`` if ``durable``).

        ``flush(durable=True)`` after appending several intents syncs them all at once (group commit).
        """
        self._writable()
        self._commit(durable=durable)

    def flush_if_due(self, period_s: float = 0.25) -> None:
        """Commit the buffer if a record in it would wait longer than ``max_delay_s`` before the next call.

        For a timer that calls it every ``period_s`` seconds (live and paper sessions do, every 250 ms):
        together with the check in :meth:`append`, no committed-later record waits longer than
        ``max_delay_s``, even when the engine is idle. Costs one clock read when nothing is due.
        """
        if self._buffer and monotonic_ns() + int(period_s * 1e9) >= self._due_ns:
            self._writable()
            self._commit(durable=False)
        elif self._closed or self._failure is not None:
            self._writable()
        if self._syncer is not None and self._want > self._durable:
            self.durable_seq()  # starts a sync requested while the previous one ran, if nothing else did

    def request_durable(self) -> int:
        """Ask for every record appended so far to be made durable, without waiting; returns the last seq.

        Commits the buffer now (under ``synchronous``, no fsync) unless a background fsync is running,
        in which case the commit and the next fsync follow as soon as it ends (driven by the next
        :meth:`request_durable`, :meth:`durable_seq`, :meth:`wait_durable` or :meth:`flush_if_due`
        on this thread). Hold a send until
        ``durable_seq()`` reaches the seq of its intent.
        """
        self._writable()
        self._want = self._last
        self._advance_sync()
        return self._want

    def durable_seq(self) -> int:
        """The highest seq known to be on disk (every record up to it is durable)."""
        syncer = self._syncer
        if syncer is not None:
            if syncer.error is not None:
                raise JournalError(f"journal {self.path}: fsync of the WAL failed: {syncer.error}")
            if (
                self._want > max(self._durable, syncer.durable)
                and not syncer.busy
                and threading.get_ident() == self._owner  # a listener on the syncer's thread only reads
            ):
                self._writable()
                self._advance_sync()
            return max(self._durable, syncer.durable)
        return self._durable

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``durable_seq() >= seq`` (requesting it if needed); False if ``timeout`` passed first."""
        if seq > self._last:
            raise ValueError(f"seq {seq} was never appended (last is {self._last})")
        deadline = None if timeout is None else monotonic_ns() + int(timeout * 1e9)
        if seq > self._want:
            self.request_durable()
        while self.durable_seq() < seq:
            syncer = self._syncer
            remaining = None if deadline is None else (deadline - monotonic_ns()) / 1e9
            if syncer is None or (remaining is not None and remaining <= 0):
                return self.durable_seq() >= seq
            syncer.wait(remaining)
        return True

    @property
    def durable_syncs(self) -> int:
        """Background WAL fsyncs done so far (group commits of :meth:`request_durable`)."""
        return self._syncer.syncs if self._syncer is not None else 0

    def _advance_sync(self) -> None:
        if self._durable_sync in ("OFF", "NORMAL"):  # "durable" was configured to mean a plain commit
            self._commit(durable=True)
            return
        syncer = self._syncer
        if syncer is not None and (syncer.busy or self._want <= max(self._durable, syncer.durable)):
            return
        self._commit(durable=False)
        if syncer is None:
            if not self._wal:
                self._ensure_wal()
            syncer = self._syncer = WalSyncer(self.path.with_name(self.path.name + "-wal"), self._synced)
        elif syncer.error is not None:
            raise JournalError(f"journal {self.path}: fsync of the WAL failed: {syncer.error}")
        syncer.submit(self._committed)

    def _synced(self, seq: int) -> None:
        """The syncer made every commit up to ``seq`` durable (called on its thread)."""
        if self._durable_listeners.listeners:
            self._durable_listeners.advanced(max(self._durable, seq))

    def _durable_committed(self) -> None:
        """A commit under ``durable_synchronous`` (which syncs the whole WAL) just ended."""
        self._durable = self._committed
        if self._durable_listeners.listeners:
            self._durable_listeners.advanced(self._durable)

    @contextlib.contextmanager
    def _durable_transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction under ``durable_synchronous``, rolled back if the body raises."""
        conn = self._conn
        if not self._wal:
            self._ensure_wal()
        switch_sync = self._durable_sync != self._sync
        if switch_sync:
            conn.execute(f"PRAGMA synchronous={self._durable_sync}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        finally:
            if switch_sync:
                conn.execute(f"PRAGMA synchronous={self._sync}")

    def _check_fence(self, action: str) -> None:
        """Inside a write transaction of a claimed journal: raise if a newer owner claimed it."""
        row = self._conn.execute(fmt.SELECT_FENCE).fetchone()
        owner = row[0] if row is not None else 0
        if owner != self._fence:
            raise self._fenced(owner, action)

    def claim(self, token: int) -> None:
        """Store ``token`` as the journal's owner token unless a greater one is stored (one durable transaction).

        See :meth:`tradeloop.persistence.journal.Journal.claim`.
        """
        token = check_token(token)
        self._writable()
        with self._durable_transaction() as conn:
            conn.execute(fmt.CREATE_FENCE)
            row = conn.execute(fmt.SELECT_FENCE).fetchone()
            owner = row[0] if row is not None else 0
            if owner > token:
                raise self._claim_refused(token, owner)
            (stored_last,) = conn.execute("SELECT max(seq) FROM journal").fetchone()
            committed = self._caught_up(stored_last or 0, self._committed, self._last)
            conn.execute(fmt.STORE_FENCE, (token,))
        self._fence = token
        if committed != self._committed:
            self._committed = self._last = self._want = committed
        self._durable_committed()

    def save_snapshot(self, seq: int, ts: int, payload: bytes) -> None:
        """Commit the buffer, then store the snapshot and prune old ones in one durable transaction.

        The crash tests kill the process at the ``journal.snapshot`` failpoint, between the snapshot
        row and the commit: the snapshot is then absent, never half there.
        """
        self._writable()
        row = self._check_snapshot(seq, ts, payload)
        self._commit(durable=False)
        with self._durable_transaction() as conn:
            if self._fence is not None:
                self._check_fence(f"snapshot at seq {seq}")
            if not self._has_snapshots:
                conn.execute(fmt.CREATE_SNAPSHOTS)
                conn.execute(f"PRAGMA user_version={fmt.SCHEMA_VERSION}")
            conn.execute(fmt.INSERT_SNAPSHOT, row)
            conn.execute(fmt.PRUNE_SNAPSHOTS)
            failpoint("journal.snapshot")
        self._has_snapshots = True
        self._durable_committed()

    def _commit(self, *, durable: bool, count: int | None = None) -> None:
        """Commit the first ``count`` buffered rows (all by default) in one transaction."""
        buffer = self._buffer
        if not buffer:
            return
        rows = buffer if count is None or count >= len(buffer) else buffer[:count]
        conn = self._conn
        if not self._wal:
            self._ensure_wal()
        switch_sync = durable and self._durable_sync != self._sync
        if switch_sync:
            conn.execute(f"PRAGMA synchronous={self._durable_sync}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._fence is not None:
                self._check_fence(f"commit of seq {rows[0][0]}..{rows[-1][0]}")
            conn.executemany(fmt.INSERT_RECORD, rows)
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._rollback()
            raise JournalError(
                f"journal {self.path}: seq {rows[0][0]}..{rows[-1][0]} already taken (another writer?)"
            ) from None
        except BaseException:
            self._rollback()
            raise
        finally:
            if switch_sync:
                conn.execute(f"PRAGMA synchronous={self._sync}")
        self._committed = rows[-1][0]
        self._due_ns = monotonic_ns() + self._max_delay_ns
        if rows is buffer:
            buffer.clear()
        else:
            del buffer[: len(rows)]
        if durable:
            self._durable_committed()

    def _ensure_wal(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"{self.path}: cannot switch to WAL mode (got {mode!r})")
        self._wal = True

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    # -- reading ------------------------------------------------------------------------------
    def last_seq(self) -> int:
        """The last appended seq (committed or buffered); 0 when empty."""
        return self._last

    def committed_seq(self) -> int:
        """The last committed seq: what a crash right now would leave."""
        return self._committed

    def pending(self) -> int:
        """Records buffered but not yet committed."""
        return len(self._buffer)

    def _raw_entries(self, from_seq: int, to_seq: int) -> Iterator[Row]:
        # Committed rows come from the database a page at a time, buffered ones from the buffer: a
        # read has no side effect on the file. Appends during iteration are tolerated (a commit
        # moves rows from the buffer to the table; positions are recomputed for every row).
        conn = self._conn
        nxt = from_seq
        while nxt <= to_seq:
            if nxt <= self._committed:
                rows: list[Row] = conn.execute(
                    fmt.SELECT_RECORDS, (nxt, min(to_seq, self._committed), _READ_PAGE)
                ).fetchall()
                if not rows:
                    return
                yield from rows
                nxt = rows[-1][0] + 1
                continue
            buffer = self._buffer
            i = nxt - buffer[0][0] if buffer else -1
            if not 0 <= i < len(buffer):
                return
            yield buffer[i]
            nxt += 1

    def _snapshot_rows(self) -> Iterator[SnapshotRow]:
        if not self._has_snapshots:
            return iter(())
        rows: list[SnapshotRow] = self._conn.execute(fmt.SELECT_SNAPSHOTS).fetchall()
        return iter(rows)

    def _describe(self) -> str:
        return str(self.path)

    # -- closing ------------------------------------------------------------------------------
    def close(self) -> None:
        """Commit the buffer, checkpoint and drop the WAL, and close the file. Idempotent.

        A fenced journal (or one whose commit failed) writes nothing: its buffered records are
        dropped and the failure is raised once more, naming how many, after the file is closed.

        Leaves one self-contained file in rollback-journal mode (untouched if nothing was written).
        If another connection still has the database open the WAL cannot be removed; the file then
        stays in WAL mode (still valid).
        """
        if self._closed:
            return
        conn = self._conn
        try:
            if self._syncer is not None:
                self._syncer.close()
            if not self._readonly and self._failure is None:
                self._commit(durable=False)
                # Also when this connection wrote nothing but found a WAL (left by a crashed writer).
                if self._wal or str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                    with contextlib.suppress(sqlite3.OperationalError):
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                        conn.execute("PRAGMA journal_mode=DELETE").fetchall()
        finally:
            self._closed = True
            self._stopped = True
            conn.close()
        if self._failure is not None and self._buffer:
            raise self._failed(f"({len(self._buffer)} records not written)")

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"last_seq={self._last}, pending={len(self._buffer)}"
        return f"SQLiteJournal({str(self.path)!r}, {state})"
