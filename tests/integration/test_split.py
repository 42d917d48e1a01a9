"""The split deployment end to end: market data, strategy and execution as three processes over a real
NATS server (``tradeloop split``), trading on a local OKX simulator, make exactly the fills and end with
exactly the positions of the single-process node (``LiveSession``, what ``tradeloop live`` runs) on the
same market.

Both runs face a fresh simulator driven by the same seeded market in lockstep
(:mod:`tradeloop.deploy.lockstep`): each market item moves the venue only once the node (one process,
or the three services) has settled, so the order of market moves and orders is the same in both runs.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests.integration.test_live_session import key_fields
from tests.secret_scan import record_output
from tests.services import require_nats, unique_name
from tradeloop.core import fixed
from tradeloop.data.synthetic import FlowConfig, SyntheticMarket
from tradeloop.deploy.codec import StateReply, StateRequest, decode, encode
from tradeloop.deploy.lockstep import EngineSettle, LockstepMarket, SplitSettle, SteppedCore, stepped_simulator
from tradeloop.deploy.nats_link import NatsLink
from tradeloop.deploy.subjects import Subjects
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.events import OrderFilled
from tradeloop.model.instrument import Instrument
from tradeloop.runtime.live import LiveSession
from tradeloop.runtime.live_config import load_live_config
from tradeloop.runtime.simulator_feed import synthetic_config_for
from tradeloop.venues.connectors import get_connector
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator

VENUE: Final = "okx"
SEED: Final = 11
ITEMS: Final = 500
"""Market items stepped after the opening snapshot."""
MIN_FILLS: Final = 20


def okx_bbo(core: SimulatorCore, update: BookDeltas) -> int:
    """OKX's public feed sends a ``bbo-tbt`` quote with a book update when both sides have a level."""
    book = core.book(update.instrument_id)
    return int(book.best_bid() is not None and book.best_ask() is not None)


def instrument() -> Instrument:
    return get_connector(VENUE).instruments()[0]


def market(inst: Instrument) -> tuple[BookDeltas, list[BookDeltas | Trade]]:
    """The opening snapshot and the items after it: a busy seeded market (many market orders)."""
    flow = FlowConfig(limit_rate=30.0, market_rate=30.0, market_size_lots=800.0, cancel_rate=1.0)
    stream = iter(SyntheticMarket(synthetic_config_for([inst], seed=SEED, flow=flow)))
    _, first = next(stream)
    assert isinstance(first, BookDeltas) and first.snapshot
    items: list[BookDeltas | Trade] = []
    for _, item in stream:
        assert isinstance(item, BookDeltas | Trade)
        items.append(item)
        if len(items) == ITEMS:
            break
    return first, items


def write_config(path: Path, inst: Instrument) -> Path:
    """A market maker whose quotes depend on the book, its open orders and its fills (no clock: no
    cooldown), with the simulator's test key in environment variables."""
    qty = fixed.to_str(max(inst.min_qty, inst.lot_size))
    refs = ", ".join(f'{name} = "env:TL_SPLIT_{name.upper()}"' for name in key_fields(VENUE))
    path.write_text(
        f"""
node_tag = "SP"
valuation = "{inst.quote}"

[strategy]
name = "market_making"
id = "mm"

[strategy.params]
instruments = ["{inst.id}"]
order_qty = "{qty}"
levels = 2
max_improve_ticks = 30
max_inventory = "1000"
refresh_threshold_ticks = 4
reject_cooldown_ms = 0
imbalance = {{ inventory_skew_bps = 0.0 }}

[risk]
order_rate_max = 100000
price_band_bps = 5000

[venues.{VENUE}]
throttle = {{ rate = 100000, burst = 100000 }}

[live]
stop_timeout_s = 3.0

[live.venues.{VENUE}]
symbols = ["{inst.id.symbol}"]
credentials = {{ {refs} }}
"""
    )
    return path


@dataclass
class Outcome:
    fills: list[tuple[int, str, int, int, int, str]]
    """Venue fills: (order number in first-seen order, side, price, qty, fee, liquidity)."""
    venue_balances: dict[str, int]
    node_balances: dict[str, int]
    node_positions: dict[str, int]
    node_fills: int


def venue_fills(fills: list[OrderFilled]) -> list[tuple[int, str, int, int, int, str]]:
    """Fills with each client order id replaced by the order's number (ids differ between runs)."""
    numbers: dict[str, int] = {}
    out = []
    for f in fills:
        n = numbers.setdefault(f.client_order_id, len(numbers))
        out.append((n, str(f.side), f.last_price, f.last_qty, f.fee, str(f.liquidity)))
    return out


