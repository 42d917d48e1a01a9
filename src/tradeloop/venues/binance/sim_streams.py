"""The Binance simulator's WebSocket side: market streams (``/stream``) and the WebSocket API's user
data (``/ws-api/v3``), encoded from the simulator core's market items and order events.

Market: each change of the core's book becomes one ``depthUpdate`` whose ``U``/``u`` continue a
per-symbol update id; the diff is computed against the last book sent, so snapshots of the
simulated market become ordinary diffs. ``skip_sequence`` consumes ids without sending,
``stall_feed`` sends nothing (ids still consumed), ``send_malformed`` pushes raw bytes.
User data: ``userDataStream.subscribe.signature`` then ``executionReport`` and
``outboundAccountPosition`` events wrapped as ``{"subscriptionId", "event"}``; order methods go to ``orders``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson
from aiohttp import WSMsgType, web

from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import LiquiditySide, Side
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.binance.simulator_auth import AuthError, check_ws_api

if TYPE_CHECKING:
    from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["MarketStreams", "Peer", "Record", "UserStreams", "WsOrderMethods"]

_MS: Final = 1_000_000


class Peer:
    """One accepted WebSocket with an ordered outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.streams: set[str] = set()
        self.subscription: int | None = None

    def push(self, data: str | bytes) -> None:
        if not self.ws.closed:
            self.queue.put_nowait(data)

    async def pump(self) -> None:
        while True:
            data = await self.queue.get()
            if self.ws.closed:
                return
            try:
                if isinstance(data, bytes):
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                return


class Record:
    """What the dialect remembers of one order (Binance fields the core does not keep)."""

    __slots__ = (
        "cid",
        "cum",
        "cum_quote",
        "fills",
        "order_id",
        "post_only",
        "price",
        "qty",
        "side",
        "symbol",
        "tif",
        "type",
    )

    def __init__(self, cmd: SubmitOrder, order_id: int, order_type: str) -> None:
        self.cid = cmd.client_order_id
        self.symbol = cmd.instrument_id.symbol
        self.side = cmd.side.value
        self.type = order_type
        self.tif = cmd.time_in_force.value
        self.post_only = cmd.post_only
        self.qty = cmd.qty
        self.price = cmd.price or 0
        self.order_id = order_id
        self.cum = 0
        self.cum_quote = 0
        self.fills: list[dict[str, Any]] = []


