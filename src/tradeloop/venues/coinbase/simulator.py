"""Coinbase Advanced Trade dialect of the local venue simulator.

REST at the production paths (``/api/v3/brokerage/orders``, ``orders/batch_cancel``, ``orders/edit``,
``orders/historical/{id}``, ``orders/historical/batch``, ``accounts``), every request checked for a
JWT signed by the simulator's key with the right ``uri`` claim and a valid ``nbf``/``exp`` window
(401 otherwise). One WebSocket endpoint at ``/`` serves the market channels (``level2`` as
``l2_data`` snapshot + updates, ``market_trades``, ``heartbeats``) and the authenticated ``user``
channel (the production market and user hosts accept each other's channels too), with one
connection-wide ``sequence_num``; a connection that does not subscribe within 5 s is closed.

Faults: ``skip_sequence`` consumes a sequence number without sending the update; ``stall_feed``
holds every frame until the stall ends; ``send_malformed`` pushes raw bytes to market subscribers;
``rate_limit_next`` answers 429 ``rate_limit_exceeded`` with ``Retry-After``; ``reject_next(code)``
refuses the next order request (create, batch_cancel, edit) with that Coinbase code
(``rate_limit_exceeded`` -> 429, ``request_timestamp_expired`` -> 401, anything else in the
endpoint's own failure shape); ``delay_next_reply`` acts at once and answers late. Coinbase sends
no checksum, so ``corrupt_checksum`` has nothing to corrupt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from aiohttp import WSMsgType, web

from tradeloop.core import fixed
from tradeloop.model.commands import AmendOrder, CancelOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import RejectReason, Side
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.coinbase.auth import load_private_key, rest_uri
from tradeloop.venues.coinbase.sim_orders import (
    CREATE_FAILURE,
    EDIT_FAILURE,
    RequestRefused,
    SimRecord,
    command_from_body,
    failure_for,
    jwt_problem,
    ns_to_rfc3339,
)
from tradeloop.venues.coinbase.spec import PATHS, VENUE
from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["CoinbaseDialect"]

_SUBSCRIBE_WITHIN_S: Final = 5.0
_USER_SNAPSHOT_BATCH: Final = 50
_Handler = Callable[[web.Request, Any, str | None], Awaitable[web.Response]]


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json", headers=headers)


class _Conn:
    """One WebSocket client: its subscriptions, its connection-wide sequence number, its outbox."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0
        self.outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.books: set[str] = set()
        self.trades: set[str] = set()
        self.heartbeats = False
        self.user = False
        self.heartbeat_counter = 0
        self.subscribed = asyncio.Event()

    @property
    def market(self) -> bool:
        return bool(self.books or self.trades or self.heartbeats)

    def push(self, channel: str, events: list[Any], now_ns: int) -> None:
        env = {
            "channel": channel,
            "client_id": "",
            "timestamp": ns_to_rfc3339(now_ns),
            "sequence_num": self.seq,
            "events": events,
        }
        self.seq += 1
        self.outbox.put_nowait(msgspec.json.encode(env).decode())


