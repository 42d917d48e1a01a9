"""Durability: what a process that dies without ``close()`` leaves behind."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.unit.persistence.records import order_flow
from tradeloop.persistence import SQLiteJournal

ROOT = Path(__file__).resolve().parents[3]

# The child appends then dies with os._exit: no close(), no flush, no atexit, no finalizers.
CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    from tests.unit.persistence.records import order_flow
    from tradeloop.persistence import SQLiteJournal

    records = order_flow(40)
    journal = SQLiteJournal({path!r}, batch_size={batch_size})
    {body}
    os._exit(0)
    """
)


def run_child(path: Path, batch_size: int, body: str) -> None:
    code = CHILD.format(root=str(ROOT), path=str(path), batch_size=batch_size, body=textwrap.dedent(body).strip())
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_durable_appends_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    run_child(
        path,
        batch_size=1000,
        body="""
        for r in records[:5]:
            journal.append(r)
        journal.append_durable(records[5])   # commits 1..6
        for r in records[6:9]:
            journal.append(r)                # buffered only: lost with the process
        """,
    )
    assert path.with_name("j.db-wal").exists(), "the child died with its WAL in place"
    with SQLiteJournal(path) as journal:
        assert journal.last_seq() == 6
        assert [r for _, _, r in journal.read()] == order_flow(40)[:6]
        # The journal continues where the durable part ended.
        assert journal.append(order_flow(40)[6]) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.db"]


def test_unflushed_records_are_lost_whole_never_half_written(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    run_child(
        path,
        batch_size=10,
        body="""
        for r in records[:25]:
            journal.append(r)                # batches 1..10 and 11..20 commit; 21..25 stay buffered
        """,
    )
    with SQLiteJournal(path) as journal:
        assert journal.last_seq() == 20
        assert [r for _, _, r in journal.read()] == order_flow(40)[:20]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_group_commit_with_durable_flush(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    run_child(
        path,
        batch_size=1000,
        body="""
        journal.append_many(records[:12])
        journal.flush(durable=True)          # several intents, one sync
        journal.append(records[12])
        """,
    )
    with SQLiteJournal(path) as journal:
        assert journal.last_seq() == 12
        assert [r for _, _, r in journal.read()] == order_flow(40)[:12]


def test_file_bytes_are_identical_across_processes(tmp_path: Path) -> None:
    body = """
    for i, r in enumerate(records):
        (journal.append_durable if i % 7 == 0 else journal.append)(r)
    journal.close()
    """
    run_child(tmp_path / "child.db", batch_size=8, body=body)
    records = order_flow(40)
    journal = SQLiteJournal(tmp_path / "here.db", batch_size=8)
    for i, r in enumerate(records):
        (journal.append_durable if i % 7 == 0 else journal.append)(r)
    journal.close()
    assert (tmp_path / "child.db").read_bytes() == (tmp_path / "here.db").read_bytes()
