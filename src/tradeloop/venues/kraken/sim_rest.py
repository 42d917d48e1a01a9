"""The Kraken simulator's REST side: ``/0/private/<Method>`` signed calls and a few ``/0/public`` ones.

Requests are checked as Kraken does: ``API-Key`` must be the simulator's key (``EAPI:Invalid key``),
``API-Sign`` must verify over path + SHA256(nonce + body) (``EAPI:Invalid signature``), and the nonce
must be above the last one of the key (``EAPI:Invalid nonce``). Order requests become commands on the
:class:`~tradeloop.venues.simulator.core.SimulatorCore`; its refusals come back as Kraken's error
strings (:data:`tradeloop.venues.kraken.spec.REJECT_ERRORS`). Replies are HTTP 200 with
``{"error": [...], "result": ...}``, amounts as decimal strings.

Faults: ``rate_limit_next`` answers any private call with the rate-limit error; ``reject_next`` and
``delay_next_reply`` apply to order requests (``AddOrder``, ``AmendOrder``, ``CancelOrder``,
``CancelAll``), the delay holding the reply after the request was acted on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from tradeloop.core import fixed
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.auth import sign
from tradeloop.venues.sim.orders import SimOrderView

if TYPE_CHECKING:
    from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["KrakenRestState", "Refusal", "RestHandlers", "install_rest"]

ORDER_METHODS: Final = frozenset({"AddOrder", "AmendOrder", "CancelOrder", "CancelAll"})
_STATUS: Final = {
    OrderStatus.ACCEPTED: "open",
    OrderStatus.PARTIALLY_FILLED: "open",
    OrderStatus.PENDING_CANCEL: "open",
    OrderStatus.PENDING_AMEND: "open",
    OrderStatus.FILLED: "closed",
    OrderStatus.CANCELED: "canceled",
    OrderStatus.EXPIRED: "expired",
}
_TIF: Final = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}


class Refusal(Exception):
    """A request refused with one Kraken error string (REST ``error[]``, WebSocket ``error``)."""


def error_of(reason: RejectReason, message: str = "") -> str:
    """The Kraken error string for a refusal of the simulated venue."""
    text = spec.REJECT_ERRORS.get(reason)
    if text is not None:
        return text
    return f"EGeneral:Invalid arguments:{message or reason.value}"  # FOK / no liquidity / other (?)


class KrakenRestState:
    """What the REST side remembers: nonces per key, WebSocket tokens, fills by trade id."""

    def __init__(self) -> None:
        self.last_nonce: dict[str, int] = {}
        self.tokens: set[str] = set()
        self.fills: dict[str, OrderFilled] = {}
        self.requests: Counter[str] = Counter()
        """Requests served: ``rest:<Method>`` and ``ws:<method>`` (the WebSocket order methods)."""
        self._token_seq = itertools.count(1)
        self._ids = itertools.count(1)

    def new_token(self, api_key: str) -> str:
        n = next(self._token_seq)
        token = hashlib.sha256(f"kraken-sim-token:{api_key}:{n}".encode()).hexdigest()[:43]
        self.tokens.add(token)
        return token

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):05d}"


def _amount(params: dict[str, str], name: str) -> int:
    text = params.get(name)
    if text is None:
        raise Refusal(f"EGeneral:Invalid arguments:{name}")
    try:
        value = fixed.parse(text)
    except fixed.FixedPointError:
        raise Refusal(f"EGeneral:Invalid arguments:{name}") from None
    if value <= 0:
        raise Refusal(f"EGeneral:Invalid arguments:{name}")
    return value


def _s(value: int) -> str:
    return fixed.to_str(value)


def _altname(symbol: str) -> str:
    """REST order info names pairs by altname (``XBTUSD``); unlisted pairs by their joined v2 name."""
    try:
        return spec.pair_of(symbol).altname
    except spec.SymbolError:
        return symbol.replace("/", "")


class RestHandlers:
    """The private methods on the simulator core, REST params in, ``result`` out (:class:`Refusal` for an
    error); the WebSocket order methods (:mod:`.sim_ws_orders`) reuse them."""

    def __init__(self, sim: VenueSimulator, state: KrakenRestState) -> None:
        self.sim = sim
        self.core = sim.core
        self.state = state

    # -- helpers ------------------------------------------------------------------------------

    def _instrument(self, pair: str) -> Instrument:
        try:
            symbol = spec.symbol_of_rest_pair(pair)
        except spec.SymbolError:
            raise Refusal("EQuery:Unknown asset pair") from None
        inst = self.core.instruments.get(InstrumentId(self.core.venue, symbol))
        if inst is None:
            raise Refusal("EQuery:Unknown asset pair")
        return inst

    def _cid(self, params: dict[str, str]) -> str:
        """The engine's client id of the order a request names (``cl_ord_id`` or ``txid``)."""
        if params.get("cl_ord_id"):
            return spec.from_cl_ord_id(params["cl_ord_id"])
        txid = params.get("txid", "")
        cid = self.core.client_order_id(txid) if txid else None
        if cid is None:
            raise Refusal("EOrder:Unknown order")
        return cid

    def _first_refusal(self, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, OrderRejected | OrderCancelRejected | OrderAmendRejected):
                raise Refusal(error_of(e.reason, e.message))

    def _info(self, view: SimOrderView, fills: list[OrderFilled] | None = None) -> dict[str, Any]:
        inst = self.core.instruments[view.instrument_id]
        limit = view.order_type is OrderType.LIMIT and view.price is not None
        info: dict[str, Any] = {
            "refid": None,
            "userref": 0,
            "cl_ord_id": spec.to_cl_ord_id(view.client_order_id),
            "status": _STATUS.get(view.status, "pending"),
            "descr": {
                "pair": _altname(inst.id.symbol),
                "type": "buy" if view.side is Side.BUY else "sell",
                "ordertype": "limit" if limit else "market",
                "price": inst.price_to_str(view.price) if limit and view.price is not None else "0",
            },
            "vol": inst.qty_to_str(view.qty),
            "vol_exec": inst.qty_to_str(view.filled_qty),
            "timeinforce": view.time_in_force.value,
        }
        if fills is not None:
            info["trades"] = [f.trade_id for f in fills]
        return info

    # -- methods ------------------------------------------------------------------------------

    def add_order(self, params: dict[str, str]) -> Any:
        inst = self._instrument(params.get("pair", ""))
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(params.get("type", ""))
        kind = {"limit": OrderType.LIMIT, "market": OrderType.MARKET}.get(params.get("ordertype", ""))
        tif = _TIF.get(params.get("timeinforce", "GTC"))
        if side is None or kind is None or tif is None:
            raise Refusal("EGeneral:Invalid arguments:type/ordertype/timeinforce")
        qty = _amount(params, "volume")
        price = _amount(params, "price") if kind is OrderType.LIMIT else None
        flags = set(params.get("oflags", "").split(","))
        cid = spec.from_cl_ord_id(params["cl_ord_id"]) if params.get("cl_ord_id") else self.state.new_id("K")
        cmd = SubmitOrder(
            ts=self.core.clock.now_ns(),
            strategy_id="kraken-sim",
            instrument_id=inst.id,
            side=side,
            qty=qty,
            price=price,
            order_type=kind,
            time_in_force=tif if kind is OrderType.LIMIT else TimeInForce.IOC,
            post_only="post" in flags,
            client_order_id=cid,
        )
        events = self.core.submit(cmd)
        self._first_refusal(events)
        accepted = next(e for e in events if isinstance(e, OrderAccepted))
        text = f"{params['type']} {params['volume']} {params['pair']} @ {params['ordertype']}"
        return {"descr": {"order": text + (f" {params['price']}" if price else "")}, "txid": [accepted.venue_order_id]}

    def cancel_order(self, params: dict[str, str]) -> Any:
        cid = self._cid(params)
        view = self.core.order(cid)
        if view is None:
            raise Refusal("EOrder:Unknown order")
        cmd = CancelOrder(
            ts=self.core.clock.now_ns(), strategy_id="kraken-sim", instrument_id=view.instrument_id, client_order_id=cid
        )
        events = self.core.cancel(cmd)
        self._first_refusal(events)
        return {"count": sum(1 for e in events if isinstance(e, OrderCanceled))}

    def cancel_all(self, params: dict[str, str]) -> Any:
        events = self.core.cancel_all(CancelAllOrders(ts=self.core.clock.now_ns(), strategy_id="kraken-sim"))
        return {"count": sum(1 for e in events if isinstance(e, OrderCanceled))}

    def amend_order(self, params: dict[str, str]) -> Any:
        cid = self._cid(params)
        view = self.core.order(cid)
        if view is None:
            raise Refusal("EOrder:Unknown order")
        qty = _amount(params, "order_qty") if "order_qty" in params else None
        price = _amount(params, "limit_price") if "limit_price" in params else None
        if qty is None and price is None:
            raise Refusal("EGeneral:Invalid arguments:nothing to amend")
        book = self.core.book(view.instrument_id)
        if params.get("post_only") == "true" and price is not None:
            touch = book.best_ask() if view.side is Side.BUY else book.best_bid()
            if touch is not None and (price >= touch if view.side is Side.BUY else price <= touch):
                raise Refusal(spec.REJECT_ERRORS[RejectReason.POST_ONLY_WOULD_CROSS])
        cmd = AmendOrder(
            ts=self.core.clock.now_ns(),
            strategy_id="kraken-sim",
            instrument_id=view.instrument_id,
            client_order_id=cid,
            price=price,
            qty=qty,
        )
        self._first_refusal(self.core.amend(cmd))
        return {"amend_id": self.state.new_id("TAMEND-")}

    def query_orders(self, params: dict[str, str]) -> Any:
        cid = self._cid(params)
        view = self.core.order(cid)
        if view is None:
            raise Refusal("EOrder:Invalid order")
        events = self.core.query(
            QueryOrder(ts=self.core.clock.now_ns(), instrument_id=view.instrument_id, client_order_id=cid)
        )
        fills = [e for e in events if isinstance(e, OrderFilled)]
        for fill in fills:
            self.state.fills.setdefault(fill.trade_id, fill)
        report = next(e for e in events if isinstance(e, OrderStatusReport))
        return {
            report.venue_order_id or view.venue_order_id: self._info(
                view, fills if params.get("trades") == "true" else None
            )
        }

    def query_trades(self, params: dict[str, str]) -> Any:
        out: dict[str, Any] = {}
        for trade_id in params.get("txid", "").split(","):
            fill = self.state.fills.get(trade_id)
            if fill is None:
                raise Refusal("EQuery:Invalid trade")
            inst = self.core.instruments[fill.instrument_id]
            out[trade_id] = {
                "ordertxid": fill.venue_order_id,
                "pair": _altname(inst.id.symbol),
                "time": msgspec.Raw(fixed.to_str(fill.ts).encode()),  # seconds, as a JSON number
                "type": "buy" if fill.side is Side.BUY else "sell",
                "ordertype": "limit",
                "price": inst.price_to_str(fill.last_price),
                "cost": _s(inst.notional(fill.last_price, fill.last_qty)),
                "fee": _s(fill.fee),
                "vol": inst.qty_to_str(fill.last_qty),
                "margin": "0",
                "misc": "",
                "maker": fill.liquidity.value == "MAKER",
            }
        return out

    def open_orders(self, params: dict[str, str]) -> Any:
        return {"open": {view.venue_order_id: self._info(view) for view in self.core.open_orders()}}

    def balance_ex(self, params: dict[str, str]) -> Any:
        return {
            spec.rest_code_of_asset(b.currency): {"balance": _s(b.total), "hold_trade": _s(b.locked)}
            for b in self.core.balances().balances
        }

    def balance(self, params: dict[str, str]) -> Any:
        return {spec.rest_code_of_asset(b.currency): _s(b.total) for b in self.core.balances().balances}

    def ws_token(self, params: dict[str, str]) -> Any:
        return {"token": self.state.new_token(self.sim.credentials.api_key.reveal()), "expires": 900}


