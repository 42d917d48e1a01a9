"""Crash safety of the tail: a torn SQLite WAL, a process killed mid-snapshot, a PostgreSQL writer that dies.

Each child process writes and then dies without ``close()`` (``os._exit`` or ``SIGKILL`` at a
failpoint); the test reopens what it left.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.persistence.backends import STORED, Backend, PostgresBackend, make_backend
from tests.unit.persistence.records import T0, order_flow
from tradeloop.persistence import SnapshotRecord, SQLiteJournal

ROOT = Path(__file__).resolve().parents[3]
PRELUDE = """
import os, sys, time
sys.path.insert(0, {root!r})
from tests.unit.persistence.records import T0, order_flow
from tradeloop.persistence import PostgresJournal, SQLiteJournal
records = order_flow(400)
"""


def run_child(body: str, env: dict[str, str] | None = None) -> int:
    code = PRELUDE.format(root=str(ROOT)) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **(env or {})}, timeout=60, check=False)
    return done.returncode


def open_code(backend: Backend, options: str = "") -> str:
    if isinstance(backend, PostgresBackend):
        return f"PostgresJournal({backend.url!r}{options})"
    return f"SQLiteJournal({str(backend.path)!r}{options})"  # type: ignore[attr-defined]


@pytest.fixture(params=STORED)
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = make_backend(request.param, tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


# -- SQLite: a torn WAL --------------------------------------------------------------------------------
def write_and_die(path: Path) -> list[int]:
    """A child commits 300 records in known transactions and dies; returns the commit boundaries."""
    rc = run_child(
        f"""
        journal = SQLiteJournal({str(path)!r}, batch_size=20)
        for i, record in enumerate(records[:300]):
            journal.append_durable(record) if i % 37 == 36 else journal.append(record)
        os._exit(0)
        """
    )
    assert rc == 0
    boundaries, buffered = [0], 0
    for i in range(300):
        buffered += 1
        if i % 37 == 36 or buffered == 20:
            boundaries.append(i + 1)
            buffered = 0
    return boundaries


def test_a_torn_wal_keeps_a_prefix_of_committed_transactions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "crashed" / "j.db"
    source.parent.mkdir()
    boundaries = write_and_die(source)
    wal = source.with_name("j.db-wal")
    wal_bytes = wal.read_bytes()
    (page_size,) = struct.unpack(">I", wal_bytes[8:12])
    frame = 24 + page_size
    rng = random.Random(5)
    cuts = {0, 7, 32, 32 + frame, 32 + frame + 100, len(wal_bytes), len(wal_bytes) - 1}
    cuts |= {rng.randrange(len(wal_bytes)) for _ in range(25)}
    survivors = set()
    for cut in sorted(cuts):
        case = tmp_path / f"cut{cut}"
        case.mkdir()
        shutil.copy(source, case / "j.db")
        (case / "j.db-wal").write_bytes(wal_bytes[:cut])
        torn = cut if cut < 32 else (cut - 32) % frame
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tradeloop.journal"):
            journal = SQLiteJournal(case / "j.db")
        try:
            assert journal.torn_wal_bytes == torn, cut
            warned = [r for r in caplog.records if r.getMessage().startswith("torn WAL tail")]
            assert len(warned) == (1 if torn else 0), cut
            if torn:
                assert warned[0].fields == {  # type: ignore[attr-defined]
                    "file": str(case / "j.db-wal"),
                    "bytes_dropped": torn,
                    "wal_size": cut,
                }
            last = journal.last_seq()
            assert last in boundaries, f"cut at {cut}: {last} is not a commit boundary"
            assert [r for _, _, r in journal.read()] == order_flow(400)[:last]
            survivors.add(last)
            assert journal.append(order_flow(400)[last]) == last + 1
        finally:
            journal.close()
        with sqlite3.connect(case / "j.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()
    assert max(survivors) == boundaries[-1] == 296, "the whole WAL keeps every commit (297..300 were buffered)"
    assert len(survivors) > 5, "the cuts reach many different transactions"


def test_a_wal_without_a_valid_header_is_ignored_by_both(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "j.db"
    with SQLiteJournal(path) as journal:
        journal.append_many(order_flow(10))
    path.with_name("j.db-wal").write_bytes(b"\0" * 5000)
    with caplog.at_level(logging.WARNING, logger="tradeloop.journal"), SQLiteJournal(path) as journal:
        assert journal.torn_wal_bytes == 0
        assert journal.last_seq() == 10
    assert any(r.getMessage().startswith("WAL file has no valid header") for r in caplog.records)


# -- every stored backend: killed mid-snapshot, killed with records buffered ---------------------------------
def test_a_kill_during_a_snapshot_leaves_the_previous_one(stored: Backend) -> None:
    rc = run_child(
        f"""
        journal = {open_code(stored)}
        journal.append_many(records[:50])
        journal.save_snapshot(50, T0, b"first")
        journal.append_many(records[50:100])
        journal.save_snapshot(100, T0 + 1, b"second")   # killed between the row and the commit
        print("not killed", flush=True)
        """,
        env={"TRADELOOP_FAILPOINT": "journal.snapshot:2"},
    )
    assert rc == -signal.SIGKILL
    with stored.open() as journal:
        assert journal.latest_snapshot() == SnapshotRecord(50, T0, b"first")
        assert journal.last_seq() == 100, "the records were committed before the snapshot began"
        assert [r for _, _, r in journal.read()] == order_flow(400)[:100]
        assert journal.dropped_tail == 0
    assert stored.outside_snapshot_count() == 1


def test_a_killed_writer_leaves_every_durable_record(stored: Backend) -> None:
    rc = run_child(
        f"""
        journal = {open_code(stored, ", batch_size=1000, max_delay_s=30.0")}
        journal.append_many(records[:10])
        journal.append_durable(records[10])       # 1..11 committed
        journal.append_many(records[11:15])       # buffered: lost with the process
        os.kill(os.getpid(), 9)
        """
    )
    assert rc == -signal.SIGKILL
    with stored.open() as journal:
        assert journal.last_seq() == 11
        assert [r for _, _, r in journal.read()] == order_flow(400)[:11]
        assert journal.append(order_flow(400)[11]) == 12


def test_postgres_commits_an_idle_engines_records_before_it_dies(tmp_path: Path) -> None:
    backend = make_backend("postgres", tmp_path)
    try:
        rc = run_child(
            f"""
            journal = {open_code(backend)}
            journal.append_many(records[:5])
            time.sleep(1.0)                            # idle: no call into the journal
            os.kill(os.getpid(), 9)
            """
        )
        assert rc == -signal.SIGKILL
        with backend.open() as journal:
            assert [r for _, _, r in journal.read()] == order_flow(400)[:5]
            assert journal.latest_snapshot() is None
            assert journal.last_seq() == 5 and journal.digest()
    finally:
        backend.cleanup()
    assert T0 > 0
