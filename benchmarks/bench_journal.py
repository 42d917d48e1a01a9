"""Journal throughput on SQLite and PostgreSQL, as a ratio to the replay's own event rate.

The workload is real: the Binance spot recording is replayed through the whole node
(``BacktestEngine`` with the demo market maker, as ``tradeloop backtest --data`` runs it) and every
record the node journals is captured with the market event (engine step) that caused it. That
record stream is then journaled again, step by step, with the durability the issue asks for:

* every order intent is durable before its send: ``OrderInitialized``, ``OrderSubmitted`` and
  ``OrderPendingAmend`` (with the ``AmendOrder`` buffered before it), as the OMS journals them in
  a live node;
* everything else is committed at least once a second (the journals' own ``max_delay_s`` check on
  the SQLite hot path, the writer thread on PostgreSQL).

Floor: the replay itself, the node processing the recording's market events (with an in-memory
journal), timed in the same run. Measured: journaling as many records as the replay has events
(the captured stream, step by step, repeated as needed), so ``ratio = journal time / replay time``
over the same count; a ratio at most 1 means the journal appends records at least as fast as the
replay produces events (the issue's "keeps up with the full event rate"), and the table prints the
rate both ways. SQLite must also reach 200,000 records/s.

Commit policies (every one keeps "intent durable before send"):

* ``per-intent``: one durable commit (fsync) per intent, as the OMS does it today;
* ``per-step``: the intents of one engine step are appended and made durable with one
  ``flush(durable=True)`` before the step's sends leave (group commit);
* ``pipelined`` (the headline): intents are appended and a durable commit is *requested*
  (:meth:`~tradeloop.persistence.sqlite.SQLiteJournal.request_durable`); the engine goes on while the
  journal syncs, and each send waits until ``durable_seq()`` covers its intent (the bench counts a
  send as released only then, and reports how long sends waited). One sync covers every intent
  appended while the previous one ran.

The two registered benchmarks (``journal_sqlite``, ``journal_postgres``) time the pipelined policy;
the blocking ones are fsync-bound (a fixed rate whatever the run's length) and are measured on the
first 4,000 records only, for the table ``run.py`` prints after the usual one. Two more rows show
the cost of fencing (a journal claimed with a fencing token, as a failover primary's is, reads the
fence row once per commit): ``per-intent, claimed`` (one commit per intent, the worst case) on the
same 4,000 records and ``pipelined, claimed`` on the whole workload. PostgreSQL is taken
from ``$TRADELOOP_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``); each run
gets tables of its own, dropped afterwards. SQLite files go to ``$TRADELOOP_BENCH_DIR`` (default: the
system temp dir), which should be on the disk a live journal would use.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness import Benchmark, Case, Timed, register
from samples import BINANCE_SPOT_RECORDING, SampleMissing, sample_path

from tradeloop.model.data import MarketData
from tradeloop.model.events import OrderInitialized, OrderPendingAmend, OrderSubmitted
from tradeloop.persistence import JournalRecord, MemoryJournal, PostgresJournal, SQLiteJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.runner import BacktestRequest, open_market, prepare_config

TARGET_RATIO = 1.0
SQLITE_MIN_RATE = 200_000
POSTGRES_URL = os.environ.get("TRADELOOP_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
INTENTS: frozenset[type[Any]] = frozenset({OrderInitialized, OrderSubmitted, OrderPendingAmend})
POLICIES = ("per-intent", "per-step", "pipelined")

Step = list[tuple[JournalRecord, bool]]
"""The records one engine step journaled, each with whether it is an intent (durable before its send)."""


class _StepCapture(MemoryJournal):
    """An in-memory journal that notes which engine step appended each record."""

    def __init__(self) -> None:
        super().__init__()
        self.step = 0
        self.captured: list[tuple[int, JournalRecord]] = []

    def append(self, record: JournalRecord) -> int:
        self.captured.append((self.step, record))
        return super().append(record)

    def append_durable(self, record: JournalRecord) -> int:
        return self.append(record)


class Replay:
    """The recording, parsed once, and a way to run the node over it."""

    def __init__(self, recording: str) -> None:
        path = sample_path(recording)
        self.config = prepare_config(BacktestRequest(data=[str(path)]))
        source = open_market(self.config, [])
        self.source = source
        self.items: list[tuple[int, MarketData]] = list(source.items)

    def engine(self, journal: MemoryJournal) -> BacktestEngine:
        return BacktestEngine(
            self.config,
            self.source.instruments,
            self.source.start_ns,
            sequence_rules=self.source.sequence_rules,
            journal=journal,
        )

    def steps(self) -> list[Step]:
        """Run the node once, capturing each step's records."""
        capture = _StepCapture()
        engine = self.engine(capture)

        def numbered() -> Iterator[tuple[int, MarketData]]:
            for i, item in enumerate(self.items):
                capture.step = i + 1
                yield item

        engine.run(numbered())
        engine.journal.flush()
        by_step: dict[int, Step] = {}
        for step, record in capture.captured:
            by_step.setdefault(step, []).append((record, type(record) in INTENTS))
        return [by_step[k] for k in sorted(by_step)]


