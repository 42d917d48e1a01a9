"""The audit log's record format: one JSON object per line, each hash-chained to the line before.

An entry's ``hash`` is the SHA-256 (lowercase hex) of the canonical JSON array
``[seq, ts_ns, actor, action, [[key, value], ...sorted by key], prev_hash]`` (no spaces), and its
``prev_hash`` is the ``hash`` of the entry before it (:data:`GENESIS_HASH` for the first entry).
``seq`` counts from 1. Changing any field of any entry therefore breaks either that entry's own
hash or the link from the entry after it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first entry."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class AuditLogError(Exception):
    """The audit log cannot be read or appended to (the message says which line and why)."""


class AuditEntry(msgspec.Struct, frozen=True):
    """One audit record: who did what, when, chained to the record before."""

    seq: int
    ts_ns: int
    actor: str
    action: str
    detail: dict[str, str]
    prev_hash: str
    hash: str


_canonical = msgspec.json.Encoder()
_entry_decoder = msgspec.json.Decoder(AuditEntry, strict=True)


def compute_entry_hash(seq: int, ts_ns: int, actor: str, action: str, detail: Mapping[str, str], prev_hash: str) -> str:
    """SHA-256 hex of the canonical encoding of everything in an entry except its own hash."""
    payload = [seq, ts_ns, actor, action, [[k, detail[k]] for k in sorted(detail)], prev_hash]
    return hashlib.sha256(_canonical.encode(payload)).hexdigest()


def entry_hash_of(entry: AuditEntry) -> str:
    """What ``entry.hash`` should be, recomputed from the entry's other fields."""
    return compute_entry_hash(entry.seq, entry.ts_ns, entry.actor, entry.action, entry.detail, entry.prev_hash)


def encode_entry(entry: AuditEntry) -> bytes:
    """The entry as one JSON line (with the trailing newline)."""
    return _canonical.encode(entry) + b"\n"


def decode_entry(line: bytes | str) -> AuditEntry:
    """Parse one line; raises :class:`ValueError` with the reason when it is not a well-formed entry."""
    try:
        entry = _entry_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not an audit entry: {exc}") from None
    if entry.seq < 1:
        raise ValueError(f"not an audit entry: seq {entry.seq} is below 1")
    if not _HEX64.match(entry.hash) or not _HEX64.match(entry.prev_hash):
        raise ValueError("not an audit entry: hash and prev_hash must be 64 lowercase hex digits")
    return entry


class ParsedLine(msgspec.Struct, frozen=True):
    """One line of an audit log file: its 1-based line number and either an entry or a parse error."""

    line_no: int
    entry: AuditEntry | None
    error: str | None


def read_lines(path: str | Path) -> list[ParsedLine]:
    """Every line of the file, parsed (blank lines count as malformed: the writer never makes them)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise AuditLogError(f"audit log not found: {path}") from None
    if not data:
        return []
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    out: list[ParsedLine] = []
    for i, raw in enumerate(raw_lines, start=1):
        try:
            out.append(ParsedLine(i, decode_entry(raw), None))
        except ValueError as exc:
            out.append(ParsedLine(i, None, str(exc)))
    return out
