"""cryptofeed recording lines: directions, exact ns timestamps, payload untouched, bad lines named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.data.cryptofeed import Direction, read_cryptofeed


def test_line_kinds(tmp_path: Path) -> None:
    path = tmp_path / "rec.ws.1.0"
    path.write_bytes(
        b"wss://ws.okx.com:8443/ws/v5/public <-> 1652459224.5300605\n"
        b'wss://ws.okx.com:8443/ws/v5/public <- 1652459225.2987883: {"op":"subscribe"}\n'
        b'1652459225.5037491: {"event":"subscribe","arg":{"channel":"books"}}\n'
        b"\n"
        b'https://api.example.com/depth -> 1652459226.1: {"a": "b: c"}\n'
    )
    frames = list(read_cryptofeed(path))
    assert [f.direction for f in frames] == [Direction.CONNECTED, Direction.SENT, Direction.RECEIVED, Direction.REST]
    assert frames[0].ts_recv == 1_652_459_224_530_060_500
    assert frames[1].url == "wss://ws.okx.com:8443/ws/v5/public" and frames[1].payload == b'{"op":"subscribe"}'
    assert frames[2].ts_recv == 1_652_459_225_503_749_100
    assert frames[2].payload == b'{"event":"subscribe","arg":{"channel":"books"}}'
    assert frames[3].payload == b'{"a": "b: c"}' and frames[3].line == 5


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rec"
    path.write_bytes(b"1.5: {}\nnot a line at all\n")
    with pytest.raises(ValueError, match=r"rec:2"):
        list(read_cryptofeed(path))
