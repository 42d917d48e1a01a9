"""OKX's dialect for the local venue simulator: OKX v5 REST and WebSocket at OKX's own paths.

* Public ``/ws/v5/public``: ``books`` (a snapshot after the subscription ack, then updates chained
  by ``prevSeqId``/``seqId``, one counter per book, with the CRC32 checksum), ``trades`` and
  ``bbo-tbt``; text ``ping`` -> ``pong``. With ``ws_snapshot=False`` it speaks the 2026 form: no
  snapshot, checksum 0, and ``GET /api/v5/market/books`` carries the ``seqId`` to link to.
* Private ``/ws/v5/private``: ``login`` (verified like OKX: key, passphrase, signature of
  ``timestamp + "GET/users/self/verify"``, timestamp within 30 s), then ``orders`` and ``account``
  pushes for what the core does, and the order ops (``order``, ``batch-orders``, ``amend-order``,
  ``batch-amend-orders``, ``cancel-order``, ``batch-cancel-orders``: ``{"id", "op", "args"}``, login
  required, answered ``{"id", "op", "code", "msg", "data": [per-item sCode], "inTime", "outTime"}``
  before the pushes they cause). Args name the instrument by ``instIdCode`` (which wins, as on OKX
  since 2026) or ``instId``; the instrument listing carries each code (``inst_id_codes=False``: it
  does not, as before 2026).
* REST: place (``/trade/order``, ``/trade/batch-orders``), cancel (one, batch), amend, order by
  id, ``orders-pending``, ``fills``, ``account/balance``, ``market/books``, ``public/time`` and
  ``public/instruments``; signed requests are checked (50111/50105/50102/50113, HTTP 401).
* Post-only orders that would take and FOK orders that cannot fill are accepted (``sCode`` 0) and
  canceled at once (``cancelSource`` 31 / 13), as OKX does; other refusals are ``sCode`` errors.
* Faults: ``skip_sequence`` consumes a ``seqId`` without sending, ``corrupt_checksum`` flips bits of
  the checksum, ``stall_feed`` holds market frames and pongs, ``send_malformed`` pushes the payload
  to market subscribers, ``reject_next`` answers an order request with that ``sCode``,
  ``rate_limit_next`` answers HTTP 429 code 50011 with ``Retry-After`` (a WebSocket order op:
  ``code`` 60014, "Requests too frequent", no items), ``delay_next_reply`` holds an order reply (the
  order is acted on at once; its pushes go out meanwhile), on either path.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
from aiohttp import WSMsgType, web

from tradeloop.core import fixed
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import OrderStatus, RejectReason, Side
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.okx.auth import sign
from tradeloop.venues.okx.instruments import OkxInstrument, instruments_by_symbol, plain_decimal
from tradeloop.venues.okx.sim_rest import WINDOW_MS, OkxSimRest
from tradeloop.venues.okx.sim_wire import (
    SimOrderInfo,
    ack_item,
    book_checksum_of,
    book_levels,
    delta_levels,
    error_code_and_message,
    order_data,
    size_text,
)
from tradeloop.venues.okx.spec import (
    BBO_CHANNEL,
    BOOK_CHANNEL,
    BOOK_DEPTH,
    CANCEL_FOK,
    CANCEL_POST_ONLY,
    TRADE_CHANNEL,
    VENUE,
)
from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["OkxDialect"]

_MARKET_CHANNELS: Final = frozenset({BOOK_CHANNEL, TRADE_CHANNEL, BBO_CHANNEL})
_WS_ORDER_OPS: Final = {
    "order": "place",
    "batch-orders": "place",
    "amend-order": "amend",
    "batch-amend-orders": "amend",
    "cancel-order": "cancel",
    "batch-cancel-orders": "cancel",
}
_FIRST_SIM_CODE: Final = 90_001
"""``instIdCode`` the simulator gives instruments whose spec has none (real codes are OKX's own)."""


class _Conn:
    __slots__ = ("account", "bbo", "books", "logged_in", "orders", "queue", "trades", "ws")

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.books: set[str] = set()
        self.trades: set[str] = set()
        self.bbo: set[str] = set()
        self.logged_in = False
        self.orders = False
        self.account = False

    def send(self, message: dict[str, Any] | str) -> None:
        self.queue.put_nowait(message if isinstance(message, str) else msgspec.json.encode(message).decode())


def _spot_spec(inst: Instrument) -> OkxInstrument:
    return OkxInstrument(
        inst_id=inst.id.symbol,
        inst_type="SPOT",
        base=inst.base,
        quote=inst.quote,
        tick_sz=inst.tick_size,
        lot_sz=inst.lot_size,
        min_sz=inst.min_qty,
    )


class OkxDialect:
    """OKX v5 on a :class:`VenueSimulator` (see the module docstring)."""

    venue = VENUE

    def __init__(
        self,
        *,
        specs: Mapping[str, OkxInstrument] | None = None,
        ws_snapshot: bool = True,
        first_seq: int = 1000,
        inst_id_codes: bool = True,
    ) -> None:
        self.ws_snapshot = ws_snapshot
        self.inst_id_codes = inst_id_codes
        self.codes: dict[int, str] = {}
        """``instIdCode`` -> ``instId``."""
        self.requests: Counter[str] = Counter()
        """Order requests served: ``ws:<op>`` and ``rest:<path>``."""
        self.ws_ops: deque[tuple[str, list[Any]]] = deque(maxlen=1000)
        """The latest WebSocket order ops as received: ``(op, args)``."""
        self._deferred: list[tuple[_Conn, str]] | None = None
        self._known = dict(specs if specs is not None else instruments_by_symbol())
        self._first_seq = first_seq
        self.specs: dict[str, OkxInstrument] = {}
        self.seqs: dict[str, int] = {}
        self._public: list[_Conn] = []
        self._private: list[_Conn] = []
        self.orders: dict[str, SimOrderInfo] = {}
        self.synthetic: dict[str, str] = {}  # ordId of orders canceled at once (post-only, FOK) -> clOrdId
        self._next_id = 0
        self._sim: VenueSimulator | None = None
        self._rest = OkxSimRest(self)

    # -- installation -------------------------------------------------------------------------

    def install(self, sim: VenueSimulator) -> None:
        self._sim = sim
        for n, (iid, inst) in enumerate(sim.core.instruments.items()):
            spec = self._known.get(iid.symbol) or _spot_spec(inst)
            if spec.inst_id_code is None:
                spec = msgspec.structs.replace(spec, inst_id_code=_FIRST_SIM_CODE + n)
            assert spec.inst_id_code is not None
            self.specs[iid.symbol] = spec
            self.codes[spec.inst_id_code] = iid.symbol
            self.seqs[iid.symbol] = self._first_seq
        router = sim.app.router
        router.add_get("/ws/v5/public", self._public_ws)
        router.add_get("/ws/v5/private", self._private_ws)
        self._rest.install(router)
        sim.core.add_market_listener(self._on_market)
        sim.core.add_private_listener(self._on_private)

    @property
    def sim(self) -> VenueSimulator:
        if self._sim is None:
            raise RuntimeError("okx dialect not installed")
        return self._sim

    def now_ms(self) -> int:
        return self.sim.core.clock.now_ns() // 1_000_000

    def new_id(self) -> int:
        """A fresh number for ids the simulator makes up."""
        self._next_id += 1
        return self._next_id

    def seq(self, symbol: str) -> int:
        """The book's last ``seqId`` (sent or skipped)."""
        return self.seqs[symbol]

    # -- WebSockets ---------------------------------------------------------------------------

    async def _serve(
        self, request: web.Request, conns: list[_Conn], on_text: Callable[[_Conn, str], None]
    ) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sim.track(ws)
        conn = _Conn(ws)
        conns.append(conn)
        writer = self.sim.spawn(self._writer(conn, conns is self._public), name="okx-sim-writer")
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    on_text(conn, msg.data)
        finally:
            conns.remove(conn)
            writer.cancel()
        return ws

    async def _public_ws(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._public, self._on_public_text)

    async def _private_ws(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._private, self._on_private_text)

    async def _writer(self, conn: _Conn, public: bool) -> None:
        faults = self.sim.faults
        ws = conn.ws
        while not ws.closed:
            try:
                text = await asyncio.wait_for(conn.queue.get(), 0.02)
            except TimeoutError:
                text = None
            try:
                if public and (conn.books or conn.trades or conn.bbo):
                    bad = faults.take_malformed()
                    if bad is not None:
                        await ws.send_str(bad.decode("utf-8", "replace"))
                if text is not None:
                    await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def _parse_op(self, conn: _Conn, text: str) -> tuple[str, list[Any], object] | None:
        """``(op, args, id)`` of a request (``None`` after answering a ping or a malformed request)."""
        if text == "ping":
            if not self.sim.faults.stalled():
                conn.send("pong")
            return None
        try:
            msg = json.loads(text)
            op, args = msg["op"], msg.get("args", [])
            if not isinstance(op, str) or not isinstance(args, list):
                raise TypeError(op)
        except (ValueError, KeyError, TypeError):
            conn.send({"event": "error", "code": "60012", "msg": f"Invalid request: {text[:200]}", "connId": "sim"})
            return None
        return op, args, msg.get("id")

    def _on_public_text(self, conn: _Conn, text: str) -> None:
        parsed = self._parse_op(conn, text)
        if parsed is None:
            return
        op, args, _ = parsed
        if op not in ("subscribe", "unsubscribe"):
            conn.send({"event": "error", "code": "60012", "msg": f"Invalid request: {text[:200]}", "connId": "sim"})
            return
        for arg in args:
            channel, inst = (arg.get("channel"), arg.get("instId")) if isinstance(arg, dict) else (None, None)
            if channel not in _MARKET_CHANNELS or inst not in self.specs:
                conn.send(
                    {
                        "event": "error",
                        "code": "60018",
                        "msg": f"Wrong URL or channel:{channel}, instId:{inst} doesn't exist",
                        "connId": "sim",
                    }
                )
                continue
            subs = {BOOK_CHANNEL: conn.books, TRADE_CHANNEL: conn.trades, BBO_CHANNEL: conn.bbo}[channel]
            if op == "subscribe":
                subs.add(inst)
            else:
                subs.discard(inst)
            conn.send({"event": op, "arg": {"channel": channel, "instId": inst}, "connId": "sim"})
            if op == "subscribe" and channel == BOOK_CHANNEL and self.ws_snapshot:
                conn.send(self._snapshot_message(inst))

    def _on_private_text(self, conn: _Conn, text: str) -> None:
        parsed = self._parse_op(conn, text)
        if parsed is None:
            return
        op, args, request_id = parsed
        if op in _WS_ORDER_OPS:
            self._order_op(conn, op, args, request_id)
            return
        if op == "login":
            ok = bool(args) and isinstance(args[0], dict) and self._login_ok(args[0])
            conn.logged_in = conn.logged_in or ok
            conn.send(
                {"event": "login", "code": "0", "msg": "", "connId": "sim"}
                if ok
                else {"event": "error", "code": "60009", "msg": "Login failed.", "connId": "sim"}
            )
            return
        if op != "subscribe":
            conn.send({"event": "error", "code": "60012", "msg": f"Invalid request: {text[:200]}", "connId": "sim"})
            return
        if not conn.logged_in:
            conn.send({"event": "error", "code": "60011", "msg": "Please log in", "connId": "sim"})
            return
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            if channel == "orders":
                conn.orders = True
            elif channel == "account":
                conn.account = True
            else:
                conn.send(
                    {"event": "error", "code": "60018", "msg": f"channel {channel} doesn't exist", "connId": "sim"}
                )
                continue
            conn.send({"event": "subscribe", "arg": arg, "connId": "sim"})

    def _login_ok(self, arg: dict[str, Any]) -> bool:
        creds = self.sim.credentials
        passphrase = creds.passphrase.reveal() if creds.passphrase is not None else ""
        ts = str(arg.get("timestamp", ""))
        if not ts.isdigit() or abs(int(ts) * 1000 - self.now_ms()) > WINDOW_MS:
            return False
        expected = sign(creds.secret.reveal(), ts + "GET/users/self/verify")
        return (
            hmac.compare_digest(str(arg.get("apiKey", "")), creds.api_key.reveal())
            and hmac.compare_digest(str(arg.get("passphrase", "")), passphrase)
            and hmac.compare_digest(str(arg.get("sign", "")), expected)
        )

    # -- WebSocket order ops ------------------------------------------------------------------

    def _order_op(self, conn: _Conn, op: str, args: list[Any], request_id: object) -> None:
        in_time = str(self.sim.core.clock.now_ns() // 1000)
        if not (isinstance(request_id, str) and 0 < len(request_id) <= 32 and request_id.isalnum()):
            conn.send({"event": "error", "code": "60012", "msg": "Invalid request: id", "connId": "sim"})
            return
        self.requests[f"ws:{op}"] += 1
        self.ws_ops.append((op, args))

        def reply(code: str, msg: str, data: list[dict[str, str]]) -> dict[str, Any]:
            out = str(self.sim.core.clock.now_ns() // 1000)
            envelope: dict[str, Any] = {"id": request_id, "op": op, "code": code, "msg": msg, "data": data}
            return envelope | {"inTime": in_time, "outTime": out}

        faults = self.sim.faults
        batch = op.startswith("batch-")
        if not conn.logged_in:
            conn.send(reply("60011", "Please log in", []))
            return
        if faults.take_rate_limit():
            conn.send(reply("60014", "Requests too frequent", []))
            return
        if not args or not all(isinstance(a, dict) for a in args) or len(args) > (20 if batch else 1):
            conn.send(reply("60013", "Invalid args", []))
            return
        items = [self._named_by_symbol(a) for a in args]
        error = faults.take_reject()
        self._deferred = []
        try:
            if error is not None:
                code, msg = error_code_and_message(error)
                acks = [ack_item(str(i.get("clOrdId", "")), "", code, msg) for i in items]
            else:
                handler = {"place": self._rest._place, "amend": self._rest._amend, "cancel": self._rest._cancel}
                acks = handler[_WS_ORDER_OPS[op]](items)
        finally:
            pushes, self._deferred = self._deferred, None
        failed = sum(a["sCode"] != "0" for a in acks)
        code = "0" if not failed else ("1" if failed == len(acks) else "2")
        delay = faults.take_delay()
        if delay:
            for target, text in pushes:
                target.send(text)
            self.sim.spawn(self._reply_later(conn, delay, lambda: reply(code, "", acks)), name="okx-sim-held-reply")
            return
        conn.send(reply(code, "", acks))
        for target, text in pushes:
            target.send(text)

    async def _reply_later(self, conn: _Conn, delay: float, message: Callable[[], dict[str, Any]]) -> None:
        await asyncio.sleep(delay)
        conn.send(message())

    def _named_by_symbol(self, args: dict[str, Any]) -> dict[str, Any]:
        """Order-op args with the instrument as ``instId`` (``instIdCode`` wins when given, as on OKX)."""
        code = args.get("instIdCode")
        if code is None:
            return args
        symbol = self.codes.get(code) if isinstance(code, int) else None
        if symbol is None and isinstance(code, str) and code.isdigit():
            symbol = self.codes.get(int(code))
        return {**args, "instId": symbol or f"instIdCode:{code}"}

    def _send_private(self, conn: _Conn, message: dict[str, Any]) -> None:
        """A push: after the reply of the order op being served, if any (OKX answers first)."""
        if self._deferred is not None:
            self._deferred.append((conn, msgspec.json.encode(message).decode()))
        else:
            conn.send(message)

    # -- market frames ------------------------------------------------------------------------

    def _snapshot_message(self, symbol: str) -> dict[str, Any]:
        spec = self.specs[symbol]
        book = self.sim.core.book(spec.instrument_id)
        bids, asks = book_levels(book, spec, BOOK_DEPTH)
        checksum = book_checksum_of(book, spec) if self.ws_snapshot else 0
        data = {
            "asks": asks,
            "bids": bids,
            "ts": str(self.now_ms()),
            "checksum": checksum,
            "prevSeqId": -1,
            "seqId": self.seqs[symbol],
        }
        return {"arg": {"channel": BOOK_CHANNEL, "instId": symbol}, "action": "snapshot", "data": [data]}

    def _on_market(self, item: BookDeltas | Trade) -> None:
        symbol = item.instrument_id.symbol
        spec = self.specs.get(symbol)
        if spec is None:
            return
        faults = self.sim.faults
        if isinstance(item, Trade):
            subs = [c for c in self._public if symbol in c.trades]
            if subs and not faults.stalled():
                trade = {
                    "instId": symbol,
                    "tradeId": item.trade_id,
                    "px": plain_decimal(item.price),
                    "sz": size_text(spec, item.qty),
                    "side": "buy" if item.aggressor is Side.BUY else "sell",
                    "ts": str(item.ts_event // 1_000_000),
                    "count": "1",
                }
                message = {"arg": {"channel": TRADE_CHANNEL, "instId": symbol}, "data": [trade]}
                for conn in subs:
                    conn.send(message)
            return
        prev = self.seqs[symbol]
        seq = self.seqs[symbol] = prev + 1
        books = [c for c in self._public if symbol in c.books]
        bbos = [c for c in self._public if symbol in c.bbo]
        if (not books and not bbos) or faults.stalled():
            return
        book = self.sim.core.book(item.instrument_id)
        if books and not faults.take_skip():
            checksum = book_checksum_of(book, spec) if self.ws_snapshot else 0
            if faults.take_corrupt():
                checksum = checksum ^ 0x5A5A5A if checksum else 0x5A5A5A
            if item.snapshot:
                bids, asks = book_levels(book, spec, BOOK_DEPTH)
            else:
                bids, asks = delta_levels(item.bids, spec), delta_levels(item.asks, spec)
            data = {
                "asks": asks,
                "bids": bids,
                "ts": str(self.now_ms()),
                "checksum": checksum,
                "prevSeqId": -1 if item.snapshot else prev,
                "seqId": seq,
            }
            action = "snapshot" if item.snapshot else "update"
            message = {"arg": {"channel": BOOK_CHANNEL, "instId": symbol}, "action": action, "data": [data]}
            for conn in books:
                conn.send(message)
        if bbos:
            bids, asks = book_levels(book, spec, 1)
            bbo = {"asks": asks, "bids": bids, "ts": str(self.now_ms()), "seqId": seq}
            for conn in bbos:
                conn.send({"arg": {"channel": BBO_CHANNEL, "instId": symbol}, "data": [bbo]})

    # -- private pushes -----------------------------------------------------------------------

    def _push_order(self, info: SimOrderInfo, **extra: str) -> None:
        message = {
            "arg": {"channel": "orders", "instType": "ANY", "uid": "sim"},
            "data": [order_data(info, self.now_ms(), **extra)],
        }
        for conn in self._private:
            if conn.orders:
                self._send_private(conn, message)

    def _on_private(self, event: Event) -> None:
        if isinstance(event, AccountSnapshot):
            message = {"arg": {"channel": "account", "uid": "sim"}, "data": [self.balance_data(event)]}
            for conn in self._private:
                if conn.account:
                    self._send_private(conn, message)
            return
        info = self.orders.get(getattr(event, "client_order_id", ""))
        if info is None:
            return
        if isinstance(event, OrderAccepted):
            info.ord_id = event.venue_order_id
            self._push_order(info)
        elif isinstance(event, OrderFilled):
            info.filled += event.last_qty
            info.notional += fixed.mul(event.last_price, event.last_qty)
            info.state = "filled" if info.filled >= info.qty else "partially_filled"
            self._push_order(
                info,
                fillPx=plain_decimal(event.last_price),
                fillSz=size_text(info.spec, event.last_qty),
                tradeId=event.trade_id,
                fillFee=plain_decimal(-event.fee),
                fillFeeCcy=event.fee_currency,
                fillTime=str(self.now_ms()),
                execType="M" if event.liquidity == "MAKER" else "T",
            )
        elif isinstance(event, OrderAmended):
            info.price = event.price
            info.qty = event.qty
            self._push_order(info, amendResult="0")
        elif isinstance(event, OrderCanceled | OrderExpired):
            info.state = "canceled"
            if isinstance(event, OrderExpired):
                info.apply_status(OrderStatus.EXPIRED)
            elif not info.cancel_source:
                info.cancel_source = "1"
            self._push_order(info)
        elif isinstance(event, OrderRejected) and event.reason in (
            RejectReason.POST_ONLY_WOULD_CROSS,
            RejectReason.FOK_NOT_FILLABLE,
        ):
            info.ord_id = f"{VENUE}-X{self.new_id()}"
            info.state = "canceled"
            info.cancel_source = CANCEL_POST_ONLY if event.reason is RejectReason.POST_ONLY_WOULD_CROSS else CANCEL_FOK
            self.synthetic[info.ord_id] = info.cid
            self._push_order(info)

    def balance_data(self, snapshot: AccountSnapshot) -> dict[str, Any]:
        details = [
            {
                "ccy": b.currency,
                "cashBal": plain_decimal(b.total),
                "availBal": plain_decimal(b.total - b.locked),
                "frozenBal": plain_decimal(b.locked),
                "eq": plain_decimal(b.total),
            }
            for b in snapshot.balances
        ]
        return {"details": details, "uTime": str(self.now_ms())}
