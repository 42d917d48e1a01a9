"""Audit log: the chain format (checked against an independent hash), appends, restarts, concurrency."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tradeloop.security.audit import GENESIS_HASH, AuditLog, AuditLogError, verify_audit_log


def counting_clock(start: int = 1_700_000_000_000_000_000) -> Callable[[], int]:
    state = {"t": start}

    def clock() -> int:
        state["t"] += 1_000
        return state["t"]

    return clock


def independent_hash(obj: dict[str, object]) -> str:
    """The documented canonical form, rebuilt with the standard library only."""
    detail = obj["detail"]
    assert isinstance(detail, dict)
    payload = [
        obj["seq"],
        obj["ts_ns"],
        obj["actor"],
        obj["action"],
        [[k, detail[k]] for k in sorted(detail)],
        obj["prev_hash"],
    ]
    return hashlib.sha256(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def test_entries_are_hash_chained_in_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, clock=counting_clock())
    first = log.append("alice", "config.change", {"key": "risk.max_order_qty", "new": "0.5", "old": "1"})
    second = log.append("admin-api", "kill_switch", {"reason": "feed stale — ü"})
    third = log.append("bob", "order.cancel")

    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["seq"] for r in raw] == [1, 2, 3]
    assert raw[0]["prev_hash"] == GENESIS_HASH
    for i, r in enumerate(raw):
        assert r["hash"] == independent_hash(r)
        if i:
            assert r["prev_hash"] == raw[i - 1]["hash"]
    assert [first.hash, second.hash, third.hash] == [r["hash"] for r in raw]
    assert raw[0]["ts_ns"] == 1_700_000_000_000_001_000 and raw[2]["detail"] == {}
    assert log.entries() == [first, second, third]
    assert log.head() == (3, third.hash)
    assert verify_audit_log(path) == []
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_restarted_process_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    AuditLog(path).append("a", "one")
    AuditLog(path).append("b", "two")  # a fresh object reads the last entry from disk
    entry = AuditLog(path).append("c", "three")
    assert entry.seq == 3
    assert verify_audit_log(path) == []


def test_concurrent_appenders_from_several_processes_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    script = (
        "import sys\nfrom tradeloop.security.audit import AuditLog\n"
        "log = AuditLog(sys.argv[1])\n"
        "for i in range(40):\n    log.append(sys.argv[2], 'tick', {'i': str(i)})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), f"p{n}"]) for n in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    entries = AuditLog(path).entries()
    assert [e.seq for e in entries] == list(range(1, 121))
    assert sorted(e.actor for e in entries) == sorted(["p0", "p1", "p2"] * 40)
    assert verify_audit_log(path) == []


def test_bad_input_is_refused_without_touching_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append("a", "one")
    before = path.read_bytes()
    with pytest.raises(TypeError, match="strings"):
        log.append("a", "two", {"qty": 5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="actor"):
        log.append("", "two")
    assert path.read_bytes() == before


def test_append_refuses_a_damaged_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append("a", "one")
    with path.open("ab") as f:
        f.write(b'{"seq": 2, "trunc')  # an interrupted write
    with pytest.raises(AuditLogError, match="newline"):
        log.append("a", "two")
    with path.open("ab") as f:
        f.write(b"\n")
    with pytest.raises(AuditLogError, match="last line"):
        log.append("a", "two")
    with pytest.raises(AuditLogError, match="line 2"):
        log.entries()


def test_registered_secrets_are_masked_in_details(tmp_path: Path) -> None:
    from tests.secret_scan import register_test_secret
    from tradeloop.core.logging import register_secret

    secret = "audit-detail-secret-" + os.urandom(8).hex()
    register_test_secret(secret)
    register_secret(secret)
    path = tmp_path / "audit.log"
    AuditLog(path).append("ops", "note", {"text": f"pasted {secret} by mistake"})
    assert secret not in path.read_text()
    assert verify_audit_log(path) == []


def test_long_lines_are_read_back_from_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append("a", "big", {"blob": "x" * 50_000})
    nxt = log.append("a", "after")
    assert nxt.seq == 2 and verify_audit_log(path) == []


def test_missing_file(tmp_path: Path) -> None:
    assert AuditLog(tmp_path / "none.log").entries() == []
    with pytest.raises(AuditLogError, match="not found"):
        verify_audit_log(tmp_path / "none.log")
