"""Fixtures of the backend-parametrized journal tests: every backend, or those that store the journal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.persistence.backends import KINDS, STORED, Backend, make_backend


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend in turn: SQLite, PostgreSQL (a real server; skipped when absent) and memory."""
    made = make_backend(request.param, tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(params=STORED)
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The backends whose journal outlives the object (SQLite, PostgreSQL): reopened, shared, seen from outside."""
    made = make_backend(request.param, tmp_path)
    try:
        yield made
    finally:
        made.cleanup()
