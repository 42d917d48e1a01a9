"""The journal: an append-only, sequenced store of every command and event.

State (orders, positions, balances) is a fold over the journal, so replaying it with :meth:`Journal.read`
rebuilds the state exactly. Backends: :class:`~tradeloop.persistence.sqlite.SQLiteJournal` (default,
embedded), :class:`~tradeloop.persistence.postgres.PostgresJournal` (a PostgreSQL server, for several
machines or a failover pair) and :class:`~tradeloop.persistence.memory.MemoryJournal` (tests and runs
without a file). All store the same entries, so their digests agree.

Write path:

* :meth:`Journal.append` buffers a record and returns its seq; the backend commits in batches.
* :meth:`Journal.flush` commits whatever is buffered.
* :meth:`Journal.append_durable` commits (and syncs) the record, and everything before it, before it
  returns. Live mode journals order intents this way before they are sent to a venue.

Durability contract (every backend that stores anything):

* Records are committed in seq order and in whole transactions: after a crash the journal holds a
  prefix of what was appended (every durable record at least), never a gap or half a record.
* A record returned by ``append_durable`` (or appended before a ``flush(durable=True)``) is on disk
  before the call returns: an order intent is durable before its send. Or, without blocking:
  ``request_durable()`` starts a sync and the send waits until ``durable_seq()`` covers its intent
  (group commit: one sync for every intent appended while the previous sync ran).
* Every other record is committed at most ``max_delay_s`` (default 1 s) after it was appended, as
  long as the engine appends or calls :meth:`Journal.flush_if_due` from a timer (the SQLite journal
  has no thread of its own; the PostgreSQL journal's writer thread also commits when the engine is
  idle). So the recovery point is under one second.
* Snapshots (:meth:`Journal.save_snapshot`) are written after the records they cover are committed,
  in one durable transaction each, with a CRC; the newest :data:`SNAPSHOTS_KEPT` are kept.
* Opening a journal for writing checks its last record: one whose CRC fails (torn) is deleted with a
  warning and counted in ``dropped_tail``. A damaged record anywhere else is never dropped: reading
  it raises :class:`~tradeloop.persistence.codec.JournalCorruptError` naming its seq.

Fencing (a failover pair sharing one journal): the new primary calls :meth:`Journal.claim` with the
fencing token of its lease before it reads or writes anything. ``claim`` stores the token in the
journal (one durable transaction, refused with :class:`~tradeloop.persistence.codec.JournalFenced`
if a greater one is stored) and catches the journal object up with the records the previous owner
committed since it was opened. From then on each commit of that object (batch, durable, idle,
flush, snapshot) checks in its own transaction that the stored token is still its own; once a newer
owner has claimed the journal, the commit is rolled back, ``JournalFenced`` is raised and the object
refuses every further write (reads still work; its buffered records are never written). A journal
never claimed works as before, with no extra query.

Durable-progress listeners (:meth:`Journal.add_durable_listener`): ``fn(durable_seq)`` is called every
time :meth:`Journal.durable_seq` advances, from the thread that advanced it (see
:mod:`tradeloop.persistence.listeners`), so an engine can release held sends without polling.

The journal's identity is :meth:`Journal.digest`: the sha256 of its canonical stream (see
:mod:`tradeloop.persistence.codec`), independent of the backend. ``tradeloop backtest`` prints it.
"""

from __future__ import annotations

import copy
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final, Protocol, Self, runtime_checkable

from tradeloop.core.logging import get_logger
from tradeloop.persistence.codec import (
    JournalCorruptError,
    JournalEntry,
    JournalError,
    JournalFenced,
    JournalRecord,
    RecordCodec,
    Row,
    SnapshotRecord,
    canonical_chunks,
    record_crc,
    verify_entry,
)
from tradeloop.persistence.listeners import DurableListeners

StrPath = str | os.PathLike[str]
SnapshotRow = tuple[int, int, bytes, int]
"""A stored snapshot as a plain tuple ``(seq, ts, payload, crc)``."""

