"""open_journal: URL and path dispatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.persistence.records import order_flow
from tradeloop.persistence import (
    Journal,
    JournalBackendUnavailable,
    MemoryJournal,
    SQLiteJournal,
    open_journal,
)


@pytest.mark.parametrize("spec", [None, "", ":memory:", "sqlite:///:memory:"])
def test_memory(spec: str | None) -> None:
    journal = open_journal(spec)
    assert isinstance(journal, MemoryJournal)
    assert isinstance(journal, Journal)
    assert journal.append(order_flow(1)[0]) == 1


def test_paths_and_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in (str(tmp_path / "a.db"), tmp_path / "b.db", f"sqlite:///{tmp_path}/c.db"):
        journal = open_journal(spec)
        assert isinstance(journal, SQLiteJournal)
        journal.append(order_flow(1)[0])
        journal.close()
    assert {p.name for p in tmp_path.iterdir()} == {"a.db", "b.db", "c.db"}
    monkeypatch.chdir(tmp_path)
    journal = open_journal("sqlite:///runs/rel.db")  # relative, as in SQLAlchemy; parent is created
    assert isinstance(journal, SQLiteJournal)
    journal.close()
    assert (tmp_path / "runs" / "rel.db").exists()


def test_options_reach_sqlite(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j.db", batch_size=3)
    assert isinstance(journal, SQLiteJournal)
    journal.append_many(order_flow(4))
    assert (journal.committed_seq(), journal.pending()) == (3, 1)
    journal.close()


@pytest.mark.parametrize("url", ["postgresql://tl@localhost/tradeloop", "postgres://db/x", "postgresql+psycopg://db/x"])
def test_postgresql_is_not_available_yet(url: str) -> None:
    with pytest.raises(JournalBackendUnavailable, match="PostgreSQL is a configured journal backend to come") as info:
        open_journal(url)
    assert isinstance(info.value, NotImplementedError)


@pytest.mark.parametrize("url", ["redis://localhost", "sqlite://relative.db", "sqlite:///"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_journal(url)
