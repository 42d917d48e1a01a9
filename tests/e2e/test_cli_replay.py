"""``tradeloop replay --venue``: real recordings end valid (exit 0); malformed frames are counted, never fatal;
a book that ends invalid exits 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import sample_path


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradeloop.cli", "replay", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("venue", "files", "expect"),
    [
        ("okx", ["okx/ws_recording/cryptofeed_OKX.ws.1.0"], "BTC-USDT"),
        ("kraken", ["kraken/ws_recording/cryptofeed_KRAKEN.ws.50.0"], "XMR/USD"),
        ("bybit_linear", ["bybit/ws_book/xrpusdt-ob500.data.zip"], "XRPUSDT"),
        ("coinbase", ["coinbase/ws_recording/cryptofeed_COINBASE.ws.28.0"], "SKL-USD"),
        (
            "binance_usdm",
            [
                "binance/ws_recording/cryptofeed_BINANCE_FUTURES.ws.1.0",
                "binance/ws_recording/cryptofeed_BINANCE_FUTURES.http.0.0",
            ],
            "valid",
        ),
    ],
)  # fmt: skip
def test_recordings_replay_valid(venue: str, files: list[str], expect: str) -> None:
    result = _replay("--venue", venue, *(str(sample_path(f)) for f in files))
    assert result.returncode == 0, result.stderr
    assert expect in result.stderr and "invalid" not in result.stderr


def test_okx_checksums_are_counted(tmp_path: Path) -> None:
    result = _replay("--venue", "okx", str(sample_path("okx/ws_recording/cryptofeed_OKX.ws.1.0")))
    rows = [line for line in result.stderr.splitlines() if "-USD" in line or "-USDT" in line]
    verified = sum(int(line.split("│")[5].replace(",", "")) for line in rows)
    assert verified == 290


def test_a_dropped_update_ends_invalid_and_exits_1(tmp_path: Path) -> None:
    lines = sample_path("okx/ws_recording/cryptofeed_OKX.ws.1.0").read_bytes().splitlines(keepends=True)
    updates = [i for i, line in enumerate(lines) if b'"action":"update"' in line and b"BTC-USDT" in line]
    del lines[updates[len(updates) // 2]]
    path = tmp_path / "okx.ws.1.0"
    path.write_bytes(b"".join(lines))
    result = _replay("--venue", "okx", str(path))
    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr


def test_malformed_frames_are_counted_with_venue_and_channel(tmp_path: Path) -> None:
    lines = sample_path("okx/ws_recording/cryptofeed_OKX.ws.1.0").read_bytes().splitlines(keepends=True)
    lines.insert(40, b'1652459230.1: {"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"as\n')
    lines.insert(41, b'1652459230.2: {"arg":{"channel":"trades","instId":"NOPE"},"data":[{"px":1}]}\n')
    lines.insert(42, b"garbage line without a timestamp\n")
    path = tmp_path / "okx.ws.1.0"
    path.write_bytes(b"".join(lines))
    result = _replay("--venue", "okx", str(path))
    assert result.returncode == 0, result.stderr  # the books survive: bad frames are skipped
    assert "3 malformed frame(s)" in result.stderr
    assert "okx books" in result.stderr and "okx trades" in result.stderr


def test_unknown_venue_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text("1.0: {}\n")
    result = _replay("--venue", "mtgox", str(path))
    assert result.returncode == 2 and "unknown venue" in result.stderr