def workload(steps: list[Step], n_records: int) -> list[Step]:
    """The captured steps, repeated in order until they hold ``n_records`` records."""
    out: list[Step] = []
    total = 0
    while total < n_records:
        for step in steps:
            take = step[: n_records - total]
            out.append(take)
            total += len(take)
            if total >= n_records:
                break
    return out


# -- journaling one workload under one policy -------------------------------------------------------------
class Outcome:
    """What a measured run did (checked by ``verify``)."""

    def __init__(self, journal: SQLiteJournal | PostgresJournal, syncs: int, waits_ns: list[int]) -> None:
        self.journal = journal
        self.syncs = syncs
        self.waits_ns = waits_ns


def journal_steps(journal: SQLiteJournal | PostgresJournal, steps: list[Step], policy: str) -> Outcome:
    """Append ``steps`` under ``policy``; returns when everything is committed."""
    append = journal.append
    syncs = 0
    waits: list[int] = []
    if policy == "per-intent":
        durable = journal.append_durable
        for step in steps:
            for record, intent in step:
                if intent:
                    durable(record)
                    syncs += 1
                else:
                    append(record)
    elif policy == "per-step":
        flush = journal.flush
        for step in steps:
            any_intent = False
            for record, intent in step:
                append(record)
                any_intent = any_intent or intent
            if any_intent:
                flush(durable=True)
                syncs += 1
    elif policy == "pipelined":
        request = journal.request_durable
        durable_seq = journal.durable_seq
        pending: list[tuple[int, int]] = []  # (intent seq, requested at ns): sends waiting for their sync
        now = time.perf_counter_ns
        for step in steps:
            wanted = 0
            for record, intent in step:
                seq = append(record)
                if intent:
                    wanted = seq
            if wanted:
                request()
                pending.append((wanted, now()))
            if pending:
                done = durable_seq()
                if pending[0][0] <= done:
                    t = now()
                    while pending and pending[0][0] <= done:
                        waits.append(t - pending.pop(0)[1])
        journal.flush(durable=True)
        t = now()
        waits.extend(t - at for _, at in pending)
        syncs = journal.durable_syncs
    else:
        raise ValueError(policy)
    journal.flush()
    return Outcome(journal, syncs, waits)


