"""The execution service: the live node (risk, OMS, execution engine, venue execution clients, journal,
recovery) without a strategy; commands come from JetStream, events go to JetStream.

It is a :class:`~tradeloop.runtime.live.LiveSession` (same start, recovery and reconciliation, same
shutdown with its cancel-all and the check that nothing is left open) with three differences:

* the strategy slot holds :class:`ExecutionOnly`, which does nothing: the strategy runs in the strategy
  service, and its commands (``SubmitOrder`` with the client order id it chose, ``CancelOrder``, ...)
  reach the node's bus from the command stream, one at a time in stream order, each acknowledged
  after the OMS handled it. A command whose ``Tl-Seq`` this node already applied is skipped, and a
  submit that waited in the stream longer than ``max_command_age_s`` (the node was down) is denied,
  not sent;
* market data comes from NATS (:class:`~tradeloop.deploy.market_feed.NatsMarketData`; the risk
  engine prices and marks off the same books as the strategy);
* every event the node publishes on its bus (order, account and risk events, in the order the OMS
  applied them) goes to the event stream, numbered; ``tl.<d>.ctl.state`` answers with the node's
  orders and portfolio and the number of the last event they include.

On the way out the node first handles every command already in the stream (the strategy's final
cancels), then stops as a live node does, and waits until the stream stored its last events.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final, cast

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradeloop.core.config import ConfigError
from tradeloop.core.logging import get_logger
from tradeloop.deploy.codec import (
    DecodeFailed,
    Progress,
    StateReply,
    StateRequest,
    decode,
    decode_upstream,
    encode,
    envelope_of,
    new_origin,
)
from tradeloop.deploy.counting import MarketCounts
from tradeloop.deploy.market_feed import NatsMarketData
from tradeloop.deploy.nats_link import DurableConsumer, NatsLink, StreamPublisher, cancel_task
from tradeloop.deploy.service import ServiceControl, serve_status
from tradeloop.model import topics
from tradeloop.model.commands import SubmitOrder, TradingCommand
from tradeloop.model.enums import OrderStatus
from tradeloop.model.events import OrderDenied, OrderEventBase, StrategyAlert
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import StrategySection
from tradeloop.runtime.live import LiveSession
from tradeloop.runtime.live_config import LiveConfig
from tradeloop.runtime.results import RunSummary
from tradeloop.strategies.base import Strategy, StrategyConfig
from tradeloop.trading.state import STATE_VERSION, EngineState, capture_order, capture_portfolio

__all__ = ["ExecutionOnly", "ExecutionService"]

log = get_logger("tradeloop.deploy.execution")

EXECUTION_ONLY: Final = "tradeloop.deploy.execution_service:ExecutionOnly"
IN_FLIGHT: Final = frozenset(
    {OrderStatus.INITIALIZED, OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_AMEND}
)
DEFAULT_MAX_COMMAND_AGE_S: Final = 10.0
"""A submit older than this when it reaches the node is denied, not sent (see ``ExecutionService._stale``)."""
RECENT_IDS: Final = 256
"""Client order ids of the asking strategy sent with the state (a restarted strategy skips past them)."""


class ExecutionOnly(Strategy[StrategyConfig]):
    """The execution service's strategy slot: no decisions here; the strategy service makes them."""