class CoinbaseDialect:
    """Serves Coinbase's REST API and WebSocket on a :class:`VenueSimulator`."""

    venue = VENUE

    def __init__(
        self, *, retry_after_s: float = 0.2, jwt_leeway_s: int = 5, subscribe_within_s: float = _SUBSCRIBE_WITHIN_S
    ) -> None:
        self.retry_after_s = retry_after_s
        self.jwt_leeway_s = jwt_leeway_s
        self.subscribe_within_s = subscribe_within_s
        self._sim: VenueSimulator | None = None
        self._conns: set[_Conn] = set()
        self._records: dict[str, SimRecord] = {}  # order id -> record, in creation order
        self._by_cid: dict[str, SimRecord] = {}
        self._pending: dict[str, tuple[Any, str]] = {}
        self._burst: list[tuple[SimRecord, dict[str, object]]] = []
        self._flush_armed = False
        self._pump: asyncio.Task[Any] | None = None
        self._own_ids = 0
        self.auth_failures = 0

    @property
    def sim(self) -> VenueSimulator:
        if self._sim is None:
            raise RuntimeError("the Coinbase dialect is not installed")
        return self._sim

    def install(self, sim: VenueSimulator) -> None:
        self._sim = sim
        creds = sim.credentials
        pem = creds.private_key_pem
        self._key_name = creds.api_key.reveal()
        self._public = load_private_key(pem.reveal() if pem is not None else creds.secret.reveal()).public_key()
        r = sim.app.router
        r.add_post(PATHS.orders, self._route(self._create, order_request=True))
        r.add_post(PATHS.batch_cancel, self._route(self._batch_cancel, order_request=True))
        r.add_post(PATHS.edit, self._route(self._edit, order_request=True))
        r.add_get(PATHS.historical_batch, self._route(self._list))
        r.add_get(PATHS.historical, self._route(self._get_order))
        r.add_get(PATHS.accounts, self._route(self._accounts))
        r.add_get("/", self._websocket)
        sim.core.add_market_listener(self._on_market)
        sim.core.add_private_listener(self._on_private)

    # ---- auth ------------------------------------------------------------------------------------

    def _jwt_problem(self, token: str, uri: str | None) -> str | None:
        """Why ``token`` is not acceptable (``None``: it is). Texts name no secret."""
        now_s = self.sim.core.clock.now_ns() // 1_000_000_000
        return jwt_problem(token, self._public, self._key_name, now_s, self.jwt_leeway_s, uri)

    def _route(self, handler: _Handler, *, order_request: bool = False) -> Callable[[web.Request], Awaitable[Any]]:
        async def serve(request: web.Request) -> web.Response:
            faults = self.sim.faults
            if faults.take_rate_limit():
                return self._rate_limited()
            auth = request.headers.get("Authorization", "")
            problem = (
                self._jwt_problem(auth[7:], rest_uri(request.method, request.path, request.host))
                if auth.startswith("Bearer ")
                else "missing bearer token"
            )
            if problem is not None:
                self.auth_failures += 1
                return self._unauthorized(problem)
            reject = faults.take_reject() if order_request else None
            delay = faults.take_delay() if order_request else 0.0
            if reject == "rate_limit_exceeded":
                response = self._rate_limited()
            elif reject == "request_timestamp_expired":
                response = self._unauthorized("request timestamp expired")
            else:
                try:
                    body = msgspec.json.decode(await request.read()) if request.method == "POST" else None
                except msgspec.DecodeError:
                    return _json({"error": "INVALID_ARGUMENT", "message": "body is not JSON"}, 400)
                response = await handler(request, body, reject)
            if delay:
                await asyncio.sleep(delay)
            return response

        return serve

    def _rate_limited(self) -> web.Response:
        body = {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
        return _json(body, 429, {"Retry-After": f"{self.retry_after_s:g}"})

    @staticmethod
    def _unauthorized(problem: str) -> web.Response:
        return _json({"error": "unauthorized", "message": problem}, 401)

    # ---- REST --------------------------------------------------------------------------------------

    def _iid(self, product: object) -> InstrumentId | None:
        iid = InstrumentId(VENUE, product) if isinstance(product, str) else None
        return iid if iid is not None and iid in self.sim.core.instruments else None

    async def _create(self, request: web.Request, body: Any, reject: str | None) -> web.Response:
        if not isinstance(body, dict):
            return _json({"error": "INVALID_ARGUMENT", "message": "body must be an object"}, 400)
        product = body.get("product_id")
        iid = self._iid(product)
        config = body.get("order_configuration", {})
        try:
            if reject is not None:
                raise RequestRefused(reject, f"injected: {reject}")
            if iid is None:
                raise RequestRefused("INVALID_PRODUCT_ID", f"unknown product {product!r}")
            existing = self._by_cid.get(str(body.get("client_order_id", "")))
            if existing is not None:  # the venue returns the first order for a reused client order id
                return _json(self._success(existing))
            now = self.sim.core.clock.now_ns()
            cmd, kind = command_from_body(body, self.sim.core.instruments[iid], now)
            self._pending[cmd.client_order_id] = (cmd, kind)
            try:
                events = self.sim.core.submit(cmd)
            finally:
                self._pending.pop(cmd.client_order_id, None)
        except RequestRefused as exc:
            error, preview = failure_for(exc.code)
            failure = {"error": error, "message": str(exc), "error_details": "", "preview_failure_reason": preview}
            failure["new_order_failure_reason"] = error
            reply = {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": ""}
            return _json({**reply, "error_response": failure, "order_configuration": config})
        first = events[0] if events else None
        if isinstance(first, OrderRejected) and first.reason is RejectReason.FOK_NOT_FILLABLE:
            self._own_ids += 1
            record = SimRecord(f"{VENUE}-F{self._own_ids}", cmd, kind, now)
            record.status, record.cancel_reason = "EXPIRED", "FOK order not filled"
            self._store(record)
            self._queue(record)
            return _json(self._success(record))
        if isinstance(first, OrderRejected):
            code = CREATE_FAILURE.get(first.reason, "UNKNOWN_FAILURE_REASON")
            error, preview = failure_for(code)
            failure = {"error": error, "message": first.message, "error_details": "", "preview_failure_reason": preview}
            failure["new_order_failure_reason"] = error
            reply = {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": ""}
            return _json({**reply, "error_response": failure, "order_configuration": config})
        accepted = self._by_cid.get(cmd.client_order_id)
        if accepted is None:
            return _json({"error": "INTERNAL", "message": "order not recorded"}, 500)
        return _json(self._success(accepted))

    @staticmethod
    def _success(record: SimRecord) -> dict[str, object]:
        ok = {
            "order_id": record.order_id,
            "product_id": record.product_id,
            "side": record.cmd.side.value,
            "client_order_id": record.client_order_id,
        }
        return {"success": True, "success_response": ok, "order_configuration": record.configuration()}

    async def _batch_cancel(self, request: web.Request, body: Any, reject: str | None) -> web.Response:
        ids = body.get("order_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return _json({"error": "INVALID_ARGUMENT", "message": "order_ids must be a list of ids"}, 400)
        results = []
        for oid in ids:
            record = self._records.get(oid)
            failure = reject
            if failure is None and (record is None or record.status != "OPEN"):
                failure = (
                    "ORDER_IS_FULLY_FILLED"
                    if record is not None and record.status == "FILLED"
                    else ("UNKNOWN_CANCEL_ORDER")
                )
            if failure is None and record is not None:
                cmd = CancelOrder(
                    ts=self.sim.core.clock.now_ns(),
                    strategy_id="coinbase-api",
                    instrument_id=record.cmd.instrument_id,
                    client_order_id=record.client_order_id,
                )
                if not any(isinstance(e, OrderCanceled) for e in self.sim.core.cancel(cmd)):
                    failure = "UNKNOWN_CANCEL_ORDER"
            results.append({"success": failure is None, "failure_reason": failure or "", "order_id": oid})
        return _json({"results": results})

    async def _edit(self, request: web.Request, body: Any, reject: str | None) -> web.Response:
        def refused(edit: str, preview: str = "") -> web.Response:
            return _json(
                {"success": False, "errors": [{"edit_failure_reason": edit, "preview_failure_reason": preview}]}
            )

        if not isinstance(body, dict):
            return _json({"error": "INVALID_ARGUMENT", "message": "body must be an object"}, 400)
        if reject is not None:
            error, preview = failure_for(reject)
            return refused(error if not preview or reject == error else "", preview)
        record = self._records.get(str(body.get("order_id", "")))
        if record is None:
            return refused("ORDER_NOT_FOUND")
        if record.kind != "limit_limit_gtc":
            return refused("ONLY_LIMIT_ORDER_EDITS_SUPPORTED")
        if record.status != "OPEN":
            return refused("ONLY_OPEN_ORDERS_CAN_BE_EDITED")
        try:
            price, qty = fixed.parse(str(body.get("price"))), fixed.parse(str(body.get("size")))
        except fixed.FixedPointError:
            return refused("INVALID_EDITED_PRICE")
        if qty <= record.cum:
            return refused("CANNOT_EDIT_TO_BELOW_FILLED_SIZE")
        cmd = AmendOrder(
            ts=self.sim.core.clock.now_ns(),
            strategy_id="coinbase-api",
            instrument_id=record.cmd.instrument_id,
            client_order_id=record.client_order_id,
            price=price,
            qty=qty,
        )
        events = self.sim.core.amend(cmd)
        rejected = next((e for e in events if isinstance(e, OrderAmendRejected)), None)
        if rejected is not None:
            return refused(*EDIT_FAILURE.get(rejected.reason, ("UNKNOWN_EDIT_ORDER_FAILURE_REASON", "")))
        return _json({"success": True, "errors": []})

    async def _get_order(self, request: web.Request, body: Any, reject: str | None) -> web.Response:
        record = self._records.get(request.match_info.get("order_id", ""))
        if record is None:
            return _json({"error": "NOT_FOUND", "message": "order with this orderID was not found"}, 404)
        return _json({"order": record.rest()})

    async def _list(self, request: web.Request, body: Any, reject: str | None) -> web.Response:
        q = request.query
        statuses, products = set(q.getall("order_status", [])), set(q.getall("product_ids", []))
        try:
            limit = max(1, min(int(q.get("limit", "100")), 1000))
            start = int(q.get("cursor") or 0)
        except ValueError:
            return _json({"error": "INVALID_ARGUMENT", "message": "limit and cursor are integers"}, 400)
        chosen = [
            r
            for r in reversed(self._records.values())
            if (not statuses or r.status in statuses) and (not products or r.product_id in products)
        ]
        page = chosen[start : start + limit]
        more = start + limit < len(chosen)
        reply = {"orders": [r.rest() for r in page], "sequence": "0", "has_next": more}
        return _json({**reply, "cursor": str(start + limit) if more else ""})

    async def _accounts(self, request: web.Request, body: Any, reject: str | None) -> web.Response:
        balances = self.sim.core.balances().balances
        start = int(request.query.get("cursor") or 0)
        limit = max(1, min(int(request.query.get("limit", "49")), 250))
        accounts = [
            {
                "uuid": f"sim-{b.currency}",
                "name": f"{b.currency} Wallet",
                "currency": b.currency,
                "available_balance": {"value": fixed.to_str(b.total - b.locked), "currency": b.currency},
                "hold": {"value": fixed.to_str(b.locked), "currency": b.currency},
                "active": True,
                "ready": True,
            }
            for b in balances[start : start + limit]
        ]
        more = start + limit < len(balances)
        return _json({"accounts": accounts, "has_next": more, "cursor": str(start + limit) if more else ""})

    # ---- order records and the user channel -------------------------------------------------------

    def _store(self, record: SimRecord) -> None:
        self._records[record.order_id] = record
        self._by_cid[record.client_order_id] = record

    def _on_private(self, event: Event) -> None:
        if isinstance(event, OrderAccepted):
            pending = self._pending.get(event.client_order_id)
            if pending is None:
                return
            cmd, kind = pending
            record = SimRecord(event.venue_order_id, cmd, kind, event.ts)
            self._store(record)
            self._queue(record)
            return
        if not isinstance(event, OrderFilled | OrderCanceled | OrderExpired | OrderAmended):
            return
        known = self._by_cid.get(event.client_order_id)
        if known is None:
            return
        record = known
        if isinstance(event, OrderFilled):
            record.cum += event.last_qty
            record.value += event.last_price * event.last_qty
            record.fees += event.fee
            record.status = "FILLED" if record.cum >= record.qty else "OPEN"
        elif isinstance(event, OrderAmended):
            record.price, record.qty = event.price, event.qty
        else:
            fok = record.kind == "limit_limit_fok"
            record.status = "EXPIRED" if isinstance(event, OrderExpired) and fok else "CANCELLED"
            record.cancel_reason = event.reason
        self._queue(record, fill=isinstance(event, OrderFilled))

    def _queue(self, record: SimRecord, *, fill: bool = False) -> None:
        """One user update per state change; an acceptance followed by fills in the same burst is sent
        as the fills only (the order crossed on arrival, as the venue reports it)."""
        if fill and self._burst and self._burst[-1][0] is record and self._burst[-1][1].get("_accept"):
            self._burst.pop()
        state = record.user()
        if record.cum == 0 and record.status == "OPEN":
            state["_accept"] = True
        self._burst.append((record, state))
        if not self._flush_armed:
            self._flush_armed = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_armed = False
        burst, self._burst = self._burst, []
        now = self.sim.core.clock.now_ns()
        for _, state in burst:
            state.pop("_accept", None)
            for conn in self._conns:
                if conn.user:
                    conn.push("user", [{"type": "update", "orders": [state]}], now)

    # ---- market data -------------------------------------------------------------------------------

    @staticmethod
    def _levels(bids: list[tuple[int, int]], asks: list[tuple[int, int]], when: str) -> list[dict[str, str]]:
        out = []
        for side, levels in (("bid", bids), ("offer", asks)):
            for price, qty in levels:
                out.append(
                    {
                        "side": side,
                        "event_time": when,
                        "price_level": fixed.to_str(price),
                        "new_quantity": fixed.to_str(qty),
                    }
                )
        return out

    def _snapshot(self, product: str, now: int) -> dict[str, object]:
        book = self.sim.core.book(InstrumentId(VENUE, product))
        bids = sorted(book.bids.items(), reverse=True)
        asks = sorted(book.asks.items())
        return {"type": "snapshot", "product_id": product, "updates": self._levels(bids, asks, ns_to_rfc3339(now))}

    def _on_market(self, item: BookDeltas | Trade) -> None:
        product = item.instrument_id.symbol
        now = self.sim.core.clock.now_ns()
        when = ns_to_rfc3339(now)
        if isinstance(item, Trade):
            side = "BUY" if item.aggressor is Side.BUY else "SELL"
            trade = {
                "trade_id": item.trade_id or str(item.ts_event),
                "product_id": product,
                "side": side,
                "price": fixed.to_str(item.price),
                "size": fixed.to_str(item.qty),
                "time": when,
            }
            for conn in self._conns:
                if product in conn.trades:
                    conn.push("market_trades", [{"type": "update", "trades": [trade]}], now)
            return
        subscribers = [c for c in self._conns if product in c.books]
        if not subscribers:
            return
        skip = self.sim.faults.take_skip()
        kind = "snapshot" if item.snapshot else "update"
        event = {"type": kind, "product_id": product, "updates": self._levels(item.bids, item.asks, when)}
        for conn in subscribers:
            if skip:
                conn.seq += 1  # the number is used up; the update never leaves
            else:
                conn.push("l2_data", [event], now)

    async def _run_pump(self) -> None:
        """Heartbeats once a second and injected malformed frames, for every connection."""
        ticks = 0
        while True:
            await asyncio.sleep(0.05)
            ticks += 1
            payload = self.sim.faults.take_malformed()
            now = self.sim.core.clock.now_ns()
            for conn in list(self._conns):
                if payload is not None and conn.market:
                    conn.outbox.put_nowait(payload)
                if ticks % 20 == 0 and conn.heartbeats:
                    conn.heartbeat_counter += 1
                    beat = {"current_time": ns_to_rfc3339(now), "heartbeat_counter": conn.heartbeat_counter}
                    conn.push("heartbeats", [beat], now)

    # ---- WebSocket -------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sim.track(ws)
        conn = _Conn(ws)
        self._conns.add(conn)
        if self._pump is None or self._pump.done():
            self._pump = self.sim.spawn(self._run_pump(), name="coinbase-sim-pump")
        writer = self.sim.spawn(self._write(conn), name="coinbase-sim-writer")
        deadline = self.sim.spawn(self._subscribe_deadline(conn), name="coinbase-sim-deadline")
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_client_message(conn, msg.data)
        finally:
            self._conns.discard(conn)
            writer.cancel()
            deadline.cancel()
        return ws

    async def _subscribe_deadline(self, conn: _Conn) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.subscribed.wait(), self.subscribe_within_s)
            return
        await conn.ws.close(message=b"no subscription within 5 s")

    async def _write(self, conn: _Conn) -> None:
        while True:
            frame = await conn.outbox.get()
            while self.sim.faults.stalled():
                await asyncio.sleep(0.05)
            if conn.ws.closed:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await (conn.ws.send_str(frame) if isinstance(frame, str) else conn.ws.send_bytes(frame))

    def _error(self, conn: _Conn, message: str, reason: str) -> None:
        conn.outbox.put_nowait(msgspec.json.encode({"type": "error", "message": message, "reason": reason}).decode())

    def _on_client_message(self, conn: _Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self._error(conn, "Failed to parse", "message is not JSON")
            return
        kind, channel = msg.get("type"), msg.get("channel")
        products = [p for p in msg.get("product_ids") or [] if isinstance(p, str)]
        if kind not in ("subscribe", "unsubscribe"):
            self._error(conn, "Failed to subscribe", f"unknown message type {kind!r}")
            return
        add = kind == "subscribe"
        now = self.sim.core.clock.now_ns()
        unknown = [p for p in products if self._iid(p) is None]
        if unknown and channel != "user":
            self._error(conn, "Failed to subscribe", f"{', '.join(unknown)} is not a valid product")
            return
        if channel == "level2":
            for p in products:
                if add:
                    conn.books.add(p)
                    conn.push("l2_data", [self._snapshot(p, now)], now)
                else:
                    conn.books.discard(p)
        elif channel == "market_trades":
            (conn.trades.update if add else conn.trades.difference_update)(products)
        elif channel == "heartbeats":
            conn.heartbeats = add
        elif channel == "user":
            problem = self._jwt_problem(str(msg.get("jwt", "")), None)
            if problem is not None:
                self.auth_failures += 1
                self._error(conn, "authentication failure", problem)
                return
            conn.user = add
            if add:
                open_orders = [r.user() for r in self._records.values() if r.status == "OPEN"]
                batches = [
                    open_orders[i : i + _USER_SNAPSHOT_BATCH] for i in range(0, len(open_orders), _USER_SNAPSHOT_BATCH)
                ] or [[]]
                for batch in batches:
                    conn.push("user", [{"type": "snapshot", "orders": batch}], now)
        else:
            self._error(conn, "Failed to subscribe", f"unknown channel {channel!r}")
            return
        conn.subscribed.set()
        subs = {"level2": sorted(conn.books), "market_trades": sorted(conn.trades)}
        conn.push("subscriptions", [{"subscriptions": subs}], now)
