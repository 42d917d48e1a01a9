"""Shared test fixtures.

Real exchange data lives outside the project (``../shared/data`` or ``$TRADELOOP_SAMPLES``) and is
used in place. Tests that need it skip with a reason when it is absent, except under ``CI=true``,
where missing data fails the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.secret_scan"]  # fails the run if a registered secret reaches any log line


def samples_root() -> Path:
    env = os.environ.get("TRADELOOP_SAMPLES")
    return Path(env) if env else (ROOT.parent / "shared" / "data")


def sample_path(relative: str) -> Path:
    """Path of a shared data file; skips (or fails under CI=true) when it is missing."""
    path = samples_root() / relative
    if not path.exists():
        message = f"sample data not found: {path} (set TRADELOOP_SAMPLES)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def samples() -> Path:
    root = samples_root()
    if not root.exists():
        message = f"sample data directory not found: {root} (set TRADELOOP_SAMPLES)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root
