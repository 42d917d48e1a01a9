"""Live trading: the node of a backtest on the wall clock, real orders through each venue's execution
client, market data from each venue's market-data client.

A :class:`LiveSession` runs one node from a :class:`~tradeloop.runtime.live_config.LiveConfig`:

1. **Keys.** Every ``[live.venues.<v>]`` must have ``credentials`` (secret references); they are
   resolved when the session is built, so a node without a usable key refuses to start
   (:class:`~tradeloop.core.config.ConfigError`) before anything connects.
2. **Execution clients first.** Each venue's client is built (``CONNECTOR.execution``) and started
   (private stream login, listen key, ...); then the node asks it for the account's balances and
   open orders. The balances are the portfolio's starting balances (journaled as the venue's
   ``AccountSnapshot``); open orders already at the venue are refused, canceled or ignored as
   ``live.existing_orders`` says.
3. **The engine** is the backtest node (OMS, risk, execution engine, portfolio, strategy) on a
   :class:`~tradeloop.core.clock.LiveClock` with ``execution_clients`` for every venue: no simulated
   venue is involved. Book rules (sequence rule, checksum, depth limit) come from the market-data
   clients.
4. **Market data** goes from each client's callback straight into the engine (no queue), and an
   invalid book found by the book manager asks that client to resync it.
5. **The end** (``duration_s``, SIGINT/SIGTERM, :meth:`LiveSession.stop`, or an engine error): market
   data stops reaching the engine (so the strategy cannot quote again), the strategy's ``on_stop``
   runs, then one node-wide cancel-all goes to every venue (venue-native, so
   orders the node does not know are canceled too) unless ``keep_orders``; the node waits for the
   cancels to be confirmed, then asks every venue for its open orders, canceling again while some
   are left (a cancel-all the venue's rate limit held back) until ``stop_timeout_s``
   (``orders_left``), and stops market data and execution clients. With ``keep_orders`` neither ``on_stop`` nor the
   cancel-all runs, so working orders stay at the venues.

Secrets never reach logs or errors: the credentials object shows only a fingerprint, and every
resolved value is registered with the log redactor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, cast

import msgspec
from rich.console import Console

from tradeloop.coordination.mirror import StateMirror
from tradeloop.coordination.shared_budget import SharedBudgetFactory
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.core.config import ConfigError, decode_config
from tradeloop.core.logging import get_logger
from tradeloop.model import topics
from tradeloop.model.commands import CancelAllOrders
from tradeloop.model.data import MarketData
from tradeloop.model.enums import OrderStatus
from tradeloop.model.events import AccountSnapshot, Event, OrderStatusReport
from tradeloop.model.instrument import Instrument
from tradeloop.ops.admin import AdminServer, AdminSettings, EngineAdmin
from tradeloop.ops.metrics import EngineMetrics
from tradeloop.persistence.journal import Journal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.durable import keep_journal, open_session_journal, reconcile, stop_journal_timers
from tradeloop.runtime.live_config import LiveConfig, check_live_venues
from tradeloop.runtime.results import RunSummary
from tradeloop.runtime.runner import BacktestRequest, MarketSource, build_summary
from tradeloop.runtime.session_tasks import install_stop_signals, refresh_metrics, watch_loop_lag
from tradeloop.runtime.shared_state import SharedBudgetUnavailable, open_shared_budgets, start_mirror
from tradeloop.runtime.venue_feed import BookRules, VenueMarketData, check_valuation, connector_urls
from tradeloop.security.credentials import Credentials
from tradeloop.strategies.loader import load_strategy_class
from tradeloop.trading.execution import SendGate
from tradeloop.trading.reconcile import ReconcileReport
from tradeloop.trading.recovery import RecoveredState
from tradeloop.venues.base import EmitEvent, ExecutionClient
from tradeloop.venues.connector import ConnectorUrls, VenueConnector

__all__ = ["LiveExecutionClient", "LiveSession", "LiveStartError", "VenueLink"]

log = get_logger("tradeloop.live")

_RECANCEL_S: Final = 1.0
"""Pause between a repeated cancel-all and the next look at the venue's open orders."""
_IN_FLIGHT: Final = frozenset(
    {OrderStatus.INITIALIZED, OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_AMEND}
)


