"""Lockstep: a local venue simulator whose market moves one item at a time, each only once the trading
node has settled, so that runs on the same items make the same decisions however the node is deployed.

A free-running market races the node: which book a strategy sees when its order reaches the venue
depends on scheduling, so two runs (or a single-process and a split run) differ. In lockstep every
market item is applied in two steps, each followed by a wait until the node is at rest:

1. the venue's matching takes the item (resting orders may fill; the fills go out on the private
   stream). If anything filled, wait until the node has every fill and has finished reacting to them;
2. the item goes out on the public feed; wait until the node has it and has finished reacting to it.

"At rest" (a :class:`Settle`) is: the node handled every item published so far (book deltas, trades,
and the quotes the venue sends with each book update), has as many fills as the venue made, no order
is waiting for the venue, and, for a split node, every command the strategy sent was applied by the
execution service and every event that service sent was applied by the strategy.

:class:`SteppedCore` is the simulator core that holds the public feed back for step 2;
:func:`stepped_simulator` builds a venue simulator on it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import nats.errors

from tradeloop.core.clock import LiveClock
from tradeloop.deploy.codec import Progress, decode
from tradeloop.deploy.counting import MarketCounts
from tradeloop.deploy.nats_link import NatsLink
from tradeloop.deploy.subjects import ServiceName
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.events import Event, OrderFilled
from tradeloop.model.instrument import Instrument
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.venues.connector import VenueConnector
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.simulator.core import MarketListener, SimulatorCore
from tradeloop.venues.simulator.local import default_balances
from tradeloop.venues.simulator.server import VenueSimulator

__all__ = [
    "EngineSettle",
    "Expectation",
    "LockstepMarket",
    "LockstepTimeout",
    "QuotesOf",
    "Settle",
    "SplitSettle",
    "SteppedCore",
    "stepped_simulator",
]

IN_FLIGHT_STATUSES: Final = ("INITIALIZED", "SUBMITTED", "PENDING_CANCEL", "PENDING_AMEND")
_REQUEST_TIMEOUT_S: Final = 1.0

FeedItem = BookDeltas | Trade
QuotesOf = Callable[[SimulatorCore, BookDeltas], int]
"""How many quotes a venue's public feed sends for one book update (the core holds the book after it)."""


