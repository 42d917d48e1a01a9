"""The SQLite journal's on-disk format: the file's marks, its tables and statements, and the WAL's layout.

Tables (the ``fence`` table is created by the first :meth:`~tradeloop.persistence.sqlite.SQLiteJournal.claim`)::

    journal(seq INTEGER PRIMARY KEY, ts INTEGER, kind TEXT, payload BLOB, crc INTEGER)
    snapshots(id INTEGER PRIMARY KEY, seq INTEGER, ts INTEGER, payload BLOB, crc INTEGER)
    fence(id INTEGER PRIMARY KEY CHECK (id = 1), token INTEGER)

The file carries ``PRAGMA application_id`` :data:`APPLICATION_ID`, so a foreign SQLite file is refused
rather than written into, and ``PRAGMA user_version`` :data:`SCHEMA_VERSION`. The fence table does not
change the version: a journal that has one is still read by any tradeloop that reads v2.

:func:`torn_wal_tail` checks the WAL file against SQLite's frame layout (a 32-byte header, then
frames of a 24-byte header and one page each) to report a tail torn by a crash.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Final

from tradeloop.persistence.journal import SNAPSHOTS_KEPT, log

APPLICATION_ID: Final[int] = 0x544C4A4E
"""``PRAGMA application_id`` of a tradeloop journal ("TLJN")."""
SCHEMA_VERSION: Final[int] = 2
"""``PRAGMA user_version`` of the current table layout (1: no snapshots table yet)."""

CREATE_JOURNAL: Final[str] = (
    "CREATE TABLE journal ("
    "seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL)"
)
CREATE_SNAPSHOTS: Final[str] = (
    "CREATE TABLE snapshots ("
    "id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, ts INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL)"
)
INSERT_RECORD: Final[str] = "INSERT INTO journal (seq, ts, kind, payload, crc) VALUES (?, ?, ?, ?, ?)"
SELECT_RECORDS: Final[str] = (
    "SELECT seq, ts, kind, payload, crc FROM journal WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"
)
SELECT_LAST: Final[str] = "SELECT seq, ts, kind, payload, crc FROM journal ORDER BY seq DESC LIMIT 1"
INSERT_SNAPSHOT: Final[str] = "INSERT INTO snapshots (seq, ts, payload, crc) VALUES (?, ?, ?, ?)"
PRUNE_SNAPSHOTS: Final[str] = (
    f"DELETE FROM snapshots WHERE id NOT IN (SELECT id FROM snapshots ORDER BY id DESC LIMIT {SNAPSHOTS_KEPT})"
)
SELECT_SNAPSHOTS: Final[str] = "SELECT seq, ts, payload, crc FROM snapshots ORDER BY id DESC"
CREATE_FENCE: Final[str] = (
    "CREATE TABLE IF NOT EXISTS fence (id INTEGER PRIMARY KEY CHECK (id = 1), token INTEGER NOT NULL)"
)
SELECT_FENCE: Final[str] = "SELECT token FROM fence WHERE id = 1"
STORE_FENCE: Final[str] = "INSERT OR REPLACE INTO fence (id, token) VALUES (1, ?)"

_WAL_HEADER: Final = struct.Struct(">IIII")
_WAL_MAGIC: Final = frozenset({0x377F0682, 0x377F0683})
_WAL_HEADER_SIZE: Final[int] = 32
_WAL_FRAME_HEADER_SIZE: Final[int] = 24


def torn_wal_tail(wal: Path) -> int:
    """Warn about a torn tail of the WAL file ``wal`` (size not header + whole frames); returns the torn bytes."""
    try:
        size = wal.stat().st_size
        if size == 0:
            return 0
        with open(wal, "rb") as f:
            header = f.read(_WAL_HEADER_SIZE)
    except OSError:
        return 0
    if len(header) < _WAL_HEADER_SIZE:
        torn = size
    else:
        magic, _version, page_size, _ckpt = _WAL_HEADER.unpack_from(header)
        if magic not in _WAL_MAGIC or page_size < 512:
            log.warning("WAL file has no valid header; SQLite ignores it", file=str(wal), size=size)
            return 0
        torn = (size - _WAL_HEADER_SIZE) % (_WAL_FRAME_HEADER_SIZE + page_size)
    if torn:
        log.warning(
            "torn WAL tail: SQLite drops the partial frame and its transaction",
            file=str(wal),
            bytes_dropped=torn,
            wal_size=size,
        )
    return torn
