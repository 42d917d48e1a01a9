"""Paper trading: the backtest node on wall-clock time, fed market data as it "arrives", fills simulated.

A :class:`PaperSession` builds the same :class:`~tradeloop.runtime.backtest.BacktestEngine` as a
backtest (OMS, risk, portfolio, simulated venues and their latencies) but on a
:class:`~tradeloop.core.clock.LiveClock`, so timers, venue latencies and request deadlines run on
the asyncio loop in real time. Market data comes from a :data:`MarketFeed`: an async iterator of
``(ts_recv, item)`` in wall-clock nanoseconds: the configured market (the synthetic market, or
recordings) replayed at ``speed`` x real time by :class:`PacedReplay`, or a venue's live public
market data (``venue_feed=``, a :class:`~tradeloop.runtime.venue_feed.VenueFeed`: the venue's
instruments and book rules, and a resync whenever the book manager finds a book invalid).

While it runs, the session measures event-loop lag, keeps :class:`~tradeloop.ops.metrics.EngineMetrics`
up to date and, with :class:`~tradeloop.ops.admin.AdminSettings`, serves the admin API and
dashboard. It ends after ``duration_s``, when the feed ends, or on SIGINT/SIGTERM: the strategy's
``on_stop`` runs, in-flight replies are let in, the journal is flushed and a summary is returned.
A paper journal records a live run; unlike a backtest it is not reproducible byte for byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from functools import partial
from typing import Any, Final

import msgspec
from rich.console import Console

from tradeloop.coordination.mirror import StateMirror
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.core.config import ConfigError
from tradeloop.core.logging import get_logger
from tradeloop.data.recording import LineIssue
from tradeloop.model.data import BookStatus, MarketData
from tradeloop.model.enums import OrderStatus
from tradeloop.model.instrument import Instrument
from tradeloop.ops.admin import AdminServer, AdminSettings, EngineAdmin
from tradeloop.ops.metrics import EngineMetrics
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, VenueSection
from tradeloop.runtime.control import AuditSink
from tradeloop.runtime.durable import keep_journal, open_session_journal, reconcile, stop_journal_timers
from tradeloop.runtime.results import RunSummary
from tradeloop.runtime.runner import BacktestRequest, MarketSource, build_summary, open_market
from tradeloop.runtime.session_tasks import install_stop_signals, refresh_metrics, watch_loop_lag
from tradeloop.runtime.shared_state import start_mirror
from tradeloop.runtime.venue_feed import VenueFeed, check_valuation, default_balances
from tradeloop.trading.reconcile import ReconcileReport
from tradeloop.trading.recovery import RecoveredState

__all__ = ["MarketFeed", "PacedReplay", "PaperSession", "restamp"]

log = get_logger("tradeloop.paper")

MarketFeed = AsyncIterator[tuple[int, MarketData]]
"""Market data as it arrives: ``(ts_recv, item)``, ``ts_recv`` in wall-clock ns, in order."""

_IN_FLIGHT: Final = frozenset(
    {OrderStatus.INITIALIZED, OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_AMEND}
)
_MAX_SETTLE_S: Final = 5.0


def restamp(item: MarketData, ts_recv: int, ts_event: int) -> MarketData:
    """``item`` with new receive and event times (a ``BookStatus`` gets ``ts_recv``)."""
    if isinstance(item, BookStatus):
        return msgspec.structs.replace(item, ts=ts_recv)
    return msgspec.structs.replace(item, ts_recv=ts_recv, ts_event=ts_event)


def with_recovered_balances(config: BacktestConfig, recovered: RecoveredState) -> BacktestConfig:
    """``config`` with each simulated venue's balances set to the recovered portfolio's."""
    by_venue: dict[str, dict[str, str]] = {}
    for (venue, ccy), amount in sorted(recovered.portfolio.balances.items()):
        by_venue.setdefault(venue, {})[ccy] = fixed.to_str(amount)
    venues = dict(config.venues)
    for venue, balances in by_venue.items():
        venues[venue] = msgspec.structs.replace(config.venue(venue), balances=balances)
    return msgspec.structs.replace(config, venues=venues)


def with_default_accounts(config: BacktestConfig, instruments: list[Instrument]) -> BacktestConfig:
    """``config`` with a simulated account for every venue of ``instruments`` it does not configure
    (:func:`~tradeloop.runtime.venue_feed.default_balances` of that venue's instruments)."""
    venues = dict(config.venues)
    for venue in sorted({i.id.venue for i in instruments}):
        if venue not in venues:
            venues[venue] = VenueSection(balances=default_balances(i for i in instruments if i.id.venue == venue))
    return msgspec.structs.replace(config, venues=venues)


class PacedReplay:
    """Replays ``(ts_recv, item)`` pairs in real time (``speed`` x), restamped to the wall clock.

    The first item is due at once; each next one when ``(ts_recv - first ts_recv) / speed`` has
    passed. An item is stamped with the wall time it is delivered at (plus ``offset_ns``) and keeps
    its event-to-receive latency (divided by ``speed``). When the consumer falls behind, items are
    delivered without waiting, but control goes back to the loop every ``yield_every`` items so the
    rest of the process (timers, the admin API) keeps running. :meth:`shift` moves the schedule
    (after a pause).
    """

    def __init__(
        self,
        items: Iterable[tuple[int, MarketData]],
        *,
        speed: float = 1.0,
        offset_ns: int = 0,
        now_ns: Callable[[], int] = time.time_ns,
        yield_every: int = 64,
    ) -> None:
        if not speed > 0:
            raise ConfigError(f"speed must be positive, got {speed}")
        self._items: Iterator[tuple[int, MarketData]] = iter(items)
        self._speed = speed
        self._offset = offset_ns
        self._now = now_ns
        self._yield_every = max(yield_every, 1)
        self._origin: tuple[int, int] | None = None  # (first source ts, its wall time)
        self.delivered = 0

    def shift(self, ns: int) -> None:
        """Delay every item not yet delivered by ``ns``."""
        if self._origin is not None:
            self._origin = (self._origin[0], self._origin[1] + ns)

    def due_ns(self, source_ts: int) -> int:
        """Wall time at which an item stamped ``source_ts`` is due."""
        if self._origin is None:
            self._origin = (source_ts, self._now())
        first, wall = self._origin
        return wall + int((source_ts - first) / self._speed)

    def __aiter__(self) -> PacedReplay:
        return self

    async def __anext__(self) -> tuple[int, MarketData]:
        try:
            ts_recv, item = next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None
        due = self.due_ns(ts_recv)
        now = self._now()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
            now = self._now()
        elif self.delivered % self._yield_every == 0:
            await asyncio.sleep(0)
        self.delivered += 1
        arrived = max(now, due) + self._offset
        event_latency = ts_recv - item.ts if isinstance(item, BookStatus) else ts_recv - item.ts_event
        return arrived, restamp(item, arrived, arrived - int(max(event_latency, 0) / self._speed))


class PaperSession:
    """One paper trading session; ``await run()`` runs it to the end and returns its summary.

    ``config`` is the same TOML config as a backtest (venues, risk, strategy, synthetic market or
    recordings). ``duration_s=None`` runs until the market data ends or a signal arrives. ``feed``
    replaces the configured market data (its items must use the configured instruments).
    ``venue_feed`` trades the venue's live market data instead: its instruments and book rules
    replace the configured market's; fills stay simulated.
    ``audit`` receives the operator's kill/resume entries (default: the config's ``audit.path``).
    """

    def __init__(
        self,
        config: BacktestConfig,
        *,
        speed: float = 1.0,
        duration_s: float | None = None,
        admin: AdminSettings | None = None,
        strategy_spec: str | None = None,
        feed: MarketFeed | None = None,
        venue_feed: VenueFeed | None = None,
        audit: AuditSink | None = None,
        handle_signals: bool = True,
        loop_lag_interval_s: float = 0.1,
        console: Console | None = None,
    ) -> None:
        if not speed > 0:
            raise ConfigError(f"speed must be positive, got {speed}")
        if duration_s is not None and not duration_s > 0:
            raise ConfigError(f"duration must be positive, got {duration_s}")
        self.config = config
        self.speed = speed
        self.duration_s = duration_s
        self.admin_settings = admin
        self.strategy_spec = strategy_spec
        self.handle_signals = handle_signals
        self.loop_lag_interval_s = loop_lag_interval_s
        self.console = console or Console(stderr=True, quiet=True)
        self.issues: list[LineIssue] = []
        self.venue_feed = venue_feed
        rules = venue_feed.book_rules() if venue_feed is not None else None
        if venue_feed is not None:
            if feed is not None:
                raise ConfigError("give a feed or a venue feed, not both")
            check_valuation(config.valuation, venue_feed.instruments)
            config = with_default_accounts(config, venue_feed.instruments)
            self.config = config
            self.source: MarketSource = MarketSource(
                iter(()),
                venue_feed.instruments,
                rules.sequence_rules if rules else {},
                time.time_ns(),
                None,
                venue_feed.description,
            )
        else:
            self.source = open_market(config, self.issues)
        journal, self.recovered = open_session_journal(config.journal, config.valuation)
        if self.recovered is not None:
            # The simulated venues went down with the node: they restart on the recovered balances.
            config = with_recovered_balances(config, self.recovered)
            self.config = config
        self.reconciled: ReconcileReport | None = None
        self.mirror: StateMirror | None = None
        self.clock = LiveClock()
        self.metrics = EngineMetrics()
        try:
            self.engine = BacktestEngine(
                config,
                self.source.instruments,
                self.clock.now_ns(),
                sequence_rules=self.source.sequence_rules,
                journal=journal,
                strategy_spec=strategy_spec,
                clock=self.clock,
                metrics=self.metrics,
                audit=audit,
                checksum_fns=rules.checksum_fns if rules else None,
                depth_limits=rules.depth_limits if rules else None,
            )
            if self.recovered is not None:
                self.engine.restore(self.recovered)
        except BaseException:
            journal.close()
            raise
        self._feed_latency = config.feed_latency_us * 1000
        self.replay: PacedReplay | None = None
        if venue_feed is not None:
            venue_feed.watch(self.engine.bus)
            feed = venue_feed
        if feed is None:
            self.replay = PacedReplay(self.source.items, speed=speed, offset_ns=self._feed_latency)
            feed = self.replay
        self._feed: MarketFeed = feed
        self.connected: dict[str, bool] = dict.fromkeys(self.engine.venues, False)
        """Venue -> whether its market data is flowing (shown by the admin API)."""
        self.admin: AdminServer | None = None
        if admin is not None:
            self.admin = AdminServer(EngineAdmin(self.engine, self.metrics, "paper", self.connected), admin)
        self.items = 0
        self.stop_reason = ""
        self._stop = asyncio.Event()
        self._running = asyncio.Event()
        self._running.set()
        self._error: BaseException | None = None
        self._started = False

    # -- control ------------------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """End the session (as a signal does)."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def pause_feed(self) -> None:
        """Stop delivering market data (the rest keeps running); for tests and debugging."""
        self._running.clear()

    def resume_feed(self) -> None:
        """Deliver market data again, continuing the schedule from where it paused."""
        self._running.set()

    @property
    def admin_url(self) -> str | None:
        """Base URL of the admin API while it runs."""
        return self.admin.url if self.admin is not None and self.admin.port is not None else None

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        """Run the session to its end; returns the same summary a backtest prints."""
        if self._started:
            raise RuntimeError("a PaperSession runs once")
        self._started = True
        loop = asyncio.get_running_loop()
        engine = self.engine
        started_wall = time.perf_counter()
        engine.stats.first_ts = self.clock.now_ns()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_exception)
        signals = install_stop_signals(loop, self.stop) if self.handle_signals else []
        helpers: list[asyncio.Task[None]] = []
        feed_task: asyncio.Task[None] | None = None
        try:
            if self.admin is not None:
                await self.admin.start()
                self.console.print(f"admin API: {self.admin.url} (dashboard: {self.admin.url}/#token=<your token>)")
            if self.venue_feed is not None:
                await self.venue_feed.start()
            helpers.append(
                asyncio.create_task(watch_loop_lag(self.metrics, self.loop_lag_interval_s), name="paper.loop_lag")
            )
            helpers.append(asyncio.create_task(refresh_metrics(self.metrics), name="paper.metrics"))
            if self.recovered is not None:
                # The restarted simulated venues know none of the recovered orders: each is resolved
                # (canceled, or rejected if never accepted) before the strategy starts.
                self.reconciled = await reconcile(engine, self.recovered, {}, timeout_s=15.0, console=self.console)
            keep_journal(engine, self.clock, self.config.journal)
            self.mirror = await start_mirror(engine, self.config.redis)
            engine.strategy.on_start()
            interval = self.config.report.sample_interval_ms * 1_000_000
            self.clock.set_timer("report.sample", interval, engine.record_sample)
            feed_task = asyncio.create_task(self._consume_feed(), name="paper.feed")
            stop_task = asyncio.create_task(self._stop.wait(), name="paper.stop")
            done, _ = await asyncio.wait({feed_task, stop_task}, timeout=self.duration_s, return_when="FIRST_COMPLETED")
            stop_task.cancel()
            if feed_task.done():
                failure = None if feed_task.cancelled() else feed_task.exception()
                if failure is not None and self._error is None:
                    self._error = failure
                    self.stop("error: " + type(failure).__name__)
            else:
                await self._cancel(feed_task)
            if not self.stop_reason:
                self.stop_reason = "market data ended" if feed_task in done else "duration reached"
            self.connected.update(dict.fromkeys(self.connected, False))
            engine.breakers.stop()  # the session is ending: quiet market data is not a stale feed
            if self._error is None:
                engine.strategy.on_stop()
                await self._settle()
            self.clock.cancel_timer("report.sample")
            stop_journal_timers(self.clock)
            engine.record_sample("report.sample", self.clock.now_ns())
            engine.save_snapshot()
        finally:
            for task in helpers:
                await self._cancel(task)
            if feed_task is not None:
                await self._cancel(feed_task)
            if self.venue_feed is not None:
                await self.venue_feed.stop()
            if self.admin is not None:
                await self.admin.stop()
            if self.mirror is not None:
                await self.mirror.stop()
            self.clock.cancel_all()
            for sig in signals:
                loop.remove_signal_handler(sig)
            loop.set_exception_handler(previous_handler)
        engine.stats.events = self.items
        engine.stats.last_ts = self.clock.now_ns()
        engine.stats.wall_seconds = time.perf_counter() - started_wall
        if self._error is not None:
            raise self._error
        log.info("paper session ended", reason=self.stop_reason, items=self.items)
        return build_summary(
            engine,
            self.config,
            BacktestRequest(strategy=self.strategy_spec),
            dataclasses.replace(self.source, description=f"paper, {self.speed:g}x: {self.source.description}"),
        )

    async def _consume_feed(self) -> None:
        engine = self.engine
        venues = engine.venues
        clock = self.clock
        latency = self._feed_latency
        feed = self._feed
        self.connected.update(dict.fromkeys(self.connected, True))
        while True:
            if not self._running.is_set():
                paused = time.time_ns()
                await self._running.wait()
                if self.replay is not None:
                    self.replay.shift(time.time_ns() - paused)
            try:
                ts_recv, item = await anext(feed)
            except StopAsyncIteration:
                return
            venue = venues.get(item.instrument_id.venue)
            if venue is not None:
                venue.on_market_data(item)
            if latency:
                clock.call_at(ts_recv, partial(engine.on_market_data, item))
            else:
                engine.on_market_data(item)
            self.items += 1

    async def _settle(self) -> None:
        """Wait (a bounded time) for replies to requests still in flight, e.g. the final cancels."""
        latencies = [self.config.venue(v).sim for v in self.engine.venues]
        round_trip = max((s.order_latency_ns + s.response_latency_ns for s in latencies), default=0) / 1e9
        deadline = time.monotonic() + min(4 * round_trip + 0.25, _MAX_SETTLE_S)
        while time.monotonic() < deadline:
            if not any(o.status in _IN_FLIGHT for o in self.engine.oms.open_orders()):
                return
            await asyncio.sleep(0.005)
        log.warning("paper session ended with requests still unanswered")

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, Exception) and self._error is None:
            # An engine callback (venue reply, timer) failed: stop rather than trade on broken state.
            self._error = exc
            self.stop("error: " + type(exc).__name__)
        loop.default_exception_handler(context)

    @staticmethod
    async def _cancel(task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` and wait for it; its outcome (result or error) is dropped."""
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