class MarketStreams:
    """Market-data sockets of one simulator and the per-symbol update ids."""

    def __init__(
        self, sim: VenueSimulator, symbols: dict[str, Instrument], first_update_id: int, futures: bool = False
    ) -> None:
        self.sim = sim
        self.futures = futures
        """USD-M: diffs carry ``pu`` (the previous ``u``) and ``T``."""
        self.core = sim.core
        self._symbols = symbols
        self.update_id: dict[str, int] = dict.fromkeys(symbols, first_update_id)
        self._shadow: dict[str, tuple[dict[int, int], dict[int, int]]] = {
            s: (dict(self.core.book(i.id).bids), dict(self.core.book(i.id).asks)) for s, i in symbols.items()
        }
        self._best: dict[str, tuple[int, int, int, int] | None] = dict.fromkeys(symbols)
        self._market: list[Peer] = []
        self._next_id = 0
        self._malformed_task: asyncio.Task[Any] | None = None

    def snapshot_id(self, symbol: str) -> int:
        """The ``lastUpdateId`` of a REST snapshot of ``symbol`` now.

        Spot: the last diff's ``u`` (the next diff starts at ``lastUpdateId + 1``). USD-M: the id the
        next diff's window opens with, so, as on the real venue, the first diff after the snapshot has
        ``U <= lastUpdateId <= u`` and the diffs before it end below ``lastUpdateId``."""
        last = self.update_id[symbol]
        return last + 1 if self.futures else last

    def on_market(self, item: BookDeltas | Trade) -> None:
        symbol = item.instrument_id.symbol
        inst = self._symbols.get(symbol)
        if inst is None:
            return
        faults = self.sim.faults
        if isinstance(item, Trade):
            if not faults.stalled():
                self._next_id += 1
                ms = item.ts_event // _MS
                data = {
                    "e": "trade",
                    "E": ms,
                    "s": symbol,
                    "t": self._next_id,
                    "p": inst.price_to_str(item.price),
                    "q": inst.qty_to_str(item.qty),
                    "T": ms,
                    "m": item.aggressor is Side.SELL,
                    "M": True,
                }
                self._publish(f"{symbol.lower()}@trade", data)
            return
        book = self.core.book(item.instrument_id)
        bids, asks = self._shadow[symbol]
        changes_b = _diff(bids, book.bids)
        changes_a = _diff(asks, book.asks)
        if not changes_b and not changes_a:
            return
        self._shadow[symbol] = (dict(book.bids), dict(book.asks))
        first = self.update_id[symbol] + 1
        # USD-M: ``first`` opens the diff's window and is no change of this book (real USD-M ids are
        # venue-wide), so a snapshot taken before this diff can carry it (see ``snapshot_id``).
        last = first + len(changes_b) + len(changes_a) - (0 if self.futures else 1)
        self.update_id[symbol] = last
        if faults.take_skip() or faults.stalled():
            return
        ms = item.ts_event // _MS
        data = {
            "e": "depthUpdate",
            "E": ms,
            "s": symbol,
            "U": first,
            "u": last,
            "b": [[inst.price_to_str(p), inst.qty_to_str(q)] for p, q in changes_b],
            "a": [[inst.price_to_str(p), inst.qty_to_str(q)] for p, q in changes_a],
        }
        if self.futures:
            data["pu"] = first - 1
            data["T"] = ms
        self._publish(f"{symbol.lower()}@depth", data, prefix=True)
        best = book.best_bid_level(), book.best_ask_level()
        if best[0] is not None and best[1] is not None:
            top = (*best[0], *best[1])
            if top != self._best[symbol]:
                self._best[symbol] = top
                ticker = {
                    "u": last,
                    "s": symbol,
                    "b": inst.price_to_str(top[0]),
                    "B": inst.qty_to_str(top[1]),
                    "a": inst.price_to_str(top[2]),
                    "A": inst.qty_to_str(top[3]),
                }
                self._publish(f"{symbol.lower()}@bookTicker", ticker)

    def _publish(self, stream: str, data: dict[str, Any], prefix: bool = False) -> None:
        for peer in self._market:
            for name in peer.streams:
                if name == stream or (prefix and name.startswith(stream + "@")):
                    peer.push(orjson.dumps({"stream": name, "data": data}).decode())

    async def _malformed_loop(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            payload = self.sim.faults.take_malformed() if self._market else None
            while payload is not None:
                for peer in self._market:
                    peer.push(payload)
                payload = self.sim.faults.take_malformed()

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        self.sim.track(ws)
        peer = Peer(ws)
        peer.streams.update(s for s in request.query.get("streams", "").split("/") if s)
        self._market.append(peer)
        if self._malformed_task is None or self._malformed_task.done():
            self._malformed_task = self.sim.spawn(self._malformed_loop(), name="binance-malformed")
        pump = self.sim.spawn(peer.pump(), name="binance-stream-pump")
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                self._on_stream_message(peer, msg.data)
        finally:
            self._market.remove(peer)
            pump.cancel()
        return ws

    def _on_stream_message(self, peer: Peer, text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, params, req_id = msg["method"], msg.get("params") or [], msg.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            peer.push(orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}).decode())
            return
        if method == "SUBSCRIBE":
            peer.streams.update(str(p) for p in params)
            peer.push(orjson.dumps({"result": None, "id": req_id}).decode())
        elif method == "UNSUBSCRIBE":
            peer.streams.difference_update(str(p) for p in params)
            peer.push(orjson.dumps({"result": None, "id": req_id}).decode())
        elif method == "LIST_SUBSCRIPTIONS":
            peer.push(orjson.dumps({"result": sorted(peer.streams), "id": req_id}).decode())
        else:
            peer.push(orjson.dumps({"error": {"code": 1, "msg": "Unknown method"}, "id": req_id}).decode())


