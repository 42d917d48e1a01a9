"""A small node on the simulated venue for integration tests: the real OMS, risk engine, execution
engine, portfolio and simulated venue, driven by hand-built market data on a SimClock."""

from __future__ import annotations

from typing import Any

import msgspec

from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import InstrumentKind, Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, VenueSection
from tradeloop.strategies.base import Strategy, StrategyConfig

P = fixed.parse
IID = InstrumentId("simA", "BTCUSDT")
START = 1_700_000_000_000_000_000


class Idle(Strategy[StrategyConfig]):
    """A strategy that does nothing on its own: tests drive it through its context."""


def instrument() -> Instrument:
    return Instrument(
        id=IID,
        base="BTC",
        quote="USDT",
        kind=InstrumentKind.SPOT,
        tick_size=P("0.01"),
        lot_size=P("0.00001"),
        min_qty=P("0.00001"),
        min_notional=P("5"),
    )


def make_engine(**overrides: Any) -> BacktestEngine:
    venue = VenueSection(balances={"USDT": "100000", "BTC": "2"})
    config = BacktestConfig(venues={"simA": venue})
    if overrides:
        config = msgspec.structs.replace(config, **overrides)
    return BacktestEngine(
        config,
        [instrument()],
        START,
        sequence_rules={"simA": SequenceRule.RANGE},
        journal=MemoryJournal(),
        strategy_spec="tests.integration.helpers:Idle",
        check_invariants=True,
    )


def book_snapshot(ts: int, seq: int = 1, bid: str = "100.00", ask: str = "100.10") -> BookDeltas:
    return BookDeltas(
        instrument_id=IID,
        ts_event=ts,
        ts_recv=ts,
        first_seq=seq,
        last_seq=seq,
        snapshot=True,
        bids=[(P(bid), P("5")), (fixed.parse(bid) - P("0.01"), P("5"))],
        asks=[(P(ask), P("5")), (fixed.parse(ask) + P("0.01"), P("5"))],
    )


def trade(ts: int, price: str, qty: str, aggressor: Side) -> Trade:
    return Trade(instrument_id=IID, ts_event=ts, ts_recv=ts, price=P(price), qty=P(qty), aggressor=aggressor)


def feed(engine: BacktestEngine, items: list[Any]) -> None:
    """Deliver market data to venue and engine at each item's time, then let time run 1 s on."""
    for item in items:
        engine.clock.advance_to(item.ts_recv)
        engine.venues[item.instrument_id.venue].on_market_data(item)
        engine.hub.on_data(item)
    settle(engine, items[-1].ts_recv + 1_000_000_000 if items else engine.clock.now_ns() + 1_000_000_000)


def settle(engine: BacktestEngine, until: int) -> None:
    engine.clock.advance_to(until)
