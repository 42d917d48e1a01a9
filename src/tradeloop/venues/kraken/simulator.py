"""Kraken's dialect for the local venue simulator: REST (:mod:`.sim_rest`) and the WebSocket v2 ``/v2``.

Production has the public socket at ``ws.kraken.com/v2`` and the private one at
``ws-auth.kraken.com/v2``: the same path on two hosts. On the simulator's one host both are the one
``/v2`` endpoint, which serves the public channels (``book``, ``trade``, ``ticker``, ``instrument``,
``heartbeat``) and, with a token from ``GetWebSocketsToken``, the private ones (``executions``,
``balances``) and the order methods (``add_order``, ``amend_order``, ``cancel_order``: :mod:`.sim_ws_orders`).

Books follow Kraken's rules per connection: a snapshot of the subscribed depth, then for each move
of the simulator's book an update with the levels that changed inside the range the client holds,
including levels that enter it from below, but no delete for a level pushed out of range by an
insert (clients cut to their depth). Every book message carries the CRC32 checksum of the
simulator's best 10 levels per side at the instrument's precision. JSON numbers are written from the
exact decimals (never through a float).

Faults: ``corrupt_checksum`` (the next book message carries a wrong checksum), ``skip_sequence``
(Kraken has no sequence ids: the next book message that changes the best 10 levels is lost, and an
update without levels carrying the checksum follows at once, so the client sees its book no longer
matches; a loss deeper than 10 levels is invisible to Kraken's checksum by design), ``stall_feed``
(no market frames, heartbeats or pongs), ``send_malformed`` (pushed as is to every socket),
``drop_connections`` (the server's), and the REST ones (see :mod:`.sim_rest`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import WSMsgType, web

from tradeloop.core import fixed
from tradeloop.core.logging import get_logger
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import LiquiditySide, OrderType, Side
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderEventBase,
    OrderExpired,
    OrderFilled,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.orders import wire_amount
from tradeloop.venues.kraken.parse import checksum_of_levels
from tradeloop.venues.kraken.sim_rest import KrakenRestState, install_rest
from tradeloop.venues.kraken.sim_ws_orders import WsOrderDesk, rfc3339

if TYPE_CHECKING:
    from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["KrakenDialect"]

_log = get_logger(__name__)

HEARTBEAT_S: Final = 1.0
PUMP_S: Final = 0.05
_RECENT_FILLS: Final = 50


def _num(text: str) -> msgspec.Raw:
    return msgspec.Raw(wire_amount(text).encode())


def _encode(message: dict[str, Any]) -> str:
    return msgspec.json.encode(message).decode()


class _BookView:
    """What one connection holds of one book: the best ``depth`` levels per side as last sent."""

    __slots__ = ("asks", "bids", "depth")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}


class _Conn:
    """One accepted socket: its subscriptions and an ordered outbox written by one task."""

    def __init__(self, ws: web.WebSocketResponse, number: int) -> None:
        self.ws = ws
        self.number = number
        self.outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.books: dict[InstrumentId, _BookView] = {}
        self.trades: set[InstrumentId] = set()
        self.tickers: dict[InstrumentId, tuple[int, int, int, int] | None] = {}
        self.executions = False
        self.balances = False

    def send(self, data: str | bytes) -> None:
        if not self.ws.closed:
            self.outbox.put_nowait(data)

    async def write(self) -> None:
        while True:
            data = await self.outbox.get()
            try:
                if isinstance(data, str):
                    await self.ws.send_str(data)
                else:
                    try:
                        text = data.decode()
                    except UnicodeDecodeError:
                        await self.ws.send_bytes(data)
                    else:
                        await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return


class KrakenDialect:
    """Kraken spot on a :class:`~tradeloop.venues.simulator.server.VenueSimulator`."""

    venue = spec.VENUE

    def __init__(self) -> None:
        self.rest = KrakenRestState()
        self._sim: VenueSimulator | None = None
        self._conns: list[_Conn] = []
        self._numbers = 0
        self._pump: asyncio.Task[Any] | None = None
        self._trade_ids: dict[InstrumentId, int] = {}
        self._cum: dict[str, int] = {}
        self._recent_fills: deque[dict[str, Any]] = deque(maxlen=_RECENT_FILLS)
        self._balances: dict[str, int] = {}
        self._last_checksum: dict[InstrumentId, int] = {}

    @property
    def sim(self) -> VenueSimulator:
        if self._sim is None:
            raise RuntimeError("kraken dialect not installed")
        return self._sim

    def install(self, sim: VenueSimulator) -> None:
        self._sim = sim
        self.orders = WsOrderDesk(sim, self.rest, install_rest(sim, self.rest))
        sim.app.router.add_get("/v2", self._serve)
        sim.core.add_market_listener(self._on_market)
        sim.core.add_private_listener(self._on_private)
        self._balances = {b.currency: b.total for b in sim.core.balances().balances}

    # -- connections ----------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sim.track(ws)
        self._numbers += 1
        conn = _Conn(ws, self._numbers)
        self._conns.append(conn)
        if self._pump is None or self._pump.done():
            self._pump = self.sim.spawn(self._run_pump(), name="kraken-sim-pump")
        writer = asyncio.get_running_loop().create_task(conn.write())
        status = {"version": "2.0.0", "system": "online", "api_version": "v2", "connection_id": conn.number}
        conn.send(_encode({"channel": "status", "type": "update", "data": [status]}))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_request(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._conns.remove(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _run_pump(self) -> None:
        """Malformed payloads as soon as armed; a heartbeat per second on every socket (unless stalled)."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + HEARTBEAT_S
        while True:
            await asyncio.sleep(PUMP_S)
            faults = self.sim.faults
            payload = faults.take_malformed()
            while payload is not None:
                for conn in self._conns:
                    conn.send(payload)
                payload = faults.take_malformed()
            if loop.time() >= next_beat:
                next_beat = loop.time() + HEARTBEAT_S
                if not faults.stalled():
                    for conn in self._conns:
                        if conn.books or conn.trades or conn.tickers or conn.executions or conn.balances:
                            conn.send('{"channel":"heartbeat"}')

    def _on_request(self, conn: _Conn, text: str) -> None:
        try:
            req = msgspec.json.decode(text, type=dict[str, Any])
        except (msgspec.DecodeError, msgspec.ValidationError):
            conn.send(_encode({"error": "EGeneral:Invalid arguments", "success": False}))
            return
        method = req.get("method")
        req_id = req.get("req_id")
        now = self.sim.core.clock.now_ns()
        if method == "ping":
            if not self.sim.faults.stalled():
                conn.send(
                    _encode({"method": "pong", "req_id": req_id, "time_in": rfc3339(now), "time_out": rfc3339(now)})
                )
            return
        if method in spec.WS_ORDER_METHODS:
            self.orders.handle(conn.send, text)
            return
        params = req.get("params") if isinstance(req.get("params"), dict) else {}
        assert isinstance(params, dict)
        if method == "subscribe":
            self._subscribe(conn, params, req_id)
        elif method == "unsubscribe":
            self._unsubscribe(conn, params, req_id)
        else:
            conn.send(self._ack(str(method), req_id, error=f"EGeneral:Invalid arguments:method {method!r}"))

    def _ack(self, method: str, req_id: Any, *, result: dict[str, Any] | None = None, error: str = "") -> str:
        now = rfc3339(self.sim.core.clock.now_ns())
        message: dict[str, Any] = {"method": method, "success": not error, "time_in": now, "time_out": now}
        if error:
            message["error"] = error
        else:
            message["result"] = result or {}
        if req_id is not None:
            message["req_id"] = req_id
        return _encode(message)

    def _iids(self, conn: _Conn, method: str, params: dict[str, Any], req_id: Any) -> list[InstrumentId]:
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols:
            conn.send(self._ack(method, req_id, error="EGeneral:Invalid arguments:symbol"))
            return []
        out = []
        for symbol in symbols:
            iid = InstrumentId(self.venue, str(symbol))
            if iid in self.sim.core.instruments:
                out.append(iid)
            else:
                conn.send(self._ack(method, req_id, error=f"Currency pair not supported {symbol}"))
        return out

    def _subscribe(self, conn: _Conn, params: dict[str, Any], req_id: Any) -> None:
        channel = params.get("channel")
        if channel in ("executions", "balances"):
            if params.get("token") not in self.rest.tokens:
                conn.send(self._ack("subscribe", req_id, error="ESession:Invalid session"))
                return
            conn.send(self._ack("subscribe", req_id, result={"channel": channel}))
            if channel == "executions":
                conn.executions = True
                self._executions_snapshot(conn, bool(params.get("snap_orders", True)), bool(params.get("snap_trades")))
            else:
                conn.balances = True
                self._balances_snapshot(conn)
            return
        if channel == "instrument":
            conn.send(self._ack("subscribe", req_id, result={"channel": "instrument"}))
            conn.send(self._instrument_snapshot())
            return
        if channel == "book":
            depth = params.get("depth", 10)
            if depth not in spec.BOOK_DEPTHS:
                conn.send(self._ack("subscribe", req_id, error=f"EGeneral:Invalid arguments:depth {depth}"))
                return
            for iid in self._iids(conn, "subscribe", params, req_id):
                result = {"channel": "book", "symbol": iid.symbol, "depth": depth, "snapshot": True}
                conn.send(self._ack("subscribe", req_id, result=result))
                view = conn.books[iid] = _BookView(depth)
                conn.send(self._book_message(iid, view, snapshot=True))
            return
        if channel in ("trade", "ticker"):
            for iid in self._iids(conn, "subscribe", params, req_id):
                conn.send(self._ack("subscribe", req_id, result={"channel": channel, "symbol": iid.symbol}))
                if channel == "trade":
                    conn.trades.add(iid)
                else:
                    conn.tickers[iid] = None
                    self._send_ticker(conn, iid, snapshot=True)
            return
        conn.send(self._ack("subscribe", req_id, error=f"EGeneral:Invalid arguments:channel {channel!r}"))

    def _unsubscribe(self, conn: _Conn, params: dict[str, Any], req_id: Any) -> None:
        channel = params.get("channel")
        if channel in ("book", "trade", "ticker"):
            for iid in self._iids(conn, "unsubscribe", params, req_id):
                if channel == "book":
                    conn.books.pop(iid, None)
                elif channel == "ticker":
                    conn.tickers.pop(iid, None)
                else:
                    conn.trades.discard(iid)
                conn.send(self._ack("unsubscribe", req_id, result={"channel": channel, "symbol": iid.symbol}))
            return
        if channel == "executions":
            conn.executions = False
        elif channel == "balances":
            conn.balances = False
        conn.send(self._ack("unsubscribe", req_id, result={"channel": channel}))

    # -- market ---------------------------------------------------------------------------------

    def _inst(self, iid: InstrumentId) -> Instrument:
        return self.sim.core.instruments[iid]

    def _checksum(self, iid: InstrumentId) -> int:
        inst = self._inst(iid)
        book = self.sim.core.book(iid)
        pdp, qdp = inst.price_decimals, inst.qty_decimals
        asks = [(fixed.to_str(p, pdp), fixed.to_str(q, qdp)) for p, q in book.top_asks(spec.CHECKSUM_DEPTH)]
        bids = [(fixed.to_str(p, pdp), fixed.to_str(q, qdp)) for p, q in book.top_bids(spec.CHECKSUM_DEPTH)]
        return checksum_of_levels(asks, bids)

    def _levels(self, inst: Instrument, levels: Iterable[tuple[int, int]]) -> list[dict[str, msgspec.Raw]]:
        return [{"price": _num(inst.price_to_str(p)), "qty": _num(inst.qty_to_str(q))} for p, q in levels]

    def _book_message(self, iid: InstrumentId, view: _BookView, *, snapshot: bool, corrupt: bool = False) -> str:
        """The snapshot of ``view``'s depth, taking the book as the connection's view."""
        book = self.sim.core.book(iid)
        view.bids = dict(book.top_bids(view.depth))
        view.asks = dict(book.top_asks(view.depth))
        checksum = self._checksum(iid) ^ (0x5A5A5A5A if corrupt else 0)
        return self._book_frame(iid, list(view.bids.items()), list(view.asks.items()), snapshot, checksum)

    def _book_frame(
        self, iid: InstrumentId, bids: list[tuple[int, int]], asks: list[tuple[int, int]], snapshot: bool, checksum: int
    ) -> str:
        inst = self._inst(iid)
        data = {
            "symbol": iid.symbol,
            "bids": self._levels(inst, bids),
            "asks": self._levels(inst, asks),
            "checksum": checksum,
            "timestamp": rfc3339(self.sim.core.clock.now_ns()),
        }
        return _encode({"channel": "book", "type": "snapshot" if snapshot else "update", "data": [data]})

    @staticmethod
    def _diff(
        view_side: dict[int, int], top: list[tuple[int, int]], book_side: dict[int, int]
    ) -> list[tuple[int, int]]:
        """Levels to send for one side; updates ``view_side`` to what the client then holds (cut to depth)."""
        new = dict(top)
        changed = [(p, q) for p, q in top if view_side.get(p) != q]
        # A level gone from the book is deleted; one only pushed below the range gets no message.
        changed += [(p, 0) for p in view_side if p not in new and p not in book_side]
        view_side.clear()
        view_side.update(new)
        return changed

    def _on_market(self, item: BookDeltas | Trade) -> None:
        faults = self.sim.faults
        stalled = faults.stalled()
        iid = item.instrument_id
        if isinstance(item, Trade):
            self._on_trade(item, stalled)
            return
        if stalled:
            return  # nothing leaves; the next update after the stall carries every change since
        book = self.sim.core.book(iid)
        updates: list[tuple[_Conn, list[tuple[int, int]], list[tuple[int, int]]]] = []
        for conn in self._conns:
            view = conn.books.get(iid)
            if view is None:
                continue
            bids = self._diff(view.bids, book.top_bids(view.depth), book.bids)
            asks = self._diff(view.asks, book.top_asks(view.depth), book.asks)
            if bids or asks:
                updates.append((conn, bids, asks))
        if updates:
            checksum = self._checksum(iid)
            visible = checksum != self._last_checksum.get(iid)
            self._last_checksum[iid] = checksum
            if visible and faults.take_skip():
                # Lost in transit: the views moved on, the clients never hear of it. The loss is within
                # the checksummed levels; an update without levels shows it at once (no later move can
                # hide it again before the client checks).
                for conn, _, _ in updates:
                    conn.send(self._book_frame(iid, [], [], False, checksum))
                return
            if faults.take_corrupt():
                checksum ^= 0x5A5A5A5A
            for conn, bids, asks in updates:
                bids.sort(reverse=True)
                asks.sort()
                conn.send(self._book_frame(iid, bids, asks, False, checksum))
        for conn in self._conns:
            if iid in conn.tickers:
                self._send_ticker(conn, iid, snapshot=False)

    def _on_trade(self, trade: Trade, stalled: bool) -> None:
        iid = trade.instrument_id
        n = self._trade_ids.get(iid, 0) + 1
        self._trade_ids[iid] = n
        if stalled:
            return
        inst = self._inst(iid)
        data = {
            "symbol": iid.symbol,
            "side": "buy" if trade.aggressor is Side.BUY else "sell",
            "price": _num(inst.price_to_str(trade.price)),
            "qty": _num(inst.qty_to_str(trade.qty)),
            "ord_type": "market",
            "trade_id": n,
            "timestamp": rfc3339(trade.ts_event),
        }
        frame = _encode({"channel": "trade", "type": "update", "data": [data]})
        for conn in self._conns:
            if iid in conn.trades:
                conn.send(frame)

    def _send_ticker(self, conn: _Conn, iid: InstrumentId, *, snapshot: bool) -> None:
        book = self.sim.core.book(iid)
        bid, ask = book.best_bid_level(), book.best_ask_level()
        if bid is None or ask is None:
            return
        bbo = (bid[0], bid[1], ask[0], ask[1])
        if not snapshot and conn.tickers.get(iid) == bbo:
            return
        conn.tickers[iid] = bbo
        inst = self._inst(iid)
        data = {
            "symbol": iid.symbol,
            "bid": _num(inst.price_to_str(bid[0])),
            "bid_qty": _num(inst.qty_to_str(bid[1])),
            "ask": _num(inst.price_to_str(ask[0])),
            "ask_qty": _num(inst.qty_to_str(ask[1])),
            "timestamp": rfc3339(self.sim.core.clock.now_ns()),
        }
        conn.send(_encode({"channel": "ticker", "type": "snapshot" if snapshot else "update", "data": [data]}))

    def _instrument_snapshot(self) -> str:
        pairs = []
        for inst in self.sim.core.instruments.values():
            pairs.append(
                {
                    "symbol": inst.id.symbol,
                    "base": inst.base,
                    "quote": inst.quote,
                    "status": "online",
                    "price_precision": inst.price_decimals,
                    "price_increment": _num(fixed.to_str(inst.tick_size)),
                    "qty_precision": inst.qty_decimals,
                    "qty_increment": _num(fixed.to_str(inst.lot_size)),
                    "qty_min": _num(fixed.to_str(inst.min_qty)),
                    "cost_min": _num(fixed.to_str(inst.min_notional)),
                    "marginable": False,
                }
            )
        return _encode({"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": pairs}})

    # -- private --------------------------------------------------------------------------------

    def _order_fields(self, cid: str) -> dict[str, Any]:
        view = self.sim.core.order(cid)
        if view is None:
            return {"cl_ord_id": spec.to_cl_ord_id(cid)}
        inst = self._inst(view.instrument_id)
        fields: dict[str, Any] = {
            "order_id": view.venue_order_id,
            "cl_ord_id": spec.to_cl_ord_id(cid),
            "symbol": view.instrument_id.symbol,
            "side": "buy" if view.side is Side.BUY else "sell",
            "order_type": "limit" if view.order_type is OrderType.LIMIT else "market",
            "order_qty": _num(inst.qty_to_str(view.qty)),
            "time_in_force": view.time_in_force.value,
        }
        if view.price is not None and view.order_type is OrderType.LIMIT:
            fields["limit_price"] = _num(inst.price_to_str(view.price))
        return fields

    def _exec_entries(self, event: Event) -> list[dict[str, Any]]:
        if not isinstance(event, OrderEventBase):
            return []
        cid = event.client_order_id
        base = {**self._order_fields(cid), "timestamp": rfc3339(event.ts)}
        if isinstance(event, OrderAccepted):
            base["order_id"] = event.venue_order_id
            return [
                {**base, "exec_type": "pending_new", "order_status": "pending_new"},
                {**base, "exec_type": "new", "order_status": "new"},
            ]
        if isinstance(event, OrderFilled):
            inst = self._inst(event.instrument_id)
            cum = self._cum.get(cid, 0) + event.last_qty
            self._cum[cid] = cum
            view = self.sim.core.order(cid)
            done = view is not None and cum >= view.qty
            trade = {
                **base,
                "order_id": event.venue_order_id,
                "exec_type": "trade",
                "order_status": "filled" if done else "partially_filled",
                "exec_id": event.trade_id,
                "trade_id": self._trade_ids.get(event.instrument_id, 0),
                "last_qty": _num(inst.qty_to_str(event.last_qty)),
                "last_price": _num(inst.price_to_str(event.last_price)),
                "cum_qty": _num(inst.qty_to_str(cum)),
                "liquidity_ind": "m" if event.liquidity is LiquiditySide.MAKER else "t",
                "fees": [{"asset": event.fee_currency, "qty": _num(fixed.to_str(event.fee))}],
            }
            self._recent_fills.append(trade)
            entries = [trade]
            if done:
                entries.append({**base, "exec_type": "filled", "order_status": "filled"})
            return entries
        if isinstance(event, OrderCanceled):
            return [{**base, "exec_type": "canceled", "order_status": "canceled", "reason": event.reason}]
        if isinstance(event, OrderExpired):
            return [{**base, "exec_type": "expired", "order_status": "expired", "reason": event.reason}]
        if isinstance(event, OrderAmended):
            inst = self._inst(event.instrument_id)
            amended = {
                **base,
                "exec_type": "amended",
                "order_status": "new",
                "order_qty": _num(inst.qty_to_str(event.qty)),
            }
            if event.price is not None:
                amended["limit_price"] = _num(inst.price_to_str(event.price))
            return [amended]
        return []  # refusals are REST replies

    def _on_private(self, event: Event) -> None:
        if isinstance(event, AccountSnapshot):
            self._on_balances(event)
            return
        entries = self._exec_entries(event)
        if not entries:
            return
        for conn in self._conns:
            if conn.executions:
                for entry in entries:
                    conn.send(_encode({"channel": "executions", "type": "update", "data": [entry]}))

    def _executions_snapshot(self, conn: _Conn, orders: bool, trades: bool) -> None:
        data: list[dict[str, Any]] = []
        if trades:
            data.extend(self._recent_fills)
        if orders:
            now = rfc3339(self.sim.core.clock.now_ns())
            for view in self.sim.core.open_orders():
                inst = self._inst(view.instrument_id)
                status = "partially_filled" if view.filled_qty else "new"
                entry = {**self._order_fields(view.client_order_id), "exec_type": status, "order_status": status}
                entry["cum_qty"] = _num(inst.qty_to_str(view.filled_qty))
                entry["timestamp"] = now
                data.append(entry)
        conn.send(_encode({"channel": "executions", "type": "snapshot", "data": data}))

    def _balances_snapshot(self, conn: _Conn) -> None:
        data = [
            {"asset": ccy, "asset_class": "currency", "balance": _num(fixed.to_str(total))}
            for ccy, total in sorted(self._balances.items())
        ]
        conn.send(_encode({"channel": "balances", "type": "snapshot", "data": data}))

    def _on_balances(self, snapshot: AccountSnapshot) -> None:
        now = rfc3339(snapshot.ts)
        data = []
        for b in snapshot.balances:
            before = self._balances.get(b.currency, 0)
            if b.total == before:
                continue
            self._balances[b.currency] = b.total
            data.append(
                {
                    "asset": b.currency,
                    "asset_class": "currency",
                    "amount": _num(fixed.to_str(b.total - before)),
                    "balance": _num(fixed.to_str(b.total)),
                    "type": "trade",
                    "wallet_type": "spot",
                    "wallet_id": "main",
                    "timestamp": now,
                }
            )
        if not data:
            return
        frame = _encode({"channel": "balances", "type": "update", "data": data})
        for conn in self._conns:
            if conn.balances:
                conn.send(frame)
