"""Binance's dialect for the local venue simulator: the same REST paths, streams and WebSocket API
(the sockets are in ``sim_streams.py``, signature checks in ``simulator_auth.py``).

* REST ``/api/v3``: ``depth`` (``lastUpdateId`` = the dialect's update id), ``time``, ``order`` (POST
  place, DELETE cancel, GET query), ``openOrders`` (GET, DELETE cancel-all), ``order/cancelReplace``,
  ``order/amend/keepPriority``, ``account``, ``myTrades``. SIGNED requests are checked as Binance does
  (``X-MBX-APIKEY``, HMAC or Ed25519 ``signature`` of the query + body, ``timestamp`` within
  ``recvWindow``); errors are ``{"code","msg"}`` with Binance's codes; usage headers
  ``X-MBX-USED-WEIGHT-1M`` and ``X-MBX-ORDER-COUNT-10S``/``-1D`` come with every reply.
* Streams ``/stream``: ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` (or ``?streams=``),
  combined frames ``{"stream","data"}`` for ``<s>@depth[@100ms]``, ``<s>@trade``, ``<s>@bookTicker``.
  Each change of the simulator's book becomes one ``depthUpdate`` whose ``U``/``u`` continue a
  per-symbol update id (the diff is computed against the last book sent, so snapshots of the
  simulated market become ordinary diffs).
* WebSocket API ``/ws-api/v3``: ``userDataStream.subscribe.signature`` then ``executionReport`` /
  ``outboundAccountPosition`` events wrapped as ``{"subscriptionId", "event"}``; the order methods
  ``order.place``, ``order.cancel``, ``order.cancelReplace``, ``order.amend.keepPriority`` on the REST
  handlers (``sim_ws_orders.py``). ``requests`` counts order requests (``rest:<path>``, ``ws:<method>``).

Faults: ``skip_sequence`` consumes update ids without sending, ``stall_feed`` sends no market
frames (ids still consumed), ``send_malformed`` pushes raw bytes to every market socket,
``reject_next`` refuses the next order request with a Binance error (a code, ``"code: msg"`` or a
-2010 message), ``delay_next_reply`` holds an order request's reply (acted on at once),
``rate_limit_next`` answers 429 + ``-1003`` + ``Retry-After`` (WebSocket API: 429 + ``-1015``).
Binance sends no checksum.

USD-M (``BinanceDialect(market=BinanceMarket.USDM)``): ``/fapi/v1`` (post-only as ``GTX``, ``PUT order``
to modify, ``allOpenOrders``, ``/fapi/v2/balance``, ``listenKey``), books on ``/public/stream`` with
``pu``, trades on ``/market/stream``, ``ORDER_TRADE_UPDATE`` on ``/private/ws/<listenKey>``. A USD-M
snapshot's ``lastUpdateId`` lies inside the next diff (``U <= lastUpdateId <= u``), as the venue documents.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from tradeloop.core import fixed
from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, SubmitOrder
from tradeloop.model.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    Event,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.binance.sim_streams import MarketStreams, Record, UserStreams
from tradeloop.venues.binance.sim_ws_orders import VenueError as _Reply
from tradeloop.venues.binance.sim_ws_orders import WsApiOrders
from tradeloop.venues.binance.simulator_auth import AuthError, check_rest
from tradeloop.venues.binance.spec import (
    ERROR_MESSAGES,
    MARKETS,
    MSG_DUPLICATE,
    MSG_INSUFFICIENT_BALANCE,
    MSG_WOULD_TAKE,
    VENUE_SPOT,
    BinanceMarket,
    error_for,
)

if TYPE_CHECKING:
    from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["BinanceDialect"]

log = get_logger("tradeloop.venues.binance.simulator")

_REASON_ERRORS: Final[dict[RejectReason, tuple[int, str]]] = {
    RejectReason.INSUFFICIENT_BALANCE: (-2010, MSG_INSUFFICIENT_BALANCE),
    RejectReason.POST_ONLY_WOULD_CROSS: (-2010, MSG_WOULD_TAKE),
    RejectReason.DUPLICATE_CLIENT_ID: (-2010, MSG_DUPLICATE),
    RejectReason.INVALID_ORDER: (-1013, ERROR_MESSAGES[-1013]),
    RejectReason.UNKNOWN_ORDER: (-2011, ERROR_MESSAGES[-2011]),
}
_EXPIRES: Final = frozenset({RejectReason.FOK_NOT_FILLABLE, RejectReason.NO_LIQUIDITY})
"""Refusals Binance reports as an order that ``EXPIRED`` at once (FOK not fillable, market into nothing)."""
_STATUS: Final[dict[OrderStatus, str]] = {
    OrderStatus.ACCEPTED: "NEW",
    OrderStatus.SUBMITTED: "NEW",
    OrderStatus.PENDING_CANCEL: "NEW",
    OrderStatus.PENDING_AMEND: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}
_RATE_LIMIT_CODES: Final = frozenset({-1003, -1015})
_MS: Final = 1_000_000


class BinanceDialect:
    """Binance spot (or USD-M with ``market=BinanceMarket.USDM``) on a :class:`VenueSimulator`."""

    venue = VENUE_SPOT

    def __init__(self, first_update_id: int = 1_000_000, market: BinanceMarket = BinanceMarket.SPOT) -> None:
        self._first_update_id = first_update_id
        self.kind = market
        self.venue = MARKETS[market].venue
        self.futures = market is BinanceMarket.USDM

    def install(self, sim: VenueSimulator) -> None:
        self.sim = sim
        core = sim.core
        self.core = core
        self._symbols: dict[str, Instrument] = {iid.symbol: inst for iid, inst in core.instruments.items()}
        self._records: dict[str, Record] = {}
        self._order_ids: dict[str, int] = {}
        self._next_id = 0
        self._weights: deque[tuple[float, int]] = deque()
        self._order_times: deque[float] = deque()
        self._orders_total = 0
        self.requests: Counter[str] = Counter()
        self.ws_ops: deque[tuple[str, dict[str, str]]] = deque(maxlen=1000)
        """WebSocket API order requests as received: (method, params without ``signature``)."""
        self.market = MarketStreams(sim, self._symbols, self._first_update_id, self.futures)
        self.user = UserStreams(sim, self._symbols, self._records, self._order_id, self._new_cid, self.futures)
        r = sim.app.router
        if self.futures:
            self._install_usdm(r)
        else:
            self._install_spot(r)
        core.add_market_listener(self.market.on_market)
        core.add_private_listener(self.user.on_private)

    def _install_spot(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/v3/ping", self._ping)
        r.add_get("/api/v3/time", self._time)
        r.add_get("/api/v3/depth", self._depth)
        r.add_post("/api/v3/order", self._place)
        r.add_delete("/api/v3/order", self._cancel)
        r.add_get("/api/v3/order", self._query)
        r.add_get("/api/v3/openOrders", self._open_orders)
        r.add_delete("/api/v3/openOrders", self._cancel_all)
        r.add_post("/api/v3/order/cancelReplace", self._cancel_replace)
        r.add_put("/api/v3/order/amend/keepPriority", self._keep_priority)
        r.add_get("/api/v3/account", self._account)
        r.add_get("/api/v3/myTrades", self._my_trades)
        r.add_get("/stream", self.market.socket)
        r.add_get("/ws", self.market.socket)
        r.add_get("/ws-api/v3", self.user.socket)
        self.user.orders = WsApiOrders(
            self.sim,
            {
                "place": self._do_place,
                "cancel": self._do_cancel,
                "cancel_replace": self._do_cancel_replace,
                "keep_priority": self._do_keep_priority,
            },
            lambda weight: self._charge(time.monotonic(), weight, True),
            self._usage_headers,
            self._on_ws_request,
        )

    def _on_ws_request(self, method: str, params: dict[str, str]) -> None:
        self.requests[f"ws:{method}"] += 1
        self.ws_ops.append((method, {k: v for k, v in params.items() if k != "signature"}))

    def _install_usdm(self, r: web.UrlDispatcher) -> None:
        r.add_get("/fapi/v1/ping", self._ping)
        r.add_get("/fapi/v1/time", self._time)
        r.add_get("/fapi/v1/depth", self._depth)
        r.add_post("/fapi/v1/order", self._place)
        r.add_delete("/fapi/v1/order", self._cancel)
        r.add_get("/fapi/v1/order", self._query)
        r.add_put("/fapi/v1/order", self._modify)
        r.add_get("/fapi/v1/openOrders", self._open_orders)
        r.add_delete("/fapi/v1/allOpenOrders", self._cancel_all)
        r.add_get("/fapi/v2/balance", self._account)
        r.add_get("/fapi/v1/userTrades", self._my_trades)
        r.add_post("/fapi/v1/listenKey", self._listen_key)
        r.add_put("/fapi/v1/listenKey", self._listen_key)
        for path in ("/public/stream", "/market/stream", "/public/ws", "/market/ws"):
            r.add_get(path, self.market.socket)
        r.add_get("/private/ws/{key}", self.user.listen_key_socket)

    # -- REST plumbing --------------------------------------------------------------------------

    async def _handle(
        self, request: web.Request, weight: int, order: bool, handler: Any, signed: bool = True
    ) -> web.Response:
        now = time.monotonic()
        self._charge(now, weight, order)
        if order:
            self.requests[f"rest:{request.path}"] += 1
        try:
            if self.sim.faults.take_rate_limit():
                raise _Reply(-1003, ERROR_MESSAGES[-1003], 429)
            body = (await request.read()).decode()
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(parse_qsl(body, keep_blank_values=True))
            if signed:
                try:
                    check_rest(
                        self.sim.credentials,
                        request.headers.get("X-MBX-APIKEY"),
                        request.query_string,
                        body,
                        self.core.clock.now_ns() // _MS,
                    )
                except AuthError as exc:
                    raise _Reply(exc.code, exc.msg, 401 if exc.code in (-2014, -2015) else 400) from None
            if order:
                rejected = self.sim.faults.take_reject()
                if rejected is not None:
                    code, msg = error_for(rejected)
                    raise _Reply(code, msg, 429 if code in _RATE_LIMIT_CODES else 400)
            delay = self.sim.faults.take_delay() if order else 0.0
            status, payload = handler(params)
            if delay:
                await asyncio.sleep(delay)
            return self._respond(status, payload)
        except _Reply as err:
            return self._respond(err.status, {"code": err.code, "msg": err.msg})

    def _respond(self, status: int, payload: Any) -> web.Response:
        headers = self._usage_headers()
        if status in (429, 418):
            headers["Retry-After"] = "1"
        return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers)

    def _charge(self, now: float, weight: int, order: bool) -> None:
        self._weights.append((now, weight))
        while self._weights and self._weights[0][0] <= now - 60:
            self._weights.popleft()
        if order:
            self._orders_total += 1
            self._order_times.append(now)
        while self._order_times and self._order_times[0] <= now - 10:
            self._order_times.popleft()

    def _usage_headers(self) -> dict[str, str]:
        return {
            "X-MBX-USED-WEIGHT-1M": str(sum(w for _, w in self._weights)),
            "X-MBX-ORDER-COUNT-10S": str(len(self._order_times)),
            "X-MBX-ORDER-COUNT-1D": str(self._orders_total),
        }

    def _inst(self, params: dict[str, str]) -> Instrument:
        symbol = params.get("symbol", "")
        if not symbol:
            raise _Reply(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        inst = self._symbols.get(symbol)
        if inst is None:
            raise _Reply(-1121, ERROR_MESSAGES[-1121])
        return inst

    def _number(self, params: dict[str, str], name: str) -> int:
        text = params.get(name)
        if not text:
            raise _Reply(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        try:
            return fixed.parse(text)
        except ValueError:
            raise _Reply(-1100, f"Illegal characters found in parameter '{name}'.") from None

    def _order_id(self, venue_order_id: str) -> int:
        n = self._order_ids.get(venue_order_id)
        if n is None:
            n = self._order_ids[venue_order_id] = len(self._order_ids) + 1
        return n

    def _new_cid(self) -> str:
        self._next_id += 1
        return f"sim{self._next_id}"

    # -- REST routes ----------------------------------------------------------------------------

    async def _ping(self, request: web.Request) -> web.Response:
        return await self._handle(request, 1, False, lambda p: (200, {}), signed=False)

    async def _time(self, request: web.Request) -> web.Response:
        return await self._handle(
            request, 1, False, lambda p: (200, {"serverTime": self.core.clock.now_ns() // _MS}), signed=False
        )

    async def _depth(self, request: web.Request) -> web.Response:
        def depth(params: dict[str, str]) -> tuple[int, Any]:
            inst = self._inst(params)
            limit = min(int(params.get("limit") or 100), 1000 if self.futures else 5000)
            book = self.core.book(inst.id)
            ms = self.core.clock.now_ns() // _MS
            return 200, {
                **({"E": ms, "T": ms} if self.futures else {}),
                "lastUpdateId": self.market.snapshot_id(inst.id.symbol),
                "bids": [[inst.price_to_str(p), inst.qty_to_str(q)] for p, q in book.top_bids(limit)],
                "asks": [[inst.price_to_str(p), inst.qty_to_str(q)] for p, q in book.top_asks(limit)],
            }

        return await self._handle(request, 50, False, depth, signed=False)

    async def _place(self, request: web.Request) -> web.Response:
        return await self._handle(request, 1, True, self._do_place)

    def _submit_cmd(self, params: dict[str, str], inst: Instrument, cid: str) -> tuple[SubmitOrder, str]:
        side_text, order_type = params.get("side", ""), params.get("type", "")
        if side_text not in ("BUY", "SELL") or order_type not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise _Reply(-1102, "Mandatory parameter 'side' or 'type' was not sent, was empty/null, or malformed.")
        tif = params.get("timeInForce", "GTC")
        gtx = self.futures and order_type == "LIMIT" and tif == "GTX"
        if gtx:
            tif = "GTC"
        if order_type == "LIMIT" and tif not in ("GTC", "IOC", "FOK"):
            raise _Reply(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        cmd = SubmitOrder(
            ts=self.core.clock.now_ns(),
            strategy_id="binance-api",
            instrument_id=inst.id,
            side=Side(side_text),
            qty=self._number(params, "quantity"),
            price=None if order_type == "MARKET" else self._number(params, "price"),
            order_type=OrderType.MARKET if order_type == "MARKET" else OrderType.LIMIT,
            time_in_force=TimeInForce(tif) if order_type == "LIMIT" else TimeInForce.GTC,
            post_only=order_type == "LIMIT_MAKER" or gtx,
            client_order_id=cid,
        )
        return cmd, order_type

    def _do_place(self, params: dict[str, str], cid: str | None = None) -> tuple[int, Any]:
        inst = self._inst(params)
        cid = cid or params.get("newClientOrderId") or self._new_cid()
        cmd, order_type = self._submit_cmd(params, inst, cid)
        previous = self._records.get(cid)
        record = Record(cmd, 0, order_type)
        self._records[cid] = record  # the private listener fills it in while the core matches
        events = self.core.submit(cmd)
        refused = next((e for e in events if isinstance(e, OrderRejected)), None)
        if refused is not None:
            if refused.reason in _EXPIRES:
                record.order_id = self._order_id(f"expired-{cid}-{time.monotonic_ns()}")
                return 200, self._order_json(record, "EXPIRED", full=True)
            if previous is not None:
                self._records[cid] = previous
            else:
                del self._records[cid]
            code, msg = _REASON_ERRORS.get(refused.reason, (-2010, refused.message or ERROR_MESSAGES[-2010]))
            raise _Reply(code, msg)
        return 200, self._order_json(record, self._status_of(record, events), full=True)

    def _status_of(self, record: Record, events: list[Event]) -> str:
        if any(isinstance(e, OrderExpired | OrderCanceled) for e in events):
            return "EXPIRED"
        if record.cum >= record.qty:
            return "FILLED"
        return "PARTIALLY_FILLED" if record.cum else "NEW"

    def _order_json(self, record: Record, status: str, *, full: bool = False, orig: str = "") -> dict[str, Any]:
        inst = self._symbols[record.symbol]
        out: dict[str, Any] = {
            "symbol": record.symbol,
            "orderId": record.order_id,
            "orderListId": -1,
            "clientOrderId": record.cid,
            "transactTime": self.core.clock.now_ns() // _MS,
            "price": inst.price_to_str(record.price),
            "origQty": inst.qty_to_str(record.qty),
            "executedQty": inst.qty_to_str(record.cum),
            "cummulativeQuoteQty": fixed.to_str(record.cum_quote),
            "status": status,
            "timeInForce": record.tif,
            "type": record.type,
            "side": record.side,
            "selfTradePreventionMode": "NONE",
        }
        if orig:
            out["origClientOrderId"] = orig
        if full:
            out["fills"] = [
                {k: f[k] for k in ("price", "qty", "commission", "commissionAsset", "tradeId")} for f in record.fills
            ]
        return out

    async def _cancel(self, request: web.Request) -> web.Response:
        return await self._handle(request, 1, True, self._do_cancel)

    def _do_cancel(self, params: dict[str, str]) -> tuple[int, Any]:
        inst = self._inst(params)
        cid = params.get("origClientOrderId") or self._cid_of_order_id(params.get("orderId", ""))
        events = self.core.cancel(
            CancelOrder(
                ts=self.core.clock.now_ns(), strategy_id="binance-api", instrument_id=inst.id, client_order_id=cid
            )
        )
        record = self._records.get(cid)
        if record is None or not any(isinstance(e, OrderCanceled) for e in events):
            raise _Reply(-2011, ERROR_MESSAGES[-2011])
        return 200, self._canceled_json(record, params.get("newClientOrderId") or self._new_cid())

    def _canceled_json(self, record: Record, cancel_cid: str) -> dict[str, Any]:
        out = self._order_json(record, "CANCELED", orig=record.cid)
        out["clientOrderId"] = cancel_cid
        return out

    def _cid_of_order_id(self, order_id: str) -> str:
        for record in self._records.values():
            if str(record.order_id) == order_id:
                return record.cid
        raise _Reply(-2011, ERROR_MESSAGES[-2011])

    async def _cancel_all(self, request: web.Request) -> web.Response:
        def cancel_all(params: dict[str, str]) -> tuple[int, Any]:
            inst = self._inst(params)
            if not self.core.open_orders(inst.id):
                if self.futures:
                    return 200, {"code": 200, "msg": "The operation of cancel all open order is done."}
                raise _Reply(-2011, ERROR_MESSAGES[-2011])
            events = self.core.cancel_all(
                CancelAllOrders(ts=self.core.clock.now_ns(), strategy_id="binance-api", instrument_id=inst.id)
            )
            done = [self._records[e.client_order_id] for e in events if isinstance(e, OrderCanceled)]
            if self.futures:
                return 200, {"code": 200, "msg": "The operation of cancel all open order is done."}
            return 200, [self._canceled_json(r, self._new_cid()) for r in done]

        return await self._handle(request, 1, True, cancel_all)

    async def _query(self, request: web.Request) -> web.Response:
        def query(params: dict[str, str]) -> tuple[int, Any]:
            self._inst(params)
            cid = params.get("origClientOrderId", "")
            view = self.core.order(cid)
            record = self._records.get(cid)
            if view is None or record is None:
                raise _Reply(-2013, ERROR_MESSAGES[-2013])
            return 200, self._order_json(record, _STATUS[view.status])

        return await self._handle(request, 4, False, query)

    async def _open_orders(self, request: web.Request) -> web.Response:
        def open_orders(params: dict[str, str]) -> tuple[int, Any]:
            iid = self._inst(params).id if params.get("symbol") else None
            views = self.core.open_orders(iid)
            return 200, [
                self._order_json(self._records[v.client_order_id], _STATUS[v.status])
                for v in views
                if v.client_order_id in self._records
            ]

        return await self._handle(request, 6, False, open_orders)

    async def _cancel_replace(self, request: web.Request) -> web.Response:
        return await self._handle(request, 1, True, self._do_cancel_replace)

    def _do_cancel_replace(self, params: dict[str, str]) -> tuple[int, Any]:
        inst = self._inst(params)
        if params.get("cancelReplaceMode") not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise _Reply(-1102, "Mandatory parameter 'cancelReplaceMode' was not sent, was empty/null, or malformed.")
        old_cid = params.get("cancelOrigClientOrderId", "")
        self._submit_cmd(params, inst, old_cid)  # validate the new order before touching the old one
        try:
            _, canceled = self._do_cancel({"symbol": inst.id.symbol, "origClientOrderId": old_cid})
        except _Reply as err:
            failure = {"code": err.code, "msg": err.msg}
            data = {
                "cancelResult": "FAILURE",
                "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": failure,
                "newOrderResponse": None,
            }
            return 400, {"code": -2022, "msg": ERROR_MESSAGES[-2022], "data": data}
        try:
            _, placed = self._do_place(params, params.get("newClientOrderId") or self._new_cid())
        except _Reply as err:
            data = {
                "cancelResult": "SUCCESS",
                "newOrderResult": "FAILURE",
                "cancelResponse": canceled,
                "newOrderResponse": {"code": err.code, "msg": err.msg},
            }
            return 409, {"code": -2021, "msg": ERROR_MESSAGES[-2021], "data": data}
        return 200, {
            "cancelResult": "SUCCESS",
            "newOrderResult": "SUCCESS",
            "cancelResponse": canceled,
            "newOrderResponse": placed,
        }

    async def _keep_priority(self, request: web.Request) -> web.Response:
        return await self._handle(request, 4, True, self._do_keep_priority)

    def _do_keep_priority(self, params: dict[str, str]) -> tuple[int, Any]:
        inst = self._inst(params)
        cid = params.get("origClientOrderId", "")
        record = self._records.get(cid)
        new_qty = self._number(params, "newQty")
        if record is None or self.core.order(cid) is None:
            raise _Reply(-2013, ERROR_MESSAGES[-2013])
        if not 0 < new_qty < record.qty:
            raise _Reply(-2038, "The requested quantity is not lower than the order's quantity.")
        events = self.core.amend(
            AmendOrder(
                ts=self.core.clock.now_ns(),
                strategy_id="binance-api",
                instrument_id=inst.id,
                client_order_id=cid,
                qty=new_qty,
            )
        )
        if not any(isinstance(e, OrderAmended | OrderCanceled) for e in events):
            raise _Reply(-2013, ERROR_MESSAGES[-2013])
        view = self.core.order(cid)
        status = _STATUS[view.status] if view is not None else "CANCELED"
        return 200, {
            "transactTime": self.core.clock.now_ns() // _MS,
            "executionId": self._orders_total,
            "amendedOrder": self._order_json(record, status),
        }

    async def _account(self, request: web.Request) -> web.Response:
        def account(params: dict[str, str]) -> tuple[int, Any]:
            if self.futures:
                return 200, [
                    {
                        "asset": b.currency,
                        "balance": fixed.to_str(b.total),
                        "availableBalance": fixed.to_str(b.total - b.locked),
                    }
                    for b in self.core.balances().balances
                ]
            balances = [
                {"asset": b.currency, "free": fixed.to_str(b.total - b.locked), "locked": fixed.to_str(b.locked)}
                for b in self.core.balances().balances
            ]
            return 200, {"accountType": "SPOT", "canTrade": True, "balances": balances}

        return await self._handle(request, 20, False, account)

    async def _modify(self, request: web.Request) -> web.Response:
        def modify(params: dict[str, str]) -> tuple[int, Any]:
            inst = self._inst(params)
            cid = params.get("origClientOrderId", "")
            record = self._records.get(cid)
            if record is None or self.core.order(cid) is None:
                raise _Reply(-2013, ERROR_MESSAGES[-2013])
            price, qty = self._number(params, "price"), self._number(params, "quantity")
            amend = AmendOrder(
                ts=self.core.clock.now_ns(),
                strategy_id="binance-api",
                instrument_id=inst.id,
                client_order_id=cid,
                price=price,
                qty=qty,
            )
            events = self.core.amend(amend)
            refused = next((e for e in events if isinstance(e, OrderAmendRejected)), None)
            if refused is not None:
                raise _Reply(*_REASON_ERRORS.get(refused.reason, (-2013, ERROR_MESSAGES[-2013])))
            view = self.core.order(cid)
            return 200, self._order_json(record, _STATUS[view.status] if view is not None else "CANCELED")

        return await self._handle(request, 1, True, modify)

    async def _listen_key(self, request: web.Request) -> web.Response:
        """USD-M listen key: the API key header is the only credential (not signed)."""
        if request.headers.get("X-MBX-APIKEY") != self.sim.credentials.api_key.reveal():
            return self._respond(401, {"code": -2015, "msg": ERROR_MESSAGES[-2015]})
        if request.method == "POST":
            key = f"lk{len(self.user.listen_keys) + 1:060d}"
            self.user.listen_keys.add(key)
            return self._respond(200, {"listenKey": key})
        return self._respond(200, {})

    async def _my_trades(self, request: web.Request) -> web.Response:
        def my_trades(params: dict[str, str]) -> tuple[int, Any]:
            self._inst(params)
            order_id = params.get("orderId", "")
            rows = [f for r in self._records.values() if str(r.order_id) == order_id for f in r.fills]
            return 200, [{k: v for k, v in f.items() if k != "tradeId"} for f in rows]

        return await self._handle(request, 20, False, my_trades)

    # -- private events -> executionReport / outboundAccountPosition ----------------------------
