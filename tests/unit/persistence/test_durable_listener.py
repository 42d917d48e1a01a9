"""Durable-progress listeners: ``fn(durable_seq)`` every time ``durable_seq()`` advances, on every backend.

An engine that pipelines group commits holds each send until its intent is durable and wants to be
told, not to poll. The listener is called from whatever thread advanced ``durable_seq()`` (the
SQLite WAL-sync thread, the PostgreSQL writer thread, the caller's thread), with no journal lock
held, at most once per advance and with strictly increasing seqs.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from pathlib import Path

import pytest

from tests.unit.persistence.backends import Backend, make_backend, wait_until
from tests.unit.persistence.records import order_flow
from tradeloop.persistence import Journal
from tradeloop.persistence.listeners import DurableListeners


class Recorder:
    """A listener that records each call, the thread it came on and what ``durable_seq()`` said inside it."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal
        self.seqs: list[int] = []
        self.threads: set[str] = set()
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._inside = 0

    def __call__(self, seq: int) -> None:
        with self._lock:
            self._inside += 1
            if self._inside > 1:
                self.problems.append(f"called concurrently at {seq}")
        try:
            self.threads.add(threading.current_thread().name)
            if self.journal is not None:
                try:
                    now = self.journal.durable_seq()  # allowed inside a listener: no lock is held
                except Exception as exc:  # the journal would only log it: make the test see it
                    self.problems.append(f"durable_seq() raised {exc!r}")
                else:
                    if now < seq:
                        self.problems.append(f"durable_seq() {now} behind the notified {seq}")
            self.seqs.append(seq)
        finally:
            with self._lock:
                self._inside -= 1

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0


def assert_strictly_increasing(seqs: list[int]) -> None:
    assert all(a < b for a, b in itertools.pairwise(seqs)), seqs


def test_listener_sees_increasing_seqs_covering_every_request(backend: Backend) -> None:
    journal = backend.open(batch_size=10_000) if backend.stored else backend.open()
    recorder = Recorder(journal)
    journal.add_durable_listener(recorder)
    try:
        requested: list[int] = []
        for i, record in enumerate(order_flow(600)):
            journal.append(record)
            if i % 3 == 1:  # an intent: ask for it to be durable and go on (pipelined group commit)
                requested.append(journal.request_durable())
            journal.durable_seq()  # the engine's loop looks now and then (starts a deferred SQLite sync)
        assert journal.wait_durable(journal.last_seq(), timeout=10.0)
        assert wait_until(lambda: recorder.last == journal.durable_seq() == 600)
    finally:
        journal.close()
    assert not recorder.problems
    assert_strictly_increasing(recorder.seqs)
    for seq in requested:
        assert any(s >= seq for s in recorder.seqs), f"request {seq} never reported durable"
    if backend.stored:
        assert len(recorder.seqs) <= journal.durable_syncs  # type: ignore[attr-defined]
    else:
        assert recorder.seqs == list(range(1, 601)), "memory: every append is durable at once"


def test_durable_appends_and_flushes_are_reported_before_they_return(backend: Backend) -> None:
    # No idle commits in between (PostgreSQL's writer would report them too).
    journal = backend.open(batch_size=10_000, max_delay_s=30.0) if backend.stored else backend.open()
    recorder = Recorder(journal)
    journal.add_durable_listener(recorder)
    records = order_flow(30)
    try:
        journal.append_many(records[:4])
        seq = journal.append_durable(records[4])
        assert recorder.last == seq == 5
        journal.append_many(records[5:9])
        journal.flush(durable=True)
        assert recorder.last == 9
        journal.append(records[9])
        journal.save_snapshot(10, 0, b"s")  # snapshots commit durably too
        assert recorder.last == 10
        journal.flush(durable=True)  # nothing new: no call
        calls = len(recorder.seqs)
        journal.flush(durable=True)
        assert len(recorder.seqs) == calls
        journal.append_many(records[10:])
        journal.flush(durable=True)
        assert recorder.last == 30
    finally:
        journal.close()
    assert not recorder.problems
    assert_strictly_increasing(recorder.seqs)
    if backend.stored:
        assert recorder.seqs == [5, 9, 10, 30]


