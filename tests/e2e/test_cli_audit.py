"""``tradeloop audit verify / show`` as a user runs them: exit codes and named problems."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.secret_scan import record_output
from tradeloop.security.audit import AuditLog


def run(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tradeloop.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    record_output(f"tradeloop audit {args[0]}", result.stdout + result.stderr)
    return result


def make_log(path: Path) -> list[str]:
    ts = iter(range(1_700_000_000_123_456_789, 1_800_000_000_000_000_000, 1_000_000_000))
    log = AuditLog(path, clock=lambda: next(ts))
    log.append("alice", "config.change", {"key": "risk.max_order_qty", "old": "1", "new": "0.5"})
    log.append("admin-api", "kill_switch", {"reason": "feed stale"})
    log.append("bob", "resume", {"reason": "feed back"})
    log.append("alice", "keys.add", {"venue": "okx", "name": "okx-main", "fingerprint": "0123456789ab"})
    return path.read_text().splitlines()


def test_intact_log_verifies_and_shows(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = make_log(path)
    head_hash = json.loads(lines[-1])["hash"]
    result = run("verify", str(path))
    assert result.returncode == 0, result.stderr
    assert f"intact, 4 entries, head 4:{head_hash}" in result.stdout
    shown = run("show", str(path))
    assert shown.returncode == 0
    out = shown.stdout.splitlines()
    assert out[0] == "2023-11-14T22:13:20.123456Z  #1  alice  config.change  key=risk.max_order_qty new=0.5 old=1"
    assert out[1].endswith("#2  admin-api  kill_switch  reason=feed stale")
    assert out[-1] == f"head 4:{head_hash}"
    assert (
        run("show", str(path), "--last", "1")
        .stdout.splitlines()[0]
        .endswith("fingerprint=0123456789ab name=okx-main venue=okx")
    )


def test_tampering_exits_1_and_names_each_problem(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = make_log(path)
    edited = json.loads(lines[1])
    edited["detail"]["reason"] = "nothing to see"
    path.write_text("\n".join([lines[0], json.dumps(edited), lines[3], "garbage"]) + "\n")  # seq 3 removed
    result = run("verify", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "line 2: edited: line 2 (seq 2, kill_switch) was changed: its fields no longer match its hash",
        "line 3: removed: entry seq 3 is missing after line 2 (seq 2, kill_switch); the chain resumes at line 3",
        "line 4: malformed: line 4: not an audit entry: JSON is malformed: invalid character (byte 0)",
    ]
    assert "3 problem(s)" in result.stderr
    shown = run("show", str(path))
    assert "line 4: MALFORMED" in shown.stdout


def test_truncation_found_with_recorded_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = make_log(path)
    head = f"4:{json.loads(lines[-1])['hash']}"
    path.write_text("\n".join(lines[:2]) + "\n")
    assert run("verify", str(path)).returncode == 0
    result = run("verify", str(path), "--head", head)
    assert result.returncode == 1 and "entries seq 3-4 are missing at the end" in result.stdout
    assert run("verify", str(path), "--head", "4:xyz").returncode == 2


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    result = run("verify", str(tmp_path / "nope.log"))
    assert result.returncode == 2 and "audit log not found" in result.stderr