class ExecutionService(LiveSession):
    """A live node whose commands come from the deployment's command stream (see the module docstring).

    Takes the same keyword arguments as :class:`LiveSession` (``strategy_spec`` is not one: the strategy
    runs elsewhere).
    """

    def __init__(
        self, config: LiveConfig, link: NatsLink, *, max_command_age_s: float = DEFAULT_MAX_COMMAND_AGE_S, **kwargs: Any
    ) -> None:
        if not max_command_age_s > 0:
            raise ConfigError(f"max command age must be positive, got {max_command_age_s}")
        relay = StrategySection(name=EXECUTION_ONLY, id=config.strategy.id, params={})
        super().__init__(msgspec.structs.replace(config, strategy=relay), **kwargs)
        self.link = link
        self.origin = new_origin("execution")
        self.feeds: dict[str, NatsMarketData] = {}
        for venue, venue_link in self.links.items():
            feed = NatsMarketData(
                venue,
                [i.id.symbol for i in venue_link.instruments],
                link,
                self.origin,
                endpoint=kwargs.get("endpoint") or config.live.venues[venue].endpoint,
                clock=self.clock,
            )
            venue_link.market = feed
            self.feeds[venue] = feed
        self.events = StreamPublisher(link, link.subjects.events, self.origin)
        self.commands = DurableConsumer(
            link, link.subjects.command_stream, link.subjects.commands, "execution", self._on_command_msg
        )
        self.max_command_age_ns = int(max_command_age_s * 1e9)
        self.commands_done: dict[str, int] = {}
        self.stale_submits = 0
        self._consumer: asyncio.Task[None] | None = None
        self._subs: list[Subscription] = []
        self.counts: MarketCounts | None = None
        self._parent = ServiceControl("execution", None, handle_signals=False)

    # -- life ---------------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        follower: asyncio.Task[None] | None = None
        await self.link.connect()
        try:
            await self.link.ensure_streams()
            self.events.start()
            self._subs.append(await serve_status(self.link, "execution", self.progress))
            self._parent.install()  # stops with the launcher, when it started this node
            follower = asyncio.get_running_loop().create_task(self._follow_parent(), name="execution.parent")
            return await super().run()
        finally:
            await cancel_task(follower)
            self._parent.uninstall()
            if not await self.events.flush(self.config.live.stop_timeout_s):
                log.error(
                    "events not confirmed by the stream before stopping", left=self.events.seq - self.events.acked
                )
            await self._stop_consumer()
            for sub in self._subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            await self.events.stop()
            await self.link.close()

    async def _follow_parent(self) -> None:
        await self._parent.wait()
        self.stop(self._parent.stop_reason)

    def _build_engine(self) -> BacktestEngine:
        engine = super()._build_engine()
        bus = engine.bus
        bus.subscribe(topics.ORDER_EVENTS, self._publish_event)
        bus.subscribe(topics.ACCOUNT_EVENTS, self._publish_event)
        bus.subscribe(topics.RISK_EVENTS, self._publish_event)
        self.counts = MarketCounts(bus, engine.book_manager)
        for feed in self.feeds.values():
            feed.books = engine.book_manager
        return engine

    async def _start_market_data(self, engine: BacktestEngine) -> None:
        self._subs.append(await self.link.nc.subscribe(self.link.subjects.state, cb=self._on_state_request))
        await super()._start_market_data(engine)
        await self.commands.subscribe()
        self._consumer = asyncio.get_running_loop().create_task(self.commands.run(), name="execution.commands")
        self._consumer.add_done_callback(self._consumer_done)
        log.info("execution service running", origin=self.origin)

    async def _shutdown(self, engine: BacktestEngine) -> None:
        if self._consumer is not None and not self._consumer.done():
            self.commands.stop_running()
            await cancel_task(self._consumer)
            if self._error is None and not await self.commands.drain(self.config.live.stop_timeout_s):
                log.error("commands left in the stream at shutdown")
        await super()._shutdown(engine)

    async def _stop_consumer(self) -> None:
        task, self._consumer = self._consumer, None
        self.commands.stop_running()
        await cancel_task(task)
        await self.commands.unsubscribe()

    def _consumer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())  # type: ignore[arg-type]

    # -- messages -----------------------------------------------------------------------------

    async def _on_command_msg(self, msg: Msg) -> None:
        envelope = envelope_of(msg.headers, msg.subject)
        upstream = decode_upstream(msg.data, msg.subject)
        if envelope.seq <= self.commands_done.get(envelope.origin, 0):
            return  # delivered again (this node applied it before acknowledging)
        self.commands_done[envelope.origin] = envelope.seq
        engine = self.engine
        if engine is None:
            raise RuntimeError("a command arrived before the engine was built")
        if type(upstream) is StrategyAlert:
            engine.bus.publish(topics.STRATEGY_ALERTS, upstream)
            return
        if type(upstream) is SubmitOrder and self._stale(engine, upstream):
            return
        engine.bus.publish(topics.COMMANDS, cast(TradingCommand, upstream))

    def _stale(self, engine: BacktestEngine, cmd: SubmitOrder) -> bool:
        """A new order sent longer ago than ``max_command_age_s`` (it waited in the stream while this node
        was down) is not placed: the market it was priced on is gone. It is denied on the record (the
        journal keeps the command and the denial; the OMS never had the order) and to the strategy."""
        now = self.clock.now_ns()
        age = now - cmd.ts
        if age <= self.max_command_age_ns or cmd.client_order_id in engine.oms.orders:
            return False
        self.stale_submits += 1
        reason = (
            f"submit {age / 1e9:.1f}s old when it reached the node (max {self.max_command_age_ns / 1e9:g}s); not sent"
        )
        log.error("stale submit not sent", client_order_id=cmd.client_order_id, age_s=round(age / 1e9, 3))
        denied = OrderDenied(
            ts=now, instrument_id=cmd.instrument_id, client_order_id=cmd.client_order_id, reason=reason
        )
        engine.journal.append(cmd)
        engine.journal.append(denied)
        self._publish_event(denied)
        return True

    def _publish_event(self, event: Any) -> None:
        cid = event.client_order_id if isinstance(event, OrderEventBase) else ""
        self.events.publish(event, cid)

    async def _on_state_request(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            request = decode(msg.data, StateRequest, msg.subject)
        except DecodeFailed as exc:
            log.error("state request rejected", error=str(exc))
            return
        engine = self.engine
        if engine is None:
            return  # not built yet: the requester asks again
        reply = StateReply(
            origin=self.origin, event_seq=self.events.seq, state=self.capture(engine, request.strategy_id)
        )
        with contextlib.suppress(Exception):
            await msg.respond(encode(reply))

    def capture(self, engine: BacktestEngine, strategy_id: str) -> EngineState:
        """The node's orders (those not terminal) and portfolio, as of now."""
        recent: list[str] = []
        for cid, order in reversed(engine.oms.orders.items()):
            if order.strategy_id == strategy_id:
                recent.append(cid)
                if len(recent) >= RECENT_IDS:
                    break
        return EngineState(
            version=STATE_VERSION,
            seq=engine.journal.last_seq(),
            ts=self.clock.now_ns(),
            instruments=sorted(engine.instruments.values(), key=lambda i: (i.id.venue, i.id.symbol)),
            portfolio=capture_portfolio(engine.portfolio),
            orders=[capture_order(o) for o in engine.oms.orders.values() if not o.is_terminal],
            client_order_ids=recent,
        )

    def progress(self) -> Progress:
        engine, counts = self.engine, self.counts
        if engine is None or counts is None:
            return Progress(service="execution", origin=self.origin, ready=False)
        return Progress(
            service="execution",
            origin=self.origin,
            ready=all(self.connected.values()) and self._consumer is not None and not self._consumer.done(),
            books=counts.books(),
            deltas=counts.deltas(),
            trades=counts.trades(),
            quotes=counts.quotes(),
            items=self.items,
            fills=engine.portfolio.fill_count,
            in_flight=sum(1 for o in engine.oms.open_orders() if o.status in IN_FLIGHT),
            commands_done=dict(self.commands_done),
            events_sent=self.events.seq,
        )
