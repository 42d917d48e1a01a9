"""The journal backends under test, behind one small helper each: open, reopen, damage, look from outside.

``Backend.open()`` opens (or reopens) the same journal; the ``outside_*`` and ``damage_*`` helpers use
a connection of their own, as another process would. PostgreSQL journals get unique table names and
their tables are dropped by :meth:`Backend.cleanup`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from tests.services import require_postgres, unique_name
from tradeloop.persistence import Journal, JournalRecord, MemoryJournal, PostgresJournal, SQLiteJournal

KINDS = ("sqlite", "postgres", "memory")
STORED = ("sqlite", "postgres")


def memory_digest(records: list[JournalRecord]) -> str:
    """The digest of a memory journal holding ``records``: what every backend's digest must equal."""
    reference = MemoryJournal()
    reference.append_many(records)
    return reference.digest()


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` every 10 ms until it is true; False if ``timeout`` seconds passed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def flip_middle_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x20
    return bytes(damaged)


class Backend:
    """One journal location of one backend kind."""

    kind: str
    stored: bool = True
    """Whether the journal outlives the object (can be reopened, damaged, seen from outside)."""

    def open(self, **options: Any) -> Journal:
        raise NotImplementedError

    def outside_count(self) -> int:
        """Committed records, as another connection sees them."""
        raise NotImplementedError

    def outside_snapshot_count(self) -> int:
        raise NotImplementedError

    def damage_record(self, seq: int) -> None:
        """Flip a bit in the payload of the stored record ``seq`` (its CRC no longer matches)."""
        raise NotImplementedError

    def damage_newest_snapshot(self) -> None:
        raise NotImplementedError

    def outside_fence(self) -> int | None:
        """The stored owner token, as another connection sees it (``None``: no fence table)."""
        raise NotImplementedError

    def child_opener(self, **options: Any) -> str:
        """Python source that opens this journal in a child process (names from ``tradeloop.persistence``)."""
        raise NotImplementedError

    def watch_statements(self, journal: Journal, seen: Callable[[str], None]) -> None:
        """Call ``seen(sql)`` for every statement ``journal`` sends to its database from now on."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Drop whatever the backend created outside the test's tmp_path."""


class SQLiteBackend(Backend):
    kind = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "journal.db"

    def open(self, **options: Any) -> SQLiteJournal:
        return SQLiteJournal(self.path, **options)

    def _query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def outside_count(self) -> int:
        return int(self._query("SELECT count(*) FROM journal")[0][0])

    def outside_snapshot_count(self) -> int:
        return int(self._query("SELECT count(*) FROM snapshots")[0][0])

    def damage_record(self, seq: int) -> None:
        ((payload,),) = self._query("SELECT payload FROM journal WHERE seq = ?", seq)
        self._query("UPDATE journal SET payload = ? WHERE seq = ?", flip_middle_byte(payload), seq)

    def damage_newest_snapshot(self) -> None:
        ((sid, payload),) = self._query("SELECT id, payload FROM snapshots ORDER BY id DESC LIMIT 1")
        self._query("UPDATE snapshots SET payload = ? WHERE id = ?", flip_middle_byte(payload), sid)

    def outside_fence(self) -> int | None:
        if not self._query("SELECT name FROM sqlite_master WHERE name = 'fence'"):
            return None
        rows = self._query("SELECT token FROM fence WHERE id = 1")
        return int(rows[0][0]) if rows else None

    def child_opener(self, **options: Any) -> str:
        extra = "".join(f", {key}={value!r}" for key, value in options.items())
        return f"SQLiteJournal({str(self.path)!r}{extra})"

    def watch_statements(self, journal: Journal, seen: Callable[[str], None]) -> None:
        assert isinstance(journal, SQLiteJournal)
        journal._conn.set_trace_callback(seen)


class PostgresBackend(Backend):
    kind = "postgres"

    def __init__(self) -> None:
        self.server = require_postgres()
        self.name = unique_name("tljt")
        self.url = f"{self.server}?journal={self.name}"
        self.records = f"{self.name}_records"
        self.snapshots = f"{self.name}_snapshots"
        self.fence = f"{self.name}_fence"

    def open(self, **options: Any) -> PostgresJournal:
        return PostgresJournal(self.url, **options)

    def sql(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run ``statement`` on a connection of its own (another client of the server)."""

        async def run() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(self.server)
            try:
                return [tuple(r) for r in await conn.fetch(statement, *args)]
            finally:
                await conn.close()

        return asyncio.run(run())

    def outside_count(self) -> int:
        return int(self.sql(f"SELECT count(*) FROM {self.records}")[0][0])

    def outside_snapshot_count(self) -> int:
        return int(self.sql(f"SELECT count(*) FROM {self.snapshots}")[0][0])

    def damage_record(self, seq: int) -> None:
        ((payload,),) = self.sql(f"SELECT payload FROM {self.records} WHERE seq = $1", seq)
        self.sql(f"UPDATE {self.records} SET payload = $1 WHERE seq = $2", flip_middle_byte(payload), seq)

    def damage_newest_snapshot(self) -> None:
        ((sid, payload),) = self.sql(f"SELECT id, payload FROM {self.snapshots} ORDER BY id DESC LIMIT 1")
        self.sql(f"UPDATE {self.snapshots} SET payload = $1 WHERE id = $2", flip_middle_byte(payload), sid)

    def outside_fence(self) -> int | None:
        if self.sql("SELECT to_regclass($1)", self.fence)[0][0] is None:
            return None
        rows = self.sql(f"SELECT token FROM {self.fence} WHERE id = 1")
        return int(rows[0][0]) if rows else None

    def child_opener(self, **options: Any) -> str:
        extra = "".join(f", {key}={value!r}" for key, value in options.items())
        return f"PostgresJournal({self.url!r}{extra})"

    def watch_statements(self, journal: Journal, seen: Callable[[str], None]) -> None:
        assert isinstance(journal, PostgresJournal)
        journal._conn.add_query_logger(lambda logged: seen(logged.query))

    def cleanup(self) -> None:
        self.sql(f"DROP TABLE IF EXISTS {self.records}, {self.snapshots}, {self.fence}")


class MemoryBackend(Backend):
    kind = "memory"
    stored = False

    def open(self, **options: Any) -> MemoryJournal:
        return MemoryJournal()


def make_backend(kind: str, tmp_path: Path) -> Backend:
    if kind == "sqlite":
        return SQLiteBackend(tmp_path)
    if kind == "postgres":
        return PostgresBackend()
    return MemoryBackend()
