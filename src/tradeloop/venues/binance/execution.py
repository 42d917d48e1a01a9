"""Binance execution client: spot orders on the WebSocket API, signed REST, the user data stream.

Spot place / amend / cancel go out on the WebSocket API (``order.place``, ``order.amend.keepPriority``,
``order.cancelReplace``, ``order.cancel``; :mod:`tradeloop.venues.binance.ws_orders`) while its socket
is up (``order_entry="websocket"``, the default): the frame is signed and written inside the
``submit``/``amend``/``cancel`` call. Everything else, every order request while that socket is down,
with ``order_entry="rest"`` and on USD-M, goes over REST (``/api/v3`` spot, ``/fapi/v1`` USD-M). Both
are built by the pure functions of ``orders.py`` with the injected clock (corrected by the measured
offset to the venue's clock), draw from one rate budget, and their replies (the same bodies) go
through one :class:`~tradeloop.venues.binance.replies.ReplyMapper`. Every outcome comes back through
``emit``; the public methods never raise. A WebSocket request in flight when its socket drops emits
nothing (outcome unknown, never re-sent); the OMS queries it by client id.

* **Place.** A 429/418 reply (the venue refused it, nothing was executed) is sent again with the same
  client order id once the rate budget allows (``Retry-After`` blocks the budget); when the budget
  will not admit it within its patience the order is rejected ``RATE_LIMITED``. A timeout or 5xx
  (:class:`OutcomeUnknown`) emits nothing: the OMS queries the order by client id.
* **Amend** (``supports_amend``). Spot: a smaller size at the same price uses
  ``order/amend/keepPriority`` (keeps queue priority); anything else is a cancel/replace through
  ``order/cancelReplace`` (new ``orderId``, priority lost), reported as one ``OrderAmended``.
  USD-M: ``PUT /fapi/v1/order``.
* **User data.** Spot: WebSocket API ``userDataStream.subscribe.signature`` (listen keys are retired),
  re-subscribed after every reconnect; USD-M: a listen key kept alive every 30 minutes. After a
  reconnect every open order is queried, so fills missed meanwhile come back.
* **Repeats.** The REST reply and the stream report the same facts; :class:`OrderTracker` passes
  each on once.
"""

from __future__ import annotations

import asyncio
import random
import traceback
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any, Final

import aiohttp
import msgspec

from tradeloop.core import fixed
from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import RejectReason
from tradeloop.model.events import AccountSnapshot, Event, OrderStatusReport
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent, SignedRequest
from tradeloop.venues.binance import orders
from tradeloop.venues.binance.replies import ReplyMapper
from tradeloop.venues.binance.schemas import ServerTime
from tradeloop.venues.binance.spec import (
    MARKETS,
    RATE_LIMITED_STATUS,
    RATE_LIMITS,
    REQUEST_COSTS,
    TRADING,
    WS_API_ORDERS,
    BinanceMarket,
)
from tradeloop.venues.binance.tracker import OrderTracker, plan_amend
from tradeloop.venues.binance.user_stream import UserStream
from tradeloop.venues.binance.ws_orders import WsOrderPath
from tradeloop.venues.binance.ws_wire import WsApiReply
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.transport.clock_sync import ClockOffsetEstimator
from tradeloop.venues.transport.order_entry import OrderEntry, OrderEntryAccess, WsOp, WsOrderEntry, check_order_entry
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimited
from tradeloop.venues.transport.rest import (
    OutcomeUnknown,
    RequestNotSent,
    RestClient,
    RestConfig,
    RestError,
    RestResponse,
    measure_clock_offset,
)
from tradeloop.venues.transport.ws import WsSpec

__all__ = ["BinanceExecutionClient", "OrderEntry"]

log = get_logger("tradeloop.venues.binance.execution")

_MAX_RATE_RETRIES: Final = 5
_SERVER_TIME: Final = msgspec.json.Decoder(ServerTime)
_LISTEN_KEY: Final = msgspec.json.Decoder(dict[str, str])



