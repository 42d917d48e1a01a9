"""Kraken signing vector, checksum formatting, symbol mapping and malformed frames."""

from __future__ import annotations

import pytest

from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import RejectReason, Side
from tradeloop.venues.kraken.auth import private_request, sign
from tradeloop.venues.kraken.parse import KrakenV1Parser, KrakenV2Parser, ParseError, checksum_of_levels
from tradeloop.venues.kraken.spec import SymbolError, from_v1_pair, reject_reason, to_v1_pair

SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
SIGNATURE = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="


def test_official_signing_vector() -> None:
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert sign(SECRET, "/0/private/AddOrder", 1616492376594, body) == SIGNATURE


def test_private_request_puts_the_nonce_first_and_signs_the_exact_body() -> None:
    params = {"ordertype": "limit", "pair": "XBTUSD", "price": "37500", "type": "buy", "volume": "1.25"}
    path, headers, body = private_request("key", SECRET, "AddOrder", 1616492376594, params)
    assert path == "/0/private/AddOrder"
    assert body == "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert headers["API-Sign"] == SIGNATURE and headers["API-Key"] == "key"


def test_checksum_level_formatting_doc_example() -> None:
    # docs: price 45285.2 -> "452852", qty 0.00100000 -> "100000": level string "452852100000"
    import zlib

    assert checksum_of_levels([("45285.2", "0.00100000")], []) == zlib.crc32(b"452852100000")


def test_v1_snapshot_update_and_trade() -> None:
    parser = KrakenV1Parser()
    snap = parser.parse(
        b'[1,{"as":[["5541.30000","2.50700000","1534614248.123678"]],'
        b'"bs":[["5541.20000","1.52900000","1534614248.765567"]]},"book-10","XBT/USD"]',
        7,
    )[0]
    assert isinstance(snap, BookDeltas) and snap.snapshot and snap.instrument_id.symbol == "BTC/USD"
    assert snap.asks == [(5_541_300_000_000, 2_507_000_000)]
    assert snap.ts_event == 1_534_614_248_765_567_000
    assert parser.precisions.get(snap.instrument_id) == (5, 8)
    upd = parser.parse(
        b'[1,{"a":[["5541.30000","0.00000000","1534614335.345903"]]},'
        b'{"b":[["5541.20000","1.00000000","1534614335.345903","r"]],"c":"974942666"},"book-10","XBT/USD"]',
        8,
    )[0]
    assert isinstance(upd, BookDeltas) and not upd.snapshot and upd.checksum == 974942666
    assert upd.asks == [(5_541_300_000_000, 0)] and upd.bids == [(5_541_200_000_000, 1_000_000_000)]
    trades = parser.parse(
        b'[2,[["5541.20000","0.15850568","1534614057.321597","s","l",""]],"trade","XBT/USD"]',
        9,
    )
    assert isinstance(trades[0], Trade) and trades[0].aggressor is Side.SELL


def test_v2_book_decodes_numbers_exactly() -> None:
    parser = KrakenV2Parser()
    item = parser.parse(
        b'{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,'
        b'"qty":0.10000000}],"asks":[{"price":45285.2,"qty":0.00100000}],"checksum":3310070434,'
        b'"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
        1,
    )[0]
    assert isinstance(item, BookDeltas)
    assert item.bids == [(45_283_500_000_000, 100_000_000)] and item.asks == [(45_285_200_000_000, 1_000_000)]
    assert item.checksum == 3310070434 and item.ts_event == 1_696_613_755_440_295_000


@pytest.mark.parametrize(
    "frame",
    [
        b"[1,{",
        b'[1,{"a":[["x","1","1"]]},"book-10","XBT/USD"]',
        b'[1,{"a":"nope"},"book-10","XBT/USD"]',
        b'[1,"x","book-10","XBT/USD"]',
        b'{"event":"error","errorMessage":"Currency pair not supported"}',
        b"[1,2]",
    ],
)
def test_malformed_v1_frames_raise_parse_errors(frame: bytes) -> None:
    with pytest.raises(ParseError):
        KrakenV1Parser().parse(frame, 1)


def test_pair_mapping_round_trips() -> None:
    for v1, v2 in [("XBT/USD", "BTC/USD"), ("XDG/EUR", "DOGE/EUR"), ("KSM/XBT", "KSM/BTC"), ("ETH/CHF", "ETH/CHF")]:
        assert from_v1_pair(v1) == v2
        assert to_v1_pair(v2) == v1
    for bad in ["XBTUSD", "XBT/", "A/B/C"]:
        with pytest.raises(SymbolError):
            from_v1_pair(bad)


def test_error_strings_map_to_reasons() -> None:
    assert reject_reason("EService: Throttled: 1700000000") is RejectReason.RATE_LIMITED
    assert reject_reason("EOrder:Post only order") is RejectReason.POST_ONLY_WOULD_CROSS
    assert reject_reason("EOrder:Insufficient funds") is RejectReason.INSUFFICIENT_BALANCE
    assert reject_reason("EAPI:Invalid nonce") is RejectReason.TIMESTAMP_OUTSIDE_WINDOW
    assert reject_reason("EGeneral:Something new") is RejectReason.OTHER
