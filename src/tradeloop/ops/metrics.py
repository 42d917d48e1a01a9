"""Prometheus metrics of one engine, in a registry of its own (never the process-global one).

:class:`EngineMetrics` is an :class:`~tradeloop.runtime.backtest.EngineProbe`: the engine calls it
when market data reaches the hub, when an order leaves and when a venue answers, and it subscribes
to the bus for order, book-status and risk events. Gauges that are state (positions, PnL, feed
staleness, risk state) are read from the engine by :meth:`EngineMetrics.refresh`, which
:meth:`EngineMetrics.render` runs before every scrape. Event counts, order counts by state and
latencies are kept as plain ints on the hot path (a Prometheus update takes a lock and, for a
histogram, scans the buckets) and handed to their Prometheus objects by
:meth:`EngineMetrics.refresh`; the latency histograms also whenever they are read
(:attr:`EngineMetrics.tick_to_trade`). It only reads engine state; nothing here changes the engine
or reaches the journal.

Latencies are wall time (``time.perf_counter_ns``), also in a backtest, where they measure the
engine's own processing: *tick to trade* runs from a market data item entering the hub to an order
it triggered leaving for the venue; *order round trip* from a submit or amend leaving to the first
venue event about that order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tradeloop.core import fixed
from tradeloop.model import topics
from tradeloop.model.data import BookStatus, MarketData
from tradeloop.model.enums import OrderStatus, TradingState
from tradeloop.model.events import (
    AccountSnapshot,
    OrderDenied,
    OrderEvent,
    OrderInitialized,
    OrderRejected,
    RiskAlert,
    StrategyAlert,
    TradingStateChanged,
)

if TYPE_CHECKING:
    from tradeloop.runtime.backtest import BacktestEngine

__all__ = [
    "METRIC_NAMES",
    "RISK_STATE_CODES",
    "EngineMetrics",
    "histogram_buckets",
    "histogram_quantile",
]

TICK_TO_TRADE_BUCKETS: Final = (
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0,
)  # fmt: skip
ROUND_TRIP_BUCKETS: Final = (
    1e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
LOOP_LAG_BUCKETS: Final = (1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 5.0)

RISK_STATE_CODES: Final = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
PNL_KINDS: Final = ("realized", "unrealized", "fees", "total", "equity")

METRIC_NAMES: Final = (
    "tradeloop_tick_to_trade_seconds",
    "tradeloop_order_round_trip_seconds",
    "tradeloop_event_loop_lag_seconds",
    "tradeloop_feed_staleness_seconds",
    "tradeloop_position",
    "tradeloop_pnl",
    "tradeloop_risk_state",
    "tradeloop_orders",
    "tradeloop_book_resyncs_total",
    "tradeloop_order_rejects_total",
    "tradeloop_events_total",
)
"""Every metric family :class:`EngineMetrics` exposes (histograms add ``_bucket``/``_sum``/``_count``)."""

_MAX_IN_FLIGHT: Final = 10_000
"""Sent orders awaiting their first reply that are remembered (the oldest are forgotten)."""
_MAX_PENDING: Final = 4096
"""Latencies held before they are handed to their histogram (also done by every read and refresh)."""


class EngineMetrics:
    """The engine's Prometheus metrics; see the module docstring for what each one measures."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._tick_to_trade = Histogram(
            "tradeloop_tick_to_trade_seconds",
            "Wall time from a market data item reaching the hub to an order it triggered leaving.",
            registry=r,
            buckets=TICK_TO_TRADE_BUCKETS,
        )
        self._order_round_trip = Histogram(
            "tradeloop_order_round_trip_seconds",
            "Wall time from a submit or amend leaving to the venue's first reply about the order.",
            registry=r,
            buckets=ROUND_TRIP_BUCKETS,
        )
        self.event_loop_lag = Histogram(
            "tradeloop_event_loop_lag_seconds",
            "How late a periodic asyncio wake-up ran (paper and live sessions).",
            registry=r,
            buckets=LOOP_LAG_BUCKETS,
        )
        self.feed_staleness = Gauge(
            "tradeloop_feed_staleness_seconds",
            "Engine time since the book last received data.",
            ["book"],
            registry=r,
        )
        self.position = Gauge("tradeloop_position", "Signed position in base units.", ["instrument"], registry=r)
        self.pnl = Gauge("tradeloop_pnl", "PnL and equity in the valuation currency.", ["kind"], registry=r)
        self.risk_state = Gauge("tradeloop_risk_state", "Trading state: 0 ACTIVE, 1 REDUCING, 2 HALTED.", registry=r)
        self.orders = Gauge(
            "tradeloop_orders",
            "Orders by state: current count for working states, cumulative for terminal ones.",
            ["state"],
            registry=r,
        )
        self.book_resyncs = Counter(
            "tradeloop_book_resyncs", "Invalid books made valid again by a snapshot.", ["book"], registry=r
        )
        self.order_rejects = Counter(
            "tradeloop_order_rejects",
            "Orders refused: venue reject reason, or denied:<risk check> for engine-side denials.",
            ["reason"],
            registry=r,
        )
        self.events = Counter("tradeloop_events", "Market data items and engine events by type.", ["kind"], registry=r)
        # Labelled children looked up once: ``labels()`` on every event costs more than the update.
        self._order_gauges = {status: self.orders.labels(status.value) for status in OrderStatus}
        for gauge in self._order_gauges.values():
            gauge.set(0)
        self._new_events: dict[str, int] = {}
        """Events counted since the last :meth:`refresh` (by kind), not yet in ``events``."""
        for kind in PNL_KINDS:
            self.pnl.labels(kind).set(0)
        self._engine: BacktestEngine | None = None
        self._tick_start: int | None = None
        self._sent: dict[str, int] = {}
        self._status: dict[str, OrderStatus] = {}
        self._order_counts: dict[OrderStatus, int] = dict.fromkeys(OrderStatus, 0)
        self._event_counters: dict[str, Counter] = {}
        self._new_ticks: list[int] = []
        """Tick-to-trade latencies (ns) not yet observed by ``tick_to_trade``."""
        self._new_round_trips: list[int] = []

    # -- EngineProbe --------------------------------------------------------------------------

    def attach(self, engine: BacktestEngine) -> None:
        """Subscribe to the engine's bus (after the engine's own handlers, so state is applied)."""
        if self._engine is not None:
            raise RuntimeError("EngineMetrics is already attached to an engine")
        self._engine = engine
        bus = engine.bus
        bus.subscribe(topics.ORDER_EVENTS, self._on_order_event)
        bus.subscribe(topics.BOOK_STATUS, self._on_book_status)
        bus.subscribe(topics.RISK_EVENTS, self._on_risk_event)
        bus.subscribe(topics.STRATEGY_ALERTS, self._on_strategy_alert)
        bus.subscribe(topics.ACCOUNT_EVENTS, self._on_account_event)
        self.risk_state.set(RISK_STATE_CODES[engine.risk.state])

    def market_data_started(self, item: MarketData) -> None:
        kind = type(item)
        if kind is not BookStatus:  # statuses are counted when published
            new = self._new_events
            name = kind.__name__
            new[name] = new.get(name, 0) + 1
        self._tick_start = time.perf_counter_ns()

    def market_data_finished(self) -> None:
        self._tick_start = None

    def order_sent(self, client_order_id: str) -> None:
        now = time.perf_counter_ns()
        if self._tick_start is not None:
            ticks = self._new_ticks
            ticks.append(now - self._tick_start)
            if len(ticks) >= _MAX_PENDING:
                self._flush_latencies()
        sent = self._sent
        sent.pop(client_order_id, None)
        if len(sent) >= _MAX_IN_FLIGHT:
            del sent[next(iter(sent))]
        sent[client_order_id] = now

    def venue_replied(self, client_order_id: str) -> None:
        started = self._sent.pop(client_order_id, None)
        if started is not None:
            trips = self._new_round_trips
            trips.append(time.perf_counter_ns() - started)
            if len(trips) >= _MAX_PENDING:
                self._flush_latencies()

    @property
    def tick_to_trade(self) -> Histogram:
        """Wall time from a market data item reaching the hub to an order it triggered leaving (seconds)."""
        self._flush_latencies()
        return self._tick_to_trade

    @property
    def order_round_trip(self) -> Histogram:
        """Wall time from a submit or amend leaving to the venue's first reply about the order (seconds)."""
        self._flush_latencies()
        return self._order_round_trip

    def _flush_latencies(self) -> None:
        # A Prometheus observation takes a lock and scans the buckets: done here, not on the order path.
        if self._new_ticks:
            ticks, self._new_ticks = self._new_ticks, []
            observe = self._tick_to_trade.observe
            for ns in ticks:
                observe(ns / 1e9)
        if self._new_round_trips:
            trips, self._new_round_trips = self._new_round_trips, []
            observe = self._order_round_trip.observe
            for ns in trips:
                observe(ns / 1e9)

    # -- other observations -------------------------------------------------------------------

    def observe_loop_lag(self, seconds: float) -> None:
        """Record how late a periodic wake-up of the event loop was."""
        self.event_loop_lag.observe(max(seconds, 0.0))

    # -- bus handlers -------------------------------------------------------------------------

    def _count(self, kind: str) -> None:
        new = self._new_events
        new[kind] = new.get(kind, 0) + 1

    def _on_order_event(self, event: OrderEvent) -> None:
        new_events = self._new_events
        name = type(event).__name__
        new_events[name] = new_events.get(name, 0) + 1
        if isinstance(event, OrderRejected):
            self.order_rejects.labels(event.reason.value).inc()
        elif isinstance(event, OrderDenied):
            self.order_rejects.labels("denied:" + event.reason.partition(":")[0]).inc()
        engine = self._engine
        order = engine.oms.order(event.client_order_id) if engine is not None else None
        if order is None:
            return
        cid = order.client_order_id
        old = self._status.get(cid)
        if old is None and not isinstance(event, OrderInitialized):
            return  # a late event of an order already counted in its terminal state
        new = order.status
        if old is new:
            return
        counts = self._order_counts
        if old is not None:
            counts[old] -= 1
        counts[new] += 1
        if new.is_terminal:
            self._status.pop(cid, None)  # terminal counts stay cumulative; forget the order itself
        else:
            self._status[cid] = new

    def _on_book_status(self, status: BookStatus) -> None:
        self._count("BookStatus")
        if status.valid and status.reason == "resynced":
            self.book_resyncs.labels(str(status.instrument_id)).inc()

    def _on_risk_event(self, event: TradingStateChanged | RiskAlert) -> None:
        self._count(type(event).__name__)
        if isinstance(event, TradingStateChanged):
            self.risk_state.set(RISK_STATE_CODES[event.state])

    def _on_strategy_alert(self, event: StrategyAlert) -> None:
        self._count("StrategyAlert")

    def _on_account_event(self, event: AccountSnapshot) -> None:
        self._count("AccountSnapshot")

    # -- state gauges and output --------------------------------------------------------------

    def refresh(self) -> None:
        """Hand the counts kept since the last call to Prometheus; read positions, PnL, feed staleness
        and the risk state from the engine."""
        self._flush_counts()
        engine = self._engine
        if engine is None:
            return
        p = engine.portfolio
        for iid, pos in p.positions.items():
            self.position.labels(str(iid)).set(fixed.to_float(pos.qty))
        self.pnl.labels("realized").set(fixed.to_float(p.realized_pnl()))
        self.pnl.labels("unrealized").set(fixed.to_float(p.unrealized_pnl()))
        self.pnl.labels("fees").set(fixed.to_float(p.fees()))
        self.pnl.labels("total").set(fixed.to_float(p.pnl()))
        self.pnl.labels("equity").set(fixed.to_float(p.equity()))
        now = engine.clock.now_ns()
        for iid, book in engine.book_manager.books().items():
            if book.ts_recv:
                self.feed_staleness.labels(str(iid)).set(max(now - book.ts_recv, 0) / 1e9)
        self.risk_state.set(RISK_STATE_CODES[engine.risk.state])

    def _flush_counts(self) -> None:
        self._flush_latencies()
        new, self._new_events = self._new_events, {}
        counters = self._event_counters
        for kind, n in new.items():
            counter = counters.get(kind)
            if counter is None:
                counter = counters[kind] = self.events.labels(kind)
            counter.inc(n)
        gauges = self._order_gauges
        for status, count in self._order_counts.items():
            gauges[status].set(count)

    def render(self) -> bytes:
        """Refresh, then the whole registry in the Prometheus text format (0.0.4)."""
        self.refresh()
        return generate_latest(self.registry)


def histogram_buckets(histogram: Histogram) -> tuple[list[tuple[float, float]], float]:
    """``([(upper bound, cumulative count), ...], total count)`` of an unlabelled histogram; the
    ``+Inf`` bucket is left out of the list (its count is the total)."""
    buckets: list[tuple[float, float]] = []
    total = 0.0
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                if le != float("inf"):
                    buckets.append((le, sample.value))
            elif sample.name.endswith("_count"):
                total = sample.value
    return buckets, total


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]], total: float) -> float | None:
    """The ``q`` quantile estimated from cumulative buckets as Prometheus' ``histogram_quantile``
    does: linear interpolation inside the bucket that holds the rank (the lowest bucket starts at 0).
    ``None`` without observations; the highest finite bound when the rank lies in ``+Inf``."""
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be in [0, 1]")
    if total <= 0 or not buckets:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return buckets[-1][0]
