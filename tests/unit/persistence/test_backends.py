"""The same journal tests against every backend: SQLite, PostgreSQL (a real server) and memory.

PostgreSQL tests skip when no server answers (they fail under ``CI=true``); each uses tables of its
own and drops them afterwards. The ``backend`` and ``stored`` fixtures are in ``conftest.py``;
fencing and durable-progress listeners have files of their own (``test_fencing.py``,
``test_durable_listener.py``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.persistence.backends import Backend, PostgresBackend, make_backend, memory_digest, wait_until
from tests.unit.persistence.records import BTC, T0, one_of_each, order_flow
from tradeloop.model.events import MarkPrice
from tradeloop.persistence import (
    SNAPSHOTS_KEPT,
    Journal,
    JournalCorruptError,
    JournalError,
    MemoryJournal,
    SnapshotRecord,
)


# -- appending and reading ----------------------------------------------------------------------------
def test_round_trip_and_seq_continuity(backend: Backend) -> None:
    records = one_of_each() + order_flow(300)
    journal = backend.open(batch_size=64) if backend.stored else backend.open()
    try:
        assert isinstance(journal, Journal)
        assert journal.last_seq() == 0
        assert journal.append(records[0]) == 1
        assert journal.append_many(records[1:10]) == 10
        assert journal.append_durable(records[10]) == 11
        for record in records[11:]:
            journal.append(record)
        assert journal.last_seq() == len(records)
        got = list(journal.read())
        assert got == [(i + 1, r.ts, r) for i, r in enumerate(records)]
        n = len(records)
        assert [seq for seq, _, _ in journal.read(from_seq=n - 2)] == [n - 2, n - 1, n]
        assert list(journal.read(from_seq=n + 1)) == []
        assert [e.seq for e in journal.entries(from_seq=5)][:3] == [5, 6, 7]
    finally:
        journal.close()


def test_digest_equals_every_other_backend(backend: Backend, tmp_path: Path) -> None:
    records = one_of_each() + order_flow(2_000)
    journal = backend.open(batch_size=100) if backend.stored else backend.open()
    try:
        for i, record in enumerate(records):
            journal.append_durable(record) if i % 500 == 0 else journal.append(record)
        digest = journal.digest()
        assert digest == memory_digest(records)
        assert journal.export(tmp_path / "export.tlj") == digest
    finally:
        journal.close()
    loaded = MemoryJournal.load(tmp_path / "export.tlj")
    assert loaded.digest() == digest and loaded.dropped_tail == 0


def test_reads_include_buffered_records_and_commit_nothing(stored: Backend) -> None:
    records = order_flow(25)
    journal = stored.open(batch_size=1_000)
    try:
        journal.append_many(records[:5])
        journal.flush()
        for record in records[5:]:
            journal.append(record)
        assert [r for _, _, r in journal.read()] == records
        assert stored.outside_count() == 5, "reading commits nothing"
        # Appending while reading: the read stops at the last seq it started with.
        seen = []
        for seq, _, _ in journal.read(from_seq=20):
            seen.append(seq)
            journal.append(MarkPrice(ts=T0 + seq, instrument_id=BTC, price=seq))
        assert seen == list(range(20, 26))
        assert journal.last_seq() == 31
    finally:
        journal.close()


def test_batches_commit_without_a_flush(stored: Backend) -> None:
    journal = stored.open(batch_size=10)
    try:
        journal.append_many(order_flow(25))
        # SQLite commits on the caller's thread, PostgreSQL on its writer's: both within moments.
        assert wait_until(lambda: stored.outside_count() >= 20)
        assert journal.last_seq() == 25
        assert [seq for seq, _, _ in journal.read()] == list(range(1, 26))
    finally:
        journal.close()


def test_durable_append_and_flush_commit_before_returning(stored: Backend) -> None:
    records = order_flow(12)
    journal = stored.open(batch_size=1_000)
    try:
        journal.append_many(records[:4])
        assert stored.outside_count() == 0
        assert journal.append_durable(records[4]) == 5
        assert stored.outside_count() == 5, "the intent and everything before it is committed"
        journal.append(records[5])
        journal.append(records[6])
        journal.flush(durable=True)  # group commit of two
        assert stored.outside_count() == 7
        journal.append(records[7])
        journal.flush()
        assert stored.outside_count() == 8
        assert journal.committed_seq() == journal.last_seq() == 8  # type: ignore[attr-defined]
    finally:
        journal.close()


def test_reopen_continues_the_seq(stored: Backend) -> None:
    records = order_flow(30)
    with stored.open() as journal:
        journal.append_many(records[:10])
    with stored.open() as journal:
        assert journal.last_seq() == 10
        assert journal.append(records[10]) == 11
        assert journal.append_durable(records[11]) == 12
        journal.append_many(records[12:])
    with stored.open() as journal:
        assert [r for _, _, r in journal.read()] == records
        assert journal.digest() == memory_digest(records)


def test_a_second_writer_is_refused(stored: Backend) -> None:
    first, second = stored.open(), stored.open()
    try:
        first.append_durable(order_flow(1)[0])
        second.append(order_flow(2)[1])
        with pytest.raises(JournalError, match=r"seq 1\.\.1 already taken"):
            second.flush()
        with pytest.raises(JournalError, match="already taken"):
            second.flush()  # still refused: nothing of the second writer's reaches the journal
    finally:
        first.close()
        with pytest.raises(JournalError, match="already taken"):
            second.close()  # its buffered record cannot be committed; released anyway
    assert second.closed
    with stored.open() as journal:
        assert [r for _, _, r in journal.read()] == order_flow(1)


def test_closed_journal_refuses_use(backend: Backend) -> None:
    journal = backend.open()
    journal.append(order_flow(1)[0])
    journal.close()
    journal.close()  # idempotent
    record = order_flow(1)[0]
    for call in (
        lambda: journal.append(record),
        lambda: journal.append_many([record]),
        lambda: journal.append_durable(record),
        lambda: journal.flush(),
        lambda: journal.flush_if_due(),
        lambda: journal.read(),
        lambda: journal.digest(),
        lambda: journal.save_snapshot(1, T0, b"x"),
        lambda: journal.latest_snapshot(),
    ):
        with pytest.raises(JournalError, match="closed"):
            call()


def test_bad_records_are_refused_and_change_nothing(backend: Backend) -> None:
    journal = backend.open()
    try:
        journal.append(order_flow(1)[0])
        with pytest.raises(TypeError, match="cannot be journaled"):
            journal.append("not a record")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="cannot be journaled"):
            journal.append_many([order_flow(2)[1], object()])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="out of range"):
            journal.append(MarkPrice(ts=2**63, instrument_id=BTC, price=1))
        assert journal.last_seq() == 1
        journal.flush()
        assert [r for _, _, r in journal.read()] == order_flow(1)
    finally:
        journal.close()


# -- snapshots ------------------------------------------------------------------------------------------
def test_snapshots_save_latest_and_keep_the_newest(backend: Backend) -> None:
    journal = backend.open(batch_size=1_000) if backend.stored else backend.open()
    try:
        assert journal.latest_snapshot() is None
        journal.append_many(order_flow(40))
        journal.save_snapshot(40, T0 + 40, b"state@40")
        if backend.stored:
            assert backend.outside_count() == 40, "the records a snapshot covers are committed first"
        for seq in (10, 20, 30):  # any seq up to the last; "newest" is the newest saved
            journal.save_snapshot(seq, T0 + seq, f"state@{seq}".encode())
        assert journal.latest_snapshot() == SnapshotRecord(30, T0 + 30, b"state@30")
        if backend.stored:
            assert backend.outside_snapshot_count() == SNAPSHOTS_KEPT
        journal.save_snapshot(0, T0, b"")  # the state before any record
        assert journal.latest_snapshot() == SnapshotRecord(0, T0, b"")
    finally:
        journal.close()
    if backend.stored:
        with backend.open() as journal:
            assert journal.latest_snapshot() == SnapshotRecord(0, T0, b"")


def test_bad_snapshots_are_refused(backend: Backend) -> None:
    journal = backend.open()
    try:
        journal.append_many(order_flow(5))
        journal.save_snapshot(5, T0, b"good")
        with pytest.raises(ValueError, match=r"snapshot seq 6 outside the journal \(0\.\.5\)"):
            journal.save_snapshot(6, T0, b"x")
        with pytest.raises(ValueError, match="outside the journal"):
            journal.save_snapshot(-1, T0, b"x")
        with pytest.raises(TypeError, match="payload must be bytes"):
            journal.save_snapshot(5, T0, "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must be ints"):
            journal.save_snapshot(5, 1.5, b"x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="out of range"):
            journal.save_snapshot(5, 2**64, b"x")
        assert journal.latest_snapshot() == SnapshotRecord(5, T0, b"good")
    finally:
        journal.close()


def test_damaged_snapshot_is_skipped_with_a_warning(stored: Backend, caplog: pytest.LogCaptureFixture) -> None:
    with stored.open() as journal:
        journal.append_many(order_flow(30))
        journal.save_snapshot(10, T0 + 10, b"older")
        journal.save_snapshot(20, T0 + 20, b"newer")
    stored.damage_newest_snapshot()
    with stored.open() as journal, caplog.at_level(logging.WARNING, logger="tradeloop.journal"):
        assert journal.latest_snapshot() == SnapshotRecord(10, T0 + 10, b"older")
    assert any(
        r.getMessage() == "journal snapshot skipped"
        and r.fields["seq"] == 20  # type: ignore[attr-defined]
        and "CRC mismatch" in r.fields["problem"]  # type: ignore[attr-defined]
        for r in caplog.records
    )


def test_readonly_journal_reads_snapshots_but_saves_none(stored: Backend) -> None:
    with stored.open() as journal:
        journal.append_many(order_flow(5))
        journal.save_snapshot(5, T0, b"s")
    with stored.open(readonly=True) as journal:
        assert journal.latest_snapshot() == SnapshotRecord(5, T0, b"s")
        with pytest.raises(JournalError, match="read-only"):
            journal.save_snapshot(5, T0, b"t")
        with pytest.raises(JournalError, match="read-only"):
            journal.append(order_flow(1)[0])


# -- damage ---------------------------------------------------------------------------------------------
def test_torn_last_record_is_dropped_with_a_warning(stored: Backend, caplog: pytest.LogCaptureFixture) -> None:
    records = order_flow(20)
    with stored.open() as journal:
        journal.append_many(records)
    stored.damage_record(20)
    with caplog.at_level(logging.WARNING, logger="tradeloop.journal"), stored.open(readonly=True) as journal:
        assert (journal.dropped_tail, journal.last_seq()) == (1, 19)
        assert [r for _, _, r in journal.read()] == records[:19]
    assert stored.outside_count() == 20, "a read-only open hides the torn record, deletes nothing"
    with caplog.at_level(logging.WARNING, logger="tradeloop.journal"), stored.open() as journal:
        assert (journal.dropped_tail, journal.last_seq()) == (1, 19)
        assert journal.append(records[19]) == 20
    warnings = [r for r in caplog.records if r.getMessage() == "torn last journal record dropped"]
    assert warnings and all(r.fields["seq"] == 20 for r in warnings)  # type: ignore[attr-defined]
    with stored.open() as journal:
        assert journal.dropped_tail == 0
        assert journal.digest() == memory_digest(records)


def test_damage_in_the_middle_stops_reads_naming_the_seq(stored: Backend) -> None:
    with stored.open() as journal:
        journal.append_many(order_flow(100))
    stored.damage_record(42)
    with stored.open() as journal:
        assert journal.dropped_tail == 0 and journal.last_seq() == 100, "only a torn *last* record is dropped"
        seen: list[int] = []
        with pytest.raises(JournalCorruptError, match="seq 42: CRC mismatch") as info:
            for seq, _, _ in journal.read():
                seen.append(seq)
        assert info.value.seq == 42
        assert seen == list(range(1, 42))
        with pytest.raises(JournalCorruptError, match="seq 42"):
            journal.digest()
        with pytest.raises(JournalCorruptError, match="seq 42"):
            list(journal.entries(from_seq=40))
        assert [seq for seq, _, _ in journal.read(from_seq=43)][-1] == 100


# -- the recovery point: idle commits ------------------------------------------------------------------
def test_idle_records_are_committed_within_a_second(stored: Backend) -> None:
    journal = stored.open()
    try:
        journal.append_many(order_flow(3))
        appended = time.monotonic()
        if stored.kind == "postgres":
            # The writer thread commits by itself: no call into the journal at all.
            assert wait_until(lambda: stored.outside_count() == 3, timeout=1.2)
        else:
            # SQLite has no thread: the session's 250 ms timer calls flush_if_due.
            while stored.outside_count() < 3 and time.monotonic() - appended < 1.2:
                time.sleep(0.25)
                journal.flush_if_due(0.25)
            assert stored.outside_count() == 3
        assert time.monotonic() - appended <= 1.2
    finally:
        journal.close()


def test_flush_if_due_does_nothing_before_time(stored: Backend) -> None:
    journal = stored.open(max_delay_s=30.0)
    try:
        journal.append_many(order_flow(3))
        journal.flush_if_due()
        time.sleep(0.1)
        assert stored.outside_count() == 0
    finally:
        journal.close()
    assert stored.outside_count() == 3


def test_sqlite_append_commits_overdue_records_itself(tmp_path: Path) -> None:
    backend = make_backend("sqlite", tmp_path)
    journal = backend.open(max_delay_s=0.05)
    try:
        records = order_flow(200)
        journal.append_many(records[:10])
        time.sleep(0.1)
        for record in records[10:64]:
            journal.append(record)  # the 64th buffered record looks at the clock: overdue, commit
        assert backend.outside_count() == 64
    finally:
        journal.close()


# -- group commit without blocking: request_durable / durable_seq / wait_durable ------------------------------
def test_requested_durability_arrives_without_blocking(backend: Backend) -> None:
    journal = backend.open(batch_size=10_000) if backend.stored else backend.open()
    try:
        records = order_flow(300)
        released: list[int] = []
        pending: list[int] = []
        for i, record in enumerate(records):
            seq = journal.append(record)
            if i % 3 == 1:  # an intent: its send waits until the journal says it is durable
                assert journal.request_durable() == seq
                pending.append(seq)
            done = journal.durable_seq()
            assert done <= journal.last_seq()
            while pending and pending[0] <= done:
                released.append(pending.pop(0))
        assert journal.wait_durable(journal.last_seq(), timeout=10.0)
        assert journal.durable_seq() == journal.last_seq() == 300
        released.extend(pending)
        assert released == list(range(2, 300, 3)), "every intent released once, in order"
        if backend.stored:
            assert backend.outside_count() == 300, "durable means committed: another connection sees it"
            assert journal.durable_syncs >= 1  # type: ignore[attr-defined]
            assert journal.durable_syncs < 100, "syncs are shared by the intents appended meanwhile"  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="never appended"):
            journal.wait_durable(301)
    finally:
        journal.close()


def test_requested_durability_survives_a_kill(stored: Backend) -> None:
    opener = (
        f"PostgresJournal({stored.url!r}, max_delay_s=30.0)"  # type: ignore[attr-defined]
        if isinstance(stored, PostgresBackend)
        else f"SQLiteJournal({str(stored.path)!r}, max_delay_s=30.0)"  # type: ignore[attr-defined]
    )
    root = Path(__file__).resolve().parents[3]
    code = (
        f"import os, sys\nsys.path.insert(0, {str(root)!r})\n"
        "from tests.unit.persistence.records import order_flow\n"
        "from tradeloop.persistence import PostgresJournal, SQLiteJournal\n"
        f"journal = {opener}\n"
        "records = order_flow(60)\n"
        "for r in records[:40]:\n    journal.append(r)\n"
        "seq = journal.request_durable()\n"
        "assert journal.wait_durable(seq, timeout=10)\n"
        "for r in records[40:]:\n    journal.append(r)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False, env=dict(os.environ))
    assert done.returncode == -signal.SIGKILL
    with stored.open() as journal:
        assert journal.last_seq() == 40
        assert [r for _, _, r in journal.read()] == order_flow(60)[:40]