class BinanceExecutionClient(OrderEntryAccess[WsApiReply]):
    """``ExecutionClient`` for Binance spot (``binance``) or USD-M (``binance_usdm``)."""

    supports_amend = True

    def __init__(
        self,
        credentials: Credentials,
        instruments: Mapping[InstrumentId, Instrument],
        clock: Clock,
        emit: EmitEvent,
        urls: ConnectorUrls,
        *,
        rest_config: RestConfig | None = None,
        market: BinanceMarket = BinanceMarket.SPOT,
        budget: RateBudget | None = None,
        rng: random.Random | None = None,
        private_ws: WsSpec | None = None,
        order_entry: OrderEntry = "websocket",
        orders_ws: WsSpec | None = None,
        rate_limit_patience_s: float = 5.0,
    ) -> None:
        self.market = market
        self.venue = MARKETS[market].venue
        self._creds = credentials
        self._instruments = dict(instruments)
        self._by_symbol = {iid.symbol: inst for iid, inst in self._instruments.items()}
        self._clock = clock
        self._emit = emit
        self.urls = urls
        self._rest_config = rest_config or RestConfig()
        self._paths = TRADING[market]
        self._costs = REQUEST_COSTS[market]
        self.budget = budget or RateBudget(self.venue, credentials.name, RATE_LIMITS[market])
        self._rng = rng or random.Random()
        self._private_ws_spec = private_ws
        entry = check_order_entry("binance", order_entry)
        self._order_entry: OrderEntry = entry if market is BinanceMarket.SPOT else "rest"
        self._orders_ws_spec = orders_ws or WS_API_ORDERS
        self._patience_s = rate_limit_patience_s
        self.tracker = OrderTracker()
        self.replies = ReplyMapper(self.tracker, market, self._out, lambda: self._spawn(self._resync_clock()))
        self.clock_offset = ClockOffsetEstimator()
        self._session: aiohttp.ClientSession | None = None
        self._rest: RestClient | None = None
        self._stream: UserStream | None = None
        self._ws: WsOrderPath | None = None
        self._on_wire: Callable[[str], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _order_entry_now(self) -> WsOrderEntry[WsApiReply] | None:
        return self._ws.entry if self._ws is not None else None

    # -- ExecutionClient ------------------------------------------------------------------------

    def submit(self, cmd: SubmitOrder) -> None:
        if self._ws is None or not self._ws.submit(cmd):
            self._spawn(self._submit(cmd))

    def cancel(self, cmd: CancelOrder) -> None:
        if self._ws is None or not self._ws.cancel(cmd):
            self._spawn(self._cancel(cmd))

    def cancel_all(self, cmd: CancelAllOrders) -> None:
        if cmd.venue is not None and cmd.venue != self.venue:
            return
        self._spawn(self._cancel_all(cmd))

    def amend(self, cmd: AmendOrder) -> None:
        if self._ws is None or not self._ws.amend(cmd):
            self._spawn(self._amend(cmd))

    def query(self, cmd: QueryOrder) -> None:
        self._spawn(self._query(cmd))

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Measure the clock offset, open the user data stream and (spot, WebSocket order entry) the
        order socket (returns once subscribed and connected)."""
        self._ensure_rest()
        try:
            await self.sync_clock()
        except (RestError, RateLimited, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("clock offset not measured; using the local clock", venue=self.venue, error=str(exc))
        self._stream = UserStream(
            self.market,
            self.venue,
            self.urls.ws_private,
            self._creds,
            self._clock,
            self._now_ms,
            self._by_symbol.get,
            self._on_user_events,
            self._on_stream_resumed,
            session=self._session,
            spec=self._private_ws_spec,
            new_listen_key=self._new_listen_key,
            rng=self._rng,
        )
        await self._stream.start()
        if self._order_entry == "websocket":
            spec = msgspec.structs.replace(self._orders_ws_spec, url=self.urls.ws_orders or self.urls.ws_private)
            self._ws = WsOrderPath(
                spec,
                self._creds,
                self.budget,
                self._instruments,
                self.tracker,
                self.replies,
                now_ms=self._now_ms,
                now_ns=self._clock.now_ns,
                fallback=self._fallback,
                later=self._emit,
                patience_s=self._patience_s,
                rng=self._rng,
            )
            self._ws.entry.on_wire = self._on_wire
            await self._ws.start(spec.connect_timeout_s + spec.open_timeout_s)
        if self.market is BinanceMarket.USDM:
            self._clock.set_timer(
                f"{self.venue}-listen-key", 30 * 60 * 10**9, lambda _n, _t: self._spawn(self._keep_alive())
            )

    async def stop(self) -> None:
        if self.market is BinanceMarket.USDM:
            self._clock.cancel_timer(f"{self.venue}-listen-key")
        if self._ws is not None:
            await self._ws.stop()
        if self._stream is not None:
            await self._stream.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._rest = None

    async def sync_clock(self, samples: int = 3) -> int:
        """Measure the offset to the venue's clock (``GET /api/v3/time``); returns it in ns."""
        rest = self._ensure_rest()
        return await measure_clock_offset(
            rest,
            self._paths.server_time,
            lambda body: _SERVER_TIME.decode(body).serverTime * 1_000_000,
            self.clock_offset,
            samples=samples,
            costs=self._costs["time"],
            now_ns=self._clock.now_ns,
        )

    async def fetch_open_orders(self) -> list[OrderStatusReport]:
        """Every open order of this client's instruments, as the venue reports it."""
        reports: list[OrderStatusReport] = []
        for symbol, inst in sorted(self._by_symbol.items()):
            resp = await self._send(
                partial(orders.open_orders_request, self._creds, symbol=symbol, market=self.market),
                self._costs["open_orders"],
            )
            if resp.status != 200:
                raise RestError(f"open orders: HTTP {resp.status}", method="GET", path=self._paths.open_orders)
            ts = self._clock.now_ns()
            for reply in orders.decode_orders(resp.body):
                report = orders.status_report(reply, inst, reply.clientOrderId, ts)
                reports.append(self.tracker.adjust_report(report))
        return reports

    async def fetch_balances(self) -> AccountSnapshot:
        resp = await self._send(
            lambda now: orders.account_request(self._creds, now, market=self.market), self._costs["account"]
        )
        if resp.status != 200:
            raise RestError(f"balances: HTTP {resp.status}", method="GET", path=self._paths.account)
        return orders.account_snapshot(resp.body, self.venue, self._clock.now_ns(), market=self.market)

    # -- requests -------------------------------------------------------------------------------

    async def _submit(self, cmd: SubmitOrder) -> None:
        inst = self._instruments.get(cmd.instrument_id)
        cid = cmd.client_order_id
        if inst is None:
            self._out(
                orders.rejection(
                    "place",
                    self._stub(cmd.instrument_id),
                    cid,
                    0,
                    "instrument not traded by this client",
                    self._now(),
                    RejectReason.INVALID_ORDER,
                )
            )
            return
        self.tracker.register(cmd, inst)
        try:
            resp = await self._send(
                lambda now: orders.place_request(self._creds, now, cmd, inst, market=self.market), self._costs["place"]
            )
        except orders.OrderRequestError as exc:
            self._out(orders.rejection("place", inst, cid, 0, str(exc), self._now(), RejectReason.INVALID_ORDER))
            return
        except RateLimited as exc:
            self._out(
                orders.rejection(
                    "place", inst, cid, 0, f"rate budget exhausted: {exc}", self._now(), RejectReason.RATE_LIMITED
                )
            )
            return
        except RequestNotSent as exc:
            self._out(orders.rejection("place", inst, cid, 0, f"not sent: {exc}", self._now(), RejectReason.OTHER))
            return
        except OutcomeUnknown:
            return  # the OMS times out and queries by client order id
        self.replies.placed(inst, cid, resp.status, resp.body, self._now())

    async def _cancel(self, cmd: CancelOrder) -> None:
        inst = self._instruments.get(cmd.instrument_id)
        if inst is None:
            return
        try:
            resp = await self._send(
                lambda now: orders.cancel_request(self._creds, now, cmd, market=self.market), self._costs["cancel"]
            )
        except (RestError, RateLimited) as exc:
            log.warning("cancel not answered", venue=self.venue, client_order_id=cmd.client_order_id, error=str(exc))
            return  # the OMS times out and queries
        self.replies.canceled(inst, cmd.client_order_id, resp.status, resp.body, self._now())

    async def _cancel_all(self, cmd: CancelAllOrders) -> None:
        if cmd.only_strategy:
            for order in self.tracker.open_orders():
                if order.cmd.strategy_id == cmd.strategy_id and (cmd.instrument_id in (None, order.inst.id)):
                    await self._cancel(
                        CancelOrder(
                            ts=cmd.ts,
                            strategy_id=cmd.strategy_id,
                            instrument_id=order.inst.id,
                            client_order_id=order.cmd.client_order_id,
                        )
                    )
            return
        targets = [cmd.instrument_id] if cmd.instrument_id is not None else sorted(self._instruments)
        for iid in targets:
            inst = self._instruments.get(iid)
            if inst is None:
                continue
            try:
                resp = await self._send(
                    partial(orders.cancel_all_request, self._creds, symbol=iid.symbol, market=self.market),
                    self._costs["cancel_all"],
                )
            except (RestError, RateLimited) as exc:
                log.warning("cancel-all not answered", venue=self.venue, symbol=iid.symbol, error=str(exc))
                continue
            if resp.status != 200:
                code, msg = orders.decode_error(resp.body)
                if code != -2011:  # -2011: nothing was open
                    log.warning("cancel-all refused", venue=self.venue, symbol=iid.symbol, code=code, msg=msg)
                continue
            if self.market is not BinanceMarket.SPOT:
                continue  # USD-M answers {"code":200}; the stream reports each cancel
            ts = self._now()
            for reply in orders.decode_orders(resp.body):
                cid = reply.origClientOrderId or reply.clientOrderId
                for event in orders.cancel_reply_events(reply, inst, cid, ts):
                    self._out(event, str(reply.orderId))

    async def _amend(self, cmd: AmendOrder) -> None:
        order = self.tracker.get(cmd.client_order_id)
        inst = self._instruments.get(cmd.instrument_id)
        plan = plan_amend(cmd, order, self.market)
        if order is None or inst is None or plan.kind == "refuse":
            if plan.kind != "refuse":
                plan = plan._replace(reason=RejectReason.UNKNOWN_ORDER, message="order not open at this client")
            stub = inst or self._stub(cmd.instrument_id)
            self._out(orders.rejection("amend", stub, cmd.client_order_id, 0, plan.message, self._now(), plan.reason))
            return
        cid, price, qty, c = cmd.client_order_id, plan.price, plan.qty, order.cmd
        if plan.kind == "cancel":
            await self._cancel(
                CancelOrder(ts=self._now(), strategy_id=c.strategy_id, instrument_id=inst.id, client_order_id=cid)
            )
            return
        build: Callable[[int], SignedRequest]
        if plan.kind == "cancel_replace":
            leaves = qty - order.filled
            build = partial(
                orders.cancel_replace_request, self._creds, inst=inst, client_order_id=cid, side=c.side,
                time_in_force=c.time_in_force, post_only=c.post_only, qty=leaves, price=price,
            )  # fmt: skip
        elif self.market is BinanceMarket.USDM:
            build = partial(
                orders.modify_request, self._creds, inst=inst, client_order_id=cid, side=c.side, qty=qty, price=price
            )
        else:
            build = partial(
                orders.amend_keep_priority_request, self._creds, inst=inst, client_order_id=cid, new_qty=qty
            )
        self.tracker.start_amend(order, replace=plan.kind == "cancel_replace")
        try:
            resp = await self._send(build, self._costs[plan.kind])
        except (orders.OrderRequestError, RateLimited) as exc:
            self.tracker.amend_failed(order)
            limited = isinstance(exc, RateLimited)
            reason = RejectReason.RATE_LIMITED if limited else RejectReason.INVALID_ORDER
            message = f"rate budget exhausted: {exc}" if limited else str(exc)
            self._out(orders.rejection("amend", inst, cid, 0, message, self._now(), reason))
            return
        except RestError:
            if plan.kind == "amend":  # a lost cancel/replace keeps the old orderId retired-to-be; the OMS queries
                self.tracker.amend_failed(order)
            return
        if plan.kind == "cancel_replace":
            self.replies.replaced(inst, order, price, qty, resp.status, resp.body, self._now())
        else:
            self.replies.amended(inst, cid, resp.status, resp.body, self._now())

    async def _query(self, cmd: QueryOrder) -> None:
        inst = self._instruments.get(cmd.instrument_id)
        if inst is None:
            self._emit(orders.unknown_order_report(self._stub(cmd.instrument_id), cmd.client_order_id, self._now()))
            return
        try:
            resp = await self._send(
                lambda now: orders.query_request(self._creds, now, cmd, market=self.market), self._costs["query"]
            )
            if resp.status != 200:
                code, msg = orders.decode_error(resp.body)
                if code == -2013 or code == -2011:
                    self._emit(orders.unknown_order_report(inst, cmd.client_order_id, self._now()))
                else:
                    log.warning(
                        "order query refused", venue=self.venue, client_order_id=cmd.client_order_id, code=code, msg=msg
                    )
                return
            reply = orders.decode_order(resp.body)
            if fixed.parse(reply.executedQty) > 0:
                trades = await self._send(
                    lambda now: orders.my_trades_request(
                        self._creds, now, inst.id.symbol, str(reply.orderId), market=self.market
                    ),
                    self._costs["my_trades"],
                )
                if trades.status == 200:
                    for fill in orders.trade_fills(
                        orders.decode_trades(trades.body), inst, cmd.client_order_id, self._now()
                    ):
                        self._out(fill, str(reply.orderId))
            report = orders.status_report(reply, inst, cmd.client_order_id, self._now())
            order = self.tracker.get(cmd.client_order_id)
            if order is not None and order.replacing_from not in (None, report.venue_order_id):
                # A cancel/replace whose reply was lost: the replacement is the order now.
                self.tracker.replaced(order, report.venue_order_id, order.filled + (report.qty or 0), report.price)
            self._emit(self.tracker.adjust_report(report))
        except (RestError, RateLimited) as exc:
            log.warning("order query failed", venue=self.venue, client_order_id=cmd.client_order_id, error=str(exc))

    # -- plumbing -------------------------------------------------------------------------------

    async def _send(self, build: Callable[[int], SignedRequest], costs: Mapping[str, int]) -> RestResponse:
        """Build (fresh timestamp) and send; a non-idempotent request refused with 429/418 is sent again
        (the budget waits out ``Retry-After``; ``RateLimited`` when it would wait too long)."""
        rest = self._ensure_rest()
        for _ in range(_MAX_RATE_RETRIES):
            req = build(self._now_ms())
            resp = await rest.request(
                req.method,
                req.path,
                params=req.query,
                headers=req.headers,
                body=req.body,
                idempotent=req.idempotent,
                costs=costs,
            )
            if resp.status not in RATE_LIMITED_STATUS or req.idempotent:
                return resp
            log.info("order request rate limited; sending it again", venue=self.venue, path=req.path)
        return resp

    async def _resync_clock(self) -> None:
        try:
            await self.sync_clock()
        except (RestError, RateLimited, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("clock offset not measured", venue=self.venue, error=str(exc))

    def _out(self, event: Event, venue_order_id: str | None = None) -> None:
        if self.tracker.admit(event, venue_order_id):
            self._emit(event)

    def _fallback(self, op: WsOp) -> None:
        """An op the order socket cannot take (it is down): over REST, same client order id (never written)."""
        cmd = op.cmd
        if isinstance(cmd, SubmitOrder):
            self._spawn(self._submit(cmd))
        elif isinstance(cmd, AmendOrder):
            self._spawn(self._amend(cmd))
        else:
            self._spawn(self._cancel(cmd))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            where = "".join(traceback.format_exception(exc)[-3:])[-600:]
            log.error("binance request task failed", venue=self.venue, error=f"{type(exc).__name__}: {exc}", at=where)

    def _ensure_rest(self) -> RestClient:
        if self._rest is None:
            self._session = self._session or aiohttp.ClientSession()
            self._rest = RestClient(
                self.urls.rest,
                self._session,
                config=self._rest_config,
                budget=self.budget,
                rng=self._rng,
                name=f"{self.venue}-rest",
            )
        return self._rest

    def _now(self) -> int:
        return self._clock.now_ns()

    def _now_ms(self) -> int:
        # Before the first server-time sample (start() not run yet) the local clock is the best guess;
        # a -1021 reply then triggers a measurement and the request is re-signed.
        offset = self.clock_offset.offset_ns if self.clock_offset.has_estimate else 0
        return (self._clock.now_ns() + offset) // 1_000_000

    def _stub(self, iid: InstrumentId) -> Instrument:
        return Instrument(id=iid, base="?", quote="?", tick_size=1, lot_size=1)

    # -- user data stream (USD-M listen key) ----------------------------------------------------

    def _on_user_events(self, events: list[Event], venue_order_id: str | None) -> None:
        for event in events:
            self._out(event, venue_order_id)

    def _on_stream_resumed(self) -> None:
        for order in self.tracker.open_orders():  # catch up on what the gap hid
            cmd = QueryOrder(ts=self._now(), instrument_id=order.inst.id, client_order_id=order.cmd.client_order_id)
            self._spawn(self._query(cmd))

    async def _new_listen_key(self) -> str:
        resp = await self._send(lambda _now: orders.listen_key_request(self._creds, "POST"), self._costs["listen_key"])
        if resp.status != 200:
            raise RestError(f"listen key: HTTP {resp.status}", method="POST", path=self._paths.listen_key)
        return _LISTEN_KEY.decode(resp.body)["listenKey"]

    async def _keep_alive(self) -> None:
        try:
            resp = await self._send(
                lambda _now: orders.listen_key_request(self._creds, "PUT"), self._costs["listen_key"]
            )
            if resp.status != 200 and self._stream is not None:
                await self._stream.renew()
        except (RestError, RateLimited) as exc:
            log.warning("listen key keep-alive failed", venue=self.venue, error=str(exc))
