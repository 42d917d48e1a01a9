"""One venue's connector against its local simulator, wired into the real engine.

:func:`venue_session` starts the venue's simulator (its dialect on a :class:`SimulatorCore` holding
the connector's first instrument, accepting its test credentials), connects the connector's
market-data and execution clients to it (``local_urls``), and builds a :class:`BacktestEngine` on a
:class:`LiveClock` whose execution client for the venue is the connector's. Market-data items go to
``engine.on_market_data``; an invalid ``BookStatus`` the book manager raises (gap, checksum) is
answered with ``client.resync`` (not the ones the client raised itself: it resubscribes on its own).

Books are driven either by the synthetic market (``feed="synthetic"``) or by a fixed book around
60,000 with a slow trickle of updates far from the touch (``feed="static"``), so order tests know
exactly where liquidity is.
"""

from __future__ import annotations

import asyncio
import importlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pytest

from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.model import topics
from tradeloop.model.book import ChecksumFn, OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas, BookStatus, MarketData
from tradeloop.model.enums import OrderStatus, RejectReason
from tradeloop.model.events import Event, OrderAccepted, OrderEventBase
from tradeloop.model.instrument import Instrument
from tradeloop.model.order import Order
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, VenueSection
from tradeloop.runtime.simulator_feed import run_synthetic
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent, ExecutionClient, MarketDataClient
from tradeloop.venues.connector import ConnectorUrls, VenueConnector
from tradeloop.venues.connectors import CONNECTORS
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.local import default_balances
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.rest import RestConfig

P = fixed.parse

NO_VENUES: Final = "no venue connector registered in tradeloop.venues.connectors.CONNECTORS yet"
COMPARE_LEVELS: Final = 10
"""Levels per side compared between the engine's book and the simulator's."""
START_TIMEOUT_S: Final = 10.0
SYNTHETIC_SPEED: Final = 3.0
REST_CONFIG: Final = RestConfig(timeout_s=1.0, connect_timeout_s=1.0, max_budget_wait_s=3.0)
"""Short client timeouts so a held reply becomes an unknown outcome quickly."""


def venue_params() -> list[Any]:
    """One parameter per registered venue, or one skipped parameter saying none is registered."""
    if not CONNECTORS:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_VENUES), id="no-venues")]
    return [pytest.param(venue, id=venue) for venue in sorted(CONNECTORS)]


