"""``tradeloop paper --venue``: a venue's live public market data (here from its local simulator) drives the
engine's books under the venue's own rules, fills stay simulated (nothing reaches the exchange), and an
invalid book is rebuilt through the client's resync."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.test_live_session import (
    FEEDS,
    first_instrument,
    first_venue,
    market_maker,
    run_cli,
    running_simulator,
    simulator_thread,
    venue_params,
)
from tradeloop.core.config import ConfigError
from tradeloop.model import topics
from tradeloop.model.data import BookStatus
from tradeloop.model.events import Event
from tradeloop.runtime.config import BacktestConfig
from tradeloop.runtime.paper import PaperSession
from tradeloop.runtime.venue_feed import VenueFeed, VenueMarketData
from tradeloop.venues.sim.venue import SimulatedVenue

LEVELS = 10


async def until(condition: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("venue", venue_params())
def test_books_follow_the_venue_feed_and_fills_stay_simulated(venue: str) -> None:
    inst = first_instrument(venue)
    config = BacktestConfig(valuation=inst.quote, strategy=market_maker(inst))

    async def scenario() -> dict[str, Any]:
        async with running_simulator(venue) as sim:
            exchange_events: list[Event] = []
            sim.core.add_private_listener(exchange_events.append)
            feed = VenueFeed([VenueMarketData(venue, [inst.id.symbol], endpoint=sim.base_url)])
            session = PaperSession(config, venue_feed=feed, handle_signals=False)
            run = asyncio.create_task(session.run())
            engine = session.engine
            manager = engine.book_manager
            await until(lambda: manager.is_valid(inst.id) and engine.oms.orders, 10, "a valid book and quotes")
            # A book the manager declares invalid (as after a gap it found) is rebuilt by the client.
            resyncs = feed.sources[0].resyncs_requested
            manager.invalidate(inst.id, "test: forced resync")
            await until(lambda: feed.sources[0].resyncs_requested == resyncs + 1, 2, "the resync request")
            await until(lambda: manager.is_valid(inst.id), 10, "the book to resync")
            # With the simulator's feed paused the engine's book equals the venue's own, level for level.
            FEEDS[id(sim)].cancel()
            await asyncio.sleep(0.3)
            book, venue_book = manager.book(inst.id), sim.core.book(inst.id)
            assert book is not None
            same = (book.top_bids(LEVELS), book.top_asks(LEVELS)) == (
                venue_book.top_bids(LEVELS),
                venue_book.top_asks(LEVELS),
            )
            session.stop("test done")
            summary = await run
            return {
                "same": same,
                "summary": summary,
                "engine": engine,
                "exchange_events": exchange_events,
                "counters": manager.counters(inst.id),
                "sim_open": sim.core.open_orders(),
            }

    out = asyncio.run(scenario())
    engine = out["engine"]
    assert out["same"], "engine book differs from the simulator's book"
    assert out["counters"].resyncs >= 1
    assert isinstance(engine.venues[venue], SimulatedVenue)
    assert engine.oms.orders, "the market maker never quoted"
    assert out["exchange_events"] == [] and out["sim_open"] == [], "a paper order reached the exchange"
    assert out["summary"].book_integrity[str(inst.id)].valid_at_end


def test_a_corrupted_checksum_is_resynced() -> None:
    """On a venue with book checksums a corrupted one is caught (by the client's own check or the book
    manager's) and the book is rebuilt from a fresh snapshot."""
    venues = [v for v in (p.values[0] for p in venue_params()) if v is not None]
    with_checksum = [v for v in venues if _has_checksum(v)]
    if not with_checksum:
        pytest.skip("no registered venue sends book checksums")
    venue = with_checksum[0]
    inst = first_instrument(venue)

    async def scenario() -> tuple[int, int, bool]:
        async with running_simulator(venue) as sim:
            feed = VenueFeed([VenueMarketData(venue, [inst.id.symbol], endpoint=sim.base_url)])
            session = PaperSession(BacktestConfig(valuation=inst.quote), venue_feed=feed, handle_signals=False)
            run = asyncio.create_task(session.run())
            manager = session.engine.book_manager
            await until(lambda: manager.is_valid(inst.id), 10, "a valid book")
            sim.faults.corrupt_checksum(1)
            await until(lambda: manager.counters(inst.id).checksum_failures >= 1, 5, "the checksum failure")
            await until(lambda: manager.counters(inst.id).resyncs >= 1 and manager.is_valid(inst.id), 10, "a resync")
            session.stop("test done")
            await run
            c = manager.counters(inst.id)
            return c.checksum_failures, c.resyncs, manager.is_valid(inst.id)

    failures, resyncs, valid = asyncio.run(scenario())
    assert failures >= 1 and resyncs >= 1 and valid


def _has_checksum(venue: str) -> bool:
    from tradeloop.venues.registry import UnknownVenue, market_data_adapter

    try:
        return market_data_adapter(venue).checksum_fn is not None
    except UnknownVenue:
        return False


def test_an_unknown_symbol_lists_the_known_ones() -> None:
    venue = first_venue()
    with pytest.raises(ConfigError) as err:
        VenueMarketData(venue, ["NOPE-NOPE"], endpoint="http://127.0.0.1:9")
    assert "unknown symbol 'NOPE-NOPE'" in str(err.value)
    assert first_instrument(venue).id.symbol in str(err.value)
    with pytest.raises(ConfigError, match="no connector for venue 'mtgox'"):
        VenueMarketData("mtgox", ["X"])


def test_cli_paper_on_a_venue_feed() -> None:
    venue = first_venue()
    inst = first_instrument(venue)
    env = {"TRADELOOP__VALUATION": inst.quote}
    with simulator_thread(venue) as sim:
        result = run_cli(
            "paper",
            "--venue",
            venue,
            "--symbol",
            inst.id.symbol,
            "--endpoint",
            sim.base_url,
            "--duration",
            "2",
            env=env,
        )
        at_exchange = sim.core.open_orders()
    assert result.returncode == 0, result.stderr
    assert f"{venue} live market data ({inst.id.symbol})" in result.stderr
    assert "session ended: duration reached" in result.stderr
    assert at_exchange == []
    usage = run_cli("paper", "--symbol", inst.id.symbol, "--duration", "1", env={})
    assert usage.returncode == 2 and "--symbol and --endpoint need --venue" in usage.stderr
    unknown = run_cli("paper", "--venue", venue, "--symbol", "NOPE-NOPE", "--endpoint", sim.base_url, env=env)
    assert unknown.returncode == 2 and "known symbols" in unknown.stderr


def test_a_dropped_connection_is_resubscribed_without_an_extra_resync() -> None:
    """The client's own loss status invalidates the book; the client resubscribes by itself, so the
    node does not ask it for a resync on top, and the book comes back valid."""
    venue = first_venue()
    inst = first_instrument(venue)

    async def scenario() -> tuple[int, int, bool, int]:
        async with running_simulator(venue) as sim:
            feed = VenueFeed([VenueMarketData(venue, [inst.id.symbol], endpoint=sim.base_url)])
            session = PaperSession(BacktestConfig(valuation=inst.quote), venue_feed=feed, handle_signals=False)
            statuses: list[BookStatus] = []
            session.engine.bus.subscribe(topics.BOOK_STATUS, statuses.append)
            run = asyncio.create_task(session.run())
            manager = session.engine.book_manager
            await until(lambda: manager.is_valid(inst.id), 10, "a valid book")
            sim.faults.drop_connections()
            await until(lambda: any(not s.valid for s in statuses), 5, "the loss status")
            await until(lambda: manager.is_valid(inst.id), 15, "the book after the reconnect")
            session.stop("test done")
            await run
            source = feed.sources[0]
            return source.resyncs_requested, source.counters.reconnects, manager.is_valid(inst.id), len(statuses)

    requested, reconnects, valid, n_statuses = asyncio.run(scenario())
    assert requested == 0
    assert reconnects >= 1 and valid and n_statuses >= 2
