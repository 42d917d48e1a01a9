"""Bybit market data without sockets: the client's own ``u`` chain check, quotes from ``orderbook.1``,
malformed frames, subscription chunks, instrument specs; and the simulator's wire pieces (top-N book
diffs, request verification)."""

from __future__ import annotations

import random

import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.core.clock import SimClock
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, BookStatus, Quote
from tradeloop.model.enums import InstrumentKind
from tradeloop.model.identifiers import InstrumentId
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import MarketItem
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.auth import rest_headers
from tradeloop.venues.bybit.market_data import BybitMarketData, subscribe_frames
from tradeloop.venues.bybit.parse import BybitParser, ParseError, parse_instruments
from tradeloop.venues.bybit.sim_requests import RequestError, verify
from tradeloop.venues.bybit.sim_wire import BookTopic
from tradeloop.venues.connector import ConnectorUrls

P = fixed.parse
IID = InstrumentId("bybit", "BTCUSDT")


def book_frame(kind: str, u: int, bids: list[list[str]], asks: list[list[str]], symbol: str = "BTCUSDT") -> bytes:
    import json

    data = {"s": symbol, "b": bids, "a": asks, "u": u, "seq": u}
    return json.dumps(
        {"topic": f"orderbook.50.{symbol}", "type": kind, "ts": 1, "data": data}, separators=(",", ":")
    ).encode()


def client() -> tuple[BybitMarketData, list[MarketItem]]:
    items: list[MarketItem] = []
    urls = ConnectorUrls(rest="http://127.0.0.1:1", ws_public="ws://127.0.0.1:1/v5/public/spot")
    return BybitMarketData([IID], items.append, SimClock(5), urls), items


def test_the_client_checks_the_u_chain_and_drops_deltas_until_the_next_snapshot() -> None:
    md, items = client()
    md._on_frame(book_frame("delta", 4, [["1", "1"]], []), 1)  # before any snapshot: dropped
    md._on_frame(book_frame("snapshot", 5, [["100", "1"]], [["101", "1"]]), 2)
    md._on_frame(book_frame("delta", 6, [["100", "2"]], []), 3)
    md._on_frame(book_frame("delta", 8, [["99", "1"]], []), 4)  # 7 is missing
    md._on_frame(book_frame("delta", 9, [["98", "1"]], []), 5)  # dropped: awaiting the resubscribed snapshot
    md._on_frame(book_frame("snapshot", 20, [["97", "1"]], [["102", "1"]]), 6)
    md._on_frame(book_frame("delta", 21, [], [["102", "0"]]), 7)
    books = [(i.first_seq, i.snapshot) for i in items if isinstance(i, BookDeltas)]
    assert books == [(5, True), (6, False), (20, True), (21, False)]
    statuses = [i for i in items if isinstance(i, BookStatus)]
    assert len(statuses) == 1 and not statuses[0].valid and "expected u=7, got 8" in statuses[0].reason
    assert statuses[0].ts == 5 and md.counters.resyncs_requested == 1 and md.counters.items == 4


def test_malformed_and_unknown_frames_are_counted_never_raised() -> None:
    md, items = client()
    for frame in [
        b'{"topic":"orderbook.50.BTCUSDT","type":"snapshot","data":{"s":"BTCUSDT","b":[["x","1"]],"a":[],"u":1}}',
        b"not json at all",
        book_frame("snapshot", 1, [["1", "1"]], [], symbol="ETHUSDT"),  # not subscribed
        b'{"success":false,"ret_msg":"error:handler not found,topic:orderbook.7.BTCUSDT","op":"subscribe"}',
        b'{"topic":"publicTrade.BTCUSDT","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy","v":1,"p":"1","i":"1"}]}',
    ]:
        md._on_frame(frame, 1)
    assert md.counters.malformed == 5 and md.counters.frames == 5 and items == []
    md._on_frame(b'{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}', 2)
    assert md.counters.malformed == 5


def test_level_one_is_a_quote_stream() -> None:
    parser = BybitParser()
    frames = [
        b'{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":7,"data":{"s":"BTCUSDT","b":[["100.5","2"]],"a":[],"u":3}}',
        b'{"topic":"orderbook.1.BTCUSDT","type":"delta","ts":8,"data":{"s":"BTCUSDT","b":[],"a":[["100.7","1.5"]],"u":4}}',
        b'{"topic":"orderbook.1.BTCUSDT","type":"delta","ts":9,"data":{"s":"BTCUSDT","b":[["100.6","0.1"]],"a":[],"u":5}}',
        b'{"topic":"orderbook.1.BTCUSDT","type":"delta","ts":9,"data":{"s":"BTCUSDT","b":[["100.6","0"]],"a":[],"u":6}}',
    ]
    out = [parser.parse(f, 1) for f in frames]
    assert out[0] == [] and out[3] == []  # one side unknown or empty: no quote
    assert out[1] == [Quote(IID, 8_000_000, 1, P("100.5"), P("2"), P("100.7"), P("1.5"), 4)]
    assert out[2] == [Quote(IID, 9_000_000, 1, P("100.6"), P("0.1"), P("100.7"), P("1.5"), 5)]


