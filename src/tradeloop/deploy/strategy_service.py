"""The strategy service: books from NATS, the strategy plugin, commands to JetStream, and a view of
orders and positions kept from the execution service.

The strategy runs on the same :class:`~tradeloop.strategies.base.StrategyContext` as in one process,
backed here by:

* books: the engine's :class:`~tradeloop.data.book_manager.BookManager` fed by
  :class:`~tradeloop.deploy.market_feed.NatsMarketData` (gaps resynced from the market-data service);
* orders: an :class:`~tradeloop.deploy.order_mirror.OrderMirror` of the OMS;
* positions and balances: a :class:`~tradeloop.trading.portfolio.Portfolio` that starts as the execution
  node's (``tl.<d>.ctl.state``) and takes every fill the OMS applied, as the node's portfolio does.

Order events come from the event stream through a durable consumer; each carries the execution
node's origin and seq, so an event already in the state snapshot, or delivered again, is not applied
twice. Events of a newer execution node (it was restarted and recovered from its journal) make the
service take that node's state again first. Commands and strategy alerts go out on the command stream,
numbered, each retried until stored.

What differs from one process: a command's consequences reach the strategy when the OMS's events come
back, not inside the call that issued it, except for a submitted order itself, which exists (as
``INITIALIZED``, with its ``on_order``) before ``submit`` returns, as in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any, Final

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock
from tradeloop.core.config import ConfigError, decode_config
from tradeloop.core.ids import ClientOrderIdGenerator
from tradeloop.core.logging import get_logger
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.deploy.codec import (
    Progress,
    StateReply,
    StateRequest,
    decode,
    decode_event,
    encode,
    envelope_of,
    new_origin,
    origin_start_ns,
)
from tradeloop.deploy.counting import MarketCounts
from tradeloop.deploy.market_feed import NatsMarketData
from tradeloop.deploy.nats_link import DurableConsumer, NatsLink, StreamPublisher, cancel_task
from tradeloop.deploy.order_mirror import OrderMirror
from tradeloop.deploy.service import ServiceControl, serve_status
from tradeloop.model import topics
from tradeloop.model.book import OrderBook
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, SubmitOrder, TradingCommand
from tradeloop.model.data import BookStatus, MarketData, Quote, Trade
from tradeloop.model.events import (
    BalanceCorrected,
    Event,
    OrderEvent,
    OrderEventBase,
    OrderFilled,
    OrderTransitionRefused,
    StrategyAlert,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.runtime.live_config import LiveConfig, check_live_venues
from tradeloop.runtime.venue_feed import BookRules, check_valuation
from tradeloop.strategies.base import Strategy, StrategyContext
from tradeloop.strategies.loader import load_strategy_class
from tradeloop.trading.portfolio import Portfolio
from tradeloop.trading.state import restore_portfolio

__all__ = ["StrategyService", "durable_name", "strategy_id_tag"]

log = get_logger("tradeloop.deploy.strategy")

_STATE_RETRY_S: Final = 0.25
_STATE_TIMEOUT_S: Final = 2.0


class _StartAborted(Exception):
    """Stopped while waiting for the execution node at start."""


def strategy_id_tag(node_tag: str) -> str:
    """The id tag of orders a strategy service submits: the node's tag with ``s`` (so they never collide
    with ids the execution node's OMS hands out itself, e.g. for a cancel/replace)."""
    return node_tag[:3] + "s"


def durable_name(prefix: str, name: str) -> str:
    """A consumer name for ``name`` (characters a durable name cannot hold become ``_``)."""
    return prefix + "-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