class SteppedCore(SimulatorCore):
    """A simulator core whose market listeners (the dialect's public feed) hear of an item only when
    :meth:`publish_market` releases it; :meth:`apply_market` moves the venue's book and fills alone."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._held: list[MarketListener] = []

    def add_market_listener(self, fn: MarketListener) -> None:
        self._held.append(fn)

    def remove_market_listener(self, fn: MarketListener) -> None:
        if fn in self._held:
            self._held.remove(fn)

    def publish_market(self, item: FeedItem) -> None:
        """Tell the market listeners of ``item`` (after :meth:`apply_market` took it)."""
        if item.instrument_id not in self.instruments:
            return
        for fn in list(self._held):
            fn(item)


def stepped_simulator(
    connector: VenueConnector,
    *,
    instruments: Sequence[Instrument] | None = None,
    balances: Mapping[str, int] | None = None,
    sim_config: SimVenueConfig | None = None,
) -> VenueSimulator:
    """The connector's simulator (as :func:`~tradeloop.venues.simulator.local.build_simulator`) on a
    :class:`SteppedCore`."""
    listed = list(instruments) if instruments is not None else connector.instruments()
    core = SteppedCore(
        connector.venue,
        listed,
        balances=balances if balances is not None else default_balances(listed),
        sim_config=sim_config,
        clock=LiveClock(),
    )
    return VenueSimulator(core, connector.dialect(), connector.test_credentials())


@dataclass
class Expectation:
    """What a settled node has handled: counts per instrument id text, and the venue's fills; ``books``
    must be valid at the node (it is synced with the venue's book, so it hears every later item)."""

    books: set[str] = field(default_factory=set)
    deltas: Counter[str] = field(default_factory=Counter)
    trades: Counter[str] = field(default_factory=Counter)
    quotes: Counter[str] = field(default_factory=Counter)
    fills: int = 0


def _market_gap(progress: Progress, expect: Expectation) -> str | None:
    for iid in sorted(expect.books):
        if iid not in progress.books:
            return f"{progress.service}: no valid book of {iid}"
    for name, want, have in (
        ("deltas", expect.deltas, progress.deltas),
        ("trades", expect.trades, progress.trades),
        ("quotes", expect.quotes, progress.quotes),
    ):
        for iid, n in want.items():
            if have.get(iid, 0) != n:
                return f"{progress.service}: {name} of {iid} {have.get(iid, 0)}, venue {n}"
    return None


class Settle(Protocol):
    """Whether the node is at rest for ``expect``: ``None`` when it is, else what it is still missing."""

    async def settled(self, expect: Expectation) -> str | None: ...


class EngineSettle:
    """:class:`Settle` for a node in this process (a :class:`~tradeloop.runtime.live.LiveSession`'s engine,
    ``ready`` once it trades: e.g. ``lambda: all(session.connected.values())``)."""

    def __init__(self, engine_of: Callable[[], BacktestEngine | None], ready: Callable[[], bool]) -> None:
        self._engine_of = engine_of
        self._ready = ready
        self._engine: BacktestEngine | None = None
        self._counts: MarketCounts | None = None

    async def settled(self, expect: Expectation) -> str | None:
        engine = self._engine_of()
        if engine is None or not self._ready():
            return "node not trading yet"
        if engine is not self._engine:
            self._engine, self._counts = engine, MarketCounts(engine.bus, engine.book_manager)
        counts = self._counts
        assert counts is not None
        progress = Progress(
            service="node",
            origin="",
            ready=True,
            books=counts.books(),
            deltas=counts.deltas(),
            trades=counts.trades(),
            quotes=counts.quotes(),
            fills=engine.portfolio.fill_count,
            in_flight=sum(1 for o in engine.oms.open_orders() if o.status.name in IN_FLIGHT_STATUSES),
        )
        gap = _market_gap(progress, expect)
        if gap is not None:
            return gap
        if progress.fills != expect.fills:
            return f"node: {progress.fills} fills, venue {expect.fills}"
        if progress.in_flight:
            return f"node: {progress.in_flight} order(s) in flight"
        return None


class SplitSettle:
    """:class:`Settle` for a split node: asks its strategy and execution services for their progress
    (strategy, execution, strategy again: nothing may have moved in between)."""

    def __init__(self, link: NatsLink) -> None:
        self._link = link
        self.last: dict[str, Progress] = {}

    async def _ask(self, service: ServiceName) -> Progress | None:
        try:
            msg = await self._link.nc.request(self._link.subjects.status(service), b"", timeout=_REQUEST_TIMEOUT_S)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            return None
        progress = decode(msg.data, Progress, msg.subject)
        self.last[service] = progress
        return progress

    async def settled(self, expect: Expectation) -> str | None:
        strategy = await self._ask("strategy")
        execution = await self._ask("execution")
        if strategy is None or execution is None:
            return "a service does not answer"
        if not (strategy.ready and execution.ready):
            return "services not trading yet"
        for progress in (strategy, execution):
            gap = _market_gap(progress, expect)
            if gap is not None:
                source = await self._ask("market-data")  # where the item got to, for the error
                return gap if source is None else f"{gap} (market-data: {_market_gap(source, expect) or 'has it'})"
        if execution.fills != expect.fills:
            return f"execution: {execution.fills} fills, venue {expect.fills}"
        if execution.in_flight:
            return f"execution: {execution.in_flight} order(s) in flight"
        applied = execution.commands_done.get(strategy.origin, 0)
        if applied != strategy.commands_sent:
            return f"execution applied {applied} of {strategy.commands_sent} commands"
        applied = strategy.events_done.get(execution.origin, 0)
        if applied != execution.events_sent:
            return f"strategy applied {applied} of {execution.events_sent} events"
        again = await self._ask("strategy")
        if again is None or (again.commands_sent, again.events_done) != (strategy.commands_sent, strategy.events_done):
            return "strategy moved meanwhile"
        return None


class LockstepTimeout(RuntimeError):
    """The node did not settle in time (the message says at which item and what was missing)."""


class LockstepMarket:
    """Drives ``core`` through ``items`` in lockstep with a node (see the module docstring).

    ``quotes_of(core, update)``: how many quotes the venue's public feed sends for a book update (with
    the venue's book after it), which the node must then have handled; e.g. OKX's ``bbo-tbt`` sends
    one whenever both sides of the book have a level. ``None``: the feed sends none (or the node's
    decisions do not depend on them). Private listeners count the venue's fills.
    """

    def __init__(
        self,
        core: SteppedCore,
        items: Sequence[FeedItem],
        settle: Settle,
        *,
        quotes_of: QuotesOf | None = None,
        timeout_s: float = 10.0,
        poll_s: float = 0.001,
    ) -> None:
        self.core = core
        self.items = list(items)
        self.settle = settle
        self.quotes_of = quotes_of
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.expect = Expectation(books={str(item.instrument_id) for item in self.items})
        self.fills: list[OrderFilled] = []
        """Every fill the venue made, in order."""
        self.step = 0
        self.waits = 0
        core.add_private_listener(self._on_private)

    def _on_private(self, event: Event) -> None:
        if type(event) is OrderFilled:
            self.fills.append(event)

    async def wait_settled(self) -> None:
        """Until the node is at rest for what the venue has done so far."""
        self.expect.fills = len(self.fills)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        self.waits += 1
        while True:
            missing = await self.settle.settled(self.expect)
            if missing is None:
                return
            if loop.time() >= deadline:
                raise LockstepTimeout(
                    f"item {self.step} of {len(self.items)}: not settled after {self.timeout_s:g}s: {missing}"
                )
            await asyncio.sleep(self.poll_s)

    async def run(self) -> None:
        """Wait for the node, then step every item."""
        await self.wait_settled()
        core = self.core
        for n, item in enumerate(self.items, 1):
            self.step = n
            filled = len(self.fills)
            core.apply_market(item)
            if len(self.fills) != filled:
                await self.wait_settled()
            key = str(item.instrument_id)
            if type(item) is BookDeltas:
                self.expect.deltas[key] += 0 if item.snapshot else 1
                if self.quotes_of is not None:
                    self.expect.quotes[key] += self.quotes_of(core, item)
            else:
                self.expect.trades[key] += 1
            core.publish_market(item)
            await self.wait_settled()
