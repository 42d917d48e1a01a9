"""Feeds of a simulator: synthetic books on the instrument's own grid, pacing, re-targeting."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from tests.venues.simulator.test_core import IID, instrument
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.data.synthetic import SyntheticConfig, SyntheticMarket
from tradeloop.model.book import OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.runtime.simulator_feed import (
    instrument_mapping,
    paced,
    run_market,
    run_synthetic,
    synthetic_config_for,
)
from tradeloop.venues.simulator.core import SimulatorCore

P = fixed.parse


def test_synthetic_config_uses_the_instrument_grid_raised_to_its_minimum_size() -> None:
    inst = msgspec.structs.replace(instrument(), min_qty=P("0.0003"))
    config = synthetic_config_for([inst], seed=3, duration_s=5)
    (listing,) = config.instruments
    assert (listing.venue, listing.symbol, listing.tick, listing.lot) == ("toy", "BTCUSDT", "0.01", "0.0003")
    assert listing.start_price == "60000"
    eth = msgspec.structs.replace(instrument(), base="ETH", tick_size=P("0.5"))
    assert synthetic_config_for([eth], seed=1, start_price="3000.3").instruments[0].start_price == "3000.5"
    assert synthetic_config_for([eth], seed=1).instruments[0].start_price == "3000"
    for _, item in SyntheticMarket(config):
        if isinstance(item, BookDeltas):
            levels = item.bids + item.asks
        else:
            levels = [(item.price, item.qty)]
        for price, size in levels:
            assert price % inst.tick_size == 0
            assert size % P("0.0003") == 0


def test_instrument_mapping_checks_the_grid() -> None:
    source = SyntheticMarket().instruments()  # simA/simB BTCUSDT: tick 0.1, lot 0.001
    assert instrument_mapping(source[:1], [instrument()]) == {InstrumentId("simA", "BTCUSDT"): IID}
    coarse = msgspec.structs.replace(instrument(), tick_size=P("0.5"))
    with pytest.raises(ValueError, match="not on the grid of toy:BTCUSDT"):
        instrument_mapping(source[:1], [coarse])
    with pytest.raises(ValueError, match="2 source instruments but only 1"):
        instrument_mapping(source, [instrument()])


def test_paced_keeps_the_pace_retargets_and_restamps() -> None:
    src = InstrumentId("simA", "BTCUSDT")
    s = 1_000_000_000
    items: list[tuple[int, object]] = [
        (0, BookDeltas(src, 0, 0, 0, 0, [(P("1"), P("1"))], [], True)),
        (s // 2, Quote(src, 0, 0, P("1"), P("1"), P("2"), P("1"))),  # skipped: not the venue's book
        (s // 2, Trade(InstrumentId("simB", "BTCUSDT"), 0, 0, P("1"), P("1"), Side.BUY)),  # unmapped: dropped
        (s, Trade(src, 5, 5, P("1.5"), P("2"), Side.SELL, "9")),
    ]
    clock = LiveClock()

    async def main() -> tuple[float, list[BookDeltas | Trade], int]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        before = clock.now_ns()
        out = [x async for x in paced(items, speed=10.0, clock=clock, mapping={src: IID})]
        return loop.time() - t0, out, before

    elapsed, out, before = asyncio.run(main())
    assert 0.09 <= elapsed < 0.5  # 1 s of market at 10x
    assert [type(x) for x in out] == [BookDeltas, Trade]
    assert all(x.instrument_id == IID and x.ts_event == x.ts_recv >= before for x in out)
    trade = out[1]
    assert isinstance(trade, Trade) and (trade.price, trade.qty, trade.trade_id) == (P("1.5"), P("2"), "9")

    async def bad() -> None:
        async for _ in paced(items, speed=0, clock=clock):
            pass

    with pytest.raises(ValueError, match="speed must be positive"):
        asyncio.run(bad())


def test_run_synthetic_builds_the_same_book_as_the_synthetic_market() -> None:
    core = SimulatorCore("toy", [instrument()], balances={"USDT": P("1000")})
    asyncio.run(asyncio.wait_for(run_synthetic(core, seed=11, speed=100.0, duration_s=3.0, forever=False), 5))
    # The reference: the same synthetic stream applied to a plain book.
    reference = OrderBook(IID, SequenceRule.RANGE)
    config: SyntheticConfig = synthetic_config_for([instrument()], seed=11, duration_s=3.0)
    n = 0
    for _, item in SyntheticMarket(config):
        n += 1
        if isinstance(item, BookDeltas):
            if item.snapshot:
                reference.apply_snapshot(item)
            else:
                reference.apply_deltas(item)
    book = core.book(IID)
    assert core.market_items == n > 100
    assert book.top_bids(1000) == reference.top_bids(1000) and book.top_bids(1)
    assert book.top_asks(1000) == reference.top_asks(1000) and book.top_asks(1)


def test_run_synthetic_is_cancellable_and_moves_the_book_in_real_time() -> None:
    core = SimulatorCore("toy", [instrument()], balances={"USDT": P("1000")})

    async def main() -> list[int]:
        task = asyncio.create_task(run_synthetic(core, seed=5, speed=20.0))
        counts = []
        for _ in range(3):
            await asyncio.sleep(0.1)
            counts.append(core.market_items)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return counts

    counts = asyncio.run(main())
    assert 0 < counts[0] < counts[1] < counts[2]


def test_run_market_maps_a_synthetic_venue_onto_the_simulator_keeping_its_prices() -> None:
    market = SyntheticMarket(
        SyntheticConfig(seed=3, duration_s=2.0, instruments=SyntheticConfig().instruments[:1])  # simA:BTCUSDT
    )
    core = SimulatorCore("toy", [instrument()], balances={"USDT": P("1000")})
    asyncio.run(asyncio.wait_for(run_market(core, market, speed=100.0), 5))
    reference = OrderBook(InstrumentId("simA", "BTCUSDT"), SequenceRule.RANGE)
    for _, item in market:
        if isinstance(item, BookDeltas):
            (reference.apply_snapshot if item.snapshot else reference.apply_deltas)(item)
    assert core.book(IID).top_bids(50) == reference.top_bids(50) and reference.top_bids(1)
    assert core.book(IID).top_asks(50) == reference.top_asks(50)
