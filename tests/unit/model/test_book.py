from __future__ import annotations

import random

from tradeloop.core import fixed
from tradeloop.model.book import ApplyResult, OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas
from tradeloop.model.identifiers import InstrumentId

IID = InstrumentId("binance", "BTCUSDT")
P = fixed.parse


def deltas(
    first: int,
    last: int,
    bids=(),
    asks=(),
    snapshot: bool = False,
    prev: int = -1,  # type: ignore[no-untyped-def]
    checksum: int | None = None,
) -> BookDeltas:
    return BookDeltas(
        instrument_id=IID,
        ts_event=0,
        ts_recv=0,
        first_seq=first,
        last_seq=last,
        bids=[(P(p), P(q)) for p, q in bids],
        asks=[(P(p), P(q)) for p, q in asks],
        snapshot=snapshot,
        prev_seq=prev,
        checksum=checksum,
    )


def snap(seq: int = 100) -> BookDeltas:
    return deltas(
        seq,
        seq,
        bids=[("100", "1"), ("99", "2"), ("98", "3")],
        asks=[("101", "1"), ("102", "2"), ("103", "3")],
        snapshot=True,
    )


def test_snapshot_best_and_depth() -> None:
    book = OrderBook(IID, SequenceRule.RANGE)
    assert not book.valid and book.apply_deltas(deltas(1, 2)) is ApplyResult.INVALID
    assert book.apply_deltas(snap()) is ApplyResult.APPLIED
    assert book.best_bid() == P("100") and book.best_ask() == P("101")
    assert book.top_bids(2) == [(P("100"), P("1")), (P("99"), P("2"))]
    assert book.top_asks(5) == [(P("101"), P("1")), (P("102"), P("2")), (P("103"), P("3"))]
    assert book.volume(True, 2) == P("3") and book.volume(False, 3) == P("6")
    assert book.spread() == P("1") and book.mid_x2() == P("201")


def test_deltas_insert_update_delete_including_unknown_delete() -> None:
    book = OrderBook(IID, SequenceRule.RANGE)
    book.apply_deltas(snap())
    r = book.apply_deltas(deltas(101, 103, bids=[("100", "0"), ("100.5", "4"), ("97", "0")], asks=[("101", "5")]))
    assert r is ApplyResult.APPLIED
    assert book.best_bid() == P("100.5") and book.best_bid_level() == (P("100.5"), P("4"))
    assert book.best_ask_level() == (P("101"), P("5"))
    book.apply_deltas(deltas(104, 104, asks=[("101", "0"), ("102", "0")]))
    assert book.best_ask() == P("103") and book.last_seq == 104


def test_range_rule_stale_and_gap() -> None:
    book = OrderBook(IID, SequenceRule.RANGE)
    book.apply_deltas(snap(100))
    assert book.apply_deltas(deltas(90, 100)) is ApplyResult.STALE
    assert book.apply_deltas(deltas(95, 105, bids=[("100", "7")])) is ApplyResult.APPLIED  # straddles snapshot
    assert book.apply_deltas(deltas(107, 108)) is ApplyResult.INVALID
    assert not book.valid and "gap" in book.invalid_reason
    assert book.apply_deltas(deltas(106, 106)) is ApplyResult.INVALID  # refused until a snapshot
    assert book.apply_deltas(snap(200)) is ApplyResult.APPLIED and book.valid


def test_prev_link_rule() -> None:
    book = OrderBook(IID, SequenceRule.PREV_LINK)
    book.apply_deltas(snap(100))
    assert book.apply_deltas(deltas(90, 99, prev=89)) is ApplyResult.STALE
    assert book.apply_deltas(deltas(95, 110, prev=94)) is ApplyResult.APPLIED
    assert book.apply_deltas(deltas(111, 120, prev=110)) is ApplyResult.APPLIED
    assert book.apply_deltas(deltas(125, 130, prev=121)) is ApplyResult.INVALID


def test_increment_rule() -> None:
    book = OrderBook(IID, SequenceRule.INCREMENT)
    book.apply_deltas(snap(100))
    assert book.apply_deltas(deltas(101, 101)) is ApplyResult.APPLIED
    assert book.apply_deltas(deltas(103, 103)) is ApplyResult.INVALID


def test_crossed_book_detected() -> None:
    book = OrderBook(IID)
    book.apply_deltas(snap())
    assert book.apply_deltas(deltas(101, 101, bids=[("101.5", "1")])) is ApplyResult.INVALID
    assert "crossed" in book.invalid_reason


def test_checksum_hook() -> None:
    def checksum(b: OrderBook) -> int:
        return len(b.bids) * 1000 + len(b.asks)

    book = OrderBook(IID, checksum_fn=checksum)
    book.apply_deltas(snap())
    assert book.apply_deltas(deltas(1, 1, bids=[("97", "1")], checksum=4003)) is ApplyResult.APPLIED
    assert book.apply_deltas(deltas(2, 2, bids=[("96", "1")], checksum=1)) is ApplyResult.INVALID
    assert "checksum" in book.invalid_reason


def test_random_deltas_match_a_naive_book() -> None:
    rng = random.Random(3)
    book = OrderBook(IID, check_crossed=False)
    book.apply_deltas(deltas(0, 0, snapshot=True))
    naive_b: dict[int, int] = {}
    naive_a: dict[int, int] = {}
    for i in range(3000):
        bids = [(rng.randint(900, 1000) * 10**7, rng.choice([0, 0, rng.randint(1, 50) * 10**6])) for _ in range(5)]
        asks = [(rng.randint(1001, 1100) * 10**7, rng.choice([0, 0, rng.randint(1, 50) * 10**6])) for _ in range(5)]
        book.apply_deltas(
            BookDeltas(instrument_id=IID, ts_event=i, ts_recv=i, first_seq=i, last_seq=i, bids=bids, asks=asks)
        )
        for side, levels in ((naive_b, bids), (naive_a, asks)):
            for p, q in levels:
                if q:
                    side[p] = q
                else:
                    side.pop(p, None)
        assert book.best_bid() == (max(naive_b) if naive_b else None)
        assert book.best_ask() == (min(naive_a) if naive_a else None)
    assert book.top_bids(10) == sorted(naive_b.items(), reverse=True)[:10]
    assert book.top_asks(10) == sorted(naive_a.items())[:10]