SNAPSHOTS_KEPT: Final[int] = 3
"""How many snapshots a journal keeps (the newest ones)."""
DEFAULT_MAX_DELAY_S: Final[float] = 1.0
"""Default longest time a buffered (non-durable) record waits for its commit."""
MAX_FENCE_TOKEN: Final[int] = 2**63 - 1
"""The greatest fencing token a journal stores (a signed 64-bit column)."""

log = get_logger("tradeloop.journal")


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

    def request_durable(self) -> int:
        """Start making every record appended so far durable, without waiting; returns the last seq.

        Group commit without blocking the engine: hold each send until :meth:`durable_seq` reaches
        the seq of its intent (or :meth:`wait_durable` for it). Several intents share one sync.
        """
        ...

    def durable_seq(self) -> int:
        """The highest seq known durable (every record up to it survives a crash and a power loss)."""
        ...

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``durable_seq() >= seq``; False if ``timeout`` seconds passed first."""
        ...

    def flush_if_due(self, period_s: float = 0.25) -> None:
        """Commit the buffer if a buffered record would otherwise wait longer than ``max_delay_s``.

        For a timer that calls it every ``period_s`` seconds while the engine may be idle. Cheap when
        nothing is due. Also raises a background writer's failure, if any.
        """
        ...

    def save_snapshot(self, seq: int, ts: int, payload: bytes) -> None:
        """Store ``payload`` (opaque bytes: the state after record ``seq`` at engine time ``ts``).

        Commits the buffered records first, so a snapshot never covers uncommitted records;
        ``seq`` must be at most ``last_seq()``. One durable transaction; the newest
        :data:`SNAPSHOTS_KEPT` snapshots are kept.
        """
        ...

    def latest_snapshot(self) -> SnapshotRecord | None:
        """The newest snapshot whose CRC checks (a damaged one is skipped with a warning), or ``None``."""
        ...

    @property
    def dropped_tail(self) -> int:
        """How many torn records at the end were dropped when the journal was opened (0 or 1)."""
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

    def claim(self, token: int) -> None:
        """Make this journal object the journal's owner with fencing ``token`` (an int, 1 to 2**63-1).

        One durable transaction reads the stored owner token (0 if none): if it is greater than
        ``token``, raises :class:`~tradeloop.persistence.codec.JournalFenced` naming both (and this
        object refuses writes from then on); otherwise stores ``token``. Claiming again with the same
        token is fine. Records another writer committed since this object was opened are taken over
        (``last_seq()`` moves on), so claim right after opening, before reading the state; a
        :class:`JournalError` is raised (and nothing stored) if this object has records of its own
        buffered that would now collide. From then on every commit of this object checks, in its own
        transaction, that the stored token is still ``token``, and raises ``JournalFenced`` once a
        newer owner claimed the journal.
        """
        ...

    @property
    def fence_token(self) -> int | None:
        """The token this object claimed the journal with, ``None`` if it never did."""
        ...

    def add_durable_listener(self, fn: Callable[[int], None]) -> None:
        """Call ``fn(durable_seq)`` every time :meth:`durable_seq` advances (strictly increasing seqs).

        Called from whatever thread advanced it (the SQLite WAL-sync thread, the PostgreSQL writer
        thread, or the caller's thread for a synchronous durable commit and every MemoryJournal
        append), never with a journal lock held. ``fn`` must be quick and thread-safe, and may call
        :meth:`durable_seq` and :meth:`last_seq` only (an engine hands the seq to its loop with
        ``loop.call_soon_threadsafe``). Not called for advances before it was added: read
        :meth:`durable_seq` once after adding it. An exception in ``fn`` is logged and ignored.

        On SQLite, a sync requested while the previous one ran starts at the engine's next
        :meth:`request_durable`, :meth:`durable_seq`, :meth:`wait_durable` or :meth:`flush_if_due`;
        an engine woken by the listener should call :meth:`durable_seq` on its own thread (cheap).
        """
        ...

    def remove_durable_listener(self, fn: Callable[[int], None]) -> None:
        """Stop calling ``fn`` (nothing happens if it was not added). A call already running may finish."""
        ...


class JournalBase(ABC):
    """Shared behaviour of the backends: checked and decoded reads, digest, export and snapshot checks.

    Subclasses implement the write path, ``last_seq``, ``close``, ``save_snapshot``, ``_raw_entries``
    and ``_snapshot_rows``.
    """

    def __init__(self) -> None:
        self._codec = RecordCodec()
        self._closed = False
        self._stopped = False
        """True when a write must take the slow path (closed, read-only, failed or fenced)."""
        self._failure: JournalError | None = None
        """What stopped the journal for writing (a failed background commit, a newer owner)."""
        self._fence: int | None = None
        self._durable_listeners = DurableListeners(self._describe)
        self.dropped_tail = 0
        """Torn records at the end dropped when the journal was opened (0 or 1)."""

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
    def request_durable(self) -> int:
        """Start making every record appended so far durable, without waiting; returns the last seq."""

    @abstractmethod
    def durable_seq(self) -> int:
        """The highest seq known durable."""

    @abstractmethod
    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``durable_seq() >= seq``; False on timeout."""

    @abstractmethod
    def flush_if_due(self, period_s: float = 0.25) -> None:
        """Commit the buffer if a buffered record would otherwise wait longer than ``max_delay_s``."""

    @abstractmethod
    def last_seq(self) -> int:
        """The seq of the last appended record (0 when empty)."""

    @abstractmethod
    def close(self) -> None:
        """Commit what is buffered and release the backend."""

    @abstractmethod
    def save_snapshot(self, seq: int, ts: int, payload: bytes) -> None:
        """Commit the buffer, then store the snapshot durably (keeping the newest :data:`SNAPSHOTS_KEPT`)."""

    @abstractmethod
    def claim(self, token: int) -> None:
        """Store ``token`` as the journal's owner token unless a greater one is stored (see :class:`Journal`)."""

    @abstractmethod
    def _raw_entries(self, from_seq: int, to_seq: int) -> Iterator[Row]:
        """Stored rows with ``from_seq <= seq <= to_seq`` in seq order, unchecked."""

    @abstractmethod
    def _snapshot_rows(self) -> Iterator[SnapshotRow]:
        """Stored snapshots, newest first, unchecked."""

    # -- shared -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"{type(self).__name__} is closed")

    # -- fencing and failures -----------------------------------------------------------------------
    @property
    def fence_token(self) -> int | None:
        """The token this object claimed the journal with, ``None`` if it never did."""
        return self._fence

    def _fail(self, error: JournalError) -> JournalError:
        """Stop the journal for writing with ``error`` (the first failure stays); returns ``error``."""
        if self._failure is None:
            self._failure = error
            self._stopped = True
            if isinstance(error, JournalFenced):
                log.warning("journal fenced: writes refused", journal=self._describe(), error=str(error))
            else:
                log.error("journal writer stopped", journal=self._describe(), error=str(error))
        return error

    def _failed(self, note: str = "") -> JournalError:
        """A fresh copy of the failure that stopped the journal (same class and fields), ``note`` appended."""
        failure = self._failure
        assert failure is not None
        again = copy.copy(failure)
        if note:
            again.args = (f"{failure} {note}",)
        return again

    def _claim_refused(self, token: int, owner: int) -> JournalFenced:
        """Fail the journal: a claim with ``token`` met the greater stored token ``owner``."""
        error = JournalFenced(
            f"journal {self._describe()}: claim with fencing token {token} refused: a newer owner holds token {owner}",
            token=token,
            owner=owner,
        )
        self._fail(error)
        return error

    def _fenced(self, owner: int | None, action: str) -> JournalFenced:
        """Fail the journal: a commit (``action``) found the stored token ``owner`` is not this object's."""
        token = self._fence
        error = JournalFenced(
            f"journal {self._describe()}: {action} refused: the journal was claimed by a newer owner "
            f"(token {owner or 0}; this writer's token is {token})",
            token=token,
            owner=owner or 0,
        )
        self._fail(error)
        return error

    def _caught_up(self, stored_last: int, committed: int, last: int) -> int:
        """The committed seq after a claim found ``stored_last`` records stored (raises if they collide)."""
        if stored_last == committed:
            return committed
        where = f"journal {self._describe()}: cannot claim: the stored records end at seq {stored_last}"
        if stored_last < committed:
            raise JournalError(f"{where}, before this journal's committed seq {committed}")
        if last != committed:
            raise JournalError(
                f"{where} (another writer committed after this journal's seq {committed}) and "
                f"{last - committed} records appended here are not committed yet"
            )
        log.info(
            "journal claim took over records committed by the previous owner",
            journal=self._describe(),
            first_seq=committed + 1,
            last_seq=stored_last,
        )
        return stored_last

    # -- durable-progress listeners -------------------------------------------------------------------
    def add_durable_listener(self, fn: Callable[[int], None]) -> None:
        """Call ``fn(durable_seq)`` every time :meth:`durable_seq` advances (see :class:`Journal`)."""
        self._durable_listeners.add(fn)

    def remove_durable_listener(self, fn: Callable[[int], None]) -> None:
        """Stop calling ``fn`` (nothing happens if it was not added)."""
        self._durable_listeners.remove(fn)

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

    def latest_snapshot(self) -> SnapshotRecord | None:
        """The newest snapshot whose CRC checks and whose seq the journal still holds, or ``None``.

        A damaged snapshot (or one past the last record, after a torn tail was dropped) is skipped
        with a warning and the next older one is tried.
        """
        self._check_open()
        last = self.last_seq()
        for seq, ts, payload, crc in self._snapshot_rows():
            problem = snapshot_problem(seq, ts, payload, crc, last)
            if problem is None:
                return SnapshotRecord(seq, ts, payload)
            log.warning("journal snapshot skipped", journal=self._describe(), seq=seq, problem=problem)
        return None

    def _check_snapshot(self, seq: int, ts: int, payload: bytes) -> SnapshotRow:
        """Validate :meth:`save_snapshot` arguments; returns the row to store (with its CRC)."""
        if type(seq) is not int or type(ts) is not int:
            raise TypeError(f"snapshot seq and ts must be ints, got {type(seq).__name__} and {type(ts).__name__}")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"snapshot payload must be bytes, got {type(payload).__name__}")
        last = self.last_seq()
        if not 0 <= seq <= last:
            raise ValueError(f"snapshot seq {seq} outside the journal (0..{last})")
        data = bytes(payload)
        try:
            crc = record_crc(seq, ts, data)
        except Exception:
            raise ValueError(f"snapshot ts {ts} out of range (i64 ns)") from None
        return seq, ts, data, crc

    def _tail_problem(self, row: Row) -> str | None:
        """Why the last stored row counts as torn (its CRC fails or it is malformed), ``None`` if intact.

        A record whose CRC checks but whose kind is unknown (a newer tradeloop wrote it) is *not*
        torn: dropping it would destroy data; reading it raises instead.
        """
        try:
            verify_entry(row)
        except JournalCorruptError as exc:
            return str(exc)
        return None

    def _describe(self) -> str:
        """How messages name this journal (never with credentials)."""
        return type(self).__name__

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


