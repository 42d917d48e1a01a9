"""Kraken spot execution client: WebSocket or REST orders plus the v2 private stream (``executions``, ``balances``).

Place, amend and cancel go out as WebSocket v2 order methods (``add_order``, ``amend_order``,
``cancel_order``) on a connection of their own to ``ws-auth`` while it is up (``order_entry=
"websocket"``, the default; :mod:`tradeloop.venues.kraken.ws_orders`): the frame is written inside
the ``submit``/``amend``/``cancel`` call, no task and no await in between, and carries the session
token of the private stream. While that socket is down, while an earlier REST request of the same
order is still out (requests of one order keep their order), and with ``order_entry="rest"``,
they are REST calls built by :mod:`tradeloop.venues.kraken.orders`, each signed with a fresh
nonce from the key's one nonce source; a request is never re-sent as it was (its nonce is spent),
it is rebuilt. Cancel-all, queries, open orders and balances are always REST. Over the socket, a
rate-limit reply is re-sent (new ``req_id``, same ``cl_ord_id``) within ``rate_limit_patience_s``;
a socket lost with ops in flight, or ``EService:Unavailable``/``Busy``, leaves their outcome unknown
(nothing emitted, the OMS queries).

The private socket (``wss://ws-auth.kraken.com/v2``) subscribes ``executions`` and ``balances``
with a token from ``GetWebSocketsToken`` fetched for every connection; fills, cancels, expiries and
amends are reported from there and merged with the replies (WebSocket or REST) by
:class:`~tradeloop.venues.kraken.private.OrderTracker` (each fact reported once, fills by ``exec_id``).

Failures: a rate-limit refusal (``EAPI:Rate limit exceeded``, ``EOrder:Rate limit exceeded``,
``EService: Throttled``, or HTTP 429) of an order request is retried with the same client order id
after a backoff until ``rate_limit_patience_s``, then ``OrderRejected(RATE_LIMITED)``. A place or
amend whose outcome is unknown (timeout, 5xx, ``EService:Unavailable``/``Busy``) emits nothing: the
OMS queries by client id, answered by ``OrderStatusReport`` plus any fills it had missed
(``QueryOrders`` then ``QueryTrades``). Requests of one order are sent in command order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import aiohttp
import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger, register_secret
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import RejectReason
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent, SignedRequest
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.kraken import orders, spec
from tradeloop.venues.kraken.auth import nonce_source
from tradeloop.venues.kraken.private import BalanceBook, OrderTracker, PrivateParseError, decode_private
from tradeloop.venues.kraken.schemas import BalancesMessage
from tradeloop.venues.kraken.ws_orders import KrakenWsOrders, refusal
from tradeloop.venues.kraken.ws_wire import WsOrderReply
from tradeloop.venues.transport.order_entry import OrderEntry, OrderEntryAccess, WsOp, WsOrderEntry, check_order_entry
from tradeloop.venues.transport.ratelimit import RateBudget, RateBudgetRegistry, RateLimited
from tradeloop.venues.transport.rest import OutcomeUnknown, RequestNotSent, RestClient, RestConfig
from tradeloop.venues.transport.ws import ReconnectingWebSocket, WsConnection, WsSpec

__all__ = ["KrakenExecutionClient", "OrderEntry"]

log = get_logger("tradeloop.venues.kraken.execution")

_RETRY_BASE_S: Final = 0.2
_RETRY_CAP_S: Final = 2.0
_BUDGETS: Final = RateBudgetRegistry()
"""One rate budget per API key in the process, shared by every client of that key."""



class _Refused(Exception):
    """An order request given up on: ``reason`` goes into the rejection."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Unknown(Exception):
    """The request's outcome is unknown: report nothing, the OMS queries."""


