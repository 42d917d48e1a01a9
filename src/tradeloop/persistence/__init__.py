"""tradeloop persistence: the journal, an append-only store of every command and event.

Open one with :func:`open_journal`::

    journal = open_journal("runs/bt.db")        # SQLite file (also "sqlite:///runs/bt.db")
    journal = open_journal(None)                # in memory
    seq = journal.append(event)
    for seq, ts, record in journal.read():
        ...
    print(journal.digest())                     # sha256 of the canonical stream
    journal.close()
"""

from __future__ import annotations

import os

from tradeloop.persistence.codec import (
    KIND_OF,
    RECORD_TYPES,
    STREAM_MAGIC,
    TYPE_OF,
    JournalCorruptError,
    JournalEntry,
    JournalError,
    JournalRecord,
    RecordCodec,
    Row,
    kind_of,
    read_canonical,
    record_crc,
)
from tradeloop.persistence.journal import Journal, JournalBase
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.persistence.sqlite import DEFAULT_BATCH_SIZE, SQLiteJournal

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KIND_OF",
    "RECORD_TYPES",
    "STREAM_MAGIC",
    "TYPE_OF",
    "Journal",
    "JournalBackendUnavailable",
    "JournalBase",
    "JournalCorruptError",
    "JournalEntry",
    "JournalError",
    "JournalRecord",
    "MemoryJournal",
    "RecordCodec",
    "Row",
    "SQLiteJournal",
    "kind_of",
    "open_journal",
    "read_canonical",
    "record_crc",
]

_MEMORY = frozenset({"", ":memory:", "memory://", "sqlite://", "sqlite:///:memory:"})


class JournalBackendUnavailable(NotImplementedError, JournalError):
    """The journal URL names a backend that is planned but not built yet (PostgreSQL)."""


def open_journal(
    url_or_path: str | os.PathLike[str] | None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    synchronous: str = "NORMAL",
    durable_synchronous: str = "FULL",
) -> Journal:
    """Open (or create) the journal named by ``url_or_path``.

    * ``None``, ``""`` or ``":memory:"`` (also ``sqlite:///:memory:``): a :class:`MemoryJournal`.
    * a file path, or ``sqlite:///relative/path.db`` / ``sqlite:////absolute/path.db`` (three
      slashes then the path, as in SQLAlchemy): a :class:`SQLiteJournal`; an existing journal is
      continued. The keyword options apply to SQLite only.
    * ``postgresql://...`` (or ``postgres://``): raises :class:`JournalBackendUnavailable`.

    Any other ``scheme://`` raises ``ValueError``.
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
            raise JournalBackendUnavailable(
                "PostgreSQL is a configured journal backend to come and is not available yet; "
                "use a SQLite path (sqlite:///path/to/journal.db) or :memory: for now"
            )
        else:
            raise ValueError(
                f"unsupported journal URL scheme {scheme!r} in {text!r} (use a path, sqlite:///path or :memory:)"
            )
    else:
        path = text
    return SQLiteJournal(path, batch_size=batch_size, synchronous=synchronous, durable_synchronous=durable_synchronous)