def check_token(token: object) -> int:
    """``token`` if it is a usable fencing token (an int from 1 to :data:`MAX_FENCE_TOKEN`), else raise."""
    if type(token) is not int:
        raise TypeError(f"a fencing token must be an int, got {type(token).__name__}")
    if not 1 <= token <= MAX_FENCE_TOKEN:
        raise ValueError(f"a fencing token must be between 1 and 2**63-1, got {token}")
    return token


def snapshot_problem(seq: int, ts: int, payload: bytes, crc: int, last_seq: int) -> str | None:
    """Why a stored snapshot cannot be used (``None`` if it can)."""
    if not isinstance(payload, bytes) or type(seq) is not int or type(ts) is not int:
        return "malformed snapshot row"
    try:
        actual = record_crc(seq, ts, payload)
    except Exception:
        return f"seq/ts out of range (seq {seq}, ts {ts})"
    if actual != crc:
        return f"CRC mismatch (stored {crc!r}, computed {actual})"
    if seq > last_seq:
        return f"covers seq {seq}, past the journal's last record {last_seq}"
    return None


def _verified(rows: Iterator[Row]) -> Iterator[JournalEntry]:
    for row in rows:
        verify_entry(row)
        yield JournalEntry(*row)


def _verified_rows(rows: Iterator[Row]) -> Iterator[Row]:
    for row in rows:
        verify_entry(row)
        yield row
