"""Synthetic market: determinism, book integrity, grids, cross-venue coherence, trades vs touch."""

from __future__ import annotations

import statistics

import msgspec
import pytest

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.core.fixed import parse as px
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.data.synthetic import FlowConfig, SyntheticConfig, SyntheticInstrument, SyntheticMarket
from tradeloop.model import topics
from tradeloop.model.book import OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas, BookStatus, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId

SIM_A = InstrumentId("simA", "BTCUSDT")
SIM_B = InstrumentId("simB", "BTCUSDT")


def short(seed: int = 7, duration_s: float = 60.0, **kwargs: object) -> SyntheticMarket:
    return SyntheticMarket(SyntheticConfig(seed=seed, duration_s=duration_s, **kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def default_run() -> tuple[SyntheticMarket, list[tuple[int, BookDeltas | Trade]]]:
    market = short(duration_s=120.0)
    return market, list(market)


def test_same_seed_same_stream_and_different_seed_different() -> None:
    a = list(short(seed=11, duration_s=10))
    b = list(short(seed=11, duration_s=10))
    assert a == b and len(a) > 1000
    c = list(short(seed=12, duration_s=10))
    assert c != a
    assert msgspec.json.encode(a) == msgspec.json.encode(b)


def test_defaults_and_instruments() -> None:
    market = SyntheticMarket()
    assert [i.id for i in market.instruments()] == [SIM_A, SIM_B]
    inst = market.instruments()[0]
    assert (inst.tick_size, inst.lot_size, inst.base, inst.quote) == (px("0.1"), px("0.001"), "BTC", "USDT")
    assert market.sequence_rules() == {"simA": SequenceRule.RANGE, "simB": SequenceRule.RANGE}
    assert market.end_ns - market.start_ns == 300 * 10**9


def test_stream_is_time_ordered_snapshot_first_and_sequences_contiguous(
    default_run: tuple[SyntheticMarket, list[tuple[int, BookDeltas | Trade]]],
) -> None:
    market, items = default_run
    last_ts = 0
    last_seq: dict[InstrumentId, int] = {}
    last_recv: dict[InstrumentId, int] = {}
    for ts, item in items:
        assert ts >= last_ts and ts == item.ts_recv and item.ts_recv >= item.ts_event
        assert market.start_ns <= item.ts_event < market.end_ns
        last_ts = ts
        iid = item.instrument_id
        assert ts >= last_recv.get(iid, 0)
        last_recv[iid] = ts
        if isinstance(item, BookDeltas):
            if iid not in last_seq:
                assert item.snapshot and item.last_seq == 0
            else:
                assert not item.snapshot and item.first_seq == last_seq[iid] + 1
                assert item.last_seq == item.first_seq + len(item.bids) + len(item.asks) - 1
            last_seq[iid] = item.last_seq
        else:
            assert iid in last_seq, "trade before the snapshot"
    assert set(last_seq) == {SIM_A, SIM_B}
    assert market.events > 10_000


def test_books_stay_valid_and_never_crossed_through_the_book_manager(
    default_run: tuple[SyntheticMarket, list[tuple[int, BookDeltas | Trade]]],
) -> None:
    market, items = default_run
    bus, clock = MessageBus(), SimClock(market.start_ns)
    statuses: list[BookStatus] = []
    bus.subscribe(topics.BOOK_STATUS, statuses.append)
    crossed: list[int | None] = []

    def check(book: OrderBook) -> None:
        spread = book.spread()
        if spread is None or spread <= 0:
            crossed.append(spread)

    bus.subscribe(topics.BOOK, check)
    manager = BookManager(bus, clock, market.sequence_rules())
    hub = MarketDataHub(bus, manager)
    for ts, item in items:
        clock.set_time(ts)
        hub.on_data(item)
    assert [s.reason for s in statuses] == ["snapshot", "snapshot"]
    assert not crossed
    for iid in (SIM_A, SIM_B):
        c = manager.counters(iid)
        assert c.gaps == c.crossed == c.stale == c.refused == 0 and c.applied > 1000
        book = manager.book(iid)
        assert book is not None and book.valid and 50 < sum(book.depth()) < 5000


def test_prices_and_sizes_on_the_grid(
    default_run: tuple[SyntheticMarket, list[tuple[int, BookDeltas | Trade]]],
) -> None:
    market, items = default_run
    specs = {i.id: i for i in market.instruments()}
    for _, item in items:
        spec = specs[item.instrument_id]
        if isinstance(item, BookDeltas):
            for price, size in (*item.bids, *item.asks):
                assert price > 0 and price % spec.tick_size == 0
                assert size >= 0 and size % spec.lot_size == 0
            assert all(size > 0 for _, size in (*item.bids, *item.asks)) or not item.snapshot
        else:
            assert item.price % spec.tick_size == 0 and item.qty > 0 and item.qty % spec.lot_size == 0


def test_trades_are_at_or_through_the_touch_the_consumer_sees(
    default_run: tuple[SyntheticMarket, list[tuple[int, BookDeltas | Trade]]],
) -> None:
    _, items = default_run
    books: dict[InstrumentId, OrderBook] = {}
    n_trades = 0
    sides = set()
    for _, item in items:
        if isinstance(item, BookDeltas):
            book = books.setdefault(item.instrument_id, OrderBook(item.instrument_id, SequenceRule.RANGE))
            book.apply_deltas(item)
            continue
        book = books[item.instrument_id]
        n_trades += 1
        sides.add(item.aggressor)
        if item.aggressor is Side.BUY:
            ask = book.best_ask()
            assert ask is not None and item.price >= ask
        else:
            bid = book.best_bid()
            assert bid is not None and item.price <= bid
    assert n_trades > 1000 and sides == {Side.BUY, Side.SELL}


def test_two_venues_mids_stay_close(
    default_run: tuple[SyntheticMarket, list[tuple[int, BookDeltas | Trade]]],
) -> None:
    _, items = default_run
    books = {iid: OrderBook(iid, SequenceRule.RANGE) for iid in (SIM_A, SIM_B)}
    gaps_bps = []
    for _, item in items:
        if isinstance(item, BookDeltas):
            books[item.instrument_id].apply_deltas(item)
            a, b = books[SIM_A].mid_x2(), books[SIM_B].mid_x2()
            if a is not None and b is not None:
                gaps_bps.append(abs(a - b) / a * 1e4)
    gaps_bps.sort()
    assert statistics.median(gaps_bps) < 3.0
    assert gaps_bps[int(len(gaps_bps) * 0.99)] < 10.0
    assert gaps_bps[-1] < 50.0
    assert gaps_bps[-1] > 0  # the venues do differ: there is something to arbitrage


def test_many_instruments_and_venues() -> None:
    instruments = [
        SyntheticInstrument(venue=venue, symbol=symbol, base=base, start_price=price, tick=tick, lot=lot)
        for venue in ("v1", "v2", "v3")
        for symbol, base, price, tick, lot in (
            ("BTCUSDT", "BTC", "60000", "0.1", "0.001"),
            ("ETHUSDT", "ETH", "3000", "0.01", "0.01"),
        )
    ]
    market = SyntheticMarket(SyntheticConfig(seed=3, duration_s=5, instruments=instruments))
    items = list(market)
    assert {item.instrument_id for _, item in items} == {i.instrument_id for i in instruments}
    eth = [it for _, it in items if it.instrument_id.symbol == "ETHUSDT" and isinstance(it, Trade)]
    assert eth and all(px("2000") < t.price < px("4000") for t in eth)


def test_config_is_strict() -> None:
    with pytest.raises(msgspec.ValidationError, match="volatilty"):
        msgspec.convert({"instruments": [{"venue": "x", "volatilty": 0.3}]}, SyntheticConfig)
    with pytest.raises(msgspec.ValidationError, match="tick"):
        msgspec.convert({"instruments": [{"venue": "x", "tick": "0.0000000001"}]}, SyntheticConfig)
    with pytest.raises(ValueError, match="share the asset"):
        SyntheticConfig(instruments=[SyntheticInstrument(venue="a"), SyntheticInstrument(venue="b", volatility=0.9)])
    with pytest.raises(ValueError, match="listed twice"):
        SyntheticConfig(instruments=[SyntheticInstrument(venue="a"), SyntheticInstrument(venue="a")])
    with pytest.raises(ValueError):
        FlowConfig(limit_rate=-1)
    cfg = msgspec.convert({"seed": 3, "duration_s": 1, "flow": {"market_rate": 2.0}}, SyntheticConfig)
    assert cfg.flow.market_rate == 2.0 and len(cfg.instruments) == 2