class StrategyService:
    """One strategy as a service; ``await run()`` runs it until stopped (see the module docstring)."""

    def __init__(
        self,
        config: LiveConfig,
        link: NatsLink,
        *,
        endpoint: str | None = None,
        strategy_spec: str | None = None,
        duration_s: float | None = None,
        handle_signals: bool = True,
    ) -> None:
        check_live_venues(config, endpoint)
        venues = config.live.venues
        strategy_cls = load_strategy_class(strategy_spec or config.strategy.name)
        strategy_config = decode_config(dict(config.strategy.params), strategy_cls.config_type)
        self.config = config
        self.link = link
        self.control = ServiceControl("strategy", duration_s, handle_signals)
        self.origin = new_origin("strategy")
        self.clock = LiveClock()
        self.bus = MessageBus()
        self.feeds = [
            NatsMarketData(
                venue, section.symbols, link, self.origin, endpoint=endpoint or section.endpoint, clock=self.clock
            )
            for venue, section in sorted(venues.items())
        ]
        self.instruments = {i.id: i for feed in self.feeds for i in feed.instruments}
        check_valuation(config.valuation, self.instruments.values())
        rules = BookRules()
        for feed in self.feeds:
            feed.add_rules(rules)
        self.book_manager = BookManager(
            self.bus, self.clock, rules.sequence_rules, rules.checksum_fns, depth_limits=rules.depth_limits
        )
        self.hub = MarketDataHub(self.bus, self.book_manager)
        self.counts = MarketCounts(self.bus, self.book_manager)
        self.portfolio = Portfolio(self.instruments.values(), {}, valuation=config.valuation)
        self.orders = OrderMirror()
        self.ids = ClientOrderIdGenerator(strategy_id_tag(config.node_tag), time.time_ns())
        self.strategy_id = config.strategy.id
        self.ctx = StrategyContext(
            self.strategy_id,
            self.clock,
            self.bus,
            self.ids,
            self.instruments,
            self.book_manager,
            self.portfolio,
            self.orders,
            fee_rates=self._fee_rates,
        )
        self.strategy: Strategy[Any] = strategy_cls(self.strategy_id, strategy_config, self.ctx)
        self.commands = StreamPublisher(link, link.subjects.commands, self.origin)
        self.events = DurableConsumer(
            link,
            link.subjects.event_stream,
            link.subjects.events,
            durable_name("strategy", self.strategy_id),
            self._on_event_msg,
        )
        self.ready = False
        self.items = 0
        self.state_origin = ""
        self.applied: dict[str, int] = {}
        """Last event seq applied, per execution node origin."""
        self.state_loads = 0
        self._feeding = False
        self._error: BaseException | None = None
        self._wire()

    def _wire(self) -> None:
        bus = self.bus
        bus.subscribe(topics.COMMANDS, self._on_command)
        bus.subscribe(topics.ORDER_EVENTS, self._on_order_event)
        bus.subscribe(topics.BOOK, self._on_book)
        bus.subscribe(topics.BOOK_STATUS, self._on_book_status)
        bus.subscribe(topics.TRADES, self._on_trade)
        bus.subscribe(topics.QUOTES, self._on_quote)
        bus.subscribe(topics.STRATEGY_ALERTS, self._on_alert)

    def stop(self, reason: str = "stopped") -> None:
        self.control.stop(reason)

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        control = self.control
        control.install()
        subs: list[Subscription] = []
        consumer: asyncio.Task[None] | None = None
        live = self.config.live
        try:
            await self.link.connect()
            await self.link.ensure_streams()
            self.commands.start()
            subs.append(await serve_status(self.link, "strategy", self.progress))
            try:
                await self._load_state(max(2 * live.start_timeout_s, 30.0))
            except _StartAborted:
                log.warning("strategy service stopped before the execution service answered")
                return
            await self.events.subscribe()
            consumer = asyncio.get_running_loop().create_task(self.events.run(), name="strategy.events")
            consumer.add_done_callback(self._task_done)
            for feed in self.feeds:
                feed.books = self.book_manager
                feed.set_sink(self._on_market)
                feed.watch(self.bus)
            self._feeding = True
            await asyncio.gather(*(feed.start(live.start_timeout_s) for feed in self.feeds))
            self.strategy.on_start()
            self.ready = True
            log.info("strategy service running", origin=self.origin, strategy=self.strategy_id)
            await control.wait()
            await self._shutdown()
        finally:
            self.ready = False
            self._feeding = False
            self.events.stop_running()
            await cancel_task(consumer)
            await self.events.unsubscribe()
            for feed in self.feeds:
                with contextlib.suppress(Exception):
                    await feed.stop()
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            await self.commands.stop()
            await self.link.close()
            control.uninstall()
        if self._error is not None:
            raise self._error

    async def _shutdown(self) -> None:
        """No more market data; the strategy's ``on_stop`` (its final cancels); every command stored."""
        self._feeding = False
        if self._error is None:
            try:
                self.strategy.on_stop()
            except Exception as exc:
                self._fail(exc)
        if not await self.commands.flush(self.config.live.stop_timeout_s):
            log.error(
                "commands not confirmed by the stream before stopping", left=self.commands.seq - self.commands.acked
            )

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            log.error("strategy service failed", error=f"{type(exc).__name__}: {exc}")
            self.control.stop("error: " + type(exc).__name__)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())  # type: ignore[arg-type]

    # -- state from the execution node ----------------------------------------------------------

    async def _load_state(self, timeout_s: float) -> None:
        """Take the execution node's state (waiting for the node to answer, up to ``timeout_s``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        request = encode(StateRequest(strategy_id=self.strategy_id, requester=self.origin))
        while True:
            try:
                msg = await self.link.nc.request(self.link.subjects.state, request, timeout=_STATE_TIMEOUT_S)
                break
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                if self.control.stopping:
                    raise _StartAborted from None
                if loop.time() >= deadline:
                    raise ConnectionError(
                        f"the execution service of deployment {self.link.subjects.deployment} did not answer "
                        f"within {timeout_s:g}s (is it running?)"
                    ) from None
                await asyncio.sleep(_STATE_RETRY_S)
        reply = decode(msg.data, StateReply, msg.subject)
        state = reply.state
        if state.portfolio.valuation != self.portfolio.valuation:
            raise ConfigError(
                f"the execution node values in {state.portfolio.valuation}, this config in {self.portfolio.valuation}"
            )
        restore_portfolio(self.portfolio, state.portfolio)
        self.orders.reset(state.orders)
        for cid in [*state.client_order_ids, *(o.client_order_id for o in state.orders)]:
            self.ids.observe(cid)
        self.state_origin = reply.origin
        self.applied[reply.origin] = reply.event_seq
        self.state_loads += 1
        log.info("execution state loaded", origin=reply.origin, event_seq=reply.event_seq, orders=len(state.orders))

    async def _on_event_msg(self, msg: Msg) -> None:
        envelope = envelope_of(msg.headers, msg.subject)
        event = decode_event(msg.data, msg.subject)
        origin = envelope.origin
        if origin != self.state_origin:
            if origin_start_ns(origin) <= origin_start_ns(self.state_origin):
                return  # an earlier node's event: its effects are in the state taken since
            # A restarted execution node: its recovered state replaces this view.
            try:
                await self._load_state(self.config.live.start_timeout_s)
            except _StartAborted:
                return
            if origin != self.state_origin:
                return
        if envelope.seq <= self.applied.get(origin, 0):
            return
        self.applied[origin] = envelope.seq
        self._apply(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, OrderEventBase):
            if self.orders.apply(event) or type(event) is OrderTransitionRefused:
                self.bus.publish(topics.ORDER_EVENTS, event)
        elif type(event) is BalanceCorrected:
            assert isinstance(event, BalanceCorrected)
            self.portfolio.correct_balance(event.venue, event.currency, event.venue_total)

    # -- bus handlers (as the engine's, for the strategy's side) --------------------------------

    def _on_market(self, item: MarketData) -> None:
        if not self._feeding:
            return
        self.items += 1
        try:
            self.hub.on_data(item)
        except Exception as exc:  # a strategy bug: stop rather than trade on broken state
            self._fail(exc)

    def _on_command(self, cmd: TradingCommand) -> None:
        """What the OMS would do at once in one process (see the order mirror), then off to JetStream."""
        now = self.clock.now_ns()
        orders = self.orders
        ahead: list[OrderEvent] = []
        if isinstance(cmd, SubmitOrder):
            ahead = [e for e in (orders.submitted(cmd, now),) if e is not None]
        elif isinstance(cmd, CancelOrder):
            ahead = [e for e in (orders.cancel_requested(cmd.client_order_id, now),) if e is not None]
        elif isinstance(cmd, AmendOrder):
            ahead = [e for e in (orders.amend_requested(cmd, now),) if e is not None]
        elif isinstance(cmd, CancelAllOrders):
            ahead = list(orders.cancel_all_requested(cmd, now))
        self.commands.publish(cmd, getattr(cmd, "client_order_id", ""))
        for event in ahead:
            self.bus.publish(topics.ORDER_EVENTS, event)

    def _on_alert(self, alert: StrategyAlert) -> None:
        self.commands.publish(alert)

    def _on_order_event(self, event: OrderEvent) -> None:
        if type(event) is OrderFilled:
            assert isinstance(event, OrderFilled)
            self.portfolio.apply_fill(event)
        order = self.orders.order(event.client_order_id)
        if order is not None and order.strategy_id == self.strategy_id:
            self.strategy.on_order(event)
            if type(event) is OrderFilled:
                assert isinstance(event, OrderFilled)
                self.strategy.on_fill(event)

    def _on_book(self, book: OrderBook) -> None:
        mid_x2 = book.mid_x2()
        if mid_x2 is not None:
            self.portfolio.update_mark(book.instrument_id, mid_x2 // 2)
        self.strategy.on_book(book)

    def _on_book_status(self, status: BookStatus) -> None:
        self.strategy.on_book_status(status)

    def _on_trade(self, trade: Trade) -> None:
        self.strategy.on_trade(trade)

    def _on_quote(self, quote: Quote) -> None:
        self.strategy.on_quote(quote)

    def _fee_rates(self, instrument_id: InstrumentId) -> tuple[int, int]:
        sim = self.config.venue(instrument_id.venue).sim.venue_config()
        return sim.maker_fee, sim.taker_fee

    # -- status -------------------------------------------------------------------------------

    def progress(self) -> Progress:
        counts = self.counts
        return Progress(
            service="strategy",
            origin=self.origin,
            ready=self.ready,
            books=counts.books(),
            deltas=counts.deltas(),
            trades=counts.trades(),
            quotes=counts.quotes(),
            items=self.items,
            fills=self.portfolio.fill_count,
            commands_sent=self.commands.seq,
            events_done=dict(self.applied),
        )
