"""Bybit v5 dialect of the local venue simulator: REST v5, ``/v5/public/{spot|linear}``, ``/v5/private``.

Served at production paths, backed by a :class:`~tradeloop.venues.simulator.core.SimulatorCore`:

* REST: ``order/create|cancel|cancel-all|amend``, ``order/realtime|history``, ``execution/list``,
  ``account/wallet-balance`` (signed: ``X-BAPI-*`` headers checked against the simulator's key,
  ``10003``/``10004``/``10002`` like Bybit), ``market/time`` and ``market/instruments-info`` (public).
  Replies carry ``X-Bapi-Limit``/``X-Bapi-Limit-Status``. A create is answered ``retCode`` 0 when the
  order is taken (also when Bybit would take it and then cancel it: post-only crossing, FOK not
  fillable, nothing to fill, reported on the order stream with Bybit's ``rejectReason``); refusals
  Bybit makes up front (balance, duplicate ``orderLinkId``, bad parameters) are error codes.
* Public socket: ``orderbook.{1|50|200|500|1000}.{symbol}`` (snapshot on subscribe, then deltas of the
  top-``depth`` view, ``u`` +1 per message per topic; level 1 is always a snapshot) and ``publicTrade``.
* Private socket: ``auth`` (HMAC of ``GET/realtime{expires}``), then ``order``/``execution``/``wallet``.
* Trade socket ``/v5/trade``: ``auth`` as the private one, then ``order.create|amend|cancel`` executed by
  the REST handlers (:mod:`.sim_trade`); the order's pushes go out on the private socket.
* All answer ``{"op":"ping"}`` with Bybit's public / private / trade pong shapes.

Faults: ``skip_sequence`` consumes a depth book's ``u`` without sending it; ``stall_feed`` holds market
frames and leaves pings unanswered; ``send_malformed`` is pushed to public subscribers as is;
``reject_next`` refuses the next order request with that ``retCode`` (an ``EC_*`` value instead takes
the order and cancels it on the stream with that ``rejectReason``); ``rate_limit_next`` answers the
next signed request or trade-socket op with ``10006`` "Too many visits!"; ``delay_next_reply`` holds an
order reply (REST or trade socket);
``corrupt_checksum`` does not apply (Bybit sends no checksum).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import WSMsgType, web

from tradeloop.core import fixed
from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import RejectReason
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderEventBase,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.sim_requests import RequestError, auth_ok, decode_op, parse_order, verify
from tradeloop.venues.bybit.sim_trade import Call, TradeOps
from tradeloop.venues.bybit.sim_wire import (
    MESSAGES,
    Answer,
    BookTopic,
    SimOrderRow,
    book_message,
    encode,
    instrument_rows,
    reply,
    topic_message,
    trade_message,
    wallet_rows,
)
from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["BybitDialect"]

log = get_logger("tradeloop.venues.bybit.simulator")

_STREAM_REJECTS: Final = {
    RejectReason.POST_ONLY_WOULD_CROSS: "EC_PostOnlyWillTakeLiquidity",
    RejectReason.FOK_NOT_FILLABLE: "EC_NoEnoughQtyToFill",
    RejectReason.NO_LIQUIDITY: "EC_NoImmediateQtyToFill",
}
"""Refusals Bybit makes after taking the order: ``retCode`` 0, then ``Cancelled`` on the order stream."""
_REST_CODES: Final = {
    "spot": {
        RejectReason.INSUFFICIENT_BALANCE: 170131,
        RejectReason.DUPLICATE_CLIENT_ID: 170141,
        RejectReason.UNKNOWN_ORDER: 170213,
    },
    "linear": {
        RejectReason.INSUFFICIENT_BALANCE: 110007,
        RejectReason.DUPLICATE_CLIENT_ID: 110072,
        RejectReason.UNKNOWN_ORDER: 110001,
    },
}
_TICK_S: Final = 0.05


_Handler = Callable[[Call], Awaitable[Answer]]


class _Conn:
    """One accepted socket with an ordered outbound queue (market frames wait out a stall)."""

    def __init__(self, ws: web.WebSocketResponse, conn_id: str) -> None:
        self.ws = ws
        self.id = conn_id
        self.topics: set[str] = set()
        self.authed = False
        self.req_ids: set[str] = set()
        self.queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    def push(self, frame: str, market: bool = False) -> None:
        self.queue.put_nowait((frame, market))


class BybitDialect:
    """Bybit v5 on a :class:`VenueSimulator` for one venue (``bybit`` spot or ``bybit_linear``)."""

    def __init__(self, venue: str = spec.VENUE_SPOT) -> None:
        if venue not in spec.CATEGORY_OF_VENUE:
            raise ValueError(f"not a Bybit venue: {venue!r}")
        self.venue = venue
        self.category = spec.CATEGORY_OF_VENUE[venue]
        self._public: list[_Conn] = []
        self._private: list[_Conn] = []
        self._topics: dict[str, BookTopic] = {}
        self._orders: dict[str, SimOrderRow] = {}
        self._ids = itertools.count(1)
        self._ticker: asyncio.Task[None] | None = None
        self._trade: list[_Conn] = []
        self.requests: Counter[str] = Counter()
        """Order requests served: ``ws:<op>`` (trade socket) and ``rest:<path>``."""
        self.ws_ops: deque[tuple[str, dict[str, Any]]] = deque(maxlen=1000)
        """Trade-socket order ops as received: ``(op, args item)``."""

    # -- installation -------------------------------------------------------------------------

    def install(self, sim: VenueSimulator) -> None:
        if sim.core.venue != self.venue:
            raise ValueError(f"dialect {self.venue} on a simulator of {sim.core.venue}")
        self.sim = sim
        self.core = sim.core
        self._symbols = {iid.symbol: inst for iid, inst in sim.core.instruments.items()}
        r = sim.app.router
        r.add_get(spec.SERVER_TIME, self._time)
        r.add_get(spec.INSTRUMENTS_INFO, self._instruments)
        r.add_post(spec.CREATE, self._signed(self._create, order_request=True))
        r.add_post(spec.CANCEL, self._signed(self._cancel, order_request=True))
        r.add_post(spec.CANCEL_ALL, self._signed(self._cancel_all, order_request=True))
        r.add_post(spec.AMEND, self._signed(self._amend, order_request=True))
        r.add_get(spec.REALTIME, self._signed(self._realtime))
        r.add_get(spec.HISTORY, self._signed(self._history))
        r.add_get(spec.EXECUTIONS, self._signed(self._executions))
        r.add_get(spec.WALLET, self._signed(self._wallet))
        r.add_get(f"/v5/public/{self.category}", self._public_socket)
        r.add_get("/v5/private", self._private_socket)
        self._trade_ops = TradeOps(
            self, {spec.WS_CREATE: self._create, spec.WS_AMEND: self._amend, spec.WS_CANCEL: self._cancel}
        )
        r.add_get("/v5/trade", self._trade_socket)
        sim.core.add_market_listener(self._on_market)
        sim.core.add_private_listener(self._on_event)

    def _now_ms(self) -> int:
        return self.core.clock.now_ns() // 1_000_000

    def _answer(self, code: int, result: object = None, msg: str = "") -> Answer:
        return Answer(code, result or {}, msg or MESSAGES.get(code, "OK" if code == 0 else "error"))

    def _http(self, answer: Answer, headers: dict[str, str] | None = None) -> web.Response:
        body = encode(reply(answer.code, answer.msg, answer.result, self._now_ms()))
        return web.Response(text=body, content_type="application/json", headers=headers)

    # -- REST ---------------------------------------------------------------------------------

    def _signed(
        self, handler: _Handler, *, order_request: bool = False
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            text = (await request.text()) if request.method == "POST" else request.query_string
            now = self._now_ms()
            try:
                params = verify(request.headers, request.method, text, self.sim.credentials, now, self.category)
            except RequestError as exc:
                return self._http(self._answer(exc.code, msg=str(exc)))
            if order_request:
                self.requests[f"rest:{request.path}"] += 1
            limit = {"X-Bapi-Limit": "20", "X-Bapi-Limit-Status": "19", "X-Bapi-Limit-Reset-Timestamp": str(now + 1000)}
            if self.sim.faults.take_rate_limit():
                limit |= {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(now + 100)}
                return self._http(self._answer(10006), headers=limit)
            error = self.sim.faults.take_reject() if order_request and request.path != spec.CANCEL_ALL else None
            if error is not None and not error.startswith("EC_"):
                code = int(error) if error.lstrip("-").isdigit() else 10001
                return self._http(self._answer(code, msg=MESSAGES.get(code, error)), headers=limit)
            delay = self.sim.faults.take_delay() if order_request else 0.0
            try:
                answer = await handler(Call(params, error))
            except RequestError as exc:
                answer = self._answer(exc.code, msg=str(exc))
            if delay:
                await asyncio.sleep(delay)
            return self._http(answer, headers=limit)

        return route

    async def _time(self, request: web.Request) -> web.Response:
        ns = self.core.clock.now_ns()
        return self._http(self._answer(0, {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}))

    async def _instruments(self, request: web.Request) -> web.Response:
        if request.query.get("category") != self.category:
            return self._http(self._answer(10001, msg="category only support " + self.category))
        rows = instrument_rows(self.core.instruments.values(), self.category)
        return self._http(self._answer(0, {"category": self.category, "list": rows, "nextPageCursor": ""}))

    def _instrument(self, params: dict[str, str]) -> Instrument:
        inst = self._symbols.get(params.get("symbol", ""))
        if inst is None:
            raise RequestError(10001, f"symbol invalid: {params.get('symbol', '')!r}")
        return inst

    def _find(self, params: dict[str, str]) -> SimOrderRow | None:
        cid = params.get("orderLinkId")
        if cid:
            return self._orders.get(cid)
        oid = params.get("orderId")
        return next((o for o in self._orders.values() if oid and o.order_id == oid), None)

    async def _create(self, call: Call) -> Answer:
        params = call.params
        inst = self._instrument(params)
        cmd, tif = parse_order(params, inst, self.category, self.core.clock.now_ns())
        cid = cmd.client_order_id
        if cid in self._orders:
            return self._answer(_REST_CODES[self.category][RejectReason.DUPLICATE_CLIENT_ID])
        row = SimOrderRow(
            inst, self.category, cid, cmd.side, cmd.order_type, tif, cmd.price, cmd.qty, cmd.reduce_only, self._now_ms()
        )
        self._orders[cid] = row
        injected = call.stream_reject
        if injected is not None:
            row.order_id = f"s{next(self._ids)}"
            self._stream_cancel(row, injected)
            return self._answer(0, {"orderId": row.order_id, "orderLinkId": cid})
        events = self.core.submit(cmd)
        refused = next((e for e in events if isinstance(e, OrderRejected)), None)
        if refused is not None and refused.reason not in _STREAM_REJECTS:
            del self._orders[cid]
            code = _REST_CODES[self.category].get(refused.reason, 10001)
            return self._answer(code, msg=refused.message or "")
        return self._answer(0, {"orderId": row.order_id, "orderLinkId": cid})

    async def _cancel(self, call: Call) -> Answer:
        params = call.params
        inst = self._instrument(params)
        row = self._find(params)
        if row is None or not row.is_open or row.inst.id != inst.id:
            return self._answer(_REST_CODES[self.category][RejectReason.UNKNOWN_ORDER])
        cmd = CancelOrder(
            ts=self.core.clock.now_ns(), strategy_id="", instrument_id=inst.id, client_order_id=row.client_order_id
        )
        return self._result(self.core.cancel(cmd), row)

    async def _amend(self, call: Call) -> Answer:
        params = call.params
        inst = self._instrument(params)
        row = self._find(params)
        if row is None or not row.is_open or row.inst.id != inst.id:
            return self._answer(_REST_CODES[self.category][RejectReason.UNKNOWN_ORDER])
        try:
            price = fixed.parse(params["price"]) if "price" in params else None
            qty = fixed.parse(params["qty"]) if "qty" in params else None
        except ValueError as exc:
            raise RequestError(10001, str(exc)) from None
        cmd = AmendOrder(
            ts=self.core.clock.now_ns(),
            strategy_id="",
            instrument_id=inst.id,
            client_order_id=row.client_order_id,
            price=price,
            qty=qty,
        )
        return self._result(self.core.amend(cmd), row)

    def _result(self, events: list[Event], row: SimOrderRow) -> Answer:
        refused = next((e for e in events if isinstance(e, OrderCancelRejected | OrderAmendRejected)), None)
        if refused is not None:
            code = _REST_CODES[self.category].get(refused.reason, 10001)
            return self._answer(code, msg=refused.message or "")
        return self._answer(0, {"orderId": row.order_id, "orderLinkId": row.client_order_id})

    async def _cancel_all(self, call: Call) -> Answer:
        params = call.params
        iid: InstrumentId | None = None
        if params.get("symbol"):
            iid = self._instrument(params).id
        elif self.category == "linear" and not params.get("settleCoin"):
            raise RequestError(10001, "symbol, baseCoin or settleCoin is required")
        cmd = CancelAllOrders(ts=self.core.clock.now_ns(), strategy_id="", instrument_id=iid, venue=self.venue)
        events = self.core.cancel_all(cmd)
        done = [self._orders.get(e.client_order_id) for e in events if isinstance(e, OrderCanceled)]
        rows = [{"orderId": o.order_id, "orderLinkId": o.client_order_id} for o in done if o is not None]
        return self._answer(0, {"list": rows, "success": "1"})

    async def _realtime(self, call: Call) -> Answer:
        params = call.params
        if params.get("orderLinkId") or params.get("orderId"):
            found = self._find(params)
            rows = [found] if found is not None else []
        else:
            rows = [o for o in self._orders.values() if o.is_open]
        if params.get("symbol"):
            rows = [o for o in rows if o.inst.id.symbol == params["symbol"]]
        return self._answer(0, {"category": self.category, "list": [o.row() for o in rows], "nextPageCursor": ""})

    async def _history(self, call: Call) -> Answer:
        params = call.params
        found = self._find(params) if params.get("orderLinkId") or params.get("orderId") else None
        rows = [found] if found is not None else [o for o in self._orders.values() if not o.is_open]
        rows = [o for o in rows if o is not None and not o.is_open]
        return self._answer(0, {"category": self.category, "list": [o.row() for o in rows], "nextPageCursor": ""})

    async def _executions(self, call: Call) -> Answer:
        params = call.params
        found = self._find(params)
        rows = found.executions if found is not None else []
        return self._answer(0, {"category": self.category, "list": rows, "nextPageCursor": ""})

    async def _wallet(self, call: Call) -> Answer:
        params = call.params
        if params.get("accountType") != "UNIFIED":
            raise RequestError(10001, "accountType only support UNIFIED")
        return self._answer(0, {"list": wallet_rows(self.core.balances().balances)})

    # -- private events -> order, execution and wallet topics ---------------------------------

    def _on_event(self, event: Event) -> None:
        now = self._now_ms()
        if isinstance(event, AccountSnapshot):
            self._broadcast("wallet", wallet_rows(event.balances))
            return
        if not isinstance(event, OrderEventBase):
            return
        row = self._orders.get(event.client_order_id)
        if row is None:
            return
        if isinstance(event, OrderAccepted):
            row.order_id = event.venue_order_id
        elif isinstance(event, OrderFilled):
            self._broadcast("execution", [row.fill(event, next(self._ids), now)])
        elif isinstance(event, OrderAmended):
            row.price, row.qty = event.price, event.qty
        elif isinstance(event, OrderCanceled):
            row.status, row.cancel_type = "Cancelled", "CancelByUser"
        elif isinstance(event, OrderExpired):
            spot_partial = self.category == "spot" and row.cum_qty > 0
            row.status = "PartiallyFilledCanceled" if spot_partial else "Cancelled"
        elif isinstance(event, OrderRejected):
            if event.reason in _STREAM_REJECTS:
                row.order_id = row.order_id or f"s{next(self._ids)}"
                self._stream_cancel(row, _STREAM_REJECTS[event.reason])
            return
        else:
            return
        row.updated_ms = now
        self._broadcast("order", [row.row()])

    def _stream_cancel(self, row: SimOrderRow, reject_reason: str) -> None:
        row.status, row.reject_reason = "Cancelled", reject_reason
        row.updated_ms = self._now_ms()
        self._broadcast("order", [row.row()])

    def _broadcast(self, topic: str, rows: list[dict[str, Any]]) -> None:
        frame = topic_message(topic, rows, next(self._ids), self._now_ms())
        for conn in self._private:
            if conn.authed and (topic in conn.topics or f"{topic}.{self.category}" in conn.topics):
                conn.push(frame)

    # -- market -> public topics --------------------------------------------------------------

    def _on_market(self, item: BookDeltas | Trade) -> None:
        now = self._now_ms()
        symbol = item.instrument_id.symbol
        if isinstance(item, Trade):
            frame = trade_message(item, item.trade_id or f"t{next(self._ids)}", now)
            self._publish(f"publicTrade.{symbol}", frame)
            return
        book = self.core.book(item.instrument_id)
        for topic in [t for t in self._topics.values() if t.symbol == symbol]:
            levels = topic.update(book)
            if levels is None:
                continue
            if topic.depth > 1 and self.sim.faults.take_skip():
                continue  # its u is consumed: subscribers see a gap
            kind = "snapshot" if topic.depth == 1 else "delta"
            self._publish(topic.topic, book_message(topic, kind, topic.snapshot() if topic.depth == 1 else levels, now))

    def _publish(self, topic: str, frame: str) -> None:
        for conn in self._public:
            if topic in conn.topics:
                conn.push(frame, market=True)

    def _subscribe(self, conn: _Conn, topic: str) -> str | None:
        """Add ``topic`` to ``conn``; its snapshot frame ("" for trades), or ``None`` for an unknown topic."""
        parts = topic.split(".")
        if parts[0] == "publicTrade" and len(parts) == 2 and parts[1] in self._symbols:
            conn.topics.add(topic)
            return ""
        if len(parts) != 3 or parts[0] != "orderbook" or parts[2] not in self._symbols:
            return None
        if not parts[1].isdigit() or int(parts[1]) not in spec.BOOK_DEPTHS:
            return None
        view = self._topics.get(topic)
        if view is None:
            view = self._topics[topic] = BookTopic(parts[2], int(parts[1]), self.core.book(self._symbols[parts[2]].id))
        conn.topics.add(topic)
        return book_message(view, "snapshot", view.snapshot(), self._now_ms())

    # -- sockets ------------------------------------------------------------------------------

    async def _public_socket(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve(request, self._public, self._on_public_op)

    async def _private_socket(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve(request, self._private, self._on_private_op)

    async def _trade_socket(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve(request, self._trade, self._trade_ops.on_op)

    async def _serve(
        self, request: web.Request, conns: list[_Conn], on_op: Callable[[_Conn, dict[str, Any]], None]
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sim.track(ws)
        conn = _Conn(ws, f"sim-{next(self._ids)}")
        conns.append(conn)
        if self._ticker is None or self._ticker.done():
            self._ticker = self.sim.spawn(self._tick(), name="bybit-ticker")
        writer = self.sim.spawn(self._write(conn), name="bybit-writer")
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    op = decode_op(msg.data)
                except ValueError:
                    conn.push(encode({"success": False, "ret_msg": "error:invalid json", "conn_id": conn.id}))
                    continue
                on_op(conn, op)
        finally:
            conns.remove(conn)
            writer.cancel()
        return ws

    async def _write(self, conn: _Conn) -> None:
        while True:
            frame, market = await conn.queue.get()
            while market and self.sim.faults.stalled():
                await asyncio.sleep(_TICK_S)
            if conn.ws.closed:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(frame)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            bad = self.sim.faults.take_malformed() if self._public else None
            if bad is not None:
                text = bad.decode(errors="replace")
                for conn in self._public:
                    conn.push(text, market=True)

    def _on_public_op(self, conn: _Conn, op: dict[str, Any]) -> None:
        req_id, name = str(op.get("req_id", "")), op.get("op")
        if name == "ping":
            if not self.sim.faults.stalled():
                conn.push(
                    encode({"success": True, "ret_msg": "pong", "conn_id": conn.id, "req_id": req_id, "op": "ping"})
                )
            return
        if name not in ("subscribe", "unsubscribe") or not isinstance(op.get("args"), list):
            conn.push(
                encode(
                    {
                        "success": False,
                        "ret_msg": f"error:unknown op {name}",
                        "conn_id": conn.id,
                        "req_id": req_id,
                        "op": name,
                    }
                )
            )
            return
        bad: list[str] = []
        snapshots: list[str] = []
        for topic in map(str, op["args"]):
            if name == "unsubscribe":
                conn.topics.discard(topic)
                continue
            snapshot = self._subscribe(conn, topic)
            if snapshot is None:
                bad.append(topic)
            elif snapshot:
                snapshots.append(snapshot)
        message = f"error:handler not found,topic:{','.join(bad)}" if bad else ""
        conn.push(encode({"success": not bad, "ret_msg": message, "conn_id": conn.id, "req_id": req_id, "op": name}))
        for snapshot in snapshots:
            conn.push(snapshot, market=True)

    def _on_private_op(self, conn: _Conn, op: dict[str, Any]) -> None:
        req_id, name = str(op.get("req_id", "")), op.get("op")
        if name == "ping":
            if not self.sim.faults.stalled():
                pong = {"req_id": req_id, "op": "pong", "args": [str(self._now_ms())], "conn_id": conn.id}
                conn.push(encode(pong))
            return
        if name == "auth":
            ok = auth_ok(op.get("args"), self.sim.credentials, self._now_ms())
            conn.authed = conn.authed or ok
            conn.push(
                encode(
                    {
                        "success": ok,
                        "ret_msg": "" if ok else "error:invalid signature or expired",
                        "op": "auth",
                        "conn_id": conn.id,
                        "req_id": req_id,
                    }
                )
            )
            return
        if name == "subscribe" and conn.authed and isinstance(op.get("args"), list):
            allowed = {"order", "execution", "wallet", f"order.{self.category}", f"execution.{self.category}"}
            topics = [str(t) for t in op["args"]]
            ok = all(t in allowed for t in topics)
            if ok:
                conn.topics.update(topics)
            conn.push(
                encode(
                    {
                        "success": ok,
                        "ret_msg": "" if ok else "error:topic not found",
                        "op": "subscribe",
                        "conn_id": conn.id,
                        "req_id": req_id,
                    }
                )
            )
            return
        message = "error:auth first" if not conn.authed else f"error:unknown op {name}"
        conn.push(encode({"success": False, "ret_msg": message, "op": name, "conn_id": conn.id, "req_id": req_id}))