class WsOrderMethods(Protocol):
    """The WebSocket API's order methods (``sim_ws_orders.py``)."""

    def handle(self, peer: Peer, request_id: object, method: str, raw: Mapping[str, Any]) -> bool:
        """Answer ``method`` if it is an order method (``True``)."""
        ...


class UserStreams:
    """WebSocket API sockets and the user-data events of the core's order events."""

    def __init__(
        self,
        sim: VenueSimulator,
        symbols: dict[str, Instrument],
        records: dict[str, Record],
        order_id: Callable[[str], int],
        new_cid: Callable[[], str],
        futures: bool = False,
    ) -> None:
        self.sim = sim
        self.futures = futures
        """USD-M: bare ``ORDER_TRADE_UPDATE`` events on listen-key sockets, no account positions."""
        self.listen_keys: set[str] = set()
        self.core = sim.core
        self._symbols = symbols
        self._records = records
        self._order_id = order_id
        self._new_cid = new_cid
        self._trade_ids: dict[str, int] = {}
        self._users: list[Peer] = []
        self._next_sub = 0
        self.orders: WsOrderMethods | None = None
        """Answers the WebSocket API's order methods (spot; set by the dialect)."""

    def on_private(self, event: Event) -> None:
        if isinstance(event, AccountSnapshot):
            balances = [
                {"a": b.currency, "f": fixed.to_str(b.total - b.locked), "l": fixed.to_str(b.locked)}
                for b in event.balances
            ]
            ms = event.ts // _MS
            self._user_event({"e": "outboundAccountPosition", "E": ms, "u": ms, "B": balances})
            return
        cid = getattr(event, "client_order_id", None)
        record = self._records.get(cid) if cid else None
        if record is None:
            return
        if isinstance(event, OrderAccepted):
            record.order_id = self._order_id(event.venue_order_id)
            self._report(record, "NEW", "NEW", event.ts)
        elif isinstance(event, OrderFilled):
            self._on_fill(record, event)
        elif isinstance(event, OrderCanceled):
            self._report(record, "CANCELED", "CANCELED", event.ts, cancel_cid=self._new_cid())
        elif isinstance(event, OrderExpired):
            self._report(record, "EXPIRED", "EXPIRED", event.ts)
        elif isinstance(event, OrderAmended):
            record.qty = event.qty
            record.price = event.price if event.price is not None else record.price
            self._report(record, "REPLACED", "PARTIALLY_FILLED" if record.cum else "NEW", event.ts)

    def _on_fill(self, record: Record, fill: OrderFilled) -> None:
        inst = self._symbols[record.symbol]
        record.cum += fill.last_qty
        record.cum_quote += fixed.mul(fill.last_qty, fill.last_price)
        trade_id = self._trade_ids.setdefault(fill.trade_id, len(self._trade_ids) + 1)
        row = {
            "symbol": record.symbol,
            "id": trade_id,
            "tradeId": trade_id,
            "orderId": record.order_id,
            "orderListId": -1,
            "price": inst.price_to_str(fill.last_price),
            "qty": inst.qty_to_str(fill.last_qty),
            "quoteQty": fixed.to_str(fixed.mul(fill.last_qty, fill.last_price)),
            "commission": fixed.to_str(fill.fee),
            "commissionAsset": fill.fee_currency,
            "time": fill.ts // _MS,
            "isBuyer": fill.side is Side.BUY,
            "isMaker": fill.liquidity is LiquiditySide.MAKER,
            "isBestMatch": True,
        }
        record.fills.append(row)
        status = "FILLED" if record.cum >= record.qty else "PARTIALLY_FILLED"
        self._report(record, "TRADE", status, fill.ts, last=(fill, trade_id))

    def _report(
        self,
        record: Record,
        x: str,
        status: str,
        ts: int,
        *,
        cancel_cid: str = "",
        last: tuple[OrderFilled, int] | None = None,
    ) -> None:
        inst = self._symbols[record.symbol]
        ms = ts // _MS
        fill, trade_id = last if last is not None else (None, -1)
        self._user_event(
            {
                "e": "executionReport",
                "E": ms,
                "s": record.symbol,
                "c": cancel_cid or record.cid,
                "S": record.side,
                "o": record.type,
                "f": record.tif,
                "q": inst.qty_to_str(record.qty),
                "p": inst.price_to_str(record.price),
                "P": "0",
                "F": "0",
                "g": -1,
                "C": record.cid if cancel_cid else "",
                "x": x,
                "X": status,
                "r": "NONE",
                "i": record.order_id,
                "l": inst.qty_to_str(fill.last_qty) if fill else "0",
                "z": inst.qty_to_str(record.cum),
                "L": inst.price_to_str(fill.last_price) if fill else "0",
                "n": fixed.to_str(fill.fee) if fill else "0",
                "N": fill.fee_currency if fill else None,
                "T": ms,
                "t": trade_id,
                "I": 0,
                "w": status in ("NEW", "PARTIALLY_FILLED"),
                "m": bool(fill and fill.liquidity is LiquiditySide.MAKER),
                "M": False,
                "O": ms,
                "Z": fixed.to_str(record.cum_quote),
                "Y": fixed.to_str(fixed.mul(fill.last_qty, fill.last_price)) if fill else "0",
                "Q": "0",
                "W": ms,
                "V": "NONE",
            }
        )

    def _user_event(self, event: dict[str, Any]) -> None:
        if self.futures:
            if event["e"] != "executionReport":
                return
            order = {k: v for k, v in event.items() if k not in ("e", "E")}
            text = orjson.dumps({"e": "ORDER_TRADE_UPDATE", "E": event["E"], "T": event["E"], "o": order}).decode()
            for peer in self._users:
                peer.push(text)
            return
        for peer in self._users:
            if peer.subscription is not None:
                peer.push(orjson.dumps({"subscriptionId": peer.subscription, "event": event}).decode())

    async def listen_key_socket(self, request: web.Request) -> web.StreamResponse:
        """USD-M ``/private/ws/<listenKey>``: events of the account behind a key this simulator issued."""
        if request.match_info.get("key", "") not in self.listen_keys:
            return web.Response(status=400, text="invalid listen key")
        return await self.socket(request)

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        self.sim.track(ws)
        peer = Peer(ws)
        self._users.append(peer)
        pump = self.sim.spawn(peer.pump(), name="binance-ws-api-pump")
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_ws_api_message(peer, msg.data)
        finally:
            self._users.remove(peer)
            pump.cancel()
        return ws

    def _on_ws_api_message(self, peer: Peer, text: str) -> None:
        try:
            msg = orjson.loads(text)
            req_id, method, params = msg["id"], msg["method"], msg.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            peer.push(
                orjson.dumps({"id": None, "status": 400, "error": {"code": -1102, "msg": "Invalid request."}}).decode()
            )
            return
        if self.orders is not None and isinstance(params, dict) and self.orders.handle(peer, req_id, method, params):
            return
        reply: dict[str, Any] = {"id": req_id}
        if method == "ping":
            reply.update(status=200, result={})
        elif method == "userDataStream.subscribe.signature":
            try:
                check_ws_api(
                    self.sim.credentials, {str(k): str(v) for k, v in params.items()}, self.core.clock.now_ns() // _MS
                )
            except AuthError as exc:
                reply.update(status=400, error={"code": exc.code, "msg": exc.msg})
            else:
                peer.subscription = self._next_sub
                self._next_sub += 1
                reply.update(status=200, result={"subscriptionId": peer.subscription})
        else:
            reply.update(status=400, error={"code": -1100, "msg": f"Unknown method {method!r}."})
        peer.push(orjson.dumps(reply).decode())


def _diff(sent: dict[int, int], now: dict[int, int]) -> list[tuple[int, int]]:
    """Absolute levels that changed from ``sent`` to ``now`` (0: removed), by price."""
    out = [(p, q) for p, q in now.items() if sent.get(p) != q]
    out.extend((p, 0) for p in sent if p not in now)
    out.sort()
    return out
