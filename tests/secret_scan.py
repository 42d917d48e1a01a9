"""Pytest plugin: fail the test run if a secret appears in any log line written during it.

Registered from ``tests/conftest.py``. For the whole session it sees every log record any logger
hands to its handlers (whatever handlers, levels or ``propagate`` settings tests configure), renders
it raw - message, structured ``fields``, any ``extra`` attribute, exception text - *before* any
redaction, and keeps the line. The ``tradeloop`` logger is opened to INFO so operational lines
(the key store logs every change with fingerprints) are produced and checked.

At the end every line is checked against the secrets tests registered with
:func:`register_test_secret` plus :data:`SAMPLE_SECRETS` (the public example secrets of venue
signing vectors). Output of subprocesses (CLI runs, their log files) joins the scan through
:func:`record_output` / :func:`scan_file`. A hit sets a failing exit status and prints the line,
with the secret masked, and the test that wrote it.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

import pytest

MIN_SECRET_CHARS = 8

SAMPLE_SECRETS: tuple[str, ...] = (
    # Binance API docs HMAC example (api key and secret)
    "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
    "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    # Kraken API docs example secret
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==",
    # OKX docs sample secret
    "22582BD0CFF14C41EDBF1AB98506286D",
    # KuCoin docs example secrets
    "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3",
    "cde06451-dbed",
)

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {
    "message",
    "asctime",
    "fields",
}

_secrets: set[str] = set(SAMPLE_SECRETS)
_lines: dict[str, str] = {}  # rendered line -> where it came from (first occurrence)
_current = "<session>"
_leaks: list[tuple[str, str]] = []


def register_test_secret(*values: str) -> None:
    """Declare values that must never reach a log line (values under 8 characters are too common)."""
    for value in values:
        if value and len(value) >= MIN_SECRET_CHARS:
            _secrets.add(value)


def record_output(source: str, text: str) -> None:
    """Scan ``text`` (a subprocess's stdout/stderr or log file) line by line with the session's logs."""
    for line in text.splitlines():
        _lines.setdefault(line, f"{_current} ({source})")


def scan_file(path: str | Path) -> None:
    """Add a log file written by a subprocess to the scan."""
    p = Path(path)
    if p.exists():
        record_output(str(p), p.read_text(errors="replace"))


def render_record(record: logging.LogRecord) -> str:
    """Everything a handler could write about ``record``, unredacted."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not hide the raw parts
        message = f"{record.msg!r} % {record.args!r}"
    parts = [record.levelname, record.name, message]
    fields: Any = getattr(record, "fields", None)
    if fields:
        parts.append(repr(fields))
        parts.append(" ".join(f"{k}={v}" for k, v in dict(fields).items()))
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS:
            parts.append(f"{key}={value!r}")
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return " ".join(parts)


def _capture(record: logging.LogRecord) -> None:
    _lines.setdefault(render_record(record), _current)


def find_leaks(lines: dict[str, str], secrets: set[str]) -> list[tuple[str, str]]:
    """``(where, masked line)`` for every line containing a secret; secrets are masked in the result."""
    ordered = sorted(secrets, key=len, reverse=True)
    leaks: list[tuple[str, str]] = []
    for line, where in lines.items():
        hits = [s for s in ordered if s in line]
        if hits:
            masked = line
            for s in hits:
                masked = masked.replace(s, "<SECRET>")
            leaks.append((where, masked))
    return leaks


_original_call_handlers = logging.Logger.callHandlers
_previous_level: int | None = None


def _spy_call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
    _capture(record)
    _original_call_handlers(self, record)


def pytest_sessionstart(session: pytest.Session) -> None:
    global _previous_level
    logging.Logger.callHandlers = _spy_call_handlers  # type: ignore[method-assign]
    tradeloop_logger = logging.getLogger("tradeloop")
    if tradeloop_logger.level == logging.NOTSET:
        _previous_level = logging.NOTSET
        tradeloop_logger.setLevel(logging.INFO)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    global _current
    _current = item.nodeid
    yield
    _current = "<session>"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.Logger.callHandlers = _original_call_handlers  # type: ignore[method-assign]
    if _previous_level is not None:
        logging.getLogger("tradeloop").setLevel(_previous_level)
    _leaks[:] = find_leaks(_lines, _secrets)
    if _leaks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _leaks:
        terminalreporter.write_line(f"secret scan: {len(_lines)} log lines checked against {len(_secrets)} secrets")
        return
    terminalreporter.section("secret scan: secrets found in log lines", red=True)
    for where, masked in _leaks:
        terminalreporter.write_line(f"{where}: {masked[:2000]}", red=True)