class LiveExecutionClient(ExecutionClient, Protocol):
    """What a venue's execution client offers beyond :class:`ExecutionClient` (the issue-4 contract)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def fetch_open_orders(self) -> list[OrderStatusReport]: ...

    async def fetch_balances(self) -> AccountSnapshot: ...


class LiveStartError(RuntimeError):
    """A venue could not be connected, logged in to or read at start (the message names the venue)."""


class _Forward:
    """The execution client's ``emit``: forwards to the engine once it exists.

    The client is built and started before the engine (the engine's starting balances come from it).
    Whatever it reports before the engine is bound is dropped (counted): account snapshots are
    superseded by the balances the node fetches, and order events concern orders the node never sent
    (cancels of orders left from before).
    """

    def __init__(self) -> None:
        self._target: EmitEvent | None = None
        self.dropped = 0

    def __call__(self, event: Event) -> None:
        target = self._target
        if target is not None:
            target(event)
        else:
            self.dropped += 1

    def bind(self, target: EmitEvent) -> None:
        self._target = target


@dataclass
class VenueLink:
    """One venue of the node: its connector, key, clients and what it reported at start."""

    venue: str
    connector: VenueConnector
    instruments: list[Instrument]
    credentials: Credentials
    urls: ConnectorUrls
    market: VenueMarketData
    emit: _Forward = field(default_factory=_Forward)
    client: LiveExecutionClient | None = None
    started: bool = False
    balances: AccountSnapshot | None = None
    open_at_start: list[OrderStatusReport] = field(default_factory=list)


class LiveSession:
    """One live node; ``await run()`` runs it to its end and returns the run summary.

    ``endpoint`` points a single-venue node at a local simulator (``http://127.0.0.1:PORT``);
    ``keep_orders`` overrides ``live.keep_orders``; the journal is the config's ``journal.path``
    (in memory when unset). Keys are resolved here: a missing one is a :class:`ConfigError` before
    anything connects.
    """

    def __init__(
        self,
        config: LiveConfig,
        *,
        endpoint: str | None = None,
        keep_orders: bool | None = None,
        duration_s: float | None = None,
        admin: AdminSettings | None = None,
        strategy_spec: str | None = None,
        handle_signals: bool = True,
        loop_lag_interval_s: float = 0.1,
        console: Console | None = None,
        send_gate: SendGate | None = None,
        id_epoch: int | None = None,
        reconcile_only: bool = False,
        journal_claim: int | None = None,
    ) -> None:
        if duration_s is not None and not duration_s > 0:
            raise ConfigError(f"duration must be positive, got {duration_s}")
        check_live_venues(config, endpoint)
        live = config.live
        self.config = config
        self.keep_orders = live.keep_orders if keep_orders is None else keep_orders
        self.duration_s = duration_s
        self.strategy_spec = strategy_spec
        self.handle_signals = handle_signals
        self.loop_lag_interval_s = loop_lag_interval_s
        self.console = console or Console(stderr=True, quiet=True)
        self.admin_settings = admin
        self.send_gate = send_gate
        self.id_epoch = id_epoch
        self.reconcile_only = reconcile_only
        self.journal_claim = journal_claim
        """A failover node's fencing token: the journal refuses the writes of older holders from the start."""
        """Recover and reconcile with the venues, write a snapshot and end: no market data, no strategy,
        every order left as it is."""
        if reconcile_only:
            self.keep_orders = True
        self.journal: Journal | None = None
        self.recovered: RecoveredState | None = None
        """The state loaded from a journal that already had records (``None`` for a fresh journal)."""
        self.reconciled: ReconcileReport | None = None
        self.budgets: SharedBudgetFactory | None = None
        self.mirror: StateMirror | None = None
        # A bad strategy name or parameters fail here, before anything connects to a venue.
        strategy_cls = load_strategy_class(strategy_spec or config.strategy.name)
        decode_config(dict(config.strategy.params), strategy_cls.config_type)
        self.clock = LiveClock()
        self.links: dict[str, VenueLink] = {}
        for venue in sorted(live.venues):
            section = live.venues[venue]
            if section.credentials is None:
                raise ConfigError(
                    f"live.venues.{venue}: no credentials; add credentials = "
                    '{api_key = "env:NAME", secret = "env:NAME"} (env:, file: or keystore: references)'
                )
            market = VenueMarketData(venue, section.symbols, endpoint=endpoint or section.endpoint, clock=self.clock)
            self.links[venue] = VenueLink(
                venue=venue,
                connector=market.connector,
                instruments=market.instruments,
                credentials=section.credentials.resolve(venue),
                urls=connector_urls(market.connector, endpoint or section.endpoint),
                market=market,
            )
        check_valuation(config.valuation, [i for link in self.links.values() for i in link.instruments])
        self.engine: BacktestEngine | None = None
        self.metrics = EngineMetrics()
        self.admin: AdminServer | None = None
        self.connected: dict[str, bool] = dict.fromkeys(self.links, False)
        self.orders_left: dict[str, int] = {}
        """Open orders each venue still reported after the final cancel-all (empty with ``keep_orders``)."""
        self.items = 0
        self.stop_reason = ""
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        self._started = False
        self._feeding = True

    # -- control ------------------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """End the session (as a signal does)."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    @property
    def admin_url(self) -> str | None:
        return self.admin.url if self.admin is not None and self.admin.port is not None else None

    def describe_keys(self) -> list[str]:
        """One line per venue: key name and fingerprint (never a secret)."""
        return [
            f"{link.venue}: key {link.credentials.name!r} (fingerprint {link.credentials.fingerprint})"
            for link in self.links.values()
        ]

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        if self._started:
            raise RuntimeError("a LiveSession runs once")
        self._started = True
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_exception)
        signals = install_stop_signals(loop, self.stop) if self.handle_signals else []
        helpers: list[asyncio.Task[None]] = []
        started_wall = time.perf_counter()
        try:
            self.journal, self.recovered = open_session_journal(
                self.config.journal, self.config.valuation, claim=self.journal_claim
            )
            try:
                self.budgets = await open_shared_budgets(self.config.redis)
            except SharedBudgetUnavailable as exc:
                raise LiveStartError(f"shared rate budgets: {exc}") from None
            await self._start_execution()
            engine = self._build_engine()
            if self.recovered is not None:
                accounts = {link.venue: link.client for link in self.links.values() if link.client is not None}
                self.reconciled = await reconcile(
                    engine,
                    self.recovered,
                    accounts,
                    timeout_s=self.config.live.start_timeout_s,
                    console=self.console,
                )
            keep_journal(engine, self.clock, self.config.journal)
            self.mirror = await start_mirror(engine, self.config.redis)
            if self.reconcile_only:
                self.stop("reconciled")
            else:
                await self._trade(engine, helpers)
            await self._shutdown(engine)
        finally:
            for task in helpers:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self._close_all()
            await self._close_shared()
            if self.engine is not None and self.engine.intent_barrier is not None:
                self.engine.intent_barrier.close()
            self.clock.cancel_all()
            for sig in signals:
                loop.remove_signal_handler(sig)
            loop.set_exception_handler(previous_handler)
        engine.stats.events = self.items
        engine.stats.last_ts = self.clock.now_ns()
        engine.stats.wall_seconds = time.perf_counter() - started_wall
        if self._error is not None:
            raise self._error
        log.info("live session ended", reason=self.stop_reason, items=self.items, orders_left=self.orders_left)
        description = "live: " + "; ".join(link.market.description for link in self.links.values())
        return build_summary(
            engine,
            self.config,
            BacktestRequest(strategy=self.strategy_spec),
            MarketSource(iter(()), list(engine.instruments.values()), {}, engine.stats.first_ts, None, description),
        )

    async def _trade(self, engine: BacktestEngine, helpers: list[asyncio.Task[None]]) -> None:
        """Market data in, the strategy on, until the duration, a signal or :meth:`stop`."""
        if self.admin_settings is not None:
            self.admin = AdminServer(EngineAdmin(engine, self.metrics, "live", self.connected), self.admin_settings)
            await self.admin.start()
            self.console.print(f"admin API: {self.admin.url}")
        await self._start_market_data(engine)
        helpers.append(
            asyncio.create_task(watch_loop_lag(self.metrics, self.loop_lag_interval_s), name="live.loop_lag")
        )
        helpers.append(asyncio.create_task(refresh_metrics(self.metrics), name="live.metrics"))
        engine.stats.first_ts = self.clock.now_ns()
        engine.strategy.on_start()
        interval = self.config.report.sample_interval_ms * 1_000_000
        self.clock.set_timer("report.sample", interval, engine.record_sample)
        try:
            await asyncio.wait_for(self._stop.wait(), self.duration_s)
        except TimeoutError:
            self.stop("duration reached")

    async def _start_execution(self) -> None:
        timeout = self.config.live.start_timeout_s
        for link in self.links.values():
            section = self.config.live.venues[link.venue]
            options: dict[str, Any] = {} if section.order_entry is None else {"order_entry": section.order_entry}
            if self.budgets is not None:
                options["budget"] = self.budgets.for_venue(link.venue, link.credentials)
            try:
                client = link.connector.execution(
                    link.credentials,
                    {i.id: i for i in link.instruments},
                    self.clock,
                    link.emit,
                    link.urls,
                    rest_config=section.rest,
                    **options,
                )
            except ValueError as exc:
                raise ConfigError(f"live.venues.{link.venue}: {exc}") from None
            for method in ("start", "stop", "fetch_open_orders", "fetch_balances"):
                if not callable(getattr(client, method, None)):
                    raise LiveStartError(f"{link.venue}: the execution client has no {method}()")
            link.client = cast(LiveExecutionClient, client)
            link.started = True  # from here on it is stopped on the way out, even if starting fails
            try:
                await asyncio.wait_for(link.client.start(), timeout)
                link.balances = await asyncio.wait_for(link.client.fetch_balances(), timeout)
                link.open_at_start = await asyncio.wait_for(link.client.fetch_open_orders(), timeout)
            except TimeoutError:
                raise LiveStartError(f"{link.venue}: no answer within {timeout:g}s at start") from None
            except LiveStartError:
                raise
            except Exception as exc:
                raise LiveStartError(f"{link.venue}: could not start trading: {type(exc).__name__}: {exc}") from None
            await self._existing_orders(link)

    async def _existing_orders(self, link: VenueLink) -> None:
        ours = {i.id for i in link.instruments}
        recovered = self.recovered.orders if self.recovered is not None else {}
        # The node's own orders from before a restart are reconciled, not treated as strangers.
        found = [r for r in link.open_at_start if r.instrument_id in ours and r.client_order_id not in recovered]
        if not found:
            return
        policy = self.config.live.existing_orders
        if policy == "ignore":
            log.warning("open orders at the venue are not the node's; ignored", venue=link.venue, count=len(found))
            return
        if policy == "refuse":
            raise LiveStartError(
                f"{link.venue}: {len(found)} open order(s) already at the venue; cancel them, or set "
                'live.existing_orders = "cancel" (or "ignore")'
            )
        assert link.client is not None
        for iid in sorted({r.instrument_id for r in found}):
            link.client.cancel_all(
                CancelAllOrders(
                    ts=self.clock.now_ns(), strategy_id="live", instrument_id=iid, reason="left from before"
                )
            )
        deadline = time.monotonic() + self.config.live.start_timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            left = [
                r
                for r in await link.client.fetch_open_orders()
                if r.instrument_id in ours and r.client_order_id not in recovered
            ]
            if not left:
                link.balances = await link.client.fetch_balances()
                log.info("canceled open orders left from before", venue=link.venue, count=len(found))
                return
        raise LiveStartError(f"{link.venue}: open orders from before were not canceled within the start timeout")

    def _build_engine(self) -> BacktestEngine:
        rules = BookRules()
        venues = dict(self.config.venues)
        snapshots: list[AccountSnapshot] = []
        for link in self.links.values():
            link.market.add_rules(rules)
            snapshot = link.balances
            assert snapshot is not None
            snapshots.append(snapshot)
            section = self.config.venue(link.venue)
            venues[link.venue] = msgspec.structs.replace(
                section, balances={b.currency: fixed.to_str(b.total) for b in sorted(snapshot.balances, key=_ccy)}
            )
        config = msgspec.structs.replace(self.config, venues=venues)
        journal = self.journal
        assert journal is not None
        factories: dict[str, Callable[[EmitEvent], ExecutionClient]] = {
            link.venue: _bound(link) for link in self.links.values()
        }
        engine = BacktestEngine(
            config,
            [i for link in self.links.values() for i in link.instruments],
            self.clock.now_ns(),
            sequence_rules=rules.sequence_rules,
            journal=journal,
            strategy_spec=self.strategy_spec,
            clock=self.clock,
            metrics=self.metrics,
            execution_clients=factories,
            checksum_fns=rules.checksum_fns,
            depth_limits=rules.depth_limits,
            send_gate=self.send_gate,
            id_epoch=self.id_epoch,
        )
        for snapshot in snapshots:
            engine.journal.append(msgspec.structs.replace(snapshot, ts=engine.stats.first_ts))
        if self.recovered is not None:
            engine.restore(self.recovered)
        self.engine = engine
        return engine

    async def _start_market_data(self, engine: BacktestEngine) -> None:
        on_market_data = engine.on_market_data

        def sink(item: MarketData) -> None:
            if not self._feeding:
                return
            self.items += 1
            try:
                on_market_data(item)
            except Exception as exc:  # a strategy or engine bug: stop rather than trade on broken state
                self._fail(exc)

        for link in self.links.values():
            link.market.set_sink(sink)
            link.market.watch(engine.bus)
        await asyncio.gather(*(link.market.start(self.config.live.start_timeout_s) for link in self.links.values()))
        self.connected.update(dict.fromkeys(self.connected, True))

    async def _shutdown(self, engine: BacktestEngine) -> None:
        # From here on market data no longer reaches the engine: the strategy must not quote again
        # while the node cancels, and the books stay as they were (the clients stop at the very end).
        self._feeding = False
        engine.breakers.stop()
        if not self.keep_orders:
            if self._error is None:
                try:
                    engine.strategy.on_stop()
                except Exception as exc:
                    self._fail(exc)
            engine.bus.publish(
                topics.COMMANDS, CancelAllOrders(ts=self.clock.now_ns(), strategy_id="live", reason="node stopping")
            )
        await self._settle(engine)
        if not self.keep_orders:
            for link in self.links.values():
                await self._confirm_none_left(engine, link)
        self.clock.cancel_timer("report.sample")
        stop_journal_timers(self.clock)
        engine.record_sample("report.sample", self.clock.now_ns())
        engine.save_snapshot()

    async def _confirm_none_left(self, engine: BacktestEngine, link: VenueLink) -> None:
        """Ask the venue for its open orders; while some are left (a cancel-all the venue's rate limit
        held back, an order that arrived late), cancel that venue again, until ``stop_timeout_s``."""
        if link.client is None:
            return
        timeout = self.config.live.stop_timeout_s
        deadline = time.monotonic() + timeout
        while True:
            try:
                left = await asyncio.wait_for(link.client.fetch_open_orders(), timeout)
            except Exception as exc:
                log.error("could not confirm that no order is left", venue=link.venue, error=type(exc).__name__)
                return
            self.orders_left[link.venue] = len(left)
            if not left or time.monotonic() >= deadline:
                break
            log.warning("orders still open after the cancel-all; canceling again", venue=link.venue, count=len(left))
            engine.bus.publish(
                topics.COMMANDS,
                CancelAllOrders(ts=self.clock.now_ns(), strategy_id="live", venue=link.venue, reason="node stopping"),
            )
            await asyncio.sleep(min(_RECANCEL_S, max(deadline - time.monotonic(), 0.0)))
        if left:
            log.error("orders still open at the venue after the final cancel-all", venue=link.venue, count=len(left))

    async def _settle(self, engine: BacktestEngine) -> None:
        """Wait (bounded) until no request is in flight and, unless orders are kept, none is open."""
        deadline = time.monotonic() + self.config.live.stop_timeout_s
        while time.monotonic() < deadline:
            orders = engine.oms.open_orders()
            if not any(o.status in _IN_FLIGHT for o in orders) and (self.keep_orders or not orders):
                return
            await asyncio.sleep(0.01)
        log.warning("live session ended with requests still unanswered")

    async def _close_all(self) -> None:
        for link in self.links.values():
            try:
                await link.market.stop()
            except Exception as exc:
                log.error("market data did not stop cleanly", venue=link.venue, error=type(exc).__name__)
            if link.client is not None and link.started:
                try:
                    await asyncio.wait_for(link.client.stop(), self.config.live.stop_timeout_s)
                except Exception as exc:
                    log.error("execution client did not stop cleanly", venue=link.venue, error=type(exc).__name__)
        self.connected.update(dict.fromkeys(self.connected, False))
        if self.admin is not None:
            await self.admin.stop()

    async def _close_shared(self) -> None:
        """Write the mirror's final state and hand back unspent shared rate budget (clients are stopped)."""
        if self.mirror is not None:
            await self.mirror.stop()
        if self.budgets is not None:
            await self.budgets.aclose()

    # -- helpers --------------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            self.stop("error: " + type(exc).__name__)

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, Exception):
            self._fail(exc)
        loop.default_exception_handler(context)


def _ccy(balance: Any) -> str:
    return str(balance.currency)


def _bound(link: VenueLink) -> Callable[[EmitEvent], ExecutionClient]:
    """The engine's factory for ``link``'s (already started) client: binds the engine's callback."""

    def factory(emit: EmitEvent) -> ExecutionClient:
        assert link.client is not None
        link.emit.bind(emit)
        return link.client

    return factory