async def opened(inst: Instrument, snapshot: BookDeltas) -> tuple[VenueSimulator, SteppedCore]:
    sim = stepped_simulator(get_connector(VENUE), instruments=[inst])
    core = sim.core
    assert isinstance(core, SteppedCore)
    core.apply_market(snapshot)
    core.publish_market(snapshot)
    await sim.start()
    return sim, core


def venue_balances(core: SteppedCore) -> dict[str, int]:
    return {b.currency: b.total for b in core.balances().balances}


async def single_process(config_path: Path, inst: Instrument) -> Outcome:
    snapshot, items = market(inst)
    sim, core = await opened(inst, snapshot)
    try:
        session = LiveSession(load_live_config(config_path), endpoint=sim.base_url, handle_signals=False)
        running = asyncio.create_task(session.run())
        settle = EngineSettle(lambda: session.engine, lambda: all(session.connected.values()) and not running.done())
        lockstep = LockstepMarket(core, items, settle, quotes_of=okx_bbo, timeout_s=20)
        try:
            await lockstep.run()
        finally:
            session.stop("lockstep done")
            await running
        engine = session.engine
        assert engine is not None
        assert session.orders_left == {VENUE: 0}
        portfolio = engine.portfolio
        return Outcome(
            fills=venue_fills(lockstep.fills),
            venue_balances=venue_balances(core),
            node_balances={ccy: amt for (venue, ccy), amt in portfolio.balances.items() if venue == VENUE},
            node_positions={str(iid): p.qty for iid, p in portfolio.positions.items()},
            node_fills=portfolio.fill_count,
        )
    finally:
        await sim.stop()


async def split_processes(config_path: Path, inst: Instrument, nats_url: str, logs: Path) -> Outcome:
    snapshot, items = market(inst)
    sim, core = await opened(inst, snapshot)
    subjects = Subjects(unique_name("split"))
    link = NatsLink(nats_url, subjects, "test")
    await link.connect()
    out = (logs / "split.out").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tradeloop.cli",
        "split",
        "--config",
        str(config_path),
        "--endpoint",
        sim.base_url,
        "--nats",
        nats_url,
        "--deployment",
        subjects.deployment,
        "--log-file",
        str(logs / "split.log"),
        stdout=out,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        settle = SplitSettle(link)
        lockstep = LockstepMarket(core, items, settle, quotes_of=okx_bbo, timeout_s=30)
        stepping = asyncio.create_task(lockstep.run())
        exited = asyncio.create_task(proc.wait())
        await asyncio.wait({stepping, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            stepping.cancel()
            pytest.fail(f"tradeloop split ended early:\n{(logs / 'split.out').read_text()}")
        exited.cancel()
        await stepping
        request = encode(StateRequest(strategy_id="mm", requester="test"))
        reply = await link.nc.request(subjects.state, request, timeout=5)
        state = decode(reply.data, StateReply, reply.subject).state
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 60)
        assert code == 0, (logs / "split.out").read_text()
        return Outcome(
            fills=venue_fills(lockstep.fills),
            venue_balances=venue_balances(core),
            node_balances={ccy: amt for venue, ccy, amt in state.portfolio.balances if venue == VENUE},
            node_positions={str(p.instrument_id): p.qty for p in state.portfolio.positions},
            node_fills=state.portfolio.fill_count,
        )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        out.close()
        record_output("tradeloop split", (logs / "split.out").read_text())
        await link.delete_streams()
        await link.close()
        await sim.stop()


def test_split_over_nats_makes_the_fills_and_positions_of_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nats_url = require_nats()
    for name, value in key_fields(VENUE).items():
        monkeypatch.setenv(f"TL_SPLIT_{name.upper()}", value)
    inst = instrument()
    config_path = write_config(tmp_path / "split.toml", inst)

    single = asyncio.run(single_process(config_path, inst))
    split = asyncio.run(split_processes(config_path, inst, nats_url, tmp_path))

    assert len(single.fills) >= MIN_FILLS, f"only {len(single.fills)} fills: the run proves little"
    assert split.fills == single.fills
    assert split.venue_balances == single.venue_balances
    # Each node's own books agree with the venue's, and with each other.
    assert single.node_balances == single.venue_balances
    assert split.node_balances == split.venue_balances
    assert split.node_positions == single.node_positions
    assert split.node_fills == single.node_fills == len(single.fills)
