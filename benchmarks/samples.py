"""Where benchmark data lives, and how recordings are read. The one place that knows the paths.

Real exchange data lives outside the project: ``$TRADELOOP_SAMPLES`` if set, else ``../shared/data``
next to the checkout (the same rule as ``tests/conftest.py``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BINANCE_SPOT_RECORDING = "marketdata/binance_spot_btcusdt_20240808.gz"


class SampleMissing(FileNotFoundError):
    """A data file a benchmark needs is not there; the harness reports the benchmark as skipped."""


def samples_root() -> Path:
    env = os.environ.get("TRADELOOP_SAMPLES")
    return Path(env) if env else (ROOT.parent / "shared" / "data")


def sample_path(relative: str) -> Path:
    """Path of a shared data file; raises :class:`SampleMissing` with a helpful message if absent."""
    path = samples_root() / relative
    if not path.exists():
        raise SampleMissing(f"sample data not found: {path} (set TRADELOOP_SAMPLES)")
    return path


def read_recording(relative: str) -> list[tuple[int, bytes]]:
    """Lines ``<recv ns> <raw JSON>`` of a (gzip) recording as ``(ts_recv, payload)`` pairs."""
    path = sample_path(relative)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data: bytes = f.read()
    out: list[tuple[int, bytes]] = []
    for line in data.splitlines():
        ts, sep, payload = line.partition(b" ")
        if sep and payload:
            out.append((int(ts), payload))
    return out