def _reply(errors: list[str], result: Any = None) -> web.Response:
    body: dict[str, Any] = {"error": errors}
    if not errors:
        body["result"] = result
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def install_rest(sim: VenueSimulator, state: KrakenRestState) -> RestHandlers:
    """Add Kraken's REST paths to ``sim.app``; the handlers behind them."""
    handlers = RestHandlers(sim, state)
    methods: dict[str, Callable[[dict[str, str]], Any]] = {
        "AddOrder": handlers.add_order,
        "CancelOrder": handlers.cancel_order,
        "CancelAll": handlers.cancel_all,
        "AmendOrder": handlers.amend_order,
        "QueryOrders": handlers.query_orders,
        "QueryTrades": handlers.query_trades,
        "OpenOrders": handlers.open_orders,
        "BalanceEx": handlers.balance_ex,
        "Balance": handlers.balance,
        "GetWebSocketsToken": handlers.ws_token,
    }
    key = sim.credentials.api_key.reveal()
    secret = sim.credentials.secret.reveal()

    async def private(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        body = await request.text()
        state.requests[f"rest:{name}"] += 1
        faults = sim.faults
        if faults.take_rate_limit():
            return _reply(["EOrder:Rate limit exceeded" if name in ORDER_METHODS else "EAPI:Rate limit exceeded"])
        params = dict(parse_qsl(body, keep_blank_values=True))
        if request.headers.get("API-Key") != key:
            return _reply(["EAPI:Invalid key"])
        nonce_text = params.get("nonce", "")
        expected = sign(secret, request.path, nonce_text, body) if nonce_text.isdigit() else ""
        if not expected or not hmac.compare_digest(expected, request.headers.get("API-Sign", "")):
            return _reply(["EAPI:Invalid signature"])
        nonce = int(nonce_text)
        if nonce <= state.last_nonce.get(key, 0):
            return _reply(["EAPI:Invalid nonce"])
        state.last_nonce[key] = nonce
        handler = methods.get(name)
        if handler is None:
            return _reply(["EGeneral:Unknown method"])
        if name in ORDER_METHODS:
            injected = faults.take_reject()
            if injected is not None:
                return _reply([injected])
        try:
            response = _reply([], handler(params))
        except Refusal as exc:
            response = _reply([str(exc)])
        if name in ORDER_METHODS:
            delay = faults.take_delay()
            if delay:
                await asyncio.sleep(delay)
        return response

    async def server_time(request: web.Request) -> web.Response:
        now = sim.core.clock.now_ns()
        return _reply([], {"unixtime": now // 1_000_000_000})

    sim.app.router.add_post("/0/private/{method}", private)
    sim.app.router.add_get("/0/public/Time", server_time)
    return handlers
