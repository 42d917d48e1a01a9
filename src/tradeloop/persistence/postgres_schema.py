"""Where a PostgreSQL journal lives and what is sent to it: the journal URL and the SQL statements.

A journal named ``NAME`` (``postgresql://...?journal=NAME``, default ``tradeloop``) is three tables in
the connection's default schema::

    NAME_records(seq bigint PRIMARY KEY, ts bigint, kind text, payload bytea, crc bigint)
    NAME_snapshots(id bigserial PRIMARY KEY, seq bigint, ts bigint, payload bytea, crc bigint)
    NAME_fence(id int PRIMARY KEY CHECK (id = 1), token bigint)      -- created by the first claim

The records and snapshots tables carry the comment :data:`TABLE_COMMENT`, which marks them as a
tradeloop journal's (a foreign table of the same name is refused). Names are validated identifiers
and quoted anyway.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from tradeloop.persistence.journal import SNAPSHOTS_KEPT

DEFAULT_JOURNAL_NAME: Final[str] = "tradeloop"
TABLE_COMMENT: Final[str] = "tradeloop journal v1"
"""Comment on the journal's tables: marks them as a tradeloop journal's (a foreign table is refused)."""

_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,47}")


class PostgresTarget(NamedTuple):
    """A parsed journal URL."""

    dsn: str
    """What asyncpg connects to (may hold credentials: never log it)."""
    name: str
    """The journal's name (table prefix)."""
    safe_url: str
    """The URL without user, password or query parameters: for messages."""
    secrets: tuple[str, ...]
    """Credentials found in the URL, scrubbed from any message."""


def parse_postgres_url(url: str) -> PostgresTarget:
    """Split a journal URL into the asyncpg DSN and the journal name; ``ValueError`` if it is not usable."""
    try:
        parts = urlsplit(url)
        password = parts.password
        _ = parts.port  # validates it
    except ValueError as exc:
        raise ValueError(f"malformed PostgreSQL journal URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme.startswith("postgresql+"):  # SQLAlchemy-style driver suffix
        scheme = "postgresql"
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r}); use postgresql://host/database")
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [value for key, value in query if key == "journal"]
    if len(names) > 1:
        raise ValueError("the journal URL names the journal twice (one journal=NAME only)")
    name = names[0] if names else DEFAULT_JOURNAL_NAME
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"journal name {name!r} is not usable as a table prefix: use 1-48 lower-case letters, digits "
            "or '_', not starting with a digit"
        )
    secrets = [unquote(password)] if password else []
    secrets += [value for key, value in query if key in ("password", "sslpassword") and value]
    host = parts.netloc.rpartition("@")[2]
    rest = [(key, value) for key, value in query if key != "journal"]
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
    safe = urlunsplit(("postgresql", host, parts.path, f"journal={name}", ""))
    return PostgresTarget(dsn, name, safe, tuple(secrets))


class Statements:
    """The statements of one journal (see the module docstring for the tables)."""

    def __init__(self, name: str) -> None:
        self.records_table = f"{name}_records"
        self.snapshots_table = f"{name}_snapshots"
        self.fence_table = f"{name}_fence"
        r, s, f = f'"{self.records_table}"', f'"{self.snapshots_table}"', f'"{self.fence_table}"'
        self.create = (
            f"CREATE TABLE {r} (seq bigint PRIMARY KEY, ts bigint NOT NULL, kind text NOT NULL, "
            "payload bytea NOT NULL, crc bigint NOT NULL)",
            f"COMMENT ON TABLE {r} IS '{TABLE_COMMENT}'",
            f"CREATE TABLE {s} (id bigserial PRIMARY KEY, seq bigint NOT NULL, ts bigint NOT NULL, "
            "payload bytea NOT NULL, crc bigint NOT NULL)",
            f"COMMENT ON TABLE {s} IS '{TABLE_COMMENT}'",
        )
        self.creation_lock = "SELECT pg_advisory_xact_lock(hashtext($1))"
        """Taken with the records table's name: serialises creating tables (CREATE IF NOT EXISTS alone races)."""
        self.insert = f"INSERT INTO {r} (seq, ts, kind, payload, crc) VALUES ($1, $2, $3, $4, $5)"
        self.bounds = f"SELECT min(seq), max(seq) FROM {r}"
        self.last = f"SELECT max(seq) FROM {r}"
        self.select = f"SELECT seq, ts, kind, payload, crc FROM {r} WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3"
        self.select_last = f"SELECT seq, ts, kind, payload, crc FROM {r} ORDER BY seq DESC LIMIT 1"
        self.delete_seq = f"DELETE FROM {r} WHERE seq = $1"
        self.insert_snapshot = f"INSERT INTO {s} (seq, ts, payload, crc) VALUES ($1, $2, $3, $4)"
        self.prune_snapshots = (
            f"DELETE FROM {s} WHERE id NOT IN (SELECT id FROM {s} ORDER BY id DESC LIMIT {SNAPSHOTS_KEPT})"
        )
        self.select_snapshots = f"SELECT seq, ts, payload, crc FROM {s} ORDER BY id DESC"
        self.create_fence = f"CREATE TABLE {f} (id int PRIMARY KEY CHECK (id = 1), token bigint NOT NULL)"
        self.init_fence = f"INSERT INTO {f} (id, token) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"
        self.fence_for_update = f"SELECT token FROM {f} WHERE id = 1 FOR UPDATE"
        """In a claim: the row lock makes a claim and a commit's check exclude each other."""
        self.fence_for_share = f"SELECT token FROM {f} WHERE id = 1 FOR SHARE"
        """In a claimed journal's commit: a claim waits for the commit, or the commit sees the claim."""
        self.store_fence = f"UPDATE {f} SET token = $1 WHERE id = 1"
