"""The real services tests use: PostgreSQL, Redis and NATS (JetStream) on loopback.

Each ``require_*`` returns the service's URL when it answers on its port. When it does not, the
test skips with a reason, except under ``CI=true``, where a missing service fails the run.
Addresses can be moved with ``TRADELOOP_TEST_POSTGRES``, ``TRADELOOP_TEST_REDIS`` and
``TRADELOOP_TEST_NATS``.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("TRADELOOP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TRADELOOP_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("TRADELOOP_TEST_NATS", "nats://127.0.0.1:4222")


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


def _require(name: str, url: str, default_port: int) -> str:
    if _answers(url, default_port):
        return url
    message = f"{name} not reachable at {url}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: a missing service fails the run)")
    pytest.skip(message)


def require_postgres() -> str:
    """The PostgreSQL URL (database ``test``, trust auth)."""
    return _require("PostgreSQL", POSTGRES_URL, 5432)


def require_redis() -> str:
    """The Redis URL."""
    return _require("Redis", REDIS_URL, 6379)


def require_nats() -> str:
    """The NATS URL (JetStream enabled)."""
    return _require("NATS", NATS_URL, 4222)


def unique_name(prefix: str) -> str:
    """A name no other test (or test run) uses: for tables, key prefixes, streams."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
