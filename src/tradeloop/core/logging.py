"""Structured logging: one JSON object per line, with secrets redacted before anything is written.

Redaction has two layers: values registered with :func:`register_secret` are replaced wherever
they appear in a record, and fields whose names look secret (``secret``, ``password``,
``passphrase``, ``api_key``, ``token``, ``signature``) are masked whatever their value.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import orjson

_SECRET_KEY = re.compile(r"(secret|password|passphrase|api[_-]?key|token|signature|private[_-]?key)", re.I)
_secrets: set[str] = set()
REDACTED = "***"


def register_secret(value: str) -> None:
    """Never let ``value`` reach a log line (values shorter than 6 chars are ignored as too common)."""
    if len(value) >= 6:
        _secrets.add(value)


def redact_text(text: str) -> str:
    for s in _secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def _redact(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(key, v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        entry: dict[str, Any] = {
            "ts": int(record.created * 1e9),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact_text(record.getMessage()),
        }
        for k, v in fields.items():
            entry[k] = _redact(k, v)
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class Logger:
    """``log.info("book resynced", venue="binance", symbol="BTCUSDT")``."""

    __slots__ = ("_logger",)

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


def configure_logging(level: str = "INFO", stream: TextIO | None = None, path: str | None = None) -> None:
    """Send tradeloop's logs as JSON lines to ``path`` (or ``stream``, default stderr)."""
    root = logging.getLogger("tradeloop")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
