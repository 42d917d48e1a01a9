"""A sequence gap during a backtest: the book is invalidated, the strategy is told, it gets no book
updates until a snapshot rebuilds the book, and then it is told again."""

from __future__ import annotations

from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, BookStatus
from tradeloop.strategies.base import Strategy, StrategyConfig

from .helpers import IID, START, P, book_snapshot, feed, make_engine


class Recorder(Strategy[StrategyConfig]):
    def on_start(self) -> None:
        self.seen: list[str] = []

    def on_book(self, book: OrderBook) -> None:
        self.seen.append(f"book@{book.last_seq}")

    def on_book_status(self, status: BookStatus) -> None:
        self.seen.append("valid" if status.valid else f"invalid:{status.reason.split(':')[0]}")


def delta(seq: int, bid: str = "99.99") -> BookDeltas:
    return BookDeltas(
        instrument_id=IID,
        ts_event=START + seq,
        ts_recv=START + seq,
        first_seq=seq,
        last_seq=seq,
        bids=[(P(bid), P("1"))],
        asks=[],
    )


def test_gap_invalidates_tells_the_strategy_and_resyncs() -> None:
    engine = make_engine()
    engine.strategy = Recorder(engine.strategy_id, engine.strategy.config, engine.ctx)
    engine.strategy.on_start()
    feed(engine, [book_snapshot(START, seq=10), delta(11), delta(13), delta(14)])
    seen = engine.strategy.seen
    assert seen[:3] == ["valid", "book@10", "book@11"]
    assert seen[3].startswith("invalid:sequence gap")
    assert "book@13" not in seen and "book@14" not in seen
    book = engine.book_manager.book(IID)
    assert book is not None and not book.valid
    feed(engine, [book_snapshot(START + 100, seq=20)])
    assert seen[-2:] == ["valid", "book@20"] and book.valid
    journaled = [r for _, _, r in engine.journal.read() if isinstance(r, BookStatus)]
    assert [s.valid for s in journaled] == [True, False, True]