def unit_qty(inst: Instrument) -> int:
    """The smallest size the venue accepts (the lot raised to the minimum size)."""
    return max(inst.lot_size, -(-inst.min_qty // inst.lot_size) * inst.lot_size)


def order_qty(inst: Instrument, price: int) -> int:
    """A small order size that clears the minimum size and (twice) the minimum notional at ``price``."""
    by_notional = fixed.div(2 * inst.min_notional, price, "ceil") if inst.min_notional else 0
    qty = inst.round_qty(by_notional, "ceil")
    return max(qty, unit_qty(inst))


def static_book(inst: Instrument, ts: int) -> BookDeltas:
    """20 levels a side around 60,000 (on the tick grid), sizes growing away from the touch; the
    smallest level holds ten of our orders (:func:`order_qty`)."""
    tick = inst.tick_size
    mid = inst.round_price(P("60000"))
    unit = order_qty(inst, mid) * 5
    bids = [(mid - k * tick, unit * (k + 2)) for k in range(20)]
    asks = [(mid + (k + 1) * tick, unit * (k + 2)) for k in range(20)]
    return BookDeltas(inst.id, ts, ts, 1, 1, bids, asks, snapshot=True)


def reject_errors(connector: VenueConnector) -> Mapping[RejectReason, str] | None:
    """The venue error behind each ``RejectReason``, for ``reject_next``: ``CONNECTOR.extras["reject_errors"]``,
    else ``REJECT_ERRORS`` in the venue folder's ``spec.py`` when it is such a table."""

    def usable(table: object) -> Mapping[RejectReason, str] | None:
        if (
            isinstance(table, Mapping)
            and table
            and all(isinstance(k, RejectReason) and isinstance(v, str) for k, v in table.items())
        ):
            return table
        return None

    table = usable((connector.extras or {}).get("reject_errors"))
    if table is None:
        module = CONNECTORS[connector.venue].partition(":")[0]
        with suppress(ImportError):
            spec = importlib.import_module(module.rpartition(".")[0] + ".spec")
            table = usable(getattr(spec, "REJECT_ERRORS", None))
    return table


@dataclass
class Session:
    """Everything of one venue session; tests read and drive it."""

    connector: VenueConnector
    inst: Instrument
    clock: LiveClock
    core: SimulatorCore
    sim: VenueSimulator
    urls: ConnectorUrls
    engine: BacktestEngine
    md: MarketDataClient
    execution: ExecutionClient
    balances: dict[str, int]
    client_events: list[Event] = field(default_factory=list)
    """Everything the execution client emitted, in order."""
    venue_events: list[Event] = field(default_factory=list)
    """Everything the simulated venue emitted (its private stream's source)."""
    statuses: list[BookStatus] = field(default_factory=list)
    """Every BookStatus the engine's book manager published."""
    resyncs: int = 0
    feed_task: asyncio.Task[None] | None = None

    @property
    def iid(self) -> Any:
        return self.inst.id

    @property
    def venue(self) -> str:
        return self.inst.id.venue

    # -- reading -------------------------------------------------------------------------------

    def engine_book(self) -> OrderBook | None:
        return self.engine.book_manager.book(self.iid)

    def book_valid(self) -> bool:
        return self.engine.book_manager.is_valid(self.iid)

    def levels(self) -> int:
        depth = int(getattr(self.md, "depth_limit", 0) or 0)
        return min(COMPARE_LEVELS, depth) if depth else COMPARE_LEVELS

    def books_equal(self) -> bool:
        book = self.engine_book()
        if book is None or not book.valid:
            return False
        venue = self.core.book(self.iid)
        n = self.levels()
        return book.top_bids(n) == venue.top_bids(n) and book.top_asks(n) == venue.top_asks(n)

    def describe_books(self) -> str:
        book = self.engine_book()
        venue = self.core.book(self.iid)
        n = min(self.levels(), 3)
        engine_side = "none" if book is None else f"valid={book.valid} bids={book.top_bids(n)} asks={book.top_asks(n)}"
        return f"engine: {engine_side}; simulator: bids={venue.top_bids(n)} asks={venue.top_asks(n)}"

    def order(self, cid: str) -> Order:
        order = self.engine.oms.order(cid)
        assert order is not None, f"the OMS has no order {cid}"
        return order

    def accepted_at_venue(self, cid: str) -> int:
        """How many times the simulated venue accepted an order with this client id."""
        return sum(1 for e in self.venue_events if isinstance(e, OrderAccepted) and e.client_order_id == cid)

    def client_events_of(self, cid: str) -> list[Event]:
        return [e for e in self.client_events if isinstance(e, OrderEventBase) and e.client_order_id == cid]

    # -- driving -------------------------------------------------------------------------------

    async def stop_feed(self) -> None:
        task, self.feed_task = self.feed_task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    def start_synthetic(self, seed: int = 7, speed: float = SYNTHETIC_SPEED) -> None:
        self.feed_task = asyncio.get_running_loop().create_task(run_synthetic(self.core, seed=seed, speed=speed))

    def start_trickle(self, interval_s: float = 0.05) -> None:
        """A slow stream of real book updates far below the touch (never near our orders)."""

        async def trickle() -> None:
            tick = self.inst.tick_size
            price = self.core.book(self.iid).top_bids(20)[-1][0] - 50 * tick
            unit = unit_qty(self.inst)
            n = 0
            while True:
                await asyncio.sleep(interval_s)
                n += 1
                ts = self.clock.now_ns()
                self.core.apply_market(BookDeltas(self.iid, ts, ts, n, n, [(price, unit * (1 + n % 2))], []))

        self.feed_task = asyncio.get_running_loop().create_task(trickle())


async def wait_until(condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            detail = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:g}s waiting for {detail}")
        await asyncio.sleep(0.01)


async def wait_status(session: Session, cid: str, statuses: tuple[OrderStatus, ...], timeout: float = 5.0) -> Order:
    def reached() -> bool:
        order = session.engine.oms.order(cid)
        return order is not None and order.status in statuses

    def what() -> str:
        order = session.engine.oms.order(cid)
        names = "/".join(s.value for s in statuses)
        events = [type(e).__name__ for e in session.client_events_of(cid)]
        now = None if order is None else order.status.value
        return f"order {cid} to reach {names} (now {now}; client events {events})"

    await wait_until(reached, timeout, what)
    return session.order(cid)


def _rule(md: MarketDataClient, name: str) -> Any:
    if not hasattr(md, name):
        pytest.fail(f"{md.venue}: the market-data client does not expose {name} (contract section 1)")
    return getattr(md, name)


@asynccontextmanager
async def venue_session(
    venue: str,
    *,
    feed: Literal["synthetic", "static"],
    request_timeout_ms: int = 3000,
    credentials: Credentials | None = None,
    trading: bool = True,
) -> AsyncIterator[Session]:
    """A running session of ``venue`` (see the module docstring); everything is stopped on exit.

    ``trading=False`` leaves the execution client unstarted (market-data checks: no private stream,
    no REST calls charged to the venue key's rate budget)."""
    from tradeloop.venues.connectors import get_connector

    connector = get_connector(venue)
    inst = connector.instruments()[0]
    iid = inst.id
    clock = LiveClock()
    balances = default_balances([inst])
    core = SimulatorCore(connector.venue, [inst], balances=balances, clock=clock)
    if feed == "static":
        core.apply_market(static_book(inst, clock.now_ns()))
    creds = connector.test_credentials()
    sim = VenueSimulator(core, connector.dialect(), creds)
    await sim.start()
    urls = connector.local_urls(sim.base_url)
    holder: dict[str, Session] = {}
    own_status: deque[str] = deque(maxlen=16)
    pending_items: list[MarketData] = []

    def on_item(item: MarketData) -> None:
        if type(item) is BookStatus and not item.valid:
            own_status.append(item.reason)
        session = holder.get("session")
        if session is None:
            pending_items.append(item)
        else:
            session.engine.on_market_data(item)

    md = connector.market_data([iid], on_item, clock, urls)
    sequence_rule = _rule(md, "sequence_rule")
    assert isinstance(sequence_rule, SequenceRule), f"{venue}: sequence_rule is {sequence_rule!r}"
    checksum_fn: ChecksumFn | None = _rule(md, "checksum_fn")
    depth_limit = int(_rule(md, "depth_limit") or 0)
    client_events: list[Event] = []
    clients: list[ExecutionClient] = []

    def make_client(emit: EmitEvent) -> ExecutionClient:
        def tee(event: Event) -> None:
            client_events.append(event)
            emit(event)

        client = connector.execution(credentials or creds, {iid: inst}, clock, tee, urls, rest_config=REST_CONFIG)
        clients.append(client)
        return client

    config = BacktestConfig(
        valuation=inst.quote,
        request_timeout_ms=request_timeout_ms,
        venues={iid.venue: VenueSection(balances={ccy: fixed.to_str(v) for ccy, v in balances.items()})},
    )
    engine = BacktestEngine(
        config,
        [inst],
        clock.now_ns(),
        clock=clock,
        execution_clients={iid.venue: make_client},
        sequence_rules={iid.venue: sequence_rule},
        checksum_fns={iid.venue: checksum_fn} if checksum_fn is not None else None,
        depth_limits={iid.venue: depth_limit} if depth_limit else None,
        journal=MemoryJournal(),
        strategy_spec="tests.integration.helpers:Idle",
    )
    session = Session(
        connector=connector,
        inst=inst,
        clock=clock,
        core=core,
        sim=sim,
        urls=urls,
        engine=engine,
        md=md,
        execution=clients[0],
        balances=balances,
        client_events=client_events,
    )
    core.add_private_listener(session.venue_events.append)

    def on_status(status: BookStatus) -> None:
        session.statuses.append(status)
        if status.valid or status.instrument_id != iid:
            return
        if status.reason in own_status:
            own_status.remove(status.reason)
            return
        session.resyncs += 1
        md.resync(iid, status.reason)

    engine.bus.subscribe(topics.BOOK_STATUS, on_status)
    holder["session"] = session
    for item in pending_items:
        engine.on_market_data(item)
    started_exec = False
    started_md = False
    try:
        if feed == "synthetic":
            session.start_synthetic()
        start = getattr(session.execution, "start", None) if trading else None
        if start is not None:
            await asyncio.wait_for(start(), START_TIMEOUT_S)
            started_exec = True
        await asyncio.wait_for(md.start(), START_TIMEOUT_S)
        started_md = True
        if feed == "static":
            session.start_trickle()
        await wait_until(
            session.book_valid, START_TIMEOUT_S, lambda: f"{venue}: a valid book ({session.describe_books()})"
        )
        yield session
    finally:
        await session.stop_feed()
        engine.breakers.stop()
        if started_md:
            with suppress(Exception):
                await asyncio.wait_for(md.stop(), 5)
        stop = getattr(session.execution, "stop", None)
        if started_exec and stop is not None:
            with suppress(Exception):
                await asyncio.wait_for(stop(), 5)
        await sim.stop()
