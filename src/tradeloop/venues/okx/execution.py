"""OKX execution client: order ops on the private WebSocket, signed REST for the rest.

Place, amend and cancel go out as WebSocket order ops on the logged-in private connection
(:class:`~tradeloop.venues.transport.order_entry.WsOrderEntry` on an
:class:`~tradeloop.venues.transport.order_socket.OrderSocket`, picows) while it is up (``order_entry="websocket"``, the
default): the frame is written inside the ``submit``/``amend``/``cancel`` call, with no task and no
await in between (the rate budget is checked synchronously; an op it holds back is sent from a
timer). Over REST (:mod:`tradeloop.venues.okx.orders`, a :class:`RestClient`) go queries, open
orders, balances, cancel-all, and every order request while the socket is down or with
``order_entry="rest"``: place and amend are sent once (``idempotent=False``); cancels, queries and
listings may be retried. Every reply, over either path, and every push goes through
:class:`~tradeloop.venues.okx.private.OkxOrderTracker`, which emits each engine event once. What the
client does with failures:

* rate limited (HTTP 429 or code 50011/50040/50061/60014): wait (``Retry-After`` or backoff) and send the
  same request again, same client order id, re-signed; after ``rate_limit_patience_s``
  ``OrderRejected(RATE_LIMITED)`` (or the cancel/amend rejection);
* outcome unknown (timeout, connection lost, 5xx on a place or amend, code 50004, the private socket
  dropped before an op's reply): nothing is emitted; the OMS times out and queries by client id,
  answered by the fills it missed and an ``OrderStatusReport``; nothing is re-sent;
* not sent (no connection): ``OrderRejected`` with the reason, since the venue never saw it.

The private connection logs in (``op: login`` signed over ``GET/users/self/verify``), subscribes
``orders`` (every instrument type) and ``account``, keeps alive with text ``ping``, and after a
reconnect queries the orders it still tracks as open (fills pushed during the gap come back through
the query). At start the client reads each instrument's ``instIdCode`` from the public instrument
listing (order ops name instruments by it; ``instId`` when the listing has none). Cancel-all lists
``orders-pending`` (all pages) and cancels by ``ordId`` in batches of 20. Signing timestamps are the
injected clock corrected by the measured offset to OKX's clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any, Final

import aiohttp
import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
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
from tradeloop.venues.okx import orders as req
from tradeloop.venues.okx.auth import ws_login_args
from tradeloop.venues.okx.instruments import (
    OkxInstrument,
    SizeError,
    instruments_by_symbol,
    parse_instruments,
    spot_spec_of,
    with_listed_codes,
)
from tradeloop.venues.okx.orders import AckOutcome, OkxRequestError, refusal, server_time_ns
from tradeloop.venues.okx.private import OkxOrderTracker, PrivateParseError
from tradeloop.venues.okx.schemas import BalanceReply, FillsReply, OrderData, OrdersReply
from tradeloop.venues.okx.spec import (
    BATCH_MAX,
    OUTCOME_UNKNOWN_CODES,
    PATHS,
    PENDING_PAGE,
    RATE_LIMIT_SPECS,
    VENUE,
    WS_OP_COSTS,
    WS_PRIVATE,
    request_costs,
)
from tradeloop.venues.okx.ws_wire import OkxOpWire, WsFrames, WsReply, read_login_reply
from tradeloop.venues.transport.backoff import Backoff, BackoffSpec
from tradeloop.venues.transport.clock_sync import ClockOffsetEstimator
from tradeloop.venues.transport.order_entry import OrderEntry, OrderEntryAccess, WsOp, WsOrderEntry, check_order_entry
from tradeloop.venues.transport.order_socket import OrderSocket
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimited
from tradeloop.venues.transport.rest import (
    OutcomeUnknown,
    RequestNotSent,
    RestClient,
    RestConfig,
    RestError,
    RestResponse,
    measure_clock_offset,
    parse_retry_after,
)
from tradeloop.venues.transport.ws import WsSpec

__all__ = ["OkxExecutionClient", "OrderEntry"]

log = get_logger("tradeloop.venues.okx.execution")

_ORDERS = msgspec.json.Decoder(OrdersReply)
_FILLS = msgspec.json.Decoder(FillsReply)
_BALANCE = msgspec.json.Decoder(BalanceReply)
_LOGIN_TIMEOUT_S: Final = 5.0
_ORDER_NOT_FOUND: Final = frozenset({"51603"})
_SUBSCRIBE: Final = msgspec.json.encode(
    {"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}, {"channel": "account"}]}
)

Build = Callable[[int], SignedRequest]


class OkxExecutionClient(OrderEntryAccess[WsReply]):
    """The :class:`~tradeloop.venues.base.ExecutionClient` of OKX (see the module docstring)."""

    venue = VENUE
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
        specs: Mapping[str, OkxInstrument] | None = None,
        ws_spec: WsSpec | None = None,
        budget: RateBudget | None = None,
        rate_limit_patience_s: float = 5.0,
        batch_place: bool = True,
        measure_offset: bool = True,
        rng: random.Random | None = None,
        order_entry: OrderEntry = "websocket",
    ) -> None:
        known = specs if specs is not None else instruments_by_symbol()
        self._specs: dict[str, OkxInstrument] = {}
        for iid, inst in instruments.items():
            if iid.venue != VENUE:
                raise ValueError(f"okx execution: {iid} is not an okx instrument")
            spec = known.get(iid.symbol)
            self._specs[iid.symbol] = spec if spec is not None else spot_spec_of(inst)
        self._creds = credentials
        self._clock = clock
        self._emit_fn = emit
        self._urls = urls
        self._rest_config = rest_config or RestConfig()
        self._budget = budget if budget is not None else RateBudget(VENUE, credentials.name, RATE_LIMIT_SPECS)
        self._patience_s = rate_limit_patience_s
        self._batch_place = batch_place
        self._measure_offset = measure_offset
        self._rng = rng or random.Random()
        self._ws_spec = msgspec.structs.replace(ws_spec or WS_PRIVATE, url=urls.ws_private)
        self.tracker = OkxOrderTracker(self._specs)
        self.offset = ClockOffsetEstimator()
        self._offset_ns = 0
        self._order_entry: OrderEntry = check_order_entry("okx", order_entry)
        self._rest: RestClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: OrderSocket | None = None
        self._entry: WsOrderEntry[WsReply] | None = None
        self._frames: dict[str, WsFrames] = {}
        self._on_wire: Callable[[str], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logins = 0
        self.malformed = 0
        """Private-stream frames that failed to parse (each logged)."""

    # -- lifecycle ----------------------------------------------------------------------------

    def _order_entry_now(self) -> WsOrderEntry[WsReply] | None:
        return self._entry

    async def start(self) -> None:
        """Measure the clock offset, read instrument codes, log in on the private socket and subscribe
        (returns once logged in)."""
        if self._rest is not None:
            raise RuntimeError("okx execution client already started")
        self._session = aiohttp.ClientSession()
        self._rest = RestClient(
            self._urls.rest, self._session, config=self._rest_config, budget=self._budget, name="okx-private"
        )
        if self._measure_offset:
            try:
                self._offset_ns = await measure_clock_offset(
                    self._rest, PATHS["time"], server_time_ns, self.offset, samples=3, now_ns=self._clock.now_ns
                )
            except (RestError, ValueError, msgspec.DecodeError) as exc:
                log.warning("okx clock offset not measured", venue=VENUE, error=repr(exc))
        if self._order_entry == "websocket":
            await self._learn_instrument_codes()
        spec = self._ws_spec
        self._socket = OrderSocket(
            spec,
            login=self._login_frame,
            read_login_reply=read_login_reply,
            subscribe=lambda: (_SUBSCRIBE,),
            on_frame=self._on_frame,
            on_open=self._on_open,
            on_close=self._on_close,
            login_timeout_s=min(_LOGIN_TIMEOUT_S, spec.open_timeout_s),
            now_ns=self._clock.now_ns,
            rng=self._rng,
            name="okx-private",
        )
        if self._order_entry == "websocket":
            self._frames = {symbol: WsFrames(spec) for symbol, spec in self._specs.items()}
            self._entry = WsOrderEntry(
                self._socket,
                self._budget,
                OkxOpWire(),
                costs=WS_OP_COSTS,
                on_ack=self._on_ws_ack,
                fallback=self._fallback,
                patience_s=self._patience_s,
                rng=self._rng,
                name="okx-orders",
            )
            self._entry.on_wire = self._on_wire
        self._socket.start()
        await self._socket.wait_open(spec.connect_timeout_s + spec.open_timeout_s)

    async def _learn_instrument_codes(self) -> None:
        """``instIdCode`` of each instrument from ``/api/v5/public/instruments`` (order ops name instruments
        by it); an instrument the listing gives no code keeps its static one, or goes by ``instId``."""
        rest = self._require_rest()
        path = PATHS["instruments"]
        for inst_type in sorted({s.inst_type for s in self._specs.values()}):
            try:
                reply = await rest.request(
                    "GET", path, params={"instType": inst_type}, idempotent=True, costs=request_costs(path)
                )
                self._specs = with_listed_codes(self._specs, parse_instruments(reply.body))
            except (RestError, ValueError) as exc:
                log.warning("okx instrument codes not read", venue=VENUE, inst_type=inst_type, error=str(exc)[:200])

    async def stop(self) -> None:
        if self._entry is not None:
            self._entry.cancel_timers()
        if self._socket is not None:
            await self._socket.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the ExecutionClient protocol ---------------------------------------------------------

    def submit(self, cmd: SubmitOrder) -> None:
        if not self._ws_send("order", cmd):
            self._spawn(self._submit(cmd))

    def cancel(self, cmd: CancelOrder) -> None:
        if not self._ws_send("cancel-order", cmd):
            self._spawn(self._cancel(cmd))

    def cancel_all(self, cmd: CancelAllOrders) -> None:
        self._spawn(self._cancel_all(cmd))

    def amend(self, cmd: AmendOrder) -> None:
        if not self._ws_send("amend-order", cmd):
            self._spawn(self._amend(cmd))

    def _ws_send(self, kind: str, cmd: SubmitOrder | AmendOrder | CancelOrder) -> bool:
        """Send ``cmd`` as a WebSocket order op now (written before this returns, unless the rate budget
        holds it); ``False`` when the socket cannot take it, and REST must."""
        entry = self._entry
        if entry is None:
            return False
        if not entry.socket.ready:
            entry.fell_back += 1
            return False
        frames = self._frames.get(cmd.instrument_id.symbol)
        try:
            if frames is None:
                raise OkxRequestError("unknown instrument")
            if isinstance(cmd, AmendOrder):
                tail = frames.amend(cmd)
            elif isinstance(cmd, SubmitOrder):
                tail = frames.place(cmd)
            else:
                tail = frames.cancel(cmd)
        except (OkxRequestError, SizeError) as exc:
            now, why = self._now(), f"okx: {exc}"
            refused = (
                self.tracker.rejected(now, cmd, RejectReason.INVALID_ORDER, why)
                if isinstance(cmd, SubmitOrder)
                else refusal(now, cmd, why)
            )
            asyncio.get_running_loop().call_soon(self._emit, refused)  # not from inside the engine's call
            return True
        entry.send(WsOp(kind, cmd, tail))
        if isinstance(cmd, AmendOrder):  # after the write: its reply cannot come before this returns
            self.tracker.amend_sent(cmd.instrument_id, cmd.client_order_id)
        return True

    def query(self, cmd: QueryOrder) -> None:
        self._spawn(self._query(cmd.instrument_id, cmd.client_order_id))

    # -- requests -----------------------------------------------------------------------------

    async def _submit(self, cmd: SubmitOrder) -> None:
        spec = self._specs.get(cmd.instrument_id.symbol)
        if spec is None:
            self._emit(self.tracker.rejected(self._now(), cmd, RejectReason.INVALID_ORDER, "okx: unknown instrument"))
            return
        batch = self._batch_place

        def build(now_ms: int) -> SignedRequest:
            return req.place_order(self._creds, now_ms, cmd, spec, batch=batch)

        try:
            build(self._now_ms())
        except (OkxRequestError, SizeError) as exc:
            self._emit(self.tracker.rejected(self._now(), cmd, RejectReason.INVALID_ORDER, f"okx: {exc}"))
            return
        acks = await self._send(build)
        if acks is None:
            return
        self._emit_all(self.tracker.on_place_reply(self._now(), cmd, acks[0]))

    async def _cancel(self, cmd: CancelOrder) -> None:
        iid, cid = cmd.instrument_id, cmd.client_order_id
        try:
            acks = await self._send(
                lambda now_ms: req.cancel_order(self._creds, now_ms, iid.symbol, client_order_id=cid)
            )
        except OkxRequestError as exc:
            self._emit(refusal(self._now(), cmd, f"okx: {exc}"))
            return
        if acks is not None:
            self._emit_all(self.tracker.on_cancel_reply(self._now(), iid, cid, acks[0]))

    async def _amend(self, cmd: AmendOrder) -> None:
        iid, cid = cmd.instrument_id, cmd.client_order_id
        spec = self._specs.get(iid.symbol)

        def build(now_ms: int) -> SignedRequest:
            assert spec is not None
            return req.amend_order(self._creds, now_ms, cmd, spec)

        try:
            if spec is None:
                raise OkxRequestError("unknown instrument")
            build(self._now_ms())
        except (OkxRequestError, SizeError) as exc:
            self._emit(refusal(self._now(), cmd, f"okx: {exc}"))
            return
        self.tracker.amend_sent(iid, cid)
        acks = await self._send(build)
        if acks is not None:
            self._emit_all(self.tracker.on_amend_reply(self._now(), iid, cid, acks[0]))

    async def _cancel_all(self, cmd: CancelAllOrders) -> None:
        inst_id = cmd.instrument_id.symbol if cmd.instrument_id is not None else None
        try:
            pending = await self._pending(inst_id)
        except RestError as exc:
            log.error("okx cancel-all could not list open orders", venue=VENUE, error=str(exc))
            return
        targets = [(d.instId, d.ordId) for d in pending if d.ordId]
        for start in range(0, len(targets), BATCH_MAX):
            chunk = targets[start : start + BATCH_MAX]
            acks = await self._send(partial(req.cancel_batch, self._creds, orders=chunk))
            if acks is None:
                continue
            for (inst, ord_id), ack in zip(chunk, acks if len(acks) == len(chunk) else acks * len(chunk), strict=False):
                if ack.ok:
                    continue
                log.warning("okx cancel-all item failed", venue=VENUE, inst=inst, ord_id=ord_id, code=ack.code)
                if ack.cl_ord_id:
                    iid = InstrumentId(VENUE, inst)
                    self._emit_all(self.tracker.on_cancel_reply(self._now(), iid, ack.cl_ord_id, ack))

    async def _query(self, iid: InstrumentId, cid: str) -> None:
        try:
            events = await self._query_events(iid, cid)
        except (RestError, OkxRequestError, ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("okx order query failed", venue=VENUE, client_order_id=cid, error=str(exc)[:300])
            return
        self._emit_all(events)

    async def _query_events(self, iid: InstrumentId, cid: str) -> list[Event]:
        reply = await self._get(lambda now_ms: req.query_order(self._creds, now_ms, iid.symbol, client_order_id=cid))
        orders = _ORDERS.decode(reply.body)
        if orders.code in _ORDER_NOT_FOUND or (orders.code == "0" and not orders.data):
            return self.tracker.on_query(self._now(), iid, cid, None, [])
        if orders.code != "0":
            raise ValueError(f"okx {orders.code}: {orders.msg}")
        data = orders.data[0]
        fills = []
        if data.accFillSz not in ("", "0") and data.ordId:
            got = await self._get(lambda now_ms: req.order_fills(self._creds, now_ms, data.instId, data.ordId))
            fills_reply = _FILLS.decode(got.body)
            fills = sorted(fills_reply.data, key=lambda f: (f.fillTime or f.ts, f.tradeId))
        return self.tracker.on_query(self._now(), iid, cid, data, fills)

    async def fetch_open_orders(self) -> list[OrderStatusReport]:
        """Every open order on the instruments of this client (reconciliation)."""
        now = self._now()
        out = []
        for data in await self._pending(None):
            spec = self._specs.get(data.instId)
            if spec is not None:
                out.append(req.status_report(now, data, spec))
        return out

    async def fetch_balances(self) -> AccountSnapshot:
        """Trading-account balances."""
        reply = await self._get(lambda now_ms: req.balance(self._creds, now_ms))
        decoded = _BALANCE.decode(reply.body)
        if decoded.code != "0":
            raise RestError(f"okx balance: {decoded.code}: {decoded.msg}", method="GET", path=PATHS["balance"])
        return req.account_snapshot(self._now(), decoded.data)

    async def _pending(self, inst_id: str | None) -> list[OrderData]:
        out: list[OrderData] = []
        after: str | None = None
        while True:
            reply = await self._get(partial(req.pending_orders, self._creds, inst_id=inst_id, after=after))
            decoded = _ORDERS.decode(reply.body)
            if decoded.code != "0":
                raise RestError(
                    f"okx orders-pending: {decoded.code}: {decoded.msg}", method="GET", path=PATHS["pending"]
                )
            out.extend(decoded.data)
            if len(decoded.data) < PENDING_PAGE:
                return out
            after = decoded.data[-1].ordId

    # -- sending ------------------------------------------------------------------------------

    async def _get(self, build: Build) -> RestResponse:
        """An idempotent signed GET (retried by the transport)."""
        rest = self._require_rest()
        r = build(self._now_ms())
        return await rest.request(
            r.method, r.path, params=r.query or None, headers=r.headers, idempotent=True, costs=request_costs(r.path)
        )

    async def _send(self, build: Build) -> list[AckOutcome] | None:
        """Send an order request, re-sending it while rate limited; ``None`` when its outcome is unknown."""
        rest = self._require_rest()
        loop = asyncio.get_running_loop()
        started = loop.time()
        backoff = Backoff(BackoffSpec(base_s=0.1, cap_s=2.0), self._rng)
        while True:
            r = build(self._now_ms())
            items = r.body.count('"instId"') if r.body and r.body.startswith("[") else 1
            try:
                reply = await rest.request(
                    r.method,
                    r.path,
                    params=r.query or None,
                    headers=r.headers,
                    body=r.body,
                    idempotent=r.idempotent,
                    costs=request_costs(r.path, max(items, 1)),
                )
            except RateLimited as exc:
                return [AckOutcome(False, "50011", f"rate budget exhausted: {exc}")]
            except OutcomeUnknown:
                return None  # the OMS queries the order by client id
            except RequestNotSent as exc:
                return [AckOutcome(False, "", f"request not sent: {exc}")]
            except RestError as exc:
                log.warning("okx request failed", venue=VENUE, error=str(exc))
                return None
            acks = req.read_acks(reply.status, reply.body)
            if len(acks) == 1 and acks[0].code in OUTCOME_UNKNOWN_CODES:
                return None  # "does not indicate success or failure": the OMS queries the order
            if not (len(acks) == 1 and acks[0].rate_limited):
                return acks
            retry_after = parse_retry_after(reply.headers.get("Retry-After"))
            delay = retry_after if retry_after is not None else backoff.next_delay()
            if loop.time() + delay - started > self._patience_s:
                return acks
            log.info("okx rate limited: re-sending", venue=VENUE, path=r.path, delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    def _require_rest(self) -> RestClient:
        if self._rest is None:
            raise RuntimeError("okx execution client not started")
        return self._rest

    # -- WebSocket order ops ------------------------------------------------------------------

    def _on_ws_ack(self, op: WsOp, reply: WsReply) -> None:
        """An order op's final outcome (rate limits already retried by the order entry)."""
        now, cmd, ack = self._now(), op.cmd, reply.acks[0]
        if isinstance(cmd, SubmitOrder):
            events = self.tracker.on_place_reply(now, cmd, ack)
        elif isinstance(cmd, AmendOrder):
            events = self.tracker.on_amend_reply(now, cmd.instrument_id, cmd.client_order_id, ack)
        else:
            events = self.tracker.on_cancel_reply(now, cmd.instrument_id, cmd.client_order_id, ack)
        self._emit_all(events)

    def _fallback(self, op: WsOp) -> None:
        """An op the socket cannot take (it is down): over REST, same client order id (never written)."""
        cmd = op.cmd
        if isinstance(cmd, SubmitOrder):
            self._spawn(self._submit(cmd))
        elif isinstance(cmd, AmendOrder):
            self._spawn(self._amend(cmd))
        else:
            self._spawn(self._cancel(cmd))

    # -- private stream -----------------------------------------------------------------------

    def _login_frame(self) -> bytes:
        key, secret, passphrase = req.api_keys(self._creds)
        args = ws_login_args(key, secret, passphrase, self._now_ms() // 1000)
        return msgspec.json.encode({"op": "login", "args": [args]})

    def _on_open(self) -> None:
        self._logins += 1
        if self._logins > 1:
            for iid, cid in self.tracker.open_orders():
                self._spawn(self._query(iid, cid))

    def _on_frame(self, payload: bytes, ts_recv: int) -> None:
        entry = self._entry
        if entry is not None and entry.handle(payload):
            return
        try:
            events = self.tracker.parse(ts_recv, payload)
        except PrivateParseError as exc:
            self.malformed += 1
            log.warning("okx malformed private frame", venue=VENUE, channel="private", error=str(exc)[:300])
            return
        self._emit_all(events)

    def _on_close(self, reason: str) -> None:
        if self._entry is not None:
            self._entry.connection_lost()
        log.info("okx private stream lost", venue=VENUE, reason=reason)

    # -- helpers ------------------------------------------------------------------------------

    def _now(self) -> int:
        return self._clock.now_ns()

    def _now_ms(self) -> int:
        return (self._clock.now_ns() + self._offset_ns) // 1_000_000

    def _emit(self, event: Event) -> None:
        try:
            self._emit_fn(event)
        except Exception as exc:  # the engine's problem must not kill the client's task
            log.error("okx event handler raised", venue=VENUE, event_type=type(event).__name__, error=repr(exc))

    def _emit_all(self, events: list[Event]) -> None:
        for event in events:
            self._emit(event)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("okx request task failed", venue=VENUE, error=repr(task.exception()))
