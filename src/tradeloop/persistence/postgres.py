"""The PostgreSQL journal: the same journal in a PostgreSQL server (asyncpg), for a failover pair or several hosts.

URL: ``postgresql://user[:password]@host[:port]/database?journal=NAME`` (also ``postgres://``). ``journal``
names the journal (default ``tradeloop``; lower-case letters, digits and ``_``); its tables are
``NAME_records``, ``NAME_snapshots`` and, once claimed, ``NAME_fence`` in the connection's default
schema (:mod:`tradeloop.persistence.postgres_schema`): the same logical schema and the same entries
as the SQLite journal, so the digests agree. Other query parameters go to asyncpg (``sslmode``, ...).
Messages and reprs never show the user or password.

Threads. The engine calls the journal synchronously, as it calls the SQLite journal. ``append``
encodes and buffers on the caller's thread and does no I/O. A writer thread runs a private asyncio
loop with one asyncpg connection and does all the I/O, one operation at a time, in order:

* batch commits: when ``batch_size`` records are buffered the writer is woken; it takes every
  buffered row and COPYs them in one transaction while the engine goes on appending;
* idle commits: every ``max_delay_s / 2`` the writer commits whatever is buffered, so no record
  waits longer than ``max_delay_s`` for its commit, even when the engine is idle;
* ``append_durable``, ``flush``, ``save_snapshot`` and reads: the caller waits for the writer, whose
  queue already holds every commit handed to it before.

Rows move from the buffer to the writer and then to the table; reads find every row at one of the
three places (taking a prefix of a list and appending to it are each atomic under the GIL, which
is what lets the hot path go without a lock).

Durability contract: every commit is synchronous (``synchronous_commit=on``: the server has the
commit on disk before it answers). Batch commits do not block the engine, so weaker ones would
gain nothing. ``append_durable`` and ``flush`` return once their commit is done, so an order intent
is durable before its send. A crash of the engine loses at most the records buffered since the
last commit (under ``max_delay_s`` old, never a durable one); the server keeps everything it
committed. When ``max_pending`` records are buffered (the server fell behind), ``append`` waits.

A failed background commit (the server went away, or a second writer took the seq) stops the
journal: the next call raises :class:`~tradeloop.persistence.codec.JournalError` with the cause;
the records the writer held stay readable.

Fencing: :meth:`PostgresJournal.claim` takes the ``NAME_fence`` row ``FOR UPDATE`` and updates it in
one transaction; a claimed journal's every commit (and snapshot) first reads the row ``FOR SHARE``
in its own transaction, so a claim waits for a running commit (and then sees its records) or the
commit waits for the claim (and then sees the new token, rolls back and raises
:class:`~tradeloop.persistence.codec.JournalFenced`, which stops the journal as above). A never
claimed journal sends no extra query. Durable-progress listeners are called on the writer thread
after each commit, with its lock released. Opening for writing checks the last record like the
SQLite journal does (a torn one is deleted with a warning and counted in ``dropped_tail``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import math
import struct
import threading
import zlib
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, Final, TypeVar, cast

import asyncpg
import msgspec

from tradeloop.core.failpoints import failpoint
from tradeloop.core.logging import register_secret
from tradeloop.persistence.codec import (
    KIND_OF,
    JournalCorruptError,
    JournalError,
    JournalFenced,
    JournalRecord,
    Row,
    kind_of,
)
from tradeloop.persistence.journal import DEFAULT_MAX_DELAY_S, JournalBase, SnapshotRow, check_token, log
from tradeloop.persistence.postgres_schema import (
    DEFAULT_JOURNAL_NAME,
    TABLE_COMMENT,
    PostgresTarget,
    Statements,
    parse_postgres_url,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_JOURNAL_NAME",
    "TABLE_COMMENT",
    "PostgresJournal",
    "PostgresTarget",
    "parse_postgres_url",
]

DEFAULT_BATCH_SIZE: Final[int] = 8192
_COLUMNS: Final[tuple[str, ...]] = ("seq", "ts", "kind", "payload", "crc")
_COPY_MIN: Final[int] = 16
"""Below this many rows a prepared INSERT beats COPY."""
_READ_PAGE: Final[int] = 8192
_CRC_HEAD: Final = struct.Struct("<Qq")
_T = TypeVar("_T")
_DB_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresJournal(JournalBase):
    """A :class:`~tradeloop.persistence.journal.Journal` in PostgreSQL tables (see the module docstring).

    :param url: ``postgresql://...?journal=NAME``.
    :param batch_size: buffered records that wake the writer for a batch commit.
    :param max_delay_s: longest wait of a buffered record for its commit.
    :param readonly: read an existing journal only (appends raise, nothing is written).
    :param connect_timeout: seconds to wait for the server at open.
    :param command_timeout: seconds a single database operation may take before the journal fails.
    :param max_pending: buffered records at which ``append`` waits for the writer (default 8 batches).

    Single writer: a second writer on the same journal is detected at its first commit (the seq it
    wants is taken) and gets a :class:`~tradeloop.persistence.codec.JournalError`; after a
    :meth:`claim` by a newer owner, a stale writer gets
    :class:`~tradeloop.persistence.codec.JournalFenced` before it writes anything.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        readonly: bool = False,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        max_pending: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for label, value in (
            ("max_delay_s", max_delay_s),
            ("connect_timeout", connect_timeout),
            ("command_timeout", command_timeout),
        ):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
        target = parse_postgres_url(url)
        for secret in target.secrets:
            register_secret(secret)
        self.name = target.name
        """The journal's name (its tables are ``<name>_records`` and ``<name>_snapshots``)."""
        self.url = target.safe_url
        """The journal's URL without credentials."""
        self._sql = Statements(target.name)
        self.records_table = self._sql.records_table
        self.snapshots_table = self._sql.snapshots_table
        self.fence_table = self._sql.fence_table
        self._secrets = target.secrets
        self._batch_size = batch_size
        self._max_pending = max_pending if max_pending is not None else 8 * batch_size
        if self._max_pending < batch_size:
            raise ValueError(f"max_pending must be at least batch_size ({batch_size}), got {self._max_pending}")
        self._max_delay_s = float(max_delay_s)
        self._readonly = readonly
        self._buffer: list[Row] = []
        self._inflight: collections.deque[list[Row]] = collections.deque()
        self._last = 0
        self._committed = 0
        self._stopped = readonly  # read-only, closed or failed: append's slow path says which
        self._kicked = False
        self._commits = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._conn: Any = None
        self._loop = asyncio.new_event_loop()
        self._lock = asyncio.Lock()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"journal-pg-{self.name}", daemon=True)
        self._thread.start()
        try:
            self._conn = self._call(self._connect(target.dsn, connect_timeout, command_timeout))
            self._committed = self._call(self._open_tables())
        except BaseException:
            self._shutdown()
            raise
        self._last = self._committed
        if not readonly:
            self._loop.call_soon_threadsafe(self._spawn, self._idle_commits())

    # -- the writer thread's side -------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the writer's loop and wait for its result (its exception is raised here)."""
        future: concurrent.futures.Future[_T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _error(self, action: str, exc: BaseException) -> JournalError:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in self._secrets:
            if len(secret) >= 2:
                text = text.replace(secret, "***")
        return JournalError(f"PostgreSQL journal {self.url}: {action} failed: {text}")

    async def _connect(self, dsn: str, connect_timeout: float, command_timeout: float) -> Any:
        try:
            return await asyncpg.connect(
                dsn,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                server_settings={"application_name": "tradeloop-journal", "synchronous_commit": "on"},
            )
        except (*_DB_ERRORS, ValueError) as exc:
            raise self._error("connecting", exc) from None

    async def _open_tables(self) -> int:
        conn, sql = self._conn, self._sql
        try:
            if not self._readonly:
                async with conn.transaction():
                    await conn.execute(sql.creation_lock, self.records_table)
                    if await conn.fetchval("SELECT to_regclass($1)", self.records_table) is None:
                        for statement in sql.create:
                            await conn.execute(statement)
            for table in (self.records_table, self.snapshots_table):
                if await conn.fetchval("SELECT to_regclass($1)", table) is None:
                    raise JournalError(f"PostgreSQL journal {self.url}: no table {table} (no such journal)")
                comment = await conn.fetchval("SELECT obj_description(to_regclass($1), 'pg_class')", table)
                if comment != TABLE_COMMENT:
                    raise JournalError(f"PostgreSQL journal {self.url}: table {table} is not a tradeloop journal's")
            first, last = await conn.fetchrow(sql.bounds)
            if last is None:
                return 0
            if first != 1:
                raise JournalCorruptError(f"record missing: {self.records_table} starts at seq {first}", seq=1)
            row = cast(Row, tuple(await conn.fetchrow(sql.select_last)))
            problem = self._tail_problem(row)
            if problem is None:
                return int(last)
            if not self._readonly:
                await conn.execute(sql.delete_seq, row[0])
            self.dropped_tail = 1
            log.warning(
                "torn last journal record dropped",
                journal=self.url,
                seq=row[0],
                problem=problem,
                deleted=not self._readonly,
            )
            return int(last) - 1
        except _DB_ERRORS as exc:
            raise self._error("opening", exc) from None

    async def _commit(self) -> None:
        """Commit every buffered row (waiting for the commits queued before), then tell the listeners."""
        async with self._lock:
            committed = await self._commit_locked()
        if committed and self._durable_listeners.listeners:
            self._durable_listeners.advanced(self._committed)

    async def _check_fence(self, action: str) -> None:
        """Inside a claimed journal's write transaction: raise if a newer owner claimed it."""
        owner = await self._conn.fetchval(self._sql.fence_for_share)
        if owner != self._fence:
            raise self._fenced(owner, action)

    async def _commit_locked(self) -> bool:
        if self._failure is not None:
            raise self._failed()
        self._kicked = False
        buffer = self._buffer
        n = len(buffer)
        if n == 0:
            return False
        rows = buffer[:n]
        self._inflight.append(rows)  # before the rows leave the buffer: reads find them in one or the other
        del buffer[:n]
        try:
            async with self._conn.transaction():
                if self._fence is not None:
                    await self._check_fence(f"commit of seq {rows[0][0]}..{rows[-1][0]}")
                if n < _COPY_MIN:
                    await self._conn.executemany(self._sql.insert, rows)
                else:
                    await self._conn.copy_records_to_table(self.records_table, records=rows, columns=_COLUMNS)
        except BaseException as exc:
            if isinstance(exc, JournalFenced):
                error: JournalError = exc
            elif isinstance(exc, asyncpg.UniqueViolationError):
                error = JournalError(
                    f"PostgreSQL journal {self.url}: seq {rows[0][0]}..{rows[-1][0]} already taken (another writer?)"
                )
            else:
                error = self._error(f"committing seq {rows[0][0]}..{rows[-1][0]}", exc)
            self._fail(error)
            raise error from None
        self._committed = rows[-1][0]
        self._commits += 1
        self._inflight.popleft()
        return True

    async def _quiet_commit(self) -> None:
        with contextlib.suppress(JournalError):  # recorded in self._failure; the engine's next call raises it
            await self._commit()

    async def _idle_commits(self) -> None:
        period = self._max_delay_s / 2
        while self._failure is None:
            await asyncio.sleep(period)
            if self._buffer:
                await self._quiet_commit()

    async def _fetch(self, first: int, last: int) -> list[Row]:
        async with self._lock:
            try:
                records = await self._conn.fetch(self._sql.select, first, last, _READ_PAGE)
            except _DB_ERRORS as exc:
                raise self._error(f"reading from seq {first}", exc) from None
        return [cast(Row, tuple(r)) for r in records]

    async def _fetch_snapshots(self) -> list[SnapshotRow]:
        async with self._lock:
            try:
                records = await self._conn.fetch(self._sql.select_snapshots)
            except _DB_ERRORS as exc:
                raise self._error("reading snapshots", exc) from None
        return [cast(SnapshotRow, tuple(r)) for r in records]

    async def _save_snapshot(self, row: SnapshotRow) -> None:
        await self._commit()
        async with self._lock:
            if self._failure is not None:
                raise self._failed()
            try:
                async with self._conn.transaction():
                    if self._fence is not None:
                        await self._check_fence(f"snapshot at seq {row[0]}")
                    await self._conn.execute(self._sql.insert_snapshot, *row)
                    await self._conn.execute(self._sql.prune_snapshots)
                    failpoint("journal.snapshot")
            except _DB_ERRORS as exc:
                raise self._error(f"saving the snapshot at seq {row[0]}", exc) from None

    async def _claim(self, token: int) -> None:
        sql = self._sql
        async with self._lock:
            if self._failure is not None:
                raise self._failed()
            conn = self._conn
            try:
                async with conn.transaction():
                    await conn.execute(sql.creation_lock, self.records_table)
                    if await conn.fetchval("SELECT to_regclass($1)", self.fence_table) is None:
                        await conn.execute(sql.create_fence)
                    await conn.execute(sql.init_fence)
                    owner = await conn.fetchval(sql.fence_for_update)
                    if owner > token:
                        raise self._claim_refused(token, owner)
                    stored_last = await conn.fetchval(sql.last)
                    committed = self._caught_up(stored_last or 0, self._committed, self._last)
                    await conn.execute(sql.store_fence, token)
            except _DB_ERRORS as exc:
                raise self._error(f"claiming with fencing token {token}", exc) from None
            self._fence = token
            advanced = committed != self._committed
            if advanced:
                self._committed = self._last = committed
        if advanced and self._durable_listeners.listeners:
            self._durable_listeners.advanced(committed)

    async def _close_connection(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._conn is not None:
            try:
                await self._conn.close(timeout=5.0)
            except Exception:
                self._conn.terminate()

    def _shutdown(self) -> None:
        """Close the connection and stop the writer thread (whatever state they are in)."""
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close_connection(), self._loop).result(timeout=10.0)
            except Exception as exc:  # closing must go on: the connection is dropped with the loop
                log.warning("journal connection not closed cleanly", journal=self.url, error=str(exc))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10.0)
        if not self._thread.is_alive():
            self._loop.close()

    # -- the engine's side --------------------------------------------------------------------------
    def _writable(self) -> None:
        if self._closed:
            raise JournalError(f"journal {self.url} is closed")
        if self._failure is not None:
            raise self._failed()
        if self._readonly:
            raise JournalError(f"journal {self.url} is open read-only")

    def append(self, record: JournalRecord) -> int:
        """Encode and buffer ``record`` (no I/O); wakes the writer when a batch is full. Returns its seq."""
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
        payload = _encode(record)
        buffer = self._buffer
        buffer.append((seq, ts, kind, payload, zlib.crc32(payload, zlib.crc32(head))))
        self._last = seq
        if len(buffer) >= self._batch_size:
            self._batch_full()
        return seq

    def _batch_full(self) -> None:
        if len(self._buffer) >= self._max_pending:
            self._call(self._commit())  # backpressure: the server is behind, wait for it
        elif not self._kicked:
            self._kicked = True
            self._loop.call_soon_threadsafe(self._spawn, self._quiet_commit())

    def append_many(self, records: Iterable[JournalRecord]) -> int:
        """Encode and buffer ``records`` (all or none if one cannot be journaled). Returns the last seq."""
        self._writable()
        rows = self._codec.encode_rows(self._last + 1, records)
        if rows:
            self._buffer.extend(rows)
            self._last = rows[-1][0]
            if len(self._buffer) >= self._batch_size:
                self._batch_full()
        return self._last

    def append_durable(self, record: JournalRecord) -> int:
        """Append ``record`` and return once it (and everything before it) is committed on the server."""
        self._writable()
        seq = self._last + 1
        self._buffer.append(self._codec.encode_row(seq, record))
        self._last = seq
        self._call(self._commit())
        return seq

    def flush(self, *, durable: bool = False) -> None:
        """Commit every buffered record and wait for it (every commit here is durable)."""
        self._writable()
        self._call(self._commit())

    def request_durable(self) -> int:
        """Ask the writer to commit everything appended so far, without waiting; returns the last seq.

        Every commit here is durable, so ``durable_seq()`` reaches the returned seq when the commit is
        done; the writer takes every row buffered by then, so intents appended while a commit runs
        share the next one (group commit).
        """
        self._writable()
        if self._last > self._committed and not self._kicked:
            self._kicked = True
            self._loop.call_soon_threadsafe(self._spawn, self._quiet_commit())
        return self._last

    def durable_seq(self) -> int:
        """The highest seq committed (and so durable) on the server."""
        if self._failure is not None:
            raise self._failed()
        return self._committed

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``durable_seq() >= seq``; False if ``timeout`` passed first."""
        if seq > self._last:
            raise ValueError(f"seq {seq} was never appended (last is {self._last})")
        if self._committed >= seq:
            return True
        self._writable()
        future = asyncio.run_coroutine_threadsafe(self._commit(), self._loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            return self._committed >= seq
        return True

    @property
    def durable_syncs(self) -> int:
        """Commits done so far (each one durable)."""
        return self._commits

    def flush_if_due(self, period_s: float = 0.25) -> None:
        """Nothing to do (the writer thread commits on time by itself); raises its failure, if any."""
        if self._stopped and not (self._readonly and not self._closed):
            self._writable()

    def save_snapshot(self, seq: int, ts: int, payload: bytes) -> None:
        """Commit the buffer, then store the snapshot and prune old ones in one transaction."""
        self._writable()
        row = self._check_snapshot(seq, ts, payload)
        self._call(self._save_snapshot(row))

    def claim(self, token: int) -> None:
        """Store ``token`` as the journal's owner token unless a greater one is stored (one transaction).

        See :meth:`tradeloop.persistence.journal.Journal.claim`. Creates ``NAME_fence`` if missing.
        """
        token = check_token(token)
        self._writable()
        self._call(self._claim(token))

    def last_seq(self) -> int:
        """The last appended seq (committed or buffered); 0 when empty."""
        return self._last

    def committed_seq(self) -> int:
        """The last committed seq: what a crash of the engine right now would leave."""
        return self._committed

    def pending(self) -> int:
        """Records appended but not yet committed."""
        return self._last - self._committed

    def _raw_entries(self, from_seq: int, to_seq: int) -> Iterator[Row]:
        # A row is in the buffer, then with the writer (in flight), then in the table; it is added to
        # the next place before it leaves the previous one, so looking in that order never misses it.
        nxt = from_seq
        while nxt <= to_seq:
            committed = self._committed
            if nxt <= committed:
                rows = self._call(self._fetch(nxt, min(to_seq, committed)))
                if not rows:
                    return
                yield from rows
                nxt = rows[-1][0] + 1
                continue
            row = self._held(nxt)
            if row is None:
                if self._committed >= nxt:
                    continue  # committed meanwhile
                return
            yield row
            nxt += 1

    def _held(self, seq: int) -> Row | None:
        buffer = self._buffer
        try:
            row = buffer[seq - buffer[0][0]] if buffer and seq >= buffer[0][0] else None
        except IndexError:
            row = None
        if row is not None and row[0] == seq:
            return row
        for batch in list(self._inflight):
            i = seq - batch[0][0]
            if 0 <= i < len(batch):
                return batch[i]
        return None

    def _snapshot_rows(self) -> Iterator[SnapshotRow]:
        return iter(self._call(self._fetch_snapshots()))

    def _describe(self) -> str:
        return self.url

    def close(self) -> None:
        """Commit the buffer, close the connection and stop the writer. Idempotent.

        Raises :class:`~tradeloop.persistence.codec.JournalError` (after releasing everything) if
        buffered records could not be committed.
        """
        if self._closed:
            return
        error: JournalError | None = None
        try:
            if not self._readonly and self._failure is None:
                self._call(self._commit())
        except JournalError as exc:
            error = exc
        finally:
            self._closed = True
            self._stopped = True
            self._shutdown()
        if error is None and self._failure is not None and self._last > self._committed:
            error = self._failed(f"({self._last - self._committed} records not committed)")
        if error is not None:
            raise error

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"last_seq={self._last}, committed={self._committed}"
        return f"PostgresJournal({self.url!r}, {state})"


_encode = msgspec.msgpack.Encoder().encode
