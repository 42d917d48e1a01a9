"""Append-only, hash-chained audit log (who did what, when: order and config changes, key store edits).

The file is JSON lines (format in :mod:`tradeloop.security.audit_chain`). Appends open the file with
``O_APPEND``, hold an exclusive ``flock`` while they read the last entry and write the next one, and
``fsync`` before returning, so several processes may append to one log and a restarted process
continues the chain where it stopped. :func:`verify_audit_log` finds edited, removed, inserted,
reordered and malformed entries and names each one.

Detail values are strings and never secrets: callers pass fingerprints, not keys (as a second line
of defence, any value registered with :func:`tradeloop.core.logging.register_secret` is masked).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from tradeloop.core.logging import get_logger, redact_text
from tradeloop.security.audit_chain import (
    GENESIS_HASH,
    AuditEntry,
    AuditLogError,
    compute_entry_hash,
    decode_entry,
    encode_entry,
    read_lines,
)
from tradeloop.security.audit_verify import AuditProblem, verify_audit_log

__all__ = ["GENESIS_HASH", "AuditEntry", "AuditLog", "AuditLogError", "AuditProblem", "verify_audit_log"]

log = get_logger("tradeloop.audit")

_TAIL_CHUNK = 8192


def _read_last_line(fd: int) -> bytes | None:
    """The last line of the open file (without its newline), or ``None`` when the file is empty.

    Raises :class:`AuditLogError` when the file does not end with a newline (an interrupted write or
    a hand edit): appending would glue the next entry onto that line.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        raise AuditLogError("audit log does not end with a newline (interrupted write?); run `tradeloop audit verify`")
    pos = size - 1  # index of the final newline
    chunks: list[bytes] = []
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        chunk = os.pread(fd, pos - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            chunks.append(chunk[cut + 1 :])
            break
        chunks.append(chunk)
        pos = start
    return b"".join(reversed(chunks))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditLog:
    """An append-only audit log file. ``clock`` gives the entry time in ns (wall clock by default)."""

    def __init__(self, path: str | Path, clock: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path)
        self._clock = clock

    def append(self, actor: str, action: str, detail: Mapping[str, str] | None = None) -> AuditEntry:
        """Write the next entry (chained to the current last one), fsync it and return it."""
        if not actor or not action:
            raise ValueError("audit entries need a non-empty actor and action")
        clean: dict[str, str] = {}
        for key, value in (detail or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"audit detail keys and values must be strings (got {key!r}: {type(value).__name__})")
            clean[key] = redact_text(value)
        actor, action = redact_text(actor), redact_text(action)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entry = self._next_entry(fd, actor, action, clean)
            data = encode_entry(entry)
            written = os.write(fd, data)
            if written != len(data):
                raise AuditLogError(f"short write to audit log {self.path} ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock
        if created:
            _fsync_dir(self.path.resolve().parent)
        log.info("audit entry appended", seq=entry.seq, actor=entry.actor, action=entry.action)
        return entry

    def _next_entry(self, fd: int, actor: str, action: str, detail: dict[str, str]) -> AuditEntry:
        last_line = _read_last_line(fd)
        if last_line is None:
            seq, prev_hash = 1, GENESIS_HASH
        else:
            try:
                last = decode_entry(last_line)
            except ValueError as exc:
                raise AuditLogError(
                    f"the last line of {self.path} is not a valid entry ({exc}); run `tradeloop audit verify`"
                ) from None
            seq, prev_hash = last.seq + 1, last.hash
        ts_ns = self._clock()
        digest = compute_entry_hash(seq, ts_ns, actor, action, detail, prev_hash)
        return AuditEntry(seq, ts_ns, actor, action, detail, prev_hash, digest)

    def entries(self) -> list[AuditEntry]:
        """Every entry in file order (no file yet: none); raises :class:`AuditLogError` on a malformed line."""
        if not self.path.exists():
            return []
        out: list[AuditEntry] = []
        for line in read_lines(self.path):
            if line.entry is None:
                raise AuditLogError(f"{self.path}: line {line.line_no}: {line.error}")
            out.append(line.entry)
        return out

    def head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the last entry: record it elsewhere to detect later truncation."""
        last = _read_tail(self.path) if self.path.exists() else None
        if last is None:
            return None
        try:
            entry = decode_entry(last)
        except ValueError as exc:
            raise AuditLogError(f"the last line of {self.path} is not a valid entry ({exc})") from None
        return entry.seq, entry.hash

    def verify(self) -> list[AuditProblem]:
        """Problems in the chain (``[]`` when intact)."""
        return verify_audit_log(self.path)


def _read_tail(path: Path) -> bytes | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return _read_last_line(fd)
    finally:
        os.close(fd)
