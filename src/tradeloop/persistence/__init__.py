"""tradeloop persistence: the journal, an append-only store of every command and event.

Open one with :func:`open_journal`::

    journal = open_journal("runs/bt.db")        # SQLite file (also "sqlite:///runs/bt.db")
    journal = open_journal("postgresql://user@db:5432/trading?journal=mm1")   # PostgreSQL
    journal = open_journal(None)                # in memory
    seq = journal.append(event)
    for seq, ts, record in journal.read():
        ...
    print(journal.digest())                     # sha256 of the canonical stream
    journal.save_snapshot(journal.last_seq(), ts, state_bytes)   # state after the last record
    journal.latest_snapshot()                   # SnapshotRecord(seq, ts, payload) or None
    journal.close()

A failover pair's primary claims the shared journal with its lease's fencing token before it uses it
(a stale primary's commits are then refused with :class:`JournalFenced`); an engine that pipelines
group commits is told of durable progress by a listener::

    journal.claim(fencing_token)                # JournalFenced if a newer owner claimed it
    journal.add_durable_listener(lambda seq: loop.call_soon_threadsafe(release_sends, seq))

The durability contract is in :mod:`tradeloop.persistence.journal`.
"""

from __future__ import annotations

import os

from tradeloop.persistence.codec import (
    KIND_OF,
    RECORD_TYPES,
    STREAM_MAGIC,
    TYPE_OF,
    CanonicalReader,
    JournalCorruptError,
    JournalEntry,
    JournalError,
    JournalFenced,
    JournalRecord,
    RecordCodec,
    Row,
    SnapshotRecord,
    kind_of,
    read_canonical,
    record_crc,
)
from tradeloop.persistence.journal import DEFAULT_MAX_DELAY_S, SNAPSHOTS_KEPT, Journal, JournalBase
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.persistence.postgres import PostgresJournal, parse_postgres_url
from tradeloop.persistence.sqlite import DEFAULT_BATCH_SIZE, SQLiteJournal

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_DELAY_S",
    "KIND_OF",
    "RECORD_TYPES",
    "SNAPSHOTS_KEPT",
    "STREAM_MAGIC",
    "TYPE_OF",
    "CanonicalReader",
    "Journal",
    "JournalBase",
    "JournalCorruptError",
    "JournalEntry",
    "JournalError",
    "JournalFenced",
    "JournalRecord",
    "MemoryJournal",
    "PostgresJournal",
    "RecordCodec",
    "Row",
    "SQLiteJournal",
    "SnapshotRecord",
    "kind_of",
    "open_journal",
    "parse_postgres_url",
    "read_canonical",
    "record_crc",
]

_MEMORY = frozenset({"", ":memory:", "memory://", "sqlite://", "sqlite:///:memory:"})


def open_journal(
    url_or_path: str | os.PathLike[str] | None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    synchronous: str = "NORMAL",
    durable_synchronous: str = "FULL",
    max_delay_s: float = DEFAULT_MAX_DELAY_S,
) -> Journal:
    """Open (or create) the journal named by ``url_or_path``.

    * ``None``, ``""`` or ``":memory:"`` (also ``sqlite:///:memory:``): a :class:`MemoryJournal`.
    * a file path, or ``sqlite:///relative/path.db`` / ``sqlite:////absolute/path.db`` (three
      slashes then the path, as in SQLAlchemy): a :class:`SQLiteJournal`; an existing journal is
      continued. ``synchronous`` and ``durable_synchronous`` apply to SQLite only.
    * ``postgresql://user@host:5432/database?journal=NAME`` (or ``postgres://``): a
      :class:`PostgresJournal` in the tables ``NAME_records`` / ``NAME_snapshots`` (``NAME`` defaults
      to ``tradeloop``); an existing journal is continued. A server that cannot be reached raises
      :class:`JournalError` (the message never shows the password).

    ``batch_size`` and ``max_delay_s`` apply to both. Any other ``scheme://`` raises ``ValueError``.
    """
    if url_or_path is None:
        return MemoryJournal()
    text = os.fspath(url_or_path)
    if text in _MEMORY:
        return MemoryJournal()
    if "://" in text:
        scheme, _, rest = text.partition("://")
        scheme = scheme.lower()
        if scheme == "sqlite":
            if not rest.startswith("/") or rest == "/":
                raise ValueError(f"sqlite journal URL must be sqlite:///path, got {text!r}")
            path = rest[1:]
        elif scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
            return PostgresJournal(text, batch_size=batch_size, max_delay_s=max_delay_s)
        else:
            raise ValueError(
                f"unsupported journal URL scheme {scheme!r} (use a path, sqlite:///path, postgresql://... or :memory:)"
            )
    else:
        path = text
    return SQLiteJournal(
        path,
        batch_size=batch_size,
        synchronous=synchronous,
        durable_synchronous=durable_synchronous,
        max_delay_s=max_delay_s,
    )
