"""The backtest node: the same components as live, on simulated time and simulated venues.

Time model: every market data item carries its local receive time ``ts_recv``. The simulated venue
sees it ``feed_latency`` earlier (it is the venue's own book), the engine sees it at ``ts_recv``.
Orders reach the venue after the venue's order latency and replies come back after its response
latency (see ``venues/sim``). Everything runs on one :class:`SimClock`, whose scheduled calls and
timers fire in (time, creation order), so a run is byte-for-byte repeatable, journal included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock, SimClock
from tradeloop.core.config import ConfigError, decode_config
from tradeloop.core.ids import ClientOrderIdGenerator
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.model import topics
from tradeloop.model.book import ChecksumFn, OrderBook, SequenceRule
from tradeloop.model.commands import AmendOrder, CancelAllOrders, SubmitOrder
from tradeloop.model.data import BookStatus, MarketData, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    Event,
    InstrumentAdded,
    MarkPrice,
    OrderEvent,
    OrderEventBase,
    OrderFilled,
    RiskAlert,
    StrategyAlert,
    TradingStateChanged,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.order import Order
from tradeloop.persistence import open_journal
from tradeloop.persistence.journal import Journal
from tradeloop.runtime.config import BacktestConfig
from tradeloop.runtime.control import AuditSink, OperatorControl
from tradeloop.runtime.results import FillPoint, RunSeries
from tradeloop.strategies.base import Strategy, StrategyContext
from tradeloop.strategies.loader import load_strategy_class
from tradeloop.trading.breakers import CircuitBreakers
from tradeloop.trading.execution import ExecutionEngine, GatedCommand, SendGate
from tradeloop.trading.intent_barrier import IntentBarrier
from tradeloop.trading.oms import OrderManager
from tradeloop.trading.portfolio import Portfolio
from tradeloop.trading.recovery import RecoveredState, capture_state
from tradeloop.trading.risk import RiskEngine
from tradeloop.trading.state import EngineState, capture_portfolio, encode_state, restore_portfolio
from tradeloop.venues.base import EmitEvent, ExecutionClient
from tradeloop.venues.sim.execution import SimExecutionClient
from tradeloop.venues.sim.venue import SimulatedVenue

Progress = Callable[[int, int], None]
"""Called with (items processed, engine time ns) every few thousand items."""


class EngineProbe(Protocol):
    """Observer of the engine for metrics (``ops.metrics.EngineMetrics``). It only reads: nothing it
    does may change engine state or the journal."""

    def attach(self, engine: BacktestEngine) -> None:
        """Called once, when the engine is built (subscribe to the bus here)."""

    def market_data_started(self, item: MarketData) -> None:
        """An item reached the market data hub (tick-to-trade starts)."""

    def market_data_finished(self) -> None:
        """The hub and everything it triggered synchronously are done with the item."""

    def order_sent(self, client_order_id: str) -> None:
        """A submit or amend is leaving for the venue."""

    def venue_replied(self, client_order_id: str) -> None:
        """A venue event for the order came in."""


@dataclass
class BacktestStats:
    events: int = 0
    wall_seconds: float = 0.0
    first_ts: int = 0
    last_ts: int = 0
    invariant_checks: int = 0


class BacktestEngine:
    """Assembles and runs one backtest node."""

    def __init__(
        self,
        config: BacktestConfig,
        instruments: Iterable[Instrument],
        start_ns: int,
        sequence_rules: Mapping[str, SequenceRule] | None = None,
        journal: Journal | None = None,
        strategy_spec: str | None = None,
        check_invariants: bool = False,
        clock: SimClock | LiveClock | None = None,
        metrics: EngineProbe | None = None,
        audit: AuditSink | None = None,
        execution_clients: Mapping[str, Callable[[EmitEvent], ExecutionClient]] | None = None,
        checksum_fns: Mapping[str, ChecksumFn] | None = None,
        depth_limits: Mapping[str, int] | None = None,
        send_gate: SendGate | None = None,
        id_epoch: int | None = None,
    ) -> None:
        """``execution_clients`` maps a venue to a factory of its real execution client (called with
        the engine's event callback); venues not in it trade on a :class:`SimulatedVenue`, as in a
        backtest or a paper session. ``checksum_fns`` and ``depth_limits`` are the venues' book rules
        (see :class:`~tradeloop.data.book_manager.BookManager`). ``send_gate`` is asked before every
        submit or amend leaves (a reason stops it, see :class:`~tradeloop.trading.execution.ExecutionEngine`);
        ``id_epoch`` replaces the start second in client order ids (a failover node's fencing token)."""
        self.config = config
        self.instruments: dict[InstrumentId, Instrument] = {i.id: i for i in instruments}
        if not self.instruments:
            raise ConfigError("no instruments to trade")
        self.clock: SimClock | LiveClock = clock if clock is not None else SimClock(start_ns)
        self.metrics = metrics
        self.bus = MessageBus()
        self.journal: Journal = journal if journal is not None else open_journal(config.journal.path)
        self.ids = ClientOrderIdGenerator(config.node_tag, start_ns, epoch=id_epoch)
        self.check_invariants = check_invariants
        self.stats = BacktestStats(first_ts=start_ns)
        venues = sorted({iid.venue for iid in self.instruments})

        self.book_manager = BookManager(
            self.bus, self.clock, sequence_rules or {}, checksum_fns, depth_limits=depth_limits
        )
        self.hub = MarketDataHub(self.bus, self.book_manager)
        self.portfolio = Portfolio(
            self.instruments.values(),
            {v: config.venue(v).balances_fixed() for v in venues},
            valuation=config.valuation,
        )
        self.venues: dict[str, SimulatedVenue] = {}
        clients: dict[str, ExecutionClient] = {}
        external = execution_clients or {}
        for v in venues:
            if v in external:
                clients[v] = external[v](self._on_venue_event)
                continue
            section = config.venue(v)
            venue_instruments = {iid: inst for iid, inst in self.instruments.items() if iid.venue == v}
            self.venues[v] = SimulatedVenue(
                v, venue_instruments, section.sim.venue_config(), self.clock, self._noop, section.balances_fixed()
            )
            clients[v] = SimExecutionClient(self.venues[v], self.clock, self._on_venue_event)
        # Orders to a real venue leave only once their intents are on disk: held by the intent barrier
        # (group commit) on a live loop, else synced inline by the OMS.
        durable = bool(external) and config.journal.durability == "intent"
        self.intent_barrier = _intent_barrier(self.journal) if durable and isinstance(self.clock, LiveClock) else None
        self.execution = ExecutionEngine(
            self.clock,
            clients,
            {v: config.venue(v).throttle for v in venues},
            self._on_sending,
            gate=send_gate,
            on_refused=self._on_send_refused if send_gate is not None else None,
            barrier=self.intent_barrier,
        )
        self.risk = RiskEngine(
            config.risk,
            self.clock,
            self.instruments,
            self.portfolio,
            self,  # OrderView (delegates to the OMS)
            self.book_manager,
            self._on_risk_event,
            self._cancel_all,
        )
        self.oms = OrderManager(
            clock=self.clock,
            bus=self.bus,
            ids=self.ids,
            risk=self.risk,
            execution=self.execution,
            journal=self.journal,
            request_timeout_ns=config.request_timeout_ms * 1_000_000,
            durable_intents=durable and self.intent_barrier is None,
        )
        strategy_cls = load_strategy_class(strategy_spec or config.strategy.name)
        params = dict(config.strategy.params)
        strategy_config = decode_config(params, strategy_cls.config_type)
        self.strategy_id = config.strategy.id
        self.ctx = StrategyContext(
            self.strategy_id,
            self.clock,
            self.bus,
            self.ids,
            self.instruments,
            self.book_manager,
            self.portfolio,
            self.oms,
            record_sink=self._record_panel,
            fee_rates=self._fee_rates,
        )
        self.strategy: Strategy[Any] = strategy_cls(self.strategy_id, strategy_config, self.ctx)
        self.series = RunSeries()
        self._feed_latency = config.feed_latency_us * 1000
        self.record_sample_interval = config.report.sample_interval_ms * 1_000_000
        # Circuit breakers (off unless configured) see books and order events before the strategy does,
        # so it reacts under the state they set. engine.control: the operator's kill/resume.
        self.breakers = CircuitBreakers(config.risk.breakers, self.clock, self.instruments, self.risk.trip)
        self.breakers.subscribe(self.bus)
        self._wire()
        self._journal_start(start_ns)
        if isinstance(self.clock, SimClock):
            self.breakers.start()  # on a live clock it arms itself on the first book, inside the loop
        self.control = OperatorControl(self.risk, audit if audit is not None else self._open_audit(), self._kill_all)
        self.on_market_data: Callable[[MarketData], None] = self.hub.on_data
        """Entry of market data into the engine (the hub, timed when a metrics probe is attached)."""
        if metrics is not None:
            self.on_market_data = self._timed_market_data
            metrics.attach(self)

    # -- wiring -------------------------------------------------------------------------------

    def _wire(self) -> None:
        bus = self.bus
        bus.subscribe(topics.COMMANDS, self.oms.on_command)
        bus.subscribe(topics.ORDER_EVENTS, self._on_order_event)
        bus.subscribe(topics.BOOK, self._on_book)
        bus.subscribe(topics.BOOK_STATUS, self._on_book_status)
        bus.subscribe(topics.TRADES, self._on_trade)
        bus.subscribe(topics.QUOTES, self._on_quote)
        bus.subscribe(topics.STRATEGY_ALERTS, self._on_strategy_alert)

    def _journal_start(self, ts: int) -> None:
        for iid in sorted(self.instruments):
            self.journal.append(InstrumentAdded(ts=ts, instrument=self.instruments[iid]))
        for venue in sorted(self.venues):
            balances = self.config.venue(venue).balances_fixed()
            self.journal.append(
                AccountSnapshot(
                    ts=ts, venue=venue, balances=[Balance(ccy, amt) for ccy, amt in sorted(balances.items())]
                )
            )

    @staticmethod
    def _noop(_: object) -> None:
        return None

    # The risk engine and the execution engine are built before the OMS they report to.
    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[Order]:
        return self.oms.open_orders(instrument_id)

    def _on_sending(self, cmd: SubmitOrder | AmendOrder) -> bool:
        if not self.oms.on_sending(cmd):
            return False
        if self.metrics is not None:
            self.metrics.order_sent(cmd.client_order_id)
        return True

    def _on_send_refused(self, cmd: GatedCommand, reason: str) -> None:
        self.oms.on_send_refused(cmd, reason)

    # -- recovery -----------------------------------------------------------------------------

    def restore(self, state: RecoveredState) -> None:
        """Continue from a recovered state: its portfolio, its orders that are not terminal, its ids.

        Called once, right after construction and before any market data or strategy start. The
        venues still have to confirm the recovered orders: see :mod:`tradeloop.trading.reconcile`.
        """
        restore_portfolio(self.portfolio, capture_portfolio(state.portfolio))
        self.oms.restore(state.orders, state.client_order_ids)

    def capture_state(self) -> EngineState:
        """The node's state as of the journal's last record (for a snapshot)."""
        return capture_state(
            self.journal.last_seq(),
            self.clock.now_ns(),
            self.instruments.values(),
            self.portfolio,
            self.oms.orders.values(),
            self.ids.last(),
        )

    def save_snapshot(self) -> int:
        """Write a snapshot of the state into the journal; returns the seq it covers."""
        state = self.capture_state()
        self.journal.save_snapshot(state.seq, state.ts, encode_state(state))
        return state.seq

    def _on_venue_event(self, event: Event) -> None:
        if self.metrics is not None and isinstance(event, OrderEventBase):
            self.metrics.venue_replied(event.client_order_id)
        self.oms.on_venue_event(event)

    def _timed_market_data(self, item: MarketData) -> None:
        probe = self.metrics
        assert probe is not None
        probe.market_data_started(item)
        try:
            self.hub.on_data(item)
        finally:
            probe.market_data_finished()

    def _cancel_all(self, reason: str) -> None:
        self.bus.publish(topics.COMMANDS, CancelAllOrders(ts=self.clock.now_ns(), strategy_id="risk", reason=reason))

    def _kill_all(self, reason: str) -> None:
        """The operator's kill switch: cancel every open order on every venue."""
        self.bus.publish(
            topics.COMMANDS, CancelAllOrders(ts=self.clock.now_ns(), strategy_id="operator", reason=reason)
        )

    def _open_audit(self) -> AuditSink | None:
        path = self.config.audit.path
        if path is None:
            return None
        from tradeloop.security.audit import AuditLog

        return AuditLog(path, clock=self.clock.now_ns)

    def _on_risk_event(self, event: TradingStateChanged | RiskAlert) -> None:
        self.journal.append(event)
        if isinstance(event, RiskAlert):
            self.series.record_alert(event.ts, f"risk.{event.check}", event.message)
        self.bus.publish(topics.RISK_EVENTS, event)

    def _on_strategy_alert(self, event: StrategyAlert) -> None:
        self.journal.append(event)
        self.series.record_alert(event.ts, event.kind, event.message)

    def _fee_rates(self, instrument_id: InstrumentId) -> tuple[int, int]:
        """(maker, taker) fee rates of the simulated venue that trades ``instrument_id``."""
        sim = self.config.venue(instrument_id.venue).sim.venue_config()
        return sim.maker_fee, sim.taker_fee

    def _record_panel(self, panel: str, ts: int, value: float) -> None:
        self.series.record_extra(panel, ts, value)

    def _on_order_event(self, event: OrderEvent) -> None:
        if type(event) is OrderFilled:
            self.portfolio.apply_fill(event)
            self.series.record_fill(
                FillPoint(
                    ts=event.ts,
                    instrument=str(event.instrument_id),
                    side=event.side,
                    price=event.last_price,
                    qty=event.last_qty,
                    liquidity=event.liquidity,
                    fee=event.fee,
                )
            )
            if self.check_invariants:
                self.assert_accounting_invariant()
            self.risk.on_equity(event.ts, self.portfolio.equity())
        order = self.oms.orders.get(event.client_order_id)
        if order is not None and order.strategy_id == self.strategy_id:
            self.strategy.on_order(event)
            if type(event) is OrderFilled:
                self.strategy.on_fill(event)

    def _on_book(self, book: OrderBook) -> None:
        mid_x2 = book.mid_x2()
        if mid_x2 is not None:
            iid = book.instrument_id
            if iid not in self.portfolio.marks:
                self.journal.append(MarkPrice(ts=self.clock.now_ns(), instrument_id=iid, price=mid_x2 // 2))
            self.portfolio.update_mark(iid, mid_x2 // 2)
        self.strategy.on_book(book)

    def _on_book_status(self, status: BookStatus) -> None:
        self.journal.append(status)
        self.strategy.on_book_status(status)

    def _on_trade(self, trade: Trade) -> None:
        self.strategy.on_trade(trade)

    def _on_quote(self, quote: Quote) -> None:
        self.strategy.on_quote(quote)

    # -- running ------------------------------------------------------------------------------

    def assert_accounting_invariant(self) -> None:
        """``cash + sum(position x mark) == equity == initial + realized + unrealized - fees``, exactly."""
        p = self.portfolio
        equity = p.equity()
        by_parts = p.cash() + sum(
            fixed.mul(pos.qty, p.marks[iid]) if iid in p.marks else pos.cost
            for iid, pos in p.positions.items()
            if pos.qty
        )
        if equity != by_parts:
            raise AssertionError(f"equity {equity} != cash + positions x marks {by_parts}")
        if p.initial_equity is not None and equity - p.initial_equity != p.pnl():
            raise AssertionError(f"equity change {equity - p.initial_equity} != realized+unrealized-fees {p.pnl()}")
        self.stats.invariant_checks += 1

    def record_sample(self, _timer: str, ts: int) -> None:
        """Record equity, inventory, mids and quotes at ``ts`` into :attr:`series` and give the equity to
        the risk engine (the ``report.sample`` timer's callback; sessions also call it once at the end)."""
        p = self.portfolio
        equity = p.equity()
        inventory = {str(iid): pos.qty for iid, pos in p.positions.items()}
        mids: dict[str, int | None] = {}
        for iid in self.instruments:
            book = self.book_manager.book(iid)
            mid_x2 = book.mid_x2() if book is not None and book.valid else None
            mids[str(iid)] = mid_x2 // 2 if mid_x2 is not None else None
        self.series.record_sample(ts, equity, inventory, mids)
        self.risk.on_equity(ts, equity)
        for key, (bid, ask) in self._quote_view().items():
            self.series.record_quote(key, ts, bid, ask)

    def _quote_view(self) -> dict[str, tuple[int | None, int | None]]:
        """Our best working bid and ask per instrument (for the report's quote lines)."""
        out: dict[str, tuple[int | None, int | None]] = {}
        for iid in sorted(self.instruments):
            bid: int | None = None
            ask: int | None = None
            for o in self.oms.open_orders(iid):
                if o.price is None:
                    continue
                if o.side is Side.BUY:
                    bid = o.price if bid is None else max(bid, o.price)
                else:
                    ask = o.price if ask is None else min(ask, o.price)
            if bid is not None or ask is not None:
                out[str(iid)] = (bid, ask)
        return out

    def run(self, source: Iterator[tuple[int, MarketData]], progress: Progress | None = None) -> BacktestStats:
        """Feed every item of ``source`` (in ``ts_recv`` order) through venue and engine."""
        clock = self.clock
        if not isinstance(clock, SimClock):
            raise TypeError("BacktestEngine.run needs a SimClock; a paper session feeds a live engine itself")
        hub_on_data = self.on_market_data
        venues = self.venues
        latency = self._feed_latency
        started = time.perf_counter()
        self.strategy.on_start()
        clock.set_timer("report.sample", self.record_sample_interval, self.record_sample)
        n = 0
        last_ts = self.stats.first_ts
        for ts_recv, item in source:
            venue = venues.get(item.instrument_id.venue)
            if latency:
                clock.advance_to(ts_recv - latency)
                if venue is not None:
                    venue.on_market_data(item)
                clock.call_at(ts_recv, _deliver(hub_on_data, item))
            else:
                clock.advance_to(ts_recv)
                if venue is not None:
                    venue.on_market_data(item)
                hub_on_data(item)
            n += 1
            last_ts = ts_recv
            if progress is not None and n % 4096 == 0:
                progress(n, ts_recv)
        clock.advance_to(last_ts + latency)
        self.breakers.stop()  # the data has ended; that is not a stale feed
        self.strategy.on_stop()
        # Let replies to the final cancels come back.
        clock.advance_to(last_ts + latency + 2 * self.config.request_timeout_ms * 1_000_000)
        clock.cancel_timer("report.sample")
        self.record_sample("report.sample", clock.now_ns())
        self.journal.flush()
        self.stats.events = n
        self.stats.last_ts = clock.now_ns()
        self.stats.wall_seconds = time.perf_counter() - started
        if progress is not None:
            progress(n, last_ts)
        return self.stats


def _intent_barrier(journal: Journal) -> IntentBarrier | None:
    """The barrier on the running loop (``None`` outside one: intents are then synced inline)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return IntentBarrier(journal, loop)


def _deliver(fn: Callable[[MarketData], None], item: MarketData) -> Callable[[], None]:
    return lambda: fn(item)
