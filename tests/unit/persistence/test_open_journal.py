"""open_journal: URL and path dispatch, and the PostgreSQL URL (journal name, credentials kept out of messages)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.secret_scan import register_test_secret
from tests.services import require_postgres, unique_name
from tests.unit.persistence.backends import PostgresBackend
from tests.unit.persistence.records import order_flow
from tradeloop.persistence import (
    Journal,
    JournalError,
    MemoryJournal,
    PostgresJournal,
    SQLiteJournal,
    open_journal,
    parse_postgres_url,
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


def test_postgresql_urls_open_a_postgres_journal() -> None:
    server = require_postgres()
    name = unique_name("tljo")
    backend = PostgresBackend()
    backend.name, backend.records, backend.snapshots = name, f"{name}_records", f"{name}_snapshots"
    try:
        for url in (f"{server}?journal={name}", server.replace("postgresql://", "postgres://") + f"?journal={name}"):
            journal = open_journal(url, batch_size=3)
            assert isinstance(journal, PostgresJournal) and isinstance(journal, Journal)
            assert journal.name == name
            journal.append(order_flow(1)[0])
            journal.close()
        assert backend.outside_count() == 2
    finally:
        backend.cleanup()


def test_postgres_url_parsing() -> None:
    target = parse_postgres_url("postgresql://tl:s3cr%40t@db.example:5433/trading?journal=mm_1&sslmode=disable")
    assert target.name == "mm_1"
    assert target.dsn == "postgresql://tl:s3cr%40t@db.example:5433/trading?sslmode=disable"
    assert target.safe_url == "postgresql://db.example:5433/trading?journal=mm_1"
    assert target.secrets == ("s3cr@t",)
    assert parse_postgres_url("postgres://db/x").name == "tradeloop"
    assert parse_postgres_url("postgresql+asyncpg://db/x").dsn == "postgresql://db/x"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db/x?journal=Robert');DROP", "not usable as a table prefix"),
        ("postgresql://db/x?journal=1abc", "not usable as a table prefix"),
        ("postgresql://db/x?journal=", "not usable as a table prefix"),
        ("postgresql://db/x?journal=" + "a" * 49, "not usable as a table prefix"),
        ("postgresql://db/x?journal=a&journal=b", "names the journal twice"),
        ("postgresql://db:port/x", "malformed PostgreSQL journal URL"),
    ],
)
def test_bad_postgres_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_journal(url)


def test_unreachable_server_gives_a_clear_error_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    password = "hunter2-is-not-a-password"
    register_test_secret(password)
    with caplog.at_level(logging.DEBUG), pytest.raises(JournalError) as info:
        open_journal(f"postgresql://trader:{password}@127.0.0.1:1/trading?journal=j&password={password}")
    message = str(info.value)
    assert "PostgreSQL journal postgresql://127.0.0.1:1/trading?journal=j: connecting failed" in message
    assert password not in message and "trader" not in message
    assert all(password not in r.getMessage() for r in caplog.records)


def test_a_foreign_table_is_refused() -> None:
    backend = PostgresBackend()
    try:
        backend.sql(f"CREATE TABLE {backend.records} (seq bigint, other text)")
        backend.sql(f"CREATE TABLE {backend.snapshots} (x int)")
        with pytest.raises(JournalError, match=f"table {backend.records} is not a tradeloop journal's"):
            PostgresJournal(backend.url)
        with pytest.raises(JournalError, match="no table"):
            PostgresJournal(backend.url.replace(backend.name, backend.name + "_none"), readonly=True)
    finally:
        backend.cleanup()


@pytest.mark.parametrize("url", ["redis://localhost", "sqlite://relative.db", "sqlite:///"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_journal(url)