# -- backends -----------------------------------------------------------------------------------------------
class Backend:
    """Opens a fresh journal per run and cleans up after it."""

    name = ""

    def open(self) -> SQLiteJournal | PostgresJournal:
        raise NotImplementedError

    def discard(self, journal: SQLiteJournal | PostgresJournal) -> None:
        raise NotImplementedError


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tradeloop-bench-journal-", dir=os.environ.get("TRADELOOP_BENCH_DIR")))
        atexit.register(shutil.rmtree, self.root, True)

    def open(self) -> SQLiteJournal:
        return SQLiteJournal(self.root / f"{uuid.uuid4().hex}.db")

    def discard(self, journal: SQLiteJournal | PostgresJournal) -> None:
        assert isinstance(journal, SQLiteJournal)
        journal.close()
        journal.path.unlink(missing_ok=True)


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self) -> None:
        parts = urlsplit(POSTGRES_URL)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=1.0):
                pass
        except OSError:
            raise SampleMissing(f"PostgreSQL not reachable at {parts.hostname}:{parts.port or 5432}") from None

    def open(self) -> PostgresJournal:
        return PostgresJournal(f"{POSTGRES_URL}?journal=bench_{uuid.uuid4().hex[:12]}")

    def discard(self, journal: SQLiteJournal | PostgresJournal) -> None:
        assert isinstance(journal, PostgresJournal)
        journal.close()
        drop_postgres_tables(journal.records_table, journal.snapshots_table, journal.fence_table)


