"""SQLite journal: seq continuity, determinism (digest and file bytes), corruption, read semantics."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from tests.unit.persistence.records import BTC, T0, one_of_each, order_flow
from tradeloop.model.events import MarkPrice
from tradeloop.persistence import (
    Journal,
    JournalCorruptError,
    JournalError,
    JournalRecord,
    MemoryJournal,
    SQLiteJournal,
    record_crc,
)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path: Path, records: Sequence[JournalRecord], batch_size: int = 64) -> str:
    """Append ``records`` the same way every time (some durable), close; returns the digest."""
    journal = SQLiteJournal(path, batch_size=batch_size)
    for i, record in enumerate(records):
        if i % 50 == 0:
            journal.append_durable(record)
        else:
            journal.append(record)
    digest = journal.digest()
    journal.close()
    return digest


def test_round_trip_every_type(tmp_path: Path) -> None:
    records = one_of_each()
    with SQLiteJournal(tmp_path / "j.db") as journal:
        assert isinstance(journal, Journal)
        journal.append_many(records)
        assert [r for _, _, r in journal.read()] == records
    with SQLiteJournal(tmp_path / "j.db") as journal:
        got = list(journal.read())
    assert got == [(i + 1, r.ts, r) for i, r in enumerate(records)]


def test_seq_continues_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    records = order_flow(30)
    with SQLiteJournal(path) as journal:
        assert journal.last_seq() == 0
        assert journal.append(records[0]) == 1
        assert journal.append_many(records[1:10]) == 10
    with SQLiteJournal(path) as journal:
        assert journal.last_seq() == 10
        assert journal.append(records[10]) == 11
        assert journal.append_durable(records[11]) == 12
        assert journal.append_many(records[12:]) == 30
    with SQLiteJournal(path) as journal:
        got = list(journal.read())
        assert [seq for seq, _, _ in got] == list(range(1, 31))
        assert [r for _, _, r in got] == records
        assert [seq for seq, _, _ in journal.read(from_seq=25)] == list(range(25, 31))
        assert list(journal.read(from_seq=31)) == []


def test_two_identical_runs_give_identical_digest_and_file_bytes(tmp_path: Path) -> None:
    records = one_of_each() + order_flow(2_000)
    a, b = tmp_path / "a" / "j.db", tmp_path / "b" / "j.db"
    digest_a, digest_b = write(a, records), write(b, records)
    assert digest_a == digest_b
    assert sha256_file(a) == sha256_file(b)
    # close() leaves one self-contained file: no WAL, no shared memory file.
    assert sorted(p.name for p in a.parent.iterdir()) == ["j.db"]
    # The digest is the backend-independent canonical stream.
    memory = MemoryJournal()
    memory.append_many(records)
    assert memory.digest() == digest_a


def test_append_many_writes_the_same_file_as_appending_one_by_one(tmp_path: Path) -> None:
    records = order_flow(1_000)
    with SQLiteJournal(tmp_path / "one.db", batch_size=64) as journal:
        for record in records[:10]:
            journal.append(record)
        journal.append_durable(records[10])
        for record in records[11:]:
            journal.append(record)
    with SQLiteJournal(tmp_path / "many.db", batch_size=64) as journal:
        journal.append_many(records[:10])
        journal.append_durable(records[10])
        journal.append_many(records[11:])
        assert journal.pending() == (1_000 - 11) % 64
    assert sha256_file(tmp_path / "one.db") == sha256_file(tmp_path / "many.db")


def test_reading_a_closed_journal_does_not_change_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    digest = write(path, order_flow(500))
    before = sha256_file(path)
    with SQLiteJournal(path) as journal:
        assert journal.digest() == digest
        assert sum(1 for _ in journal.read()) == 500
    with SQLiteJournal(path, readonly=True) as journal:
        assert journal.digest() == digest
        with pytest.raises(JournalError, match="read-only"):
            journal.append(order_flow(1)[0])
    assert sha256_file(path) == before


def test_different_records_give_different_digests(tmp_path: Path) -> None:
    records = order_flow(300)
    changed = list(records)
    changed[150] = msgspec.structs.replace(changed[150], ts=changed[150].ts + 1)
    reordered = list(records)
    reordered[10], reordered[11] = reordered[11], reordered[10]
    digests = {
        write(tmp_path / "a.db", records),
        write(tmp_path / "b.db", changed),
        write(tmp_path / "c.db", reordered),
        write(tmp_path / "d.db", records[:-1]),
    }
    assert len(digests) == 4


def test_corrupt_payload_names_the_seq(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    records = order_flow(100)
    write(path, records)
    with sqlite3.connect(path) as conn:
        (payload,) = conn.execute("SELECT payload FROM journal WHERE seq = 42").fetchone()
        damaged = bytearray(payload)
        damaged[len(damaged) // 2] ^= 0x20
        conn.execute("UPDATE journal SET payload = ? WHERE seq = 42", (bytes(damaged),))
    conn.close()
    with SQLiteJournal(path) as journal:
        seen: list[int] = []
        with pytest.raises(JournalCorruptError, match="seq 42: CRC mismatch") as info:
            for seq, _, _ in journal.read():
                seen.append(seq)
        assert info.value.seq == 42
        assert seen == list(range(1, 42)), "every record before the damage is returned"
        with pytest.raises(JournalCorruptError, match="seq 42"):
            journal.digest()
        assert [seq for seq, _, _ in journal.read(from_seq=43)][-1] == 100


def test_missing_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    write(path, order_flow(100))
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM journal WHERE seq = 57")
    conn.close()
    with SQLiteJournal(path) as journal, pytest.raises(JournalCorruptError, match="seq 57: record missing"):
        list(journal.read())
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM journal WHERE seq = 100")
    conn.close()
    with SQLiteJournal(path) as journal, pytest.raises(JournalCorruptError, match="seq 57"):
        list(journal.entries(from_seq=50))
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM journal WHERE seq = 1")
    conn.close()
    with pytest.raises(JournalCorruptError, match="seq 1: record missing"):
        SQLiteJournal(path)


def test_unknown_kind_in_file_names_seq_and_kind(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    write(path, order_flow(5))
    payload = msgspec.msgpack.encode({"type": "OrderTeleported", "ts": T0})
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO journal VALUES (6, ?, 'OrderTeleported', ?, ?)", (T0, payload, record_crc(6, T0, payload))
        )
    conn.close()
    with SQLiteJournal(path) as journal:
        assert journal.last_seq() == 6
        with pytest.raises(JournalCorruptError, match="seq 6: unknown record kind 'OrderTeleported'"):
            list(journal.read())


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(JournalError, match="not a tradeloop journal"):
        SQLiteJournal(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(JournalError, match="not a usable SQLite database"):
        SQLiteJournal(garbage)
    with pytest.raises(JournalError, match="not found"):
        SQLiteJournal(tmp_path / "missing.db", readonly=True)


def test_batches_commit_and_reads_see_the_buffer(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    records = order_flow(25)
    journal = SQLiteJournal(path, batch_size=10)
    journal.append_many(records[:5])
    for record in records[5:25]:
        journal.append(record)
    assert (journal.last_seq(), journal.committed_seq(), journal.pending()) == (25, 20, 5)
    # Reads include buffered records and commit nothing.
    assert [r for _, _, r in journal.read()] == records
    assert journal.committed_seq() == 20
    # Appending while reading: the read stops at the last seq it started with.
    seen = []
    for seq, _, _ in journal.read(from_seq=18):
        seen.append(seq)
        journal.append(MarkPrice(ts=T0 + seq, instrument_id=BTC, price=seq))
    assert seen == list(range(18, 26))
    assert journal.last_seq() == 33
    journal.flush()
    assert (journal.committed_seq(), journal.pending()) == (33, 0)
    journal.append(records[0])
    journal.append_durable(records[1])
    assert (journal.committed_seq(), journal.pending()) == (35, 0)
    journal.close()


def test_closed_journal_refuses_use(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    journal.append(order_flow(1)[0])
    journal.close()
    journal.close()  # idempotent
    assert journal.closed
    with pytest.raises(JournalError, match="closed"):
        journal.append(order_flow(1)[0])
    with pytest.raises(JournalError, match="closed"):
        journal.read()
    memory = MemoryJournal()
    memory.close()
    with pytest.raises(JournalError, match="closed"):
        memory.append(order_flow(1)[0])


def test_second_writer_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first, second = SQLiteJournal(path), SQLiteJournal(path)
    first.append_durable(order_flow(1)[0])
    second.append(order_flow(1)[0])
    with pytest.raises(JournalError, match=r"seq 1\.\.1 already taken"):
        second.flush()
    first.close()
    with pytest.raises(JournalError, match="already taken"):
        second.close()  # the buffered record cannot be committed; the connection is closed anyway
    assert second.closed


def test_options_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SQLiteJournal(tmp_path / "j.db", batch_size=0)
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteJournal(tmp_path / "j.db", synchronous="SOMETIMES")
    with pytest.raises(ValueError, match="MemoryJournal"):
        SQLiteJournal(":memory:")
