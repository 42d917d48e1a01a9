"""Journal fencing for a failover pair: ``claim(token)`` and the stale writer's refused commits.

Two journal objects on the same SQLite file or the same PostgreSQL tables play the old and the new
primary, as two processes would (each object has a connection of its own). Memory journals cannot be
shared, so they run the tests of one object only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.persistence.backends import Backend, memory_digest, wait_until
from tests.unit.persistence.records import BTC, T0, order_flow
from tradeloop.model.events import MarkPrice
from tradeloop.persistence import Journal, JournalError, JournalFenced, JournalRecord, SnapshotRecord

ROOT = Path(__file__).resolve().parents[3]


def marks(n: int, start: int) -> list[JournalRecord]:
    """``n`` records told apart by their price (``start``, ``start + 1``, ...): whose records are stored."""
    return [MarkPrice(ts=T0 + start + i, instrument_id=BTC, price=start + i) for i in range(n)]


def stored_records(backend: Backend) -> list[JournalRecord]:
    with backend.open(readonly=True) as journal:
        return [record for _, _, record in journal.read()]


def refused_eventually(call: Callable[[], object], timeout: float = 5.0) -> JournalFenced:
    """Call ``call`` until it raises ``JournalFenced`` (a background commit's failure shows at a later call)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            call()
        except JournalFenced as exc:
            return exc
        if time.monotonic() > deadline:
            raise AssertionError("the stale writer was never refused")
        time.sleep(0.02)


def assert_writes_refused(journal: Journal) -> None:
    """Every write of a fenced journal raises ``JournalFenced``."""
    record = marks(1, 900_000)[0]
    for call in (
        lambda: journal.append(record),
        lambda: journal.append_many([record]),
        lambda: journal.append_durable(record),
        lambda: journal.flush(),
        lambda: journal.flush(durable=True),
        lambda: journal.flush_if_due(),
        lambda: journal.request_durable(),
        lambda: journal.save_snapshot(0, T0, b"stale"),
        lambda: journal.claim(10**9),
    ):
        with pytest.raises(JournalFenced):
            call()


# -- one journal object: every backend ---------------------------------------------------------------------
def test_claim_stores_the_token_and_refuses_an_older_one(backend: Backend) -> None:
    records = order_flow(20)
    journal = backend.open()
    try:
        assert journal.fence_token is None
        journal.claim(3)
        journal.claim(3)  # the same holder again: fine
        journal.claim(5)
        assert journal.fence_token == 5
        journal.append_many(records[:10])
        journal.append_durable(records[10])
        journal.save_snapshot(11, T0, b"state@11")
        if backend.stored:
            assert backend.outside_fence() == 5
        with pytest.raises(
            JournalFenced, match=r"claim with fencing token 4 refused: a newer owner holds token 5"
        ) as info:
            journal.claim(4)
        assert (info.value.token, info.value.owner) == (4, 5)
        assert_writes_refused(journal)
        # Reads still work, and nothing of the refused writes reached the journal.
        assert journal.last_seq() == 11
        assert [r for _, _, r in journal.read()] == records[:11]
        assert journal.digest() == memory_digest(records[:11])
        assert journal.latest_snapshot() == SnapshotRecord(11, T0, b"state@11")
        if backend.stored:
            assert backend.outside_fence() == 5 and backend.outside_count() == 11
    finally:
        journal.close()  # nothing buffered: closes quietly
    assert journal.closed


@pytest.mark.parametrize(
    ("token", "error", "match"),
    [
        ("7", TypeError, "must be an int, got str"),
        (7.0, TypeError, "must be an int, got float"),
        (True, TypeError, "must be an int, got bool"),
        (None, TypeError, "must be an int, got NoneType"),
        (0, ValueError, "between 1 and 2\\*\\*63-1, got 0"),
        (-3, ValueError, "got -3"),
        (2**63, ValueError, "got 9223372036854775808"),
    ],
)
def test_bad_tokens_are_refused_and_change_nothing(backend: Backend, token: object, error: type, match: str) -> None:
    journal = backend.open()
    try:
        with pytest.raises(error, match=match):
            journal.claim(token)  # type: ignore[arg-type]
        assert journal.fence_token is None
        assert journal.append_durable(order_flow(1)[0]) == 1, "still writable"
        if backend.stored:
            assert backend.outside_fence() is None, "nothing stored"
        journal.claim(2**63 - 1)  # the greatest token fits the column
        assert journal.fence_token == 2**63 - 1
    finally:
        journal.close()
    if backend.stored:
        assert backend.outside_fence() == 2**63 - 1


def test_claiming_a_closed_or_readonly_journal_is_refused(backend: Backend) -> None:
    journal = backend.open()
    journal.append(order_flow(1)[0])
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.claim(1)
    if backend.stored:
        with backend.open(readonly=True) as reader, pytest.raises(JournalError, match="read-only"):
            reader.claim(1)
        assert backend.outside_fence() is None


# -- two journal objects on one stored journal: the stale primary and the new one ----------------------------
def test_a_stale_writer_is_refused_after_a_newer_claim(stored: Backend) -> None:
    old = stored.open(batch_size=1_000, max_delay_s=30.0)
    new = None
    try:
        old.claim(1)
        old.append_many(marks(10, 0))
        old.flush()
        old.append_many(marks(5, 100))  # buffered when the new primary claims: must never be written
        new = stored.open()
        new.claim(2)
        new.append_many(marks(3, 200))
        new.flush(durable=True)
        with pytest.raises(
            JournalFenced, match=r"claimed by a newer owner \(token 2; this writer's token is 1\)"
        ) as info:
            old.flush()
        assert (info.value.token, info.value.owner) == (1, 2)
        assert "commit of seq 11..15 refused" in str(info.value)
        assert_writes_refused(old)
        # The stale object still reads what it knows: its committed records and its own buffer.
        assert [r for _, _, r in old.read()] == marks(10, 0) + marks(5, 100)
        assert old.last_seq() == 15
        with pytest.raises(JournalFenced, match=r"\(5 records not"):
            old.close()  # released anyway
        assert old.closed
        assert new.append_durable(marks(1, 300)[0]) == 14
    finally:
        for journal in (old, new):
            if journal is not None and not journal.closed:
                journal.close()
    expected = marks(10, 0) + marks(3, 200) + marks(1, 300)
    assert stored_records(stored) == expected
    assert stored.outside_count() == 14 and stored.outside_fence() == 2
    with stored.open(readonly=True) as journal:
        assert journal.digest() == memory_digest(expected)


@pytest.mark.parametrize("path", ["durable", "batch", "idle", "request_durable"])
def test_every_commit_path_of_a_stale_writer_is_refused(stored: Backend, path: str) -> None:
    old = stored.open(batch_size=8, max_delay_s=0.1)
    new = stored.open()
    try:
        old.claim(4)
        old.append_many(marks(3, 0))
        old.flush()
        new.claim(5)
        if path == "durable":
            with pytest.raises(JournalFenced):
                old.append_durable(marks(1, 100)[0])
        elif path == "batch":
            # The 8th buffered record fills the batch: SQLite commits it in append, PostgreSQL's
            # writer thread commits it and the failure shows at a later call.
            extra = iter(marks(100, 100))
            refused_eventually(lambda: old.append(next(extra)))
        elif path == "idle":
            old.append(marks(1, 100)[0])
            refused_eventually(old.flush_if_due)  # SQLite commits when due; PostgreSQL's writer by itself
        else:
            old.append(marks(1, 100)[0])
            refused_eventually(lambda: (old.request_durable(), old.wait_durable(old.last_seq(), timeout=1.0)))
        assert_writes_refused(old)
        assert stored.outside_count() == 3, "nothing of the stale writer's after the claim"
        new.append_many(marks(2, 500))
        new.flush()
    finally:
        with pytest.raises(JournalFenced):
            old.close()
        new.close()
    assert stored_records(stored) == marks(3, 0) + marks(2, 500)


def test_snapshots_of_a_stale_writer_are_refused(stored: Backend) -> None:
    old = stored.open()
    new = stored.open()
    try:
        old.claim(1)
        old.append_many(marks(10, 0))
        old.save_snapshot(5, T0 + 5, b"old@5")
        new.claim(2)
        assert new.last_seq() == 10, "the claim took over the old primary's committed records"
        with pytest.raises(JournalFenced, match=r"snapshot at seq 10 refused"):
            old.save_snapshot(10, T0 + 10, b"old@10")  # nothing buffered: the snapshot's own check refuses
        assert stored.outside_snapshot_count() == 1
        assert old.latest_snapshot() == SnapshotRecord(5, T0 + 5, b"old@5"), "reads still work"
        new.save_snapshot(10, T0 + 10, b"new@10")
    finally:
        old.close()
        new.close()
    with stored.open(readonly=True) as journal:
        assert journal.latest_snapshot() == SnapshotRecord(10, T0 + 10, b"new@10")


def test_a_never_claimed_journal_is_unaffected(stored: Backend) -> None:
    with stored.open() as owner:
        owner.claim(7)
        owner.append_many(marks(4, 0))
    # A tool (or an engine without failover) that never claims writes as it always did.
    with stored.open(batch_size=2) as journal:
        assert journal.fence_token is None
        journal.append_many(marks(5, 100))
        journal.append_durable(marks(1, 200)[0])
        journal.save_snapshot(10, T0, b"s")
    assert stored.outside_count() == 10 and stored.outside_fence() == 7
    # ... and a claimed journal reads the fence once per commit, never per append.
    statements: list[str] = []
    journal = stored.open(batch_size=1_000)
    try:
        stored.watch_statements(journal, statements.append)
        journal.append_many(marks(50, 300))
        journal.flush()
        assert not [s for s in statements if "fence" in s], "no fence query before a claim"
        journal.claim(8)
        statements.clear()
        for record in marks(50, 400):
            journal.append(record)
        journal.flush()
        journal.append_durable(marks(1, 500)[0])
        journal.save_snapshot(journal.last_seq(), T0, b"t")

        def fence_queries() -> int:
            return len([s for s in statements if "fence" in s])

        assert wait_until(lambda: fence_queries() >= 3)  # asyncpg reports queries a moment later
        time.sleep(0.05)
        assert fence_queries() == 3, "one per commit: the flush, the durable append, the snapshot"
    finally:
        journal.close()


def test_a_claim_takes_over_records_the_previous_owner_committed(stored: Backend) -> None:
    old = stored.open(batch_size=1_000)
    new = stored.open()  # opened (the hot secondary) while the old primary still writes
    seen: list[int] = []
    new.add_durable_listener(seen.append)
    try:
        old.claim(1)
        old.append_many(marks(6, 0))
        old.flush()
        assert new.last_seq() == 0
        new.claim(2)
        assert new.last_seq() == new.committed_seq() == new.durable_seq() == 6  # type: ignore[attr-defined]
        assert seen == [6]
        assert [r for _, _, r in new.read()] == marks(6, 0)
        assert new.append(marks(1, 100)[0]) == 7
        new.flush()
        with pytest.raises(JournalFenced):
            old.append_durable(marks(1, 200)[0])
    finally:
        with pytest.raises(JournalFenced):
            old.close()
        new.close()
    assert stored_records(stored) == marks(6, 0) + marks(1, 100)


def test_a_claim_that_would_collide_is_refused_and_stores_nothing(stored: Backend) -> None:
    old = stored.open()
    new = stored.open(batch_size=1_000, max_delay_s=30.0)
    try:
        old.claim(1)
        new.append(marks(1, 100)[0])  # buffered as seq 1 ...
        old.append_durable(marks(1, 0)[0])  # ... which the old primary commits meanwhile
        with pytest.raises(JournalError, match=r"cannot claim: the stored records end at seq 1") as info:
            new.claim(2)
        assert not isinstance(info.value, JournalFenced)
        assert new.fence_token is None and stored.outside_fence() == 1
        assert old.append_durable(marks(1, 1)[0]) == 2, "the owner is not fenced"
    finally:
        old.close()
        with pytest.raises(JournalError, match="already taken"):
            new.close()
    assert stored_records(stored) == marks(2, 0)


def test_a_claim_is_durable(stored: Backend) -> None:
    code = (
        f"import os, sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from tradeloop.persistence import PostgresJournal, SQLiteJournal\n"
        "from tests.unit.persistence.records import order_flow\n"
        f"journal = {stored.child_opener(max_delay_s=30.0)}\n"
        "journal.append_many(order_flow(3))\n"
        "journal.claim(9)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False, env=dict(os.environ))
    assert done.returncode == -signal.SIGKILL
    assert stored.outside_fence() == 9
    with stored.open() as journal:
        assert journal.last_seq() == 0, "the claim commits no buffered record"
        with pytest.raises(JournalFenced, match="token 8 refused: a newer owner holds token 9"):
            journal.claim(8)
    with stored.open() as journal:
        journal.claim(9)
        journal.append_durable(order_flow(1)[0])


def test_a_claim_racing_a_busy_writer_cuts_it_off_cleanly(stored: Backend) -> None:
    """The old primary commits as fast as it can in its thread while the new one claims.

    Every record the old one got committed is before the claim's takeover point, none after it;
    the new primary's records continue without a gap or a collision.
    """
    ready = threading.Event()
    outcome: dict[str, object] = {}

    def old_primary() -> None:
        journal = stored.open(batch_size=4)
        try:
            journal.claim(1)
            ready.set()
            for i in range(1_000_000):
                journal.append(marks(1, i)[0])
                if i % 3 == 0:
                    journal.flush(durable=i % 2 == 0)
        except JournalFenced as exc:
            outcome["refused"] = exc
        finally:
            with contextlib.suppress(JournalFenced):  # its last buffered records are refused
                journal.close()

    thread = threading.Thread(target=old_primary)
    thread.start()
    try:
        assert ready.wait(10.0)
        time.sleep(0.2)  # let it commit for a while
        new = stored.open()
        try:
            new.claim(2)
            taken_over = new.last_seq()
            assert taken_over > 0
            new.append_many(marks(5, 5_000_000))
            new.flush(durable=True)
        finally:
            new.close()
    finally:
        thread.join(30.0)
    assert isinstance(outcome.get("refused"), JournalFenced)
    records = stored_records(stored)
    assert len(records) == taken_over + 5
    assert records[:taken_over] == [marks(1, i)[0] for i in range(taken_over)], "a prefix of the old primary's"
    assert records[taken_over:] == marks(5, 5_000_000)
    assert stored.outside_fence() == 2
