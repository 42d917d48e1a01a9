"""The REST side of the OKX simulator dialect: signature checks, order routes, queries (see
:mod:`tradeloop.venues.okx.simulator`)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web

from tradeloop.core import fixed
from tradeloop.model.commands import AmendOrder, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import RejectReason, Side
from tradeloop.model.events import (
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.okx.auth import sign
from tradeloop.venues.okx.instruments import OkxInstrument, SizeError, plain_decimal
from tradeloop.venues.okx.sim_wire import (
    ERROR_MESSAGES,
    REJECT_CODES,
    SimOrderInfo,
    ack_item,
    book_levels,
    error_code_and_message,
    ord_type_fields,
    order_data,
    size_text,
)
from tradeloop.venues.okx.spec import BOOK_DEPTH, PATHS

if TYPE_CHECKING:
    from aiohttp.web_urldispatcher import UrlDispatcher

    from tradeloop.venues.okx.simulator import OkxDialect

__all__ = ["OkxSimRest", "json_reply"]

WINDOW_MS: Final = 30_000
"""Signed requests (and WebSocket logins) more than 30 s off the server clock are refused (50102)."""
_STRATEGY: Final = "okx-api"


def json_reply(body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json", headers=headers)


def _error(code: str, status: int = 200, msg: str = "") -> web.Response:
    return json_reply({"code": code, "msg": msg or ERROR_MESSAGES.get(code, "Operation failed"), "data": []}, status)


class OkxSimRest:
    """OKX's REST routes on the dialect's state."""

    def __init__(self, dialect: OkxDialect) -> None:
        self.d = dialect

    def install(self, router: UrlDispatcher) -> None:
        router.add_get(PATHS["time"], self._time)
        router.add_get(PATHS["instruments"], self._instruments)
        router.add_get(PATHS["books"], self._books)
        router.add_post(PATHS["place"], self._order_route(self._place))
        router.add_post(PATHS["batch_place"], self._order_route(self._place))
        router.add_post(PATHS["cancel"], self._order_route(self._cancel))
        router.add_post(PATHS["batch_cancel"], self._order_route(self._cancel))
        router.add_post(PATHS["amend"], self._order_route(self._amend))
        router.add_get(PATHS["order"], self._signed_get(self._get_order))
        router.add_get(PATHS["pending"], self._signed_get(self._get_pending))
        router.add_get(PATHS["fills"], self._signed_get(self._get_fills))
        router.add_get(PATHS["balance"], self._signed_get(self._get_balance))

    def _auth(self, request: web.Request, body: str) -> web.Response | None:
        """OKX's signature check; ``None`` when the request is signed by the simulator's key."""
        creds = self.d.sim.credentials
        h = request.headers
        key, ts, signature = h.get("OK-ACCESS-KEY", ""), h.get("OK-ACCESS-TIMESTAMP", ""), h.get("OK-ACCESS-SIGN", "")
        passphrase = creds.passphrase.reveal() if creds.passphrase is not None else ""
        if not key:
            return _error("50103", 401, 'Request header "OK-ACCESS-KEY" cannot be empty.')
        if not hmac.compare_digest(key, creds.api_key.reveal()):
            return _error("50111", 401)
        if not hmac.compare_digest(h.get("OK-ACCESS-PASSPHRASE", ""), passphrase):
            return _error("50105", 401)
        try:
            sent_ms = int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return _error("50112", 401, "Invalid OK-ACCESS-TIMESTAMP")
        if abs(sent_ms - self.d.now_ms()) > WINDOW_MS:
            return _error("50102", 401)
        expected = sign(creds.secret.reveal(), ts + request.method + request.raw_path + body)
        if not hmac.compare_digest(signature, expected):
            return _error("50113", 401)
        return None

    def _rate_limited(self) -> web.Response | None:
        if self.d.sim.faults.take_rate_limit():
            return json_reply({"code": "50011", "msg": "Too Many Requests", "data": []}, 429, {"Retry-After": "0.2"})
        return None

    def _order_route(
        self, handler: Callable[[list[dict[str, Any]]], list[dict[str, str]]]
    ) -> Callable[[web.Request], Any]:
        async def route(request: web.Request) -> web.Response:
            body = await request.text()
            self.d.requests[f"rest:{request.path}"] += 1
            refused = self._auth(request, body) or self._rate_limited()
            if refused is not None:
                return refused
            try:
                payload = json.loads(body)
            except ValueError:
                return _error("50002", 400, "JSON syntax error")
            batch = isinstance(payload, list)
            items = payload if batch else [payload]
            if not items or not all(isinstance(i, dict) for i in items):
                return _error("51000", 400, "Parameter error")
            error = self.d.sim.faults.take_reject()
            if error is not None:
                code, msg = error_code_and_message(error)
                acks = [ack_item(str(i.get("clOrdId", "")), "", code, msg) for i in items]
            else:
                acks = handler(items)
            delay = self.d.sim.faults.take_delay()
            if delay:
                await asyncio.sleep(delay)
            failed = sum(a["sCode"] != "0" for a in acks)
            code = "0" if not failed else ("1" if failed == len(acks) else "2")
            msg = {"0": "", "1": "All operations failed", "2": "Bulk operation partially succeeded"}[code]
            return json_reply({"code": code, "msg": msg, "data": acks, "inTime": "", "outTime": ""})

        return route

    def _signed_get(self, handler: Callable[[Mapping[str, str]], dict[str, Any]]) -> Callable[[web.Request], Any]:
        async def route(request: web.Request) -> web.Response:
            refused = self._auth(request, "") or self._rate_limited()
            return refused if refused is not None else json_reply(handler(request.query))

        return route

    def _cid_of(self, args: Mapping[str, Any]) -> str:
        cid = str(args.get("clOrdId") or "")
        if cid:
            return cid
        ord_id = str(args.get("ordId") or "")
        return self.d.sim.core.client_order_id(ord_id) or self.d.synthetic.get(ord_id, "")

    def _command_base(self, args: Mapping[str, Any]) -> tuple[OkxInstrument, InstrumentId] | None:
        spec = self.d.specs.get(str(args.get("instId", "")))
        return (spec, spec.instrument_id) if spec is not None else None

    def _place(self, items: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [self._place_one(i) for i in items]

    def _place_one(self, args: dict[str, Any]) -> dict[str, str]:
        cid = str(args.get("clOrdId") or "")
        base = self._command_base(args)
        if base is None:
            return ack_item(cid, "", "51001", ERROR_MESSAGES["51001"])
        spec, iid = base
        fields = ord_type_fields(str(args.get("ordType", "")))
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(str(args.get("side", "")))
        td_ok = args.get("tdMode") in (("cross", "isolated") if spec.is_swap else ("cash",))
        market_buy = fields is not None and fields[0].value == "MARKET" and side is Side.BUY and not spec.is_swap
        if fields is None or side is None or not td_ok or (market_buy and args.get("tgtCcy") != "base_ccy"):
            return ack_item(cid, "", "51000", "Parameter error")
        if not cid:
            cid = f"okxsim{self.d.new_id()}"
        try:
            qty = spec.parse_sz(str(args.get("sz", "")))
            price = fixed.parse(str(args["px"])) if fields[0].value == "LIMIT" else None
        except (KeyError, ValueError, SizeError):
            return ack_item(cid, "", "51000", "Parameter error")
        order_type, tif, post_only = fields
        cmd = SubmitOrder(
            ts=self.d.sim.core.clock.now_ns(),
            strategy_id=_STRATEGY,
            instrument_id=iid,
            side=side,
            qty=qty,
            price=price,
            order_type=order_type,
            time_in_force=tif,
            post_only=post_only,
            reduce_only=bool(args.get("reduceOnly")),
            client_order_id=cid,
        )
        previous = self.d.orders.get(cid)
        info = SimOrderInfo(spec, cid, side, str(args["ordType"]), price, qty, str(args["tdMode"]), self.d.now_ms())
        self.d.orders[cid] = info
        events = self.d.sim.core.submit(cmd)
        first = events[0] if events else None
        if isinstance(first, OrderAccepted):
            return ack_item(cid, first.venue_order_id)
        if isinstance(first, OrderRejected):
            if info.ord_id and info.cancel_source:  # canceled at once, as OKX does
                return ack_item(cid, info.ord_id)
            if previous is not None:
                self.d.orders[cid] = previous
            else:
                del self.d.orders[cid]
            code = REJECT_CODES.get(first.reason, "51000")
            return ack_item(cid, "", code, first.message or ERROR_MESSAGES.get(code, ""))
        return ack_item(cid, "", "50000", "no answer from the matching engine")

    def _cancel(self, items: list[dict[str, Any]]) -> list[dict[str, str]]:
        out = []
        for args in items:
            cid, base = self._cid_of(args), self._command_base(args)
            ord_id = str(args.get("ordId") or "")
            if base is None or not cid:
                out.append(ack_item(cid, ord_id, "51400", ERROR_MESSAGES["51400"]))
                continue
            cmd = CancelOrder(
                ts=self.d.sim.core.clock.now_ns(), strategy_id=_STRATEGY, instrument_id=base[1], client_order_id=cid
            )
            events = self.d.sim.core.cancel(cmd)
            ok = any(isinstance(e, OrderCanceled) for e in events)
            info = self.d.orders.get(cid)
            ord_id = ord_id or (info.ord_id if info else "")
            out.append(ack_item(cid, ord_id) if ok else ack_item(cid, ord_id, "51400", ERROR_MESSAGES["51400"]))
        return out

    def _amend(self, items: list[dict[str, Any]]) -> list[dict[str, str]]:
        out = []
        for args in items:
            cid, base = self._cid_of(args), self._command_base(args)
            if base is None or not cid:
                out.append(ack_item(cid, "", "51503", ERROR_MESSAGES["51503"]))
                continue
            spec, iid = base
            try:
                qty = spec.parse_sz(str(args["newSz"])) if args.get("newSz") else None
                price = fixed.parse(str(args["newPx"])) if args.get("newPx") else None
            except (ValueError, SizeError):
                out.append(ack_item(cid, "", "51000", "Parameter error"))
                continue
            cmd = AmendOrder(
                ts=self.d.sim.core.clock.now_ns(),
                strategy_id=_STRATEGY,
                instrument_id=iid,
                client_order_id=cid,
                price=price,
                qty=qty,
            )
            events = self.d.sim.core.amend(cmd)
            info = self.d.orders.get(cid)
            ord_id = info.ord_id if info else ""
            if any(isinstance(e, OrderAmended | OrderCanceled) for e in events):
                item = ack_item(cid, ord_id)
            else:
                reason = getattr(events[0], "reason", RejectReason.OTHER) if events else RejectReason.OTHER
                code = "51503" if reason is RejectReason.UNKNOWN_ORDER else REJECT_CODES.get(reason, "51000")
                item = ack_item(cid, ord_id, code, ERROR_MESSAGES.get(code, "Operation failed"))
            item["reqId"] = str(args.get("reqId", ""))
            out.append(item)
        return out

    def _query(self, query: Mapping[str, str]) -> tuple[SimOrderInfo | None, list[OrderFilled]]:
        cid, base = self._cid_of(query), self._command_base(query)
        info = self.d.orders.get(cid)
        if base is None or not cid or info is None:
            return None, []
        events = self.d.sim.core.query(
            QueryOrder(ts=self.d.sim.core.clock.now_ns(), instrument_id=base[1], client_order_id=cid)
        )
        report = events[-1] if events else None
        if isinstance(report, OrderStatusReport) and report.status is not None:
            info.apply_status(report.status)
        elif info.ord_id not in self.d.synthetic:
            return None, []
        return info, [e for e in events if isinstance(e, OrderFilled)]

    def _get_order(self, query: Mapping[str, str]) -> dict[str, Any]:
        info, _ = self._query(query)
        if info is None:
            return {"code": "51603", "msg": ERROR_MESSAGES["51603"], "data": []}
        return {"code": "0", "msg": "", "data": [order_data(info, self.d.now_ms())]}

    def _get_fills(self, query: Mapping[str, str]) -> dict[str, Any]:
        info, fills = self._query(query)
        if info is None:
            return {"code": "0", "msg": "", "data": []}
        rows = [
            {
                "instId": info.spec.inst_id,
                "tradeId": f.trade_id,
                "ordId": info.ord_id,
                "clOrdId": info.cid,
                "fillPx": plain_decimal(f.last_price),
                "fillSz": size_text(info.spec, f.last_qty),
                "side": "buy" if f.side is Side.BUY else "sell",
                "execType": "M" if f.liquidity == "MAKER" else "T",
                "fee": plain_decimal(-f.fee),
                "feeCcy": f.fee_currency,
                "fillTime": str(f.ts // 1_000_000),
                "ts": str(f.ts // 1_000_000),
            }
            for f in fills
        ]
        return {"code": "0", "msg": "", "data": rows}

    def _get_pending(self, query: Mapping[str, str]) -> dict[str, Any]:
        base = self._command_base(query) if query.get("instId") else None
        if query.get("instId") and base is None:
            return {"code": "51001", "msg": ERROR_MESSAGES["51001"], "data": []}
        views = list(reversed(self.d.sim.core.open_orders(base[1] if base else None)))  # newest first
        after = query.get("after")
        if after:
            ids = [v.venue_order_id for v in views]
            views = views[ids.index(after) + 1 :] if after in ids else []
        now = self.d.now_ms()
        data = [
            order_data(self.d.orders[v.client_order_id], now) for v in views[:100] if v.client_order_id in self.d.orders
        ]
        return {"code": "0", "msg": "", "data": data}

    def _get_balance(self, query: Mapping[str, str]) -> dict[str, Any]:
        return {"code": "0", "msg": "", "data": [self.d.balance_data(self.d.sim.core.balances())]}

    async def _time(self, request: web.Request) -> web.Response:
        return self._rate_limited() or json_reply({"code": "0", "msg": "", "data": [{"ts": str(self.d.now_ms())}]})

    async def _books(self, request: web.Request) -> web.Response:
        refused = self._rate_limited()
        if refused is not None:
            return refused
        spec = self.d.specs.get(request.query.get("instId", ""))
        if spec is None:
            return _error("51001")
        try:
            depth = min(max(int(request.query.get("sz", "1")), 1), BOOK_DEPTH)
        except ValueError:
            return _error("51000", 400, "Parameter sz error")
        bids, asks = book_levels(self.d.sim.core.book(spec.instrument_id), spec, depth)
        data = {"asks": asks, "bids": bids, "ts": str(self.d.now_ms()), "seqId": self.d.seqs[spec.inst_id]}
        return json_reply({"code": "0", "msg": "", "data": [data]})

    async def _instruments(self, request: web.Request) -> web.Response:
        kind = request.query.get("instType", "")
        data = []
        for spec in self.d.specs.values():
            if kind and spec.inst_type != kind:
                continue
            item: dict[str, str | int] = {
                "instId": spec.inst_id,
                "instType": spec.inst_type,
                "tickSz": plain_decimal(spec.tick_sz),
                "lotSz": plain_decimal(spec.lot_sz),
                "minSz": plain_decimal(spec.min_sz),
                "state": "live",
            }
            if self.d.inst_id_codes and spec.inst_id_code is not None:
                item["instIdCode"] = spec.inst_id_code
            if spec.is_swap:
                item |= {
                    "ctVal": plain_decimal(spec.ct_val),
                    "ctValCcy": spec.base,
                    "ctType": "linear",
                    "settleCcy": spec.quote,
                    "instFamily": f"{spec.base}-{spec.quote}",
                }
            else:
                item |= {"baseCcy": spec.base, "quoteCcy": spec.quote}
            data.append(item)
        return json_reply({"code": "0", "msg": "", "data": data})