def test_subscriptions_go_in_requests_of_at_most_ten_topics() -> None:
    topics = [f"publicTrade.S{n}USDT" for n in range(23)]
    frames = subscribe_frames("subscribe", topics)
    assert len(frames) == 3 and frames[2].count("publicTrade") == 3
    assert frames[0].startswith('{"req_id":"s0","op":"subscribe","args":["publicTrade.S0USDT"')
    with pytest.raises(ValueError, match="depth"):
        BybitMarketData([IID], print, SimClock(0), ConnectorUrls(rest="", ws_public=""), depth=7)
    with pytest.raises(ValueError, match="one Bybit venue"):
        BybitMarketData(
            [IID, InstrumentId("okx", "BTC-USDT")], print, SimClock(0), ConnectorUrls(rest="", ws_public="")
        )


def test_instrument_specs_from_instruments_info() -> None:
    spot = parse_instruments("bybit", sample_path("bybit/rest/http_get_instruments_spot.json").read_bytes())
    assert [(i.id.symbol, i.tick_size, i.lot_size, i.min_notional) for i in spot] == [
        ("BTCUSDT", P("0.1"), P("0.0001"), P("10")),
        ("ETHUSDT", P("0.01"), P("0.00001"), P("10")),
    ]
    linear = parse_instruments("bybit_linear", sample_path("bybit/rest/http_get_instruments_linear.json").read_bytes())
    assert next((i.id, i.kind, i.tick_size, i.lot_size, i.min_qty) for i in linear) == (
        InstrumentId("bybit_linear", "BTCUSDT"),
        InstrumentKind.LINEAR_PERP,
        P("0.5"),
        P("0.001"),
        P("0.001"),
    )
    with pytest.raises(ParseError):
        parse_instruments("bybit", b'{"retCode":10001,"retMsg":"bad","result":{}}')
    for venue, insts in spec.INSTRUMENTS.items():  # the static list round-trips through the symbol mapping
        for inst in insts:
            assert spec.from_unified(spec.to_unified(venue, inst.id.symbol)) == (venue, inst.id.symbol)


def test_published_top_n_diffs_rebuild_the_top_n_of_the_book() -> None:
    rng = random.Random(3)
    book = OrderBook(IID)
    book.apply_snapshot(
        BookDeltas(
            IID,
            0,
            0,
            1,
            1,
            [(P("100") - n * P("0.5"), P("1")) for n in range(12)],
            [(P("100.5") + n * P("0.5"), P("1")) for n in range(12)],
            snapshot=True,
        )
    )
    topic = BookTopic("BTCUSDT", 5, book, first_u=10)
    mirror = OrderBook(IID)
    bids, asks = topic.snapshot()
    mirror.apply_snapshot(BookDeltas(IID, 0, 0, 10, 10, bids, asks, snapshot=True))
    for step in range(300):
        price = P("100") - rng.randrange(-2, 14) * P("0.5")
        is_bid = price <= P("100")
        size = rng.choice([0, P("0.5"), P("2")])
        levels = [(price, size)]
        book.apply_deltas(BookDeltas(IID, 0, 0, step + 2, step + 2, levels if is_bid else [], [] if is_bid else levels))
        diff = topic.update(book)
        if diff is not None:
            mirror.apply_deltas(BookDeltas(IID, 0, 0, topic.u, topic.u, diff[0], diff[1]))
        assert mirror.top_bids(10) == book.top_bids(5) and mirror.top_asks(10) == book.top_asks(5)
    assert topic.u > 10


def test_the_simulator_verifies_signatures_like_bybit() -> None:
    creds = Credentials("bybit", "sim", "sim-key-123", "sim-secret-abcdef123")
    body = '{"category":"spot","symbol":"BTCUSDT"}'
    good = rest_headers("sim-key-123", "sim-secret-abcdef123", 1_000_000, 5000, body)
    assert verify(good, "POST", body, creds, 1_000_100, "spot") == {"category": "spot", "symbol": "BTCUSDT"}
    cases = [
        (rest_headers("other-key-000", "sim-secret-abcdef123", 1_000_000, 5000, body), body, 1_000_100, 10003),
        (rest_headers("sim-key-123", "wrong-secret-abcdef", 1_000_000, 5000, body), body, 1_000_100, 10004),
        (good, body.replace("spot", "linear", 1), 1_000_100, 10004),  # body changed after signing
        (good, body, 1_006_000, 10002),  # older than the receive window
        (good, body, 998_999, 10002),  # more than 1 s ahead of the server
    ]
    for headers, payload, now, code in cases:
        with pytest.raises(RequestError) as err:
            verify(headers, "POST", payload, creds, now, "spot")
        assert err.value.code == code
    query = "symbol=BTCUSDT&category=linear"
    with pytest.raises(RequestError, match="category"):
        verify(
            rest_headers("sim-key-123", "sim-secret-abcdef123", 1_000_000, 5000, query),
            "GET",
            query,
            creds,
            1_000_000,
            "spot",
        )
