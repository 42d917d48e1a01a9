"""Bybit v5: the live ob500 dump holds its sequence, signing vectors, symbol mapping, malformed frames."""

from __future__ import annotations

import zipfile

import pytest

from tests.conftest import sample_path
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import Side
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.auth import rest_headers, sign, ws_auth_args
from tradeloop.venues.bybit.parse import BybitParser, ParseError

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def _ob500_lines() -> list[bytes]:
    with zipfile.ZipFile(sample_path("bybit/ws_book/xrpusdt-ob500.data.zip")) as zf:
        return zf.read("2024-12-01_XRPUSDT_ob500.data").splitlines()


def test_ob500_sequence_holds_and_the_book_stays_valid() -> None:
    parser = BybitParser(spec.VENUE_LINEAR)
    manager = BookManager(MessageBus(), SimClock(0), {spec.VENUE_LINEAR: spec.SEQUENCE_RULE})
    lines = _ob500_lines()
    for n, line in enumerate(lines):
        for item in parser.parse(line, n):
            manager.on_deltas(item)  # type: ignore[arg-type]
    (iid,) = manager.books()
    counters = manager.counters(iid)
    book = manager.books()[iid]
    assert str(iid) == "bybit_linear:XRPUSDT"
    assert (counters.snapshots, counters.applied, counters.gaps) == (1, len(lines) - 1, 0)
    assert book.valid and book.best_bid() is not None and book.best_bid() < book.best_ask()  # type: ignore[operator]


def test_a_missing_delta_is_a_gap() -> None:
    parser = BybitParser(spec.VENUE_LINEAR)
    manager = BookManager(MessageBus(), SimClock(0), {spec.VENUE_LINEAR: spec.SEQUENCE_RULE})
    lines = _ob500_lines()
    for n, line in enumerate(lines[:10] + lines[11:20]):
        for item in parser.parse(line, n):
            manager.on_deltas(item)  # type: ignore[arg-type]
    (iid,) = manager.books()
    assert manager.counters(iid).gaps == 1 and not manager.books()[iid].valid


def test_signing_vectors_from_the_venue_notes() -> None:
    get = "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C"
    post = '1658385579423XXXXXXXXXX5000{"category": "option"}'
    assert sign(SECRET, get) == "dbf1ad442dbf4fcc499455ce59c117a079c36dd60c96c220a3560ba7047fd810"
    assert sign(SECRET, post) == "fa56f203be64bed4cc9e4b7f8ba536226636d04685e8733a7df4faa04a2c3ab3"
    assert ws_auth_args("k", SECRET, 1662350400000) == [
        "k",
        1662350400000,
        "71c1259a8a4ca01b8289c40aaa5716fa9d400089f9d1cf54fc742a3bc1885fbf",
    ]
    headers = rest_headers("XXXXXXXXXX", SECRET, 1658384314791, 5000, "category=option&symbol=BTC-29JUL22-25000-C")
    assert headers["X-BAPI-SIGN"] == "dbf1ad442dbf4fcc499455ce59c117a079c36dd60c96c220a3560ba7047fd810"


def test_trades_and_acks() -> None:
    parser = BybitParser()
    trades = parser.parse(
        b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,'
        b'"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950","BT":false}]}',
        3,
    )
    assert isinstance(trades[0], Trade) and trades[0].aggressor is Side.BUY and trades[0].qty == 1_000_000
    assert parser.parse(b'{"success":true,"ret_msg":"pong","op":"ping"}', 1) == []
    with pytest.raises(ParseError, match="subscribe"):
        parser.parse(b'{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}', 1)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["x","1"]],"a":[],"u":2}}',
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[]}}',
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[], "a',
        b'{"topic":"publicTrade.BTCUSDT","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Up","v":"1","p":"1","i":"1"}]}',
        b"not json",
    ],
)
def test_malformed_frames_raise_parse_errors(frame: bytes) -> None:
    with pytest.raises(ParseError):
        BybitParser().parse(frame, 1)


def test_symbol_mapping_round_trips() -> None:
    assert spec.to_unified("bybit", "BTCUSDT") == "BTC/USDT"
    assert spec.to_unified("bybit_linear", "XRPUSDT") == "XRP/USDT:USDT"
    assert spec.from_unified("BTC/USDT") == ("bybit", "BTCUSDT")
    assert spec.from_unified("XRP/USDT:USDT") == ("bybit_linear", "XRPUSDT")
    for bad in ["BTC", "btcusdt", "BTC-USDT"]:
        with pytest.raises(spec.SymbolError):
            spec.to_unified("bybit", bad)
    with pytest.raises(spec.SymbolError):
        spec.from_unified("BTC/USD:BTC")


def test_snapshot_mid_stream_resets_the_book() -> None:
    parser = BybitParser()
    manager = BookManager(MessageBus(), SimClock(0), {spec.VENUE_SPOT: spec.SEQUENCE_RULE})
    frames = [
        b'{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[["10","1"]],"a":[["11","1"]],"u":5}}',
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":2,"data":{"s":"BTCUSDT","b":[["9","2"]],"a":[],"u":6}}',
        b'{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":3,"data":{"s":"BTCUSDT","b":[["8","1"]],"a":[["12","1"]],"u":1}}',
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":4,"data":{"s":"BTCUSDT","b":[["8","3"]],"a":[],"u":2}}',
    ]  # fmt: skip
    for n, f in enumerate(frames):
        for item in parser.parse(f, n):
            assert isinstance(item, BookDeltas)
            manager.on_deltas(item)
    book = next(iter(manager.books().values()))
    assert book.valid and book.bids == {8_000_000_000: 3_000_000_000} and book.asks == {12_000_000_000: 1_000_000_000}
