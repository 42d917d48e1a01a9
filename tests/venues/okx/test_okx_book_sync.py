"""OKX book sync (pure): the classic WebSocket snapshot chain, the 2026 REST snapshot procedure, AUTO,
and the failures that resync one book. Also the parser's contract conversion for swaps."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.okx.book_sync import BookProcedure, OkxBookSync, SyncState
from tradeloop.venues.okx.parse import OkxBookChecksum, OkxParser, ParseError, book_checksum, checksum_of_levels

P = fixed.parse
IID = InstrumentId("okx", "BTC-USDT")
CT = {"BTC-USDT-SWAP": P("0.01")}


def snap(seq: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]], checksum: int | None = None) -> BookDeltas:
    return BookDeltas(
        IID,
        1,
        1,
        seq,
        seq,
        [(P(p), P(q)) for p, q in bids],
        [(P(p), P(q)) for p, q in asks],
        snapshot=True,
        checksum=checksum,
    )


def upd(
    prev: int,
    seq: int,
    bids: Sequence[tuple[str, str]] = (),
    asks: Sequence[tuple[str, str]] = (),
    checksum: int | None = None,
) -> BookDeltas:
    return BookDeltas(
        IID,
        1,
        1,
        prev,
        seq,
        [(P(p), P(q)) for p, q in bids],
        [(P(p), P(q)) for p, q in asks],
        prev_seq=prev,
        checksum=checksum,
    )


BIDS = [("100", "1"), ("99", "2")]
ASKS = [("101", "1"), ("102", "3")]


def live(procedure: BookProcedure = BookProcedure.AUTO) -> OkxBookSync:
    s = OkxBookSync(IID, procedure, book_checksum)
    assert s.state == SyncState.SUBSCRIBING
    s.subscribing()
    s.subscribed()
    assert s.state == SyncState.AWAITING
    step = s.on_deltas(snap(10, BIDS, ASKS))
    assert len(step.emit) == 1 and s.state is SyncState.LIVE
    return s


def test_frames_before_the_ack_are_ignored() -> None:
    s = OkxBookSync(IID)
    assert s.on_deltas(snap(10, BIDS, ASKS)).emit == [] and s.ignored == 1


def test_classic_chain_keepalive_and_checksum() -> None:
    s = live(BookProcedure.WS_SNAPSHOT)
    book = OrderBook(IID)
    book.apply_snapshot(snap(0, [("100", "1"), ("99", "2")], [("101", "0.5"), ("102", "3")]))
    good = checksum_of_levels([("100", "1"), ("99", "2")], [("101", "0.5"), ("102", "3")])
    assert book_checksum(book) == good
    assert s.on_deltas(upd(10, 11, asks=[("101", "0.5")], checksum=good)).emit
    assert s.on_deltas(upd(11, 11)).emit  # idle keep-alive: seqId == prevSeqId
    assert s.on_deltas(upd(11, 12, bids=[("99", "0")])).emit  # checksum 0 / absent: not checked
    assert s.book.top_bids(5) == [(P("100"), P("1"))]


def test_gap_fails_and_asks_for_a_resubscribe() -> None:
    s = live(BookProcedure.WS_SNAPSHOT)
    step = s.on_deltas(upd(11, 12))  # 10 -> 11 was never seen
    assert step.failure.startswith("sequence gap") and step.emit == []
    assert s.resubscribe_on_failure and s.state is SyncState.SUBSCRIBING
    assert s.on_deltas(upd(12, 13)).emit == []  # old subscription: ignored until the new ack + snapshot


def test_checksum_mismatch_fails() -> None:
    s = live()
    assert s.on_deltas(upd(10, 11, bids=[("100", "2")], checksum=12345)).failure.startswith("checksum mismatch")


def test_sequence_reset_after_maintenance_resyncs() -> None:
    s = live()
    assert s.on_deltas(upd(10, 3)).failure.startswith("sequence reset")


def test_stale_update_is_dropped() -> None:
    s = live()
    s.on_deltas(upd(10, 11))
    assert s.on_deltas(upd(9, 10)) == ([], False, "")


def test_rest_procedure_buffers_refetches_and_links() -> None:
    s = OkxBookSync(IID, BookProcedure.REST_SNAPSHOT, book_checksum)
    s.subscribing()
    s.subscribed()
    assert s.on_deltas(snap(50, BIDS, ASKS)).emit == []  # a WS snapshot is ignored in this procedure
    first = s.on_deltas(upd(100, 101, bids=[("98", "1")]))
    assert first.fetch and s.state == SyncState.FETCHING
    gen = s.generation
    assert not s.on_deltas(upd(101, 103, asks=[("101", "2")])).fetch  # buffered, one fetch only
    s.on_deltas(upd(103, 104, bids=[("100", "0")]))
    # a snapshot older than the first buffered prevSeqId: fetch again
    assert s.on_rest_snapshot(snap(99, BIDS, ASKS), gen).fetch and s.rest_retries == 1
    # seqId 103 covers 101 and 103; 104 links (prev 103 <= 103 < 104)
    step = s.on_rest_snapshot(snap(103, BIDS, [("101", "2"), ("102", "3")]), gen)
    assert [d.last_seq for d in step.emit] == [103, 104] and step.emit[0].snapshot
    assert s.state is SyncState.LIVE and s.book.top_bids(3) == [(P("99"), P("2"))]
    assert s.on_rest_snapshot(snap(200, BIDS, ASKS), gen).emit == []  # a late duplicate reply: ignored


def test_rest_procedure_gap_after_the_snapshot_fails_without_resubscribing() -> None:
    s = OkxBookSync(IID, BookProcedure.REST_SNAPSHOT)
    s.subscribing()
    s.subscribed()
    s.on_deltas(upd(100, 101))
    s.on_deltas(upd(105, 106))  # 101 -> 105 missing
    step = s.on_rest_snapshot(snap(101, BIDS, ASKS), s.generation)
    assert step.emit[0].snapshot and step.failure.startswith("sequence gap")
    assert not s.resubscribe_on_failure and s.state is SyncState.AWAITING
    assert s.on_deltas(upd(106, 107)).fetch  # the next update starts a new fetch


def test_rest_snapshot_first_update_must_straddle_it() -> None:
    s = OkxBookSync(IID, BookProcedure.REST_SNAPSHOT)
    s.subscribing()
    s.subscribed()
    s.on_deltas(upd(100, 101))
    # snapshot at 100: the buffered update (prev 100 <= 100 < 101) is the first applied
    step = s.on_rest_snapshot(snap(100, BIDS, ASKS), s.generation)
    assert [d.last_seq for d in step.emit] == [100, 101] and not step.failure


def test_auto_prefers_the_websocket_snapshot_and_falls_back_to_rest() -> None:
    s = live(BookProcedure.AUTO)
    assert s.ws_snapshots == 1 and s.rest_snapshots == 0
    s2 = OkxBookSync(IID, BookProcedure.AUTO)
    s2.subscribing()
    s2.subscribed()
    assert s2.on_deltas(upd(7, 8)).fetch  # no snapshot came first: REST procedure
    gen = s2.generation
    assert s2.on_deltas(snap(9, BIDS, ASKS)).emit  # ... but a snapshot that does come wins
    assert s2.on_rest_snapshot(snap(8, BIDS, ASKS), gen).emit == []
    assert s2.on_deltas(upd(9, 10)).emit


def test_rest_fetch_failure_resyncs() -> None:
    s = OkxBookSync(IID, BookProcedure.REST_SNAPSHOT)
    s.subscribing()
    s.subscribed()
    s.on_deltas(upd(1, 2))
    assert s.fetch_failed(s.generation, "HTTP 500").failure == "REST snapshot failed: HTTP 500"


def test_buffer_overflow_fails() -> None:
    s = OkxBookSync(IID, BookProcedure.REST_SNAPSHOT, max_buffer=2)
    s.subscribing()
    s.subscribed()
    s.on_deltas(upd(1, 2))
    s.on_deltas(upd(2, 3))
    assert "buffered" in s.on_deltas(upd(3, 4)).failure


# -- parser: swaps in base units, bbo, REST snapshot -----------------------------------------------


def test_swap_book_sizes_are_converted_and_the_checksum_uses_contracts() -> None:
    frame = json.dumps(
        {
            "arg": {"channel": "books", "instId": "BTC-USDT-SWAP"},
            "action": "snapshot",
            "data": [
                {
                    "asks": [["60001.5", "12.34", "0", "2"]],
                    "bids": [["60000", "3", "0", "1"]],
                    "ts": "1",
                    "checksum": checksum_of_levels([("60000", "3")], [("60001.5", "12.34")]),
                    "prevSeqId": -1,
                    "seqId": 5,
                }
            ],
        }
    ).encode()
    (d,) = OkxParser(contract_values=CT).parse(frame, 1)
    assert isinstance(d, BookDeltas)
    assert d.asks == [(P("60001.5"), P("0.1234"))] and d.bids == [(P("60000"), P("0.03"))]
    book = OrderBook(d.instrument_id, checksum_fn=OkxBookChecksum(CT))
    book.apply_snapshot(d)
    assert book.valid and book.checksums_verified == 1
    (raw,) = OkxParser().parse(frame, 1)  # without contract values: sizes as sent (replay)
    assert isinstance(raw, BookDeltas) and raw.asks == [(P("60001.5"), P("12.34"))]


def test_swap_trades_in_base_units() -> None:
    frame = (
        b'{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",'
        b'"tradeId":"7","px":"60000","sz":"250","side":"buy","ts":"2"}]}'
    )
    (t,) = OkxParser(contract_values=CT).parse(frame, 1)
    assert isinstance(t, Trade) and t.qty == P("2.5")


def test_bbo_fixture() -> None:
    (q,) = OkxParser().parse(sample_path("okx/ws_book/ws_bbo_tbt.json").read_bytes(), 3)
    assert isinstance(q, Quote)
    assert (q.bid, q.bid_qty, q.ask, q.ask_qty, q.seq) == (P("8476.97"), P("256"), P("8476.98"), P("415"), 123456)


def test_rest_snapshot_needs_its_seq_id() -> None:
    with pytest.raises(ParseError, match="seqId"):
        OkxParser().parse_rest_book(sample_path("okx/rest/http_get_order_book.json").read_bytes(), "BTC-USDT", 1)
    body = (
        b'{"code":"0","msg":"","data":[{"asks":[["41006.8","0.6","0","1"]],"bids":[["41006.3","0.3","0","2"]],'
        b'"ts":"1629966436396","seqId":3235851742}]}'
    )
    d = OkxParser().parse_rest_book(body, "BTC-USDT", 9)
    assert d.snapshot and d.last_seq == 3235851742 and d.bids == [(P("41006.3"), P("0.3"))]
    with pytest.raises(ParseError, match="51001"):
        OkxParser().parse_rest_book(b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}', "X-Y", 1)
