"""Bybit v5 execution client: order ops on the trade socket, signed REST, the private stream, and events.

Place, amend and cancel go out on the trade socket (``/v5/trade``, ``order_entry="websocket"``, the
default; :class:`~.trade_socket.TradeSocket`, frames from :mod:`.ws_wire` carrying the REST bodies)
while it is up: the frame is written inside the ``submit``/``amend``/``cancel`` call. Over REST v5 go
cancel-all, queries (``order/realtime|history``, ``execution/list``), balances, and every order op while
the socket is down or with ``order_entry="rest"``. A ``retCode`` 0 reply, over either path, only means
Bybit accepted the request: the private stream (``order``, ``execution``, ``wallet`` on ``/v5/private``,
logged in with ``auth``, kept alive with ``{"op":"ping"}``) says what happened, through
:class:`~.private.OrderTracker`. Error replies become ``OrderRejected`` / ``OrderCancelRejected`` /
``OrderAmendRejected`` with the mapped reason.

* A place or amend whose outcome is unknown (REST timeout, lost connection, 5xx; the trade socket lost
  before the reply, ``retCode`` 10000/10016) emits nothing, and nothing is re-sent: the OMS queries by
  client order id; :meth:`query` answers with any fills the stream missed and an ``OrderStatusReport``.
* Rate limits: REST waits and re-sends (:class:`~.rest.BybitRest`, which also keeps the signing clock);
  a trade-socket op is re-sent with a new ``reqId``, same ``orderLinkId``, within the same patience.
  A duplicate-client-id answer to a re-sent REST create means the first attempt went through: the
  order is queried instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any, Final

import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.fastparse import parse_fixed
from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import RejectReason
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAmendRejected,
    OrderCancelRejected,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent
from tradeloop.venues.bybit import orders, spec
from tradeloop.venues.bybit.private import OrderTracker, PrivateFrameError, decode_private
from tradeloop.venues.bybit.private_stream import StreamRefused, log_in, open_stream
from tradeloop.venues.bybit.rest import BybitRequestError, BybitRest
from tradeloop.venues.bybit.schemas import ExecutionRow, ExecutionTopic, OrderRow, OrderTopic, WalletTopic
from tradeloop.venues.bybit.trade_socket import TradeSocket
from tradeloop.venues.bybit.ws_wire import TradeReply, WsTails
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.transport.order_entry import OrderEntry, OrderEntryAccess, WsOp, WsOrderEntry, check_order_entry
from tradeloop.venues.transport.ratelimit import RateBudget
from tradeloop.venues.transport.rest import RestConfig
from tradeloop.venues.transport.ws import ReconnectingWebSocket, WsConnection, WsSpec

__all__ = ["BybitExecutionClient", "BybitRequestError", "ExecutionCounters", "OrderEntry"]


log = get_logger("tradeloop.venues.bybit.execution")

_HELD_GRACE_S: Final = 1.0
"""How long a terminal update waits for fills it reports before they are fetched over REST."""
_START_TIMEOUT_S: Final = 15.0


class ExecutionCounters(msgspec.Struct, kw_only=True):
    malformed: int = 0
    """Private frames that failed to decode or map (logged with venue and channel)."""
    stream_events: int = 0
    auth_failures: int = 0


def _infer_venue(instruments: Mapping[InstrumentId, Instrument]) -> str:
    venues = {iid.venue for iid in instruments if iid.venue in spec.CATEGORY_OF_VENUE}
    if len(venues) != 1:
        raise ValueError(f"give venue= (bybit or bybit_linear); instruments name {sorted(venues) or 'none'}")
    return venues.pop()


class BybitExecutionClient(OrderEntryAccess[TradeReply]):
    """Order entry for one Bybit venue (``bybit`` spot or ``bybit_linear``) and account."""

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
        venue: str | None = None,
        budget: RateBudget | None = None,
        recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS,
        rate_limit_patience_s: float = 5.0,
        seed: int | None = None,
        order_entry: OrderEntry = "websocket",
        trade_ws_spec: WsSpec | None = None,
    ) -> None:
        self.venue = venue or _infer_venue(instruments)
        self.category = spec.CATEGORY_OF_VENUE[self.venue]
        self._creds = credentials
        self._instruments = {iid: inst for iid, inst in instruments.items() if iid.venue == self.venue}
        self._clock = clock
        self._emit = emit
        self.urls = urls
        self._recv_window_ms = recv_window_ms
        self._rng = random.Random(seed)
        self.rest = BybitRest(
            self.venue,
            urls.rest,
            clock,
            budget or RateBudget(self.venue, credentials.fingerprint, spec.RATE_LIMITS[self.venue]),
            config=rest_config,
            patience_s=rate_limit_patience_s,
            rng=self._rng,
        )
        self.tracker = OrderTracker(self.venue, {i.id.symbol: i for i in self._instruments.values()})
        self.counters = ExecutionCounters()
        self._ws: ReconnectingWebSocket | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream_opened = 0
        self._login_refused = asyncio.Event()
        self._patience_s = rate_limit_patience_s
        self._order_entry: OrderEntry = check_order_entry("bybit", order_entry)
        self._trade_ws_spec = trade_ws_spec or spec.ws_trade_spec()
        self._trade: TradeSocket | None = None
        self._tails = {iid.symbol: WsTails(inst) for iid, inst in self._instruments.items()}
        self._on_wire: Callable[[str], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def _order_entry_now(self) -> WsOrderEntry[TradeReply] | None:
        return self._trade.entry if self._trade is not None else None

    async def start(self) -> None:
        """Measure the clock offset, open the private stream (subscribed), then the trade socket (orders go
        over REST if it is not open within 15 s)."""
        await self.rest.sync_clock()
        if self.urls.ws_private:
            self._ws = ReconnectingWebSocket(
                spec.ws_spec(self.urls.ws_private, stale_after_s=None),
                on_open=self._on_open,
                on_frame=self._on_frame,
                on_close=self._on_close,
                rng=self._rng,
                now_ns=self._clock.now_ns,
                name=f"{self.venue}-private",
            )
            try:
                await open_stream(self._ws, self._login_refused, _START_TIMEOUT_S, self.venue)
            except PermissionError:
                self._ws = None
                raise
        if self._order_entry == "websocket" and self.urls.ws_orders:
            self._trade = TradeSocket(
                msgspec.structs.replace(self._trade_ws_spec, url=self.urls.ws_orders),
                self._creds,
                self.rest.budget,
                now_ms=self.rest.now_ms,
                now_ns=self._clock.now_ns,
                on_ack=self._on_ws_ack,
                fallback=self._fallback,
                recv_window_ms=self._recv_window_ms,
                patience_s=self._patience_s,
                rng=self._rng,
                name=self.venue,
            )
            self._trade.entry.on_wire = self._on_wire
            await self._trade.open(_START_TIMEOUT_S)

    async def stop(self) -> None:
        if self._trade is not None:
            await self._trade.close()
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.rest.close()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.venue}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bybit request task failed", venue=self.venue, task=task.get_name(), error=repr(task.exception()))

    def _emit_all(self, events: list[Event]) -> None:
        for event in events:
            self._emit(event)

    def _emit_soon(self, event: Event) -> None:
        """Emit after the caller returns (commands must not be answered re-entrantly)."""
        try:
            asyncio.get_running_loop().call_soon(self._emit, event)
        except RuntimeError:
            self._emit(event)

    # -- commands -----------------------------------------------------------------------------

    def submit(self, cmd: SubmitOrder) -> None:
        inst = self._instruments.get(cmd.instrument_id)
        try:
            if inst is None:
                raise ValueError(f"{cmd.instrument_id} is not an instrument of {self.venue}")
            tail = self._tails[inst.id.symbol].place(cmd)  # validates grid, client id and flags before sending
        except ValueError as exc:
            self._emit_soon(self._rejected(cmd, RejectReason.INVALID_ORDER, str(exc)))
            return
        self.tracker.track(cmd)
        if not self._ws_send(spec.WS_CREATE, cmd, tail):
            self._spawn(self._submit(cmd, inst), "create")

    async def _submit(self, cmd: SubmitOrder, inst: Instrument) -> None:
        rw = self._recv_window_ms
        out = await self.rest.call(
            spec.CREATE, lambda ms: orders.place_order(self._creds, ms, cmd, inst, recv_window_ms=rw)
        )
        if out.unknown:
            return
        cid = cmd.client_order_id
        if out.reply is not None and out.reply.retCode == 0:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                self._placed(cid, msgspec.json.decode(out.reply.result, type=dict[str, str]).get("orderId", ""))
            return
        reason, message = out.refusal()
        if reason is RejectReason.DUPLICATE_CLIENT_ID and out.attempts > 1:
            # an earlier attempt of this very request was executed after all: learn its state
            await self._query(cid, inst)
            return
        self._place_refused(cmd, reason, message)

    def _placed(self, cid: str, venue_order_id: str) -> None:
        order = self.tracker.orders.get(cid)
        if order is not None and not order.venue_order_id:
            order.venue_order_id = venue_order_id

    def _place_refused(self, cmd: SubmitOrder, reason: RejectReason, message: str) -> None:
        self.tracker.rejected(cmd.client_order_id)
        self._emit(self._rejected(cmd, reason, message))

    def cancel(self, cmd: CancelOrder) -> None:
        iid, cid = cmd.instrument_id, cmd.client_order_id
        inst = self._instruments.get(iid)
        if inst is None:
            message = f"{iid} is not an instrument of {self.venue}"
            self._emit_soon(self._cancel_rejected(iid, cid, RejectReason.UNKNOWN_ORDER, message))
            return
        try:
            tail = self._tails[inst.id.symbol].cancel(cid)
        except ValueError as exc:
            self._emit_soon(self._cancel_rejected(iid, cid, RejectReason.INVALID_ORDER, str(exc)))
            return
        if not self._ws_send(spec.WS_CANCEL, cmd, tail):
            self._spawn(self._cancel(cid, inst), "cancel")

    async def _cancel(self, cid: str, inst: Instrument) -> None:
        rw = self._recv_window_ms
        out = await self.rest.call(
            spec.CANCEL,
            lambda ms: orders.cancel_order(self._creds, ms, inst, client_order_id=cid, recv_window_ms=rw),
        )
        if out.unknown or out.accepted:
            return
        self._cancel_refused(inst.id, cid, *out.refusal())

    def _cancel_refused(self, iid: InstrumentId, cid: str, reason: RejectReason, message: str) -> None:
        order = self.tracker.orders.get(cid)
        if reason is RejectReason.UNKNOWN_ORDER and order is not None and order.done:
            return  # it ended before the cancel arrived; the stream told the engine how
        self._emit(self._cancel_rejected(iid, cid, reason, message))

    def cancel_all(self, cmd: CancelAllOrders) -> None:
        if cmd.venue is not None and cmd.venue != self.venue:
            return
        if cmd.instrument_id is not None and cmd.instrument_id not in self._instruments:
            return
        self._spawn(self._cancel_all(cmd.instrument_id), "cancel-all")

    async def _cancel_all(self, iid: InstrumentId | None) -> None:
        rw = self._recv_window_ms
        scopes: list[tuple[str | None, str | None]]
        if iid is not None:
            scopes = [(iid.symbol, None)]
        elif self.category == "linear":
            scopes = [(None, coin) for coin in sorted({i.settle for i in self._instruments.values()})]
        else:
            scopes = [(None, None)]
        for symbol, coin in scopes:
            out = await self.rest.call(
                spec.CANCEL_ALL,
                partial(
                    orders.cancel_all_orders,
                    self._creds,
                    venue=self.venue,
                    symbol=symbol,
                    settle_coin=coin,
                    recv_window_ms=rw,
                ),
            )
            if out.unknown or out.accepted:
                continue
            reason, message = out.refusal()
            for order in self.tracker.open_orders():
                if iid is None or order.instrument_id == iid:
                    self._emit(self._cancel_rejected(order.instrument_id, order.client_order_id, reason, message))

    def amend(self, cmd: AmendOrder) -> None:
        inst = self._instruments.get(cmd.instrument_id)
        try:
            if inst is None:
                raise ValueError(f"{cmd.instrument_id} is not an instrument of {self.venue}")
            tail = self._tails[inst.id.symbol].amend(cmd)
        except ValueError as exc:
            self._emit_soon(self._amend_rejected(cmd, RejectReason.INVALID_ORDER, str(exc)))
            return
        self.tracker.amend_sent(cmd.client_order_id, cmd.price, cmd.qty)
        if not self._ws_send(spec.WS_AMEND, cmd, tail):
            self._spawn(self._amend(cmd, inst), "amend")

    async def _amend(self, cmd: AmendOrder, inst: Instrument) -> None:
        rw = self._recv_window_ms
        out = await self.rest.call(
            spec.AMEND, lambda ms: orders.amend_order(self._creds, ms, cmd, inst, recv_window_ms=rw)
        )
        if out.unknown or out.accepted:
            return
        self._amend_refused(cmd, *out.refusal())

    def _amend_refused(self, cmd: AmendOrder, reason: RejectReason, message: str) -> None:
        self.tracker.amend_refused(cmd.client_order_id)
        self._emit(self._amend_rejected(cmd, reason, message))

    # -- the trade socket ---------------------------------------------------------------------

    def _ws_send(self, kind: str, cmd: SubmitOrder | AmendOrder | CancelOrder, tail: bytes) -> bool:
        """Hand ``cmd`` to the trade socket's order entry (it falls back to REST while down); ``False``: none."""
        if self._trade is None:
            return False
        self._trade.entry.send(WsOp(kind, cmd, tail))
        return True

    def _on_ws_ack(self, op: WsOp, reply: TradeReply) -> None:
        """An op's final reply (rate limits already retried), mapped like the REST reply of its endpoint."""
        cmd = op.cmd
        if reply.retCode == 0:
            if isinstance(cmd, SubmitOrder) and reply.data is not None:
                self._placed(cmd.client_order_id, reply.data.orderId)
            return
        reason, message = orders.reject_reason(reply.retCode), f"{reply.retCode} {reply.retMsg}"
        if isinstance(cmd, SubmitOrder):
            self._place_refused(cmd, reason, message)
        elif isinstance(cmd, AmendOrder):
            self._amend_refused(cmd, reason, message)
        else:
            self._cancel_refused(cmd.instrument_id, cmd.client_order_id, reason, message)

    def _fallback(self, op: WsOp) -> None:
        """An op the trade socket cannot take (it is down): over REST, same client order id (never written)."""
        cmd = op.cmd
        inst = self._instruments[cmd.instrument_id]
        if isinstance(cmd, SubmitOrder):
            self._spawn(self._submit(cmd, inst), "create")
        elif isinstance(cmd, AmendOrder):
            self._spawn(self._amend(cmd, inst), "amend")
        else:
            self._spawn(self._cancel(cmd.client_order_id, inst), "cancel")

    def query(self, cmd: QueryOrder) -> None:
        inst = self._instruments.get(cmd.instrument_id)
        if inst is None:
            self._emit_soon(
                OrderStatusReport(
                    ts=self._clock.now_ns(),
                    instrument_id=cmd.instrument_id,
                    client_order_id=cmd.client_order_id,
                    venue_order_id=None,
                    status=None,
                )
            )
            return
        self._spawn(self._query(cmd.client_order_id, inst), "query")

    async def _query(self, cid: str, inst: Instrument) -> None:
        """Missed fills, then an ``OrderStatusReport``; nothing when the venue cannot be asked (the OMS asks again)."""
        try:
            row = await self._fetch_order(cid, inst)
            order = self.tracker.orders.get(cid)
            filled = order.filled if order is not None else 0
            if row is not None and parse_fixed(row.cumExecQty or "0") > filled:
                await self._fetch_fills(cid, inst)
        except BybitRequestError as exc:
            log.warning("bybit order query failed", venue=self.venue, client_order_id=cid, error=str(exc))
            return
        self._emit(self.tracker.report(cid, inst, row, self._clock.now_ns()))

    async def _fetch_order(self, cid: str, inst: Instrument) -> OrderRow | None:
        rw = self._recv_window_ms
        for history in (False, True):
            out = await self.rest.call(
                spec.HISTORY if history else spec.REALTIME,
                partial(
                    orders.query_order, self._creds, inst=inst, client_order_id=cid, history=history, recv_window_ms=rw
                ),
            )
            rows, _ = orders.order_rows(out.ok("order query"))
            for row in rows:
                if row.orderLinkId == cid:
                    return row
        return None

    async def _fetch_fills(self, cid: str, inst: Instrument) -> None:
        rw = self._recv_window_ms
        out = await self.rest.call(
            spec.EXECUTIONS, lambda ms: orders.executions(self._creds, ms, inst, cid, recv_window_ms=rw)
        )
        page = orders.executions_of(out.ok("execution list"))
        for row in sorted(page.rows, key=lambda r: (r.execTime, r.execId)):
            try:
                self._emit_all(self.tracker.on_execution(row, self._clock.now_ns()))
            except ValueError as exc:
                self._malformed("execution/list", exc)

    async def fetch_open_orders(self) -> list[OrderStatusReport]:
        """Every open order of this venue (reconciliation); :class:`BybitRequestError` when Bybit cannot be asked."""
        rw = self._recv_window_ms
        scopes = sorted({i.settle for i in self._instruments.values()}) if self.category == "linear" else [""]
        reports: list[OrderStatusReport] = []
        for coin in scopes:
            cursor = ""
            while True:
                out = await self.rest.call(
                    spec.REALTIME,
                    partial(
                        orders.open_orders,
                        self._creds,
                        venue=self.venue,
                        settle_coin=coin or None,
                        cursor=cursor,
                        recv_window_ms=rw,
                    ),
                )
                rows, cursor = orders.order_rows(out.ok("open orders"))
                for row in rows:
                    inst = self.tracker.instruments.get(row.symbol)
                    if inst is not None and row.orderLinkId:
                        reports.append(self.tracker.report(row.orderLinkId, inst, row, self._clock.now_ns()))
                if not cursor or not rows:
                    break
        return reports

    async def fetch_balances(self) -> AccountSnapshot:
        """Wallet balances of the unified account; :class:`BybitRequestError` when Bybit cannot be asked."""
        rw = self._recv_window_ms
        out = await self.rest.call(spec.WALLET, lambda ms: orders.wallet_balance(self._creds, ms, recv_window_ms=rw))
        return orders.balances_snapshot(out.ok("wallet balance"), self.venue, self._clock.now_ns())

    # -- events -------------------------------------------------------------------------------

    def _rejected(self, cmd: SubmitOrder, reason: RejectReason, message: str) -> OrderRejected:
        iid, cid, ts = cmd.instrument_id, cmd.client_order_id, self._clock.now_ns()
        return OrderRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)

    def _cancel_rejected(self, iid: InstrumentId, cid: str, reason: RejectReason, message: str) -> OrderCancelRejected:
        ts = self._clock.now_ns()
        return OrderCancelRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)

    def _amend_rejected(self, cmd: AmendOrder, reason: RejectReason, message: str) -> OrderAmendRejected:
        iid, cid, ts = cmd.instrument_id, cmd.client_order_id, self._clock.now_ns()
        return OrderAmendRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)

    # -- private stream -----------------------------------------------------------------------

    async def _on_open(self, conn: WsConnection) -> None:
        try:
            await log_in(
                conn,
                self._creds,
                self.rest.now_ms(),
                on_message=self._on_message,
                on_malformed=self._malformed,
                venue=self.venue,
            )
        except StreamRefused as exc:
            if exc.op == "auth":
                self.counters.auth_failures += 1
                self._login_refused.set()
            raise
        self._stream_opened += 1
        if self._stream_opened > 1:  # updates sent while we were away are lost: ask for every open order
            for order in self.tracker.open_orders():
                inst = self._instruments.get(order.instrument_id)
                if inst is not None:
                    self._spawn(self._query(order.client_order_id, inst), "reconcile")

    def _on_frame(self, frame: str | bytes, ts_recv: int) -> None:
        data = frame.encode() if isinstance(frame, str) else frame
        try:
            msg = decode_private(data)
        except PrivateFrameError as exc:
            self._malformed("private", exc)
            return
        if isinstance(msg, dict):
            if msg.get("success") is False:
                log.warning("bybit private request refused", venue=self.venue, op=str(msg.get("op")))
            return
        self._on_message(msg)

    def _on_message(self, msg: OrderTopic | ExecutionTopic | WalletTopic) -> None:
        ts = self._clock.now_ns()
        if isinstance(msg, WalletTopic):
            try:
                snapshot = self.tracker.on_wallet(msg, ts)
            except ValueError as exc:
                self._malformed(msg.topic, exc)
                return
            self.counters.stream_events += 1
            self._emit(snapshot)
            return
        for row in msg.data:
            try:
                if isinstance(msg, OrderTopic):
                    assert isinstance(row, OrderRow)
                    events = self.tracker.on_order(row, ts)
                else:
                    assert isinstance(row, ExecutionRow)
                    events = self.tracker.on_execution(row, ts)
            except ValueError as exc:
                self._malformed(msg.topic, exc)
                continue
            self.counters.stream_events += len(events)
            self._emit_all(events)
            order = self.tracker.orders.get(row.orderLinkId)
            if order is not None and order.held is not None:
                inst = self._instruments.get(order.instrument_id)
                if inst is not None:
                    self._spawn(self._settle_held(order.client_order_id, inst), "held")

    async def _settle_held(self, cid: str, inst: Instrument) -> None:
        """A terminal update reported fills the stream has not delivered: fetch them, then release it."""
        await asyncio.sleep(_HELD_GRACE_S)
        order = self.tracker.orders.get(cid)
        if order is None or order.held is None:
            return
        with contextlib.suppress(BybitRequestError):
            await self._fetch_fills(cid, inst)
        self._emit_all(self.tracker.release_held(cid))

    def _on_close(self, reason: str) -> None:
        log.info("bybit private stream lost", venue=self.venue, reason=reason)

    def _malformed(self, channel: str, exc: Exception) -> None:
        self.counters.malformed += 1
        log.warning("bybit malformed frame", venue=self.venue, channel=channel, error=str(exc)[:200])