def test_listeners_can_be_removed_and_a_failing_one_is_logged(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    journal = backend.open()
    first, second = Recorder(), Recorder()

    def broken(seq: int) -> None:
        raise RuntimeError(f"loop closed at {seq}")

    with pytest.raises(TypeError, match="must be callable, got int"):
        journal.add_durable_listener(42)  # type: ignore[arg-type]
    journal.remove_durable_listener(first)  # never added: nothing happens
    journal.add_durable_listener(broken)
    journal.add_durable_listener(first)
    journal.add_durable_listener(second)
    records = order_flow(3)
    try:
        with caplog.at_level(logging.ERROR, logger="tradeloop.journal"):
            assert journal.append_durable(records[0]) == 1
        assert first.seqs == second.seqs == [1], "a failing listener does not stop the others"
        failures = [r for r in caplog.records if r.getMessage() == "durable listener failed"]
        assert failures and "RuntimeError: loop closed at 1" in failures[0].fields["error"]  # type: ignore[attr-defined]
        journal.remove_durable_listener(first)
        journal.remove_durable_listener(broken)
        journal.append_durable(records[1])
        assert first.seqs == [1] and second.seqs == [1, 2]
        journal.remove_durable_listener(second)
        journal.append_durable(records[2])
        assert second.seqs == [1, 2]
        assert [r for _, _, r in journal.read()] == records, "the journal went on"
    finally:
        journal.close()


def test_a_listener_may_use_the_listener_api_and_durable_seq_inside(backend: Backend) -> None:
    """No journal or delivery lock is held during a call: these would deadlock otherwise."""
    journal = backend.open()
    late = Recorder(journal)
    seen: list[int] = []

    def chaining(seq: int) -> None:
        seen.append(journal.durable_seq())
        journal.add_durable_listener(late)  # from the second call on, ``late`` hears of the next one
        journal.remove_durable_listener(chaining)

    journal.add_durable_listener(chaining)
    try:
        journal.append_durable(order_flow(1)[0])
        journal.append_durable(order_flow(2)[1])
    finally:
        journal.close()
    assert seen == [1]
    assert late.seqs == [2] and not late.problems


def test_listener_threads(stored: Backend) -> None:
    journal = stored.open(batch_size=10_000)
    recorder = Recorder(journal)
    journal.add_durable_listener(recorder)
    try:
        journal.append_durable(order_flow(1)[0])
        for record in order_flow(50)[1:]:
            journal.append(record)
            journal.request_durable()
        assert journal.wait_durable(50, timeout=10.0)
        assert wait_until(lambda: recorder.last == 50)
    finally:
        journal.close()
    assert not recorder.problems
    main = threading.current_thread().name
    if stored.kind == "sqlite":
        # The durable commit on the caller's thread, the pipelined ones on the WAL-sync thread.
        assert recorder.threads <= {main, "journal-wal-sync"} and "journal-wal-sync" in recorder.threads
    else:
        assert {name[:11] for name in recorder.threads} == {"journal-pg-"}, "always the writer thread"


def test_sqlite_deferred_sync_is_started_by_the_flush_timer(tmp_path: Path) -> None:
    """An engine woken by the listener, that calls nothing but the session's flush timer, still progresses.

    (PostgreSQL's writer thread commits by itself, memory has nothing to sync.)
    """
    journal = make_backend("sqlite", tmp_path).open(batch_size=10_000)
    recorder = Recorder()
    journal.add_durable_listener(recorder)
    try:
        records = iter(order_flow(400))
        for _ in range(20):
            for _ in range(5):
                journal.append(next(records))
            journal.request_durable()  # starts an fsync ...
            for _ in range(5):
                journal.append(next(records))
            wanted = journal.request_durable()  # ... so this one is deferred until that fsync ends
            deadline = time.monotonic() + 5.0
            while recorder.last < wanted:  # neither durable_seq() nor wait_durable(): only the timer
                assert time.monotonic() < deadline, f"seq {wanted} never became durable"
                time.sleep(0.005)
                journal.flush_if_due()
    finally:
        journal.close()
    assert_strictly_increasing(recorder.seqs)
    assert recorder.last == 200


# -- the delivery itself --------------------------------------------------------------------------------------
def test_delivery_from_many_threads_is_serial_increasing_and_complete() -> None:
    listeners = DurableListeners(lambda: "test")
    recorder = Recorder()
    listeners.add(recorder)
    top = 0
    top_lock = threading.Lock()

    def advance(thread_no: int) -> None:
        nonlocal top
        rng = random.Random(thread_no)
        seq = 0
        for _ in range(2_000):
            seq += rng.randint(1, 5)
            with top_lock:
                top = max(top, seq)
            listeners.advanced(seq)

    threads = [threading.Thread(target=advance, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not recorder.problems, recorder.problems[:3]
    assert_strictly_increasing(recorder.seqs)
    assert recorder.last == top, "the newest seq is always delivered"


def test_an_advance_during_a_delivery_is_delivered_after_it() -> None:
    listeners = DurableListeners(lambda: "test")
    calls: list[int] = []

    def reentrant(seq: int) -> None:
        calls.append(seq)
        if seq == 1:
            listeners.advanced(3)  # e.g. a listener that makes the journal sync: delivered next, not nested
            listeners.advanced(2)  # older than what is pending: dropped
            assert calls == [1]

    listeners.add(reentrant)
    listeners.advanced(1)
    listeners.advanced(1)  # no advance: no call
    assert calls == [1, 3]