def drop_postgres_tables(*tables: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
        finally:
            await conn.close()

    asyncio.run(drop())


# -- the benchmark ----------------------------------------------------------------------------------------
HEADLINE = "pipelined"
REFERENCE_RECORDS = 4_000
"""The blocking policies are fsync-bound (their rate does not depend on the length of the run): they are
measured once, on the first records of the workload, for the table."""

_open: list[tuple[Backend, SQLiteJournal | PostgresJournal]] = []


def _discard_all() -> None:
    while _open:
        backend, journal = _open.pop()
        backend.discard(journal)


atexit.register(_discard_all)


def _reference_rates(backend: Backend, work: list[Step]) -> dict[str, dict[str, float]]:
    head: list[Step] = []
    total = 0
    for step in work:
        head.append(step)
        total += len(step)
        if total >= REFERENCE_RECORDS:
            break
    rates = {}
    runs = [(policy, head, total, False) for policy in POLICIES if policy != HEADLINE]
    runs += [("per-intent", head, total, True), (HEADLINE, work, sum(len(step) for step in work), True)]
    for policy, steps, count, claimed in runs:
        best = float("inf")
        syncs = 0
        for _ in range(2 if policy != HEADLINE else 3):
            journal = backend.open()
            try:
                if claimed:
                    journal.claim(1)
                started = time.perf_counter()
                syncs = journal_steps(journal, steps, policy).syncs
                best = min(best, time.perf_counter() - started)
            finally:
                backend.discard(journal)
        name = f"{policy}, claimed" if claimed else policy
        rates[name] = {
            "records": count,
            "seconds": best,
            "records_per_s": count / best,
            "syncs": syncs,
            "blocking": policy != HEADLINE,
        }
    return rates


def _setup(make_backend: Callable[[], Backend]) -> Case:
    backend = make_backend()
    replay = Replay(BINANCE_SPOT_RECORDING)
    steps = replay.steps()
    n_events = len(replay.items)
    work = workload(steps, n_events)
    records = [record for step in work for record, _ in step]
    expected_digest = _memory_digest(records)
    real = [r for step in steps for r in step]
    intents = sum(1 for _, intent in real if intent)

    def prepare_floor() -> Timed:
        engine = replay.engine(MemoryJournal())
        items = replay.items

        def floor() -> None:
            engine.run(iter(items))

        return floor

    def prepare_measured() -> Timed:
        _discard_all()
        journal = backend.open()
        _open.append((backend, journal))

        def measured() -> Outcome:
            return journal_steps(journal, work, HEADLINE)

        return measured

    details: dict[str, Any] = {
        "backend": backend.name,
        "policy": HEADLINE,
        "recording": BINANCE_SPOT_RECORDING,
        "replay_events": n_events,
        "captured_steps_with_records": len(steps),
        "captured_records": len(real),
        "captured_intents": intents,
        "intent_share": intents / len(real),
        "records_journaled": len(records),
        "min_records_per_s": SQLITE_MIN_RATE if backend.name == "sqlite" else None,
        "reference": _reference_rates(backend, work),
        "runs": [],
    }

    def verify(result: object) -> list[str]:
        assert isinstance(result, Outcome)
        journal = result.journal
        problems = []
        if journal.committed_seq() != len(records) or journal.durable_seq() != len(records):
            problems.append(f"committed {journal.committed_seq()} of {len(records)} records")
        if not details.get("digest_checked"):
            if journal.digest() != expected_digest:
                problems.append("journal digest differs from the records appended")
            details["digest_checked"] = True
        waits = sorted(result.waits_ns)
        details["runs"].append(
            {
                "syncs": result.syncs,
                "send_wait_p50_us": waits[len(waits) // 2] / 1000 if waits else None,
                "send_wait_max_us": waits[-1] / 1000 if waits else None,
            }
        )
        _discard_all()
        return problems

    return Case(prepare_floor, prepare_measured, n_events, details, verify)


def _memory_digest(records: list[JournalRecord]) -> str:
    memory = MemoryJournal()
    memory.append_many(records)
    return memory.digest()


def finish_rows(rows: list[dict[str, Any]]) -> None:
    """Add the rates to the journal rows of a run and fail a SQLite row under 200,000 records/s."""
    for row in rows:
        details = row["details"]
        if "replay_events" not in details:
            continue
        rate = details["records_journaled"] / row["seconds"]
        details["records_per_s"] = rate
        details["replay_events_per_s"] = details["replay_events"] / row["floor_seconds"]
        details["journal_to_replay"] = rate / details["replay_events_per_s"]
        floor = details.get("min_records_per_s")
        if floor is not None and rate < floor:
            problem = f"{rate:,.0f} records/s is under the {floor:,} records/s target"
            details["problems"].append(problem)
            row["passed"] = False


def journal_table(rows: list[dict[str, Any]]) -> str:
    """Records per second per backend and commit policy, against the replay's own event rate."""
    headers = [
        "journal",
        "commits",
        "records/s",
        "replay ev/s",
        "journal/replay",
        "syncs",
        "send wait p50/max ms (median run)",
    ]
    body = []
    for row in rows:
        d = row["details"]
        if "records_per_s" not in d:
            continue
        replay = d["replay_events_per_s"]
        runs = d["runs"]
        typical = sorted(runs, key=lambda r: r["send_wait_p50_us"] or 0)[len(runs) // 2] if runs else {}
        wait = (
            f"{typical['send_wait_p50_us'] / 1000:.1f} / {typical['send_wait_max_us'] / 1000:.1f}"
            if typical.get("send_wait_p50_us") is not None
            else "-"
        )
        body.append(
            [
                d["backend"],
                f"{d['policy']} (headline)",
                f"{d['records_per_s']:,.0f}",
                f"{replay:,.0f}",
                f"{d['records_per_s'] / replay:.2f}x",
                str(typical.get("syncs", "-")),
                wait,
            ]
        )
        for policy, ref in d["reference"].items():
            body.append(
                [
                    d["backend"],
                    f"{policy} ({ref['records']:,} records)",
                    f"{ref['records_per_s']:,.0f}",
                    f"{replay:,.0f}",
                    f"{ref['records_per_s'] / replay:.2f}x",
                    str(ref["syncs"]),
                    "0 (blocking)" if ref["blocking"] else "-",
                ]
            )
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    lines.append(
        "intents durable before send in every row; journal/replay >= 1 keeps up; "
        f"SQLite target {SQLITE_MIN_RATE:,} records/s"
    )
    return "\n".join(lines)


for _backend in (SQLiteBackend, PostgresBackend):
    register(
        Benchmark(
            name=f"journal_{_backend.name}",
            floor_name="replay (node events)",
            target_ratio=TARGET_RATIO,
            setup=lambda b=_backend: _setup(b),  # type: ignore[misc]
            description=(
                f"{_backend.name} journal: records of a real replay, intents durable before send "
                "(pipelined group commit), time per replay event"
            ),
        )
    )
