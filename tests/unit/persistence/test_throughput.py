"""Append throughput smoke test: exercises the batched path at volume; prints the rate, asserts no timing."""

from __future__ import annotations

import time
from pathlib import Path

from tests.unit.persistence.records import order_flow
from tradeloop.persistence import MemoryJournal, SQLiteJournal


def test_append_throughput_smoke(tmp_path: Path) -> None:
    records = order_flow(50_000)
    journal = SQLiteJournal(tmp_path / "j.db")
    started = time.perf_counter()
    for i, record in enumerate(records):
        if i % 1000 == 0:
            journal.append_durable(record)  # an order intent now and then
        else:
            journal.append(record)
    journal.flush()
    elapsed = time.perf_counter() - started
    print(f"sqlite journal: {len(records) / elapsed:,.0f} records/s ({len(records)} records)")
    assert journal.last_seq() == journal.committed_seq() == len(records)
    digest = journal.digest()
    journal.close()
    memory = MemoryJournal()
    memory.append_many(records)
    assert memory.digest() == digest
