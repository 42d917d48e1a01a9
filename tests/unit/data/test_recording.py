"""Recording reader: line format, malformed lines, gzip detection and damage, market detection."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.conftest import sample_path
from tradeloop.data.recording import (
    LineIssue,
    Record,
    RecordingError,
    detect_binance_capture,
    read_recording,
)
from tradeloop.venues.binance.spec import BinanceMarket

FIXTURES = Path(__file__).parent / "fixtures"
MALFORMED = FIXTURES / "spot_capture_malformed.txt"


def test_reads_records_and_reports_bad_lines_with_file_and_line() -> None:
    issues: list[LineIssue] = []
    records = list(read_recording(MALFORMED, on_error=issues.append))
    assert [r.line_no for r in records] == [1, 2, 3, 6, 7, 8, 10, 11, 12, 13]
    first = records[0]
    assert isinstance(first, Record) and first.ts_recv == 1000 and first.source == str(MALFORMED)
    assert first.payload.startswith(b'{"stream"') and first.payload.endswith(b"}}")
    assert [(i.line_no, i.source) for i in issues] == [(4, str(MALFORMED)), (5, str(MALFORMED))]
    assert "no space" in issues[0].message and "bad timestamp" in issues[1].message
    assert str(issues[1]).startswith(f"{MALFORMED}:5: ")


def test_strict_mode_raises_at_the_first_bad_line() -> None:
    with pytest.raises(RecordingError, match=r"spot_capture_malformed\.txt:4: no space") as info:
        list(read_recording(MALFORMED, strict=True))
    assert info.value.issue.line_no == 4


def test_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "edge.txt"
    path.write_bytes(b"1 {}\r\n 2 {}\n-3 {}\n4 \n\n5 {}")
    issues: list[LineIssue] = []
    records = list(read_recording(path, on_error=issues.append))
    assert [(r.ts_recv, r.payload, r.line_no) for r in records] == [(1, b"{}", 1), (5, b"{}", 6)]
    assert [(i.line_no, i.message.split(":")[0]) for i in issues] == [
        (2, "no timestamp"),
        (3, "bad timestamp b'-3'"),
        (4, "empty payload"),
    ]


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    lines = b"".join(b'%d {"n":%d}\n' % (i, i) for i in range(1, 6))
    disguised = tmp_path / "capture.txt"
    disguised.write_bytes(gzip.compress(lines))
    plain = tmp_path / "capture.gz"
    plain.write_bytes(lines)
    assert [r.ts_recv for r in read_recording(disguised)] == [1, 2, 3, 4, 5]
    assert [r.payload for r in read_recording(plain)] == [r.payload for r in read_recording(disguised)]


def test_truncated_gzip_tail_is_reported_and_ends_the_file(tmp_path: Path) -> None:
    lines = b"".join(b'%d {"n":"%s"}\n' % (i, b"x" * 50) for i in range(1, 2001))
    data = gzip.compress(lines)
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    issues: list[LineIssue] = []
    records = list(read_recording(path, on_error=issues.append))
    assert 0 < len(records) < 2000
    assert len(issues) >= 1 and "undecodable" in issues[-1].message
    good = [r for r in records if r.payload.endswith(b'"}')]
    assert [r.ts_recv for r in good] == list(range(1, len(good) + 1))
    assert issues[-1].line_no == records[-1].line_no + 1
    with pytest.raises(RecordingError, match="undecodable"):
        list(read_recording(path, strict=True))


def test_corrupt_gzip_data_is_reported(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(b"".join(b"%d {}\n" % i for i in range(1, 5000))))
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(data))
    issues: list[LineIssue] = []
    list(read_recording(path, on_error=issues.append))
    assert issues and "undecodable" in issues[-1].message


@pytest.mark.parametrize(
    ("name", "market", "venue"),
    [
        ("binance_spot_btcusdt_20240808.gz", BinanceMarket.SPOT, "binance"),
        ("binance_spot_btcusdt_20240809.gz", BinanceMarket.SPOT, "binance"),
        ("binance_usdm_btcusdt_20240808.gz", BinanceMarket.USDM, "binance_usdm"),
        ("binance_coinm_btcusd_perp_20240808.gz", BinanceMarket.COINM, "binance_coinm"),
    ],
)
def test_detects_the_market_of_a_capture(name: str, market: BinanceMarket, venue: str) -> None:
    info = detect_binance_capture(sample_path(f"marketdata/{name}"))
    assert (info.market, info.venue) == (market, venue)
    assert info.symbol in ("BTCUSDT", "BTCUSD_PERP")


def test_detection_without_depth_uses_tickers_and_fails_when_nothing_tells(tmp_path: Path) -> None:
    futures = tmp_path / "f.txt"
    futures.write_bytes(b'1 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT"}}\n')
    assert detect_binance_capture(futures).market is BinanceMarket.USDM
    spot = tmp_path / "s.txt"
    spot.write_bytes(b'1 {"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1"}}\n')
    assert detect_binance_capture(spot).market is BinanceMarket.SPOT
    empty = tmp_path / "e.txt"
    empty.write_bytes(b'1 {"result":null,"id":1}\n')
    with pytest.raises(RecordingError, match="cannot tell"):
        detect_binance_capture(empty)
