"""The secret-scan plugin itself: it must fail a run whose logs contain a registered secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.secret_scan import SAMPLE_SECRETS, find_leaks, render_record

ROOT = Path(__file__).resolve().parents[3]
LEAKED = "leaky-" + "Zx9" * 8  # built at run time so this file's source is not itself a log line

INNER_TESTS = """
import logging
from tests.secret_scan import register_test_secret
from tradeloop.core.logging import get_logger

SECRET = {secret!r}

def test_logs_something():
    register_test_secret(SECRET)
    get_logger("tradeloop.inner").info("signed order", venue="binance", fingerprint="abcdef123456")
    {leak}
"""


def run_inner(tmp_path: Path, leak: str) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER_TESTS.format(secret=LEAKED, leak=leak))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.secret_scan", "-p", "no:cacheprovider", "-q", str(test_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_a_run_that_logs_a_secret_fails(tmp_path: Path) -> None:
    result = run_inner(tmp_path, 'get_logger("tradeloop.inner").info("request", detail="key=" + SECRET)')
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 passed" in out  # the test itself passed: the scan failed the run
    assert "secrets found in log lines" in out and "test_inner.py::test_logs_something" in out
    assert "key=<SECRET>" in out
    assert LEAKED not in out


def test_a_leak_through_a_plain_logger_in_an_exception_is_caught(tmp_path: Path) -> None:
    leak = (
        "try:\n        raise ValueError('bad ' + SECRET)\n    except ValueError:\n"
        "        logging.getLogger('other.lib').warning('failed', exc_info=True)"
    )
    result = run_inner(tmp_path, leak)
    assert result.returncode == 1, result.stdout
    assert "ValueError: bad <SECRET>" in result.stdout


def test_a_clean_run_passes(tmp_path: Path) -> None:
    result = run_inner(tmp_path, "pass")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "secret scan: " in result.stdout and "log lines checked" in result.stdout


def test_find_leaks_masks_every_secret_in_a_line() -> None:
    lines = {"a VALUE-ONE-123 b VALUE-TWO-456": "t1", "clean line": "t2", SAMPLE_SECRETS[0]: "t3"}
    leaks = find_leaks(lines, {"VALUE-ONE-123", "VALUE-TWO-456", SAMPLE_SECRETS[0]})
    assert sorted(leaks) == [("t1", "a <SECRET> b <SECRET>"), ("t3", "<SECRET>")]


def test_render_record_includes_fields_and_extras() -> None:
    import logging

    record = logging.LogRecord("tradeloop.x", logging.INFO, __file__, 1, "msg %s", ("arg",), None)
    record.fields = {"venue": "okx", "note": "n1"}
    record.custom = "extra-value"
    text = render_record(record)
    assert "msg arg" in text and "note=n1" in text and "custom='extra-value'" in text