class KrakenExecutionClient(OrderEntryAccess[WsOrderReply]):
    """The :class:`~tradeloop.venues.base.ExecutionClient` of Kraken spot."""

    venue = spec.VENUE
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
        budget: RateBudget | None = None,
        rate_limit_patience_s: float = 10.0,
        ws_spec: WsSpec | None = None,
        rng: random.Random | None = None,
        order_entry: OrderEntry = "websocket",
    ) -> None:
        self._order_entry: OrderEntry = check_order_entry("kraken", order_entry)
        self._orders_ws: KrakenWsOrders | None = None
        self._on_wire: Callable[[str], None] | None = None
        self._credentials = credentials
        self._instruments = dict(instruments)
        self._clock = clock
        self._emit = emit
        self._urls = urls
        self._rest_config = rest_config or RestConfig()
        # One budget per key on one server (a local simulator is another venue account than production).
        account = f"{credentials.fingerprint}@{urls.rest}"
        self._budget = budget or _BUDGETS.budget(spec.VENUE, account, spec.RATE_LIMITS)
        self._patience_s = rate_limit_patience_s
        self._nonces = nonce_source(credentials.fingerprint, clock.now_ns)
        self.tracker = OrderTracker(self._instruments)
        self._balances = BalanceBook()
        self._session: aiohttp.ClientSession | None = None
        self._rest: RestClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_of: dict[str, asyncio.Task[None]] = {}
        self.stream_live = False
        """The private subscriptions are confirmed on an open socket."""
        self._ws: ReconnectingWebSocket | None = None
        self._ws_spec = ws_spec or spec.private_ws_spec(urls.ws_private)
        self._rng = rng
        self._token = ""
        """The private stream's current session token (order methods carry it too)."""
        self.malformed = 0
        """Private frames that could not be read (logged, never fatal)."""

    # -- lifecycle ------------------------------------------------------------------------------

    def _order_entry_now(self) -> WsOrderEntry[WsOrderReply] | None:
        return self._orders_ws.entry if self._orders_ws is not None else None

    def _client(self) -> RestClient:
        if self._rest is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "tradeloop"})
            self._rest = RestClient(
                self._urls.rest, self._session, config=self._rest_config, budget=self._budget, name="kraken"
            )
        return self._rest

    async def start(self, timeout_s: float = 15.0) -> None:
        """Open the private stream (token, then ``executions`` + ``balances``); returns once subscribed."""
        self._client()
        if self._urls.ws_private and self._ws is None:
            self._ws = ReconnectingWebSocket(
                self._ws_spec,
                on_open=self._on_open,
                on_frame=self._on_frame,
                on_close=self._on_close,
                rng=self._rng,
                now_ns=self._clock.now_ns,
                name="kraken-private",
            )
            self._ws.start()
            await self._ws.wait_open(timeout_s)
            if self._order_entry == "websocket" and self._orders_ws is None:
                await self._start_order_socket(timeout_s)

    async def _start_order_socket(self, timeout_s: float) -> None:
        """The order socket, once the private stream holds a session token."""
        orders_ws = self._orders_ws = KrakenWsOrders(
            self._ws_spec,
            self._instruments,
            self.tracker,
            self._budget,
            emit=self._emit,
            stream_live=lambda: self.stream_live,
            fallback=self._fallback,
            patience_s=self._patience_s,
            now_ns=self._clock.now_ns,
            rng=self._rng,
        )
        orders_ws.entry.on_wire = self._on_wire
        if self._token:
            orders_ws.set_token(self._token)
        await orders_ws.start(timeout_s)

    async def stop(self) -> None:
        if self._orders_ws is not None:
            await self._orders_ws.close()
            self._orders_ws = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._rest = None

    # -- ExecutionClient ------------------------------------------------------------------------

    def submit(self, cmd: SubmitOrder) -> None:
        if not self._ws_send(cmd):
            self._spawn(cmd.client_order_id, lambda: self._submit(cmd))

    def cancel(self, cmd: CancelOrder) -> None:
        if not self._ws_send(cmd):
            self._spawn(cmd.client_order_id, lambda: self._cancel(cmd))

    def cancel_all(self, cmd: CancelAllOrders) -> None:
        if cmd.venue is not None and cmd.venue != self.venue:
            return
        self._spawn("", lambda: self._cancel_all(cmd))

    def amend(self, cmd: AmendOrder) -> None:
        if not self._ws_send(cmd):
            self._spawn(cmd.client_order_id, lambda: self._amend(cmd))

    def _ws_send(self, cmd: SubmitOrder | AmendOrder | CancelOrder) -> bool:
        """Send ``cmd`` over the order socket now; ``False`` when REST must take it (socket down, or a REST
        request of the same order still out: it must not be overtaken)."""
        orders_ws = self._orders_ws
        if orders_ws is None or cmd.client_order_id in self._last_of:
            return False
        return orders_ws.send(cmd)

    def _fallback(self, op: WsOp) -> None:
        """An op the socket could not take after all (held by the budget, then the socket dropped): REST."""
        cmd = op.cmd
        if isinstance(cmd, SubmitOrder):
            self._spawn(cmd.client_order_id, lambda: self._submit(cmd))
        elif isinstance(cmd, AmendOrder):
            self._spawn(cmd.client_order_id, lambda: self._amend(cmd))
        else:
            self._spawn(cmd.client_order_id, lambda: self._cancel(cmd))

    def query(self, cmd: QueryOrder) -> None:
        # Not queued behind the order's other requests: a query is what resolves one that hangs.
        self._spawn("", lambda: self._query(cmd))

    async def fetch_open_orders(self) -> list[OrderStatusReport]:
        """Every open order of the account (reconciliation)."""
        reply = await self._call(lambda n: orders.open_orders_request(self._credentials, n), orders.COSTS_QUERY)
        return orders.open_order_reports(reply, self._clock.now_ns())

    async def fetch_balances(self) -> AccountSnapshot:
        """Totals and amounts held by open orders, per asset (``BalanceEx``)."""
        reply = await self._call(lambda n: orders.balance_request(self._credentials, n), orders.COSTS_QUERY)
        return orders.account_snapshot(reply, self._clock.now_ns())

    # -- request plumbing -----------------------------------------------------------------------

    def _spawn(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` in a task; requests of one client order id (``key``) run one after another."""
        previous = self._last_of.get(key) if key else None

        async def run() -> None:
            if previous is not None and not previous.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(previous)
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let a venue problem escape into the loop
                log.error("kraken request failed", venue=self.venue, error=f"{type(exc).__name__}: {exc}")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        if key:
            self._last_of[key] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if key and self._last_of.get(key) is t:
                del self._last_of[key]

        task.add_done_callback(done)

    async def _call(
        self, build: Callable[[int], SignedRequest], costs: Mapping[str, int], *, order: bool = False
    ) -> orders.KrakenReply:
        """Send a freshly signed request until it gets an answer Kraken acted on (or refused).

        Rate-limit refusals wait and retry (new nonce) until the patience runs out (``_Refused``).
        Idempotent requests are re-sent after transport failures; others raise ``_Unknown`` when
        they may have been executed and ``_Refused`` when they surely were not sent.
        """
        rest = self._client()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._patience_s
        attempt = 0
        maybe_done = False  # an earlier attempt may have been executed
        while True:
            attempt += 1
            request = build(self._nonces.next())
            name = request.path.rsplit("/", 1)[-1]
            delay = min(_RETRY_CAP_S, _RETRY_BASE_S * 2 ** (attempt - 1))
            try:
                resp = await rest.request(
                    request.method,
                    request.path,
                    headers=request.headers,
                    body=request.body,
                    idempotent=False,
                    costs=costs,
                )
            except RateLimited as exc:
                raise _Refused(RejectReason.RATE_LIMITED, f"{name}: local rate budget exhausted ({exc})") from None
            except RequestNotSent as exc:
                if loop.time() + delay > deadline:
                    raise _Refused(RejectReason.OTHER, f"{name}: {exc}") from None
                await asyncio.sleep(delay)
                continue
            except OutcomeUnknown as exc:
                maybe_done = True
                if request.idempotent and attempt < self._rest_config.max_attempts:
                    await asyncio.sleep(delay)
                    continue
                raise _Unknown(str(exc)) from None
            try:
                reply = orders.decode_reply(resp.body)
            except orders.ReplyError as exc:
                maybe_done = True
                if request.idempotent and attempt < self._rest_config.max_attempts:
                    await asyncio.sleep(delay)
                    continue
                raise _Unknown(f"{name}: HTTP {resp.status}, {exc}") from None
            first = reply.first_error
            if resp.status in (418, 429) or (first and spec.is_rate_limited(first)):
                wait = orders.throttled_for_s(first, self._clock.now_ns() / 1e9) if first else None
                wait = max(wait if wait is not None else 0.0, delay)
                log.warning("kraken rate limited", venue=self.venue, request=name, error=first or str(resp.status))
                if loop.time() + wait > deadline:
                    raise _Refused(RejectReason.RATE_LIMITED, f"{name}: {first or f'HTTP {resp.status}'}")
                self._budget.penalize(wait)
                await asyncio.sleep(wait)
                continue
            if first and spec.is_outcome_unknown(first):
                maybe_done = True
                if request.idempotent and attempt < self._rest_config.max_attempts:
                    await asyncio.sleep(delay)
                    continue
                raise _Unknown(f"{name}: {first}")
            if first:
                log.info("kraken refused a request", venue=self.venue, request=name, error="; ".join(reply.error))
            if order and maybe_done and first and spec.reject_reason(first) is RejectReason.UNKNOWN_ORDER:
                # A re-sent cancel: the first attempt may have done it already.
                return orders.KrakenReply()
            return reply

    def _now(self) -> int:
        return self._clock.now_ns()

    def _emit_all(self, events: list[Event]) -> None:
        for event in events:
            self._emit(event)

    # -- commands -------------------------------------------------------------------------------

    async def _submit(self, cmd: SubmitOrder) -> None:
        inst = self._instruments.get(cmd.instrument_id)
        if inst is None:
            self._emit(refusal(self._now(), cmd, RejectReason.INVALID_ORDER, f"unknown instrument {cmd.instrument_id}"))
            return

        def build(nonce: int) -> SignedRequest:
            return orders.place_request(self._credentials, nonce, cmd, inst)

        try:
            build(0)  # validates the terms (grid, client id) before anything is sent
        except ValueError as exc:
            self._emit(refusal(self._now(), cmd, RejectReason.INVALID_ORDER, str(exc)))
            return
        self.tracker.track(cmd)
        try:
            reply = await self._call(build, orders.COSTS_ORDER)
            outcome = orders.place_outcome(reply, cmd, self._now())
        except _Refused as exc:
            outcome = refusal(self._now(), cmd, exc.reason, str(exc))
        except (_Unknown, orders.ReplyError) as exc:
            log.warning("order outcome unknown", venue=self.venue, client_order_id=cmd.client_order_id, detail=str(exc))
            return
        self._emit_all(self.tracker.on_place_reply(outcome))

    async def _cancel(self, cmd: CancelOrder) -> None:
        build = lambda n: orders.cancel_request(self._credentials, n, client_order_id=cmd.client_order_id)  # noqa: E731
        try:
            reply = await self._call(build, orders.COSTS_ORDER, order=True)
        except (_Refused, _Unknown) as exc:
            reason = exc.reason if isinstance(exc, _Refused) else RejectReason.OTHER
            self._emit(refusal(self._now(), cmd, reason, str(exc)))
            return
        rejected = orders.cancel_outcome(reply, cmd, self._now())
        if rejected is not None:
            self._emit(rejected)
        elif not self.stream_live:
            self._emit_all(self.tracker.on_cancel_confirmed(cmd.client_order_id, self._now(), "canceled (REST)"))

    async def _cancel_all(self, cmd: CancelAllOrders) -> None:
        try:
            if cmd.instrument_id is None:
                reply = await self._call(lambda n: orders.cancel_all_request(self._credentials, n), orders.COSTS_ORDER)
                if reply.error:
                    log.warning("kraken cancel-all refused", venue=self.venue, error="; ".join(reply.error))
                elif not self.stream_live:
                    for order in self.tracker.open_orders():
                        self._emit_all(self.tracker.on_cancel_confirmed(order.client_order_id, self._now(), cmd.reason))
                return
            # Kraken's CancelAll covers every pair: one instrument means its open orders one by one,
            # by Kraken's id (orders placed elsewhere may have no client id).
            for report in await self.fetch_open_orders():
                txid = report.venue_order_id
                if report.instrument_id != cmd.instrument_id or not txid:
                    continue

                def build(nonce: int, txid: str = txid) -> SignedRequest:
                    return orders.cancel_request(self._credentials, nonce, txid=txid)

                reply = await self._call(build, orders.COSTS_ORDER, order=True)
                if reply.error:
                    log.info("kraken cancel refused", venue=self.venue, order_id=txid, error=reply.first_error)
                elif not self.stream_live:
                    self._emit_all(self.tracker.on_cancel_confirmed(report.client_order_id, self._now(), cmd.reason))
        except (_Refused, _Unknown, orders.ReplyError) as exc:
            log.warning("kraken cancel-all failed", venue=self.venue, error=str(exc))

    async def _amend(self, cmd: AmendOrder) -> None:
        tracked = self.tracker.get(cmd.client_order_id)
        inst = self._instruments.get(cmd.instrument_id)
        post_only = tracked.post_only if tracked is not None else False
        if inst is None:
            self._emit(refusal(self._now(), cmd, RejectReason.INVALID_ORDER, f"unknown instrument {cmd.instrument_id}"))
            return
        instrument = inst

        def build(nonce: int) -> SignedRequest:
            return orders.amend_request(self._credentials, nonce, cmd, instrument, post_only=post_only)

        try:
            build(0)
        except ValueError as exc:
            self._emit(refusal(self._now(), cmd, RejectReason.INVALID_ORDER, str(exc)))
            return
        try:
            reply = await self._call(build, orders.COSTS_ORDER)
        except _Refused as exc:
            self._emit(refusal(self._now(), cmd, exc.reason, str(exc)))
            return
        except _Unknown as exc:
            log.warning("amend outcome unknown", venue=self.venue, client_order_id=cmd.client_order_id, detail=str(exc))
            return
        if tracked is None:
            if reply.error:
                self._emit(orders.amend_outcome(reply, cmd, self._now(), None, 0))
            return  # terms unknown here: the executions stream reports the amend
        price = cmd.price if cmd.price is not None else tracked.price
        qty = cmd.qty if cmd.qty is not None else tracked.qty
        self._emit_all(self.tracker.on_amend_reply(orders.amend_outcome(reply, cmd, self._now(), price, qty)))

    async def _query(self, cmd: QueryOrder) -> None:
        cid = cmd.client_order_id
        tracked = self.tracker.get(cid)
        inst = self._instruments.get(cmd.instrument_id)
        try:
            reply = await self._call(lambda n: orders.query_request(self._credentials, n, cid), orders.COSTS_QUERY)
            answer = orders.status_report(reply, cmd.instrument_id, cid, self._now())
            if answer is None:
                log.warning(
                    "kraken order query refused", venue=self.venue, client_order_id=cid, error=reply.first_error
                )
                return
            report, trade_ids = answer
            known_filled = tracked.filled if tracked is not None else 0
            if trade_ids and inst is not None and report.filled_qty > known_filled:
                for start in range(0, len(trade_ids), 20):
                    chunk = trade_ids[start : start + 20]

                    def build(nonce: int, chunk: list[str] = chunk) -> SignedRequest:
                        return orders.query_trades_request(self._credentials, nonce, chunk)

                    trades = await self._call(build, orders.COSTS_TRADES)
                    fills = orders.fills_of_trades(trades, inst, cid, self._now())
                    self._emit_all(self.tracker.on_fills(fills))
        except (_Refused, _Unknown, orders.ReplyError) as exc:
            log.warning("kraken order query failed", venue=self.venue, client_order_id=cid, error=str(exc))
            return
        if tracked is not None and report.status is not None:
            tracked.accepted = True
            if report.status.is_terminal and not tracked.terminal:
                self.tracker.on_cancel_confirmed(cid, report.ts)  # terminal now; the report tells the OMS
        self._emit(report)

    # -- private stream -------------------------------------------------------------------------

    async def _on_open(self, conn: WsConnection) -> None:
        reply = await self._call(lambda n: orders.ws_token_request(self._credentials, n), orders.COSTS_QUERY)
        token = self._token = orders.token_of(reply)
        register_secret(token)
        if self._orders_ws is not None:
            self._orders_ws.set_token(token)
        subscriptions = {
            "executions": {"snap_orders": True, "snap_trades": True, "order_status": True},
            "balances": {"snapshot": True},
        }
        for req_id, (channel, extra) in enumerate(subscriptions.items(), start=1):
            params = {"channel": channel, "token": token, **extra}
            await conn.send(msgspec.json.encode({"method": "subscribe", "params": params, "req_id": req_id}).decode())
        pending = set(subscriptions)
        while pending:
            frame = await conn.receive(timeout_s=10.0)
            raw = frame.encode() if isinstance(frame, str) else frame
            if b'"method"' in raw[:32] and b'"subscribe"' in raw[:64]:
                ack = msgspec.json.decode(raw, type=dict[str, object])
                result = ack.get("result")
                if ack.get("success") is not True:
                    raise ConnectionError(f"kraken private subscribe refused: {ack.get('error')}")
                pending.discard(str(result.get("channel")) if isinstance(result, dict) else "")
                continue
            self._on_frame(raw, self._now())
        self.stream_live = True

    def _on_close(self, reason: str) -> None:
        self.stream_live = False
        log.info("kraken private stream lost", venue=self.venue, reason=reason)

    def _on_frame(self, data: str | bytes, ts_recv: int) -> None:
        # ts_recv comes from the injected clock (the socket is built with ``now_ns=clock.now_ns``).
        try:
            msg = decode_private(data)
        except PrivateParseError as exc:
            self.malformed += 1
            log.warning("malformed private frame", venue=self.venue, error=str(exc)[:200])
            return
        if msg is None:
            return
        if isinstance(msg, BalancesMessage):
            self._emit(self._balances.on_balances(msg, ts_recv))
            return
        self._emit_all(self.tracker.on_executions(msg, ts_recv))
        if msg.type == "snapshot":
            # Orders working before the stream (re)connected that the snapshot does not list as open
            # may have finished meanwhile: ask Kraken.
            listed = {spec.from_cl_ord_id(e.cl_ord_id or "") for e in msg.data if e.exec_type != "trade"}
            for order in self.tracker.open_orders():
                if order.accepted and order.client_order_id not in listed:
                    self.query(
                        QueryOrder(ts=ts_recv, instrument_id=order.instrument.id, client_order_id=order.client_order_id)
                    )
