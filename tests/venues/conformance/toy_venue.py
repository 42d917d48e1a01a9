"""A complete made-up venue ("toy") used to check the conformance suite itself: a dialect, a
market-data client and an execution client, small but honest (signed requests, per-connection
sequence ids, a checksum, reconnects, a private stream). It is registered only inside the
self-check tests; real venues live in ``src/tradeloop/venues/<v>/``.

Wire format: commands and events travel as msgspec JSON of the domain structs (the toy has no
dialect of its own to speak of); what matters here is the behaviour around them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import zlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, Final

import aiohttp
import msgspec
from aiohttp import web

from tradeloop.core import fixed
from tradeloop.core.clock import Clock
from tradeloop.model.book import ChecksumFn, OrderBook, SequenceRule
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, Trade
from tradeloop.model.enums import InstrumentKind, RejectReason
from tradeloop.model.events import Event, OrderCancelRejected, OrderRejected
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent, MarketDataCounters, MarketItem
from tradeloop.venues.connector import ConnectorUrls, VenueConnector
from tradeloop.venues.simulator.server import VenueSimulator

P = fixed.parse
VENUE: Final = "toy"
IID: Final = InstrumentId(VENUE, "BTCUSDT")
KEY: Final = "toy-conformance-key"
SECRET: Final = "toy-conformance-secret-9f8e7d"
REJECT_ERRORS: Final[dict[RejectReason, str]] = {
    RejectReason.INSUFFICIENT_BALANCE: "E-FUNDS",
    RejectReason.POST_ONLY_WOULD_CROSS: "E-POSTONLY",
    RejectReason.DUPLICATE_CLIENT_ID: "E-DUP",
    RejectReason.INVALID_ORDER: "E-INVALID",
    RejectReason.RATE_LIMITED: "E-SLOW",
    RejectReason.UNKNOWN_ORDER: "E-UNKNOWN",
    RejectReason.TIMESTAMP_OUTSIDE_WINDOW: "E-TIME",
}
REASON_OF: Final = {code: reason for reason, code in REJECT_ERRORS.items()}

Command = SubmitOrder | CancelOrder | CancelAllOrders | AmendOrder | QueryOrder
_events = msgspec.json.Decoder(list[Event])
_commands = msgspec.json.Decoder(Command)


def toy_checksum(book: OrderBook) -> int:
    """CRC32 of the top 5 levels a side as ``price:size`` nanos."""
    text = ";".join(f"{p}:{q}" for p, q in book.top_bids(5) + book.top_asks(5))
    return zlib.crc32(text.encode())


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def instrument() -> Instrument:
    return Instrument(
        id=IID,
        base="BTC",
        quote="USDT",
        kind=InstrumentKind.SPOT,
        tick_size=P("0.01"),
        lot_size=P("0.00001"),
        min_qty=P("0.00001"),
        min_notional=P("5"),
    )


def _levels(levels: Sequence[tuple[int, int]]) -> list[list[int]]:
    return [[p, q] for p, q in levels]


class ToyDialect:
    venue = VENUE

    def __init__(self, *, honour_skip: bool = True) -> None:
        self.honour_skip = honour_skip

    def install(self, sim: VenueSimulator) -> None:
        self.sim = sim
        self.public: dict[web.WebSocketResponse, dict[str, int]] = {}
        self.private: set[web.WebSocketResponse] = set()
        sim.app.router.add_get("/ws/public", self.ws_public)
        sim.app.router.add_get("/ws/private", self.ws_private)
        sim.app.router.add_post("/api/{action}", self.rest)
        sim.core.add_market_listener(self.on_market)
        sim.core.add_private_listener(self.on_private)

    # -- public ------------------------------------------------------------------------------

    def _send(self, ws: web.WebSocketResponse, payload: bytes | str) -> None:
        if ws.closed:
            return
        coro = ws.send_bytes(payload) if isinstance(payload, bytes) else ws.send_str(payload)
        self.sim.spawn(coro)

    def _snapshot(self, ws: web.WebSocketResponse, symbol: str) -> None:
        book = self.sim.core.book(InstrumentId(VENUE, symbol))
        seqs = self.public[ws]
        seqs[symbol] = seqs.get(symbol, 0) + 1
        msg = {
            "type": "snapshot",
            "symbol": symbol,
            "seq": seqs[symbol],
            "bids": _levels(book.top_bids(1000)),
            "asks": _levels(book.top_asks(1000)),
            "checksum": toy_checksum(book),
        }
        self._send(ws, msgspec.json.encode(msg).decode())

    def on_market(self, item: BookDeltas | Trade) -> None:
        faults = self.sim.faults
        for ws, seqs in list(self.public.items()):
            bad = faults.take_malformed()
            if bad is not None:
                self._send(ws, bad.decode(errors="replace"))
            if faults.stalled():
                continue
            symbol = item.instrument_id.symbol
            if symbol not in seqs:
                continue
            if isinstance(item, Trade):
                msg: dict[str, Any] = {
                    "type": "trade",
                    "symbol": symbol,
                    "price": item.price,
                    "qty": item.qty,
                    "side": item.aggressor.value,
                    "id": item.trade_id,
                }
            else:
                seqs[symbol] += 1
                if faults.take_skip() and self.honour_skip:
                    continue
                checksum = toy_checksum(self.sim.core.book(item.instrument_id)) + (1 if faults.take_corrupt() else 0)
                msg = {
                    "type": "delta",
                    "symbol": symbol,
                    "seq": seqs[symbol],
                    "bids": _levels(item.bids),
                    "asks": _levels(item.asks),
                    "checksum": checksum,
                }
            self._send(ws, msgspec.json.encode(msg).decode())

    async def ws_public(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sim.track(ws)
        self.public[ws] = {}
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                if msg.data == "ping":
                    if not self.sim.faults.stalled():
                        await ws.send_str("pong")
                    continue
                req = msgspec.json.decode(msg.data)
                if req.get("op") == "subscribe":
                    self._snapshot(ws, req["symbol"])
        finally:
            self.public.pop(ws, None)
        return ws

    # -- private -----------------------------------------------------------------------------

    def on_private(self, event: Event) -> None:
        payload = msgspec.json.encode([event]).decode()
        for ws in list(self.private):
            self._send(ws, payload)

    async def ws_private(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sim.track(ws)
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT and msg.data.startswith("login:"):
                    key, _, sig = msg.data.removeprefix("login:").partition(":")
                    creds = self.sim.credentials
                    if key == creds.api_key.reveal() and hmac.compare_digest(
                        sig, sign(creds.secret.reveal(), b"login")
                    ):
                        self.private.add(ws)
                        await ws.send_str("ok")
                    else:
                        await ws.send_str("denied")
        finally:
            self.private.discard(ws)
        return ws

    # -- REST --------------------------------------------------------------------------------

    async def rest(self, request: web.Request) -> web.Response:
        sim = self.sim
        body = await request.read()
        creds = sim.credentials
        if request.headers.get("X-KEY") != creds.api_key.reveal() or not hmac.compare_digest(
            request.headers.get("X-SIG", ""), sign(creds.secret.reveal(), body)
        ):
            return web.json_response({"error": "E-AUTH"}, status=401)
        if sim.faults.take_rate_limit():
            return web.json_response({"error": "E-SLOW"}, status=429, headers={"Retry-After": "0.2"})
        cmd = _commands.decode(body)
        core = sim.core
        if isinstance(cmd, QueryOrder):
            return web.Response(body=msgspec.json.encode(core.query(cmd)), content_type="application/json")
        error = sim.faults.take_reject() if isinstance(cmd, SubmitOrder | CancelOrder | AmendOrder) else None
        if error is not None:
            return web.json_response({"error": error}, status=400)
        delay = sim.faults.take_delay()
        if isinstance(cmd, SubmitOrder):
            events = core.submit(cmd)
        elif isinstance(cmd, CancelOrder):
            events = core.cancel(cmd)
        elif isinstance(cmd, AmendOrder):
            events = core.amend(cmd)
        else:
            events = core.cancel_all(cmd)
        if delay:
            await asyncio.sleep(delay)
        refused = next((e for e in events if isinstance(e, OrderRejected | OrderCancelRejected)), None)
        if refused is not None:  # the toy reports refusals as errors, like most venues
            return web.json_response({"error": REJECT_ERRORS.get(refused.reason, "E-OTHER")}, status=400)
        return web.json_response({"ok": True})  # events follow on the private stream


class ToyMarketData:
    venue = VENUE
    sequence_rule = SequenceRule.INCREMENT
    depth_limit = 0
    checksum_fn: ChecksumFn | None = staticmethod(toy_checksum)

    def __init__(
        self,
        instruments: Sequence[InstrumentId],
        on_item: Callable[[MarketItem], None],
        clock: Clock,
        urls: ConnectorUrls,
        *,
        rest: object = None,
    ) -> None:
        self._iids = list(instruments)
        self._on_item = on_item
        self._clock = clock
        self._url = urls.ws_public
        self.counters = MarketDataCounters()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._opened.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    def resync(self, instrument_id: InstrumentId, reason: str) -> None:
        self.counters.resyncs_requested += 1
        ws = self._ws
        if ws is not None and not ws.closed:
            asyncio.get_running_loop().create_task(ws.send_json({"op": "subscribe", "symbol": instrument_id.symbol}))

    async def _run(self) -> None:
        assert self._session is not None
        first = True
        while True:
            try:
                async with self._session.ws_connect(self._url) as ws:
                    self._ws = ws
                    if not first:
                        self.counters.reconnects += 1
                    first = False
                    for iid in self._iids:
                        await ws.send_json({"op": "subscribe", "symbol": iid.symbol})
                    self._opened.set()
                    async for msg in ws:
                        if msg.type is aiohttp.WSMsgType.TEXT:
                            self._frame(msg.data)
            except aiohttp.ClientError:
                pass
            self._ws = None
            now = self._clock.now_ns()
            for iid in self._iids:
                self._on_item(BookStatus(iid, now, False, "toy connection lost"))
            await asyncio.sleep(0.1)

    def _frame(self, text: str) -> None:
        self.counters.frames += 1
        if text == "pong":
            return
        now = self._clock.now_ns()
        try:
            msg = msgspec.json.decode(text)
            iid = InstrumentId(VENUE, msg["symbol"])
            if msg["type"] == "trade":
                from tradeloop.model.enums import Side

                item: MarketItem = Trade(
                    iid, now, now, int(msg["price"]), int(msg["qty"]), Side(msg["side"]), msg["id"]
                )
            else:
                seq = int(msg["seq"])
                item = BookDeltas(
                    iid,
                    now,
                    now,
                    seq,
                    seq,
                    [(int(p), int(q)) for p, q in msg["bids"]],
                    [(int(p), int(q)) for p, q in msg["asks"]],
                    snapshot=msg["type"] == "snapshot",
                    checksum=int(msg["checksum"]),
                )
        except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError):
            self.counters.malformed += 1
            return
        self.counters.items += 1
        self._on_item(item)


class ToyExecution:
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
        rest_config: Any = None,
    ) -> None:
        self._creds = credentials
        self._emit = emit
        self._urls = urls
        self._timeout = float(getattr(rest_config, "timeout_s", 10.0))
        self._session: aiohttp.ClientSession | None = None
        self._private: asyncio.Task[None] | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start(self) -> None:
        opened = asyncio.Event()
        self._private = asyncio.get_running_loop().create_task(self._run_private(opened))
        await opened.wait()

    async def stop(self) -> None:
        if self._private is not None:
            self._private.cancel()
            with suppress(asyncio.CancelledError):
                await self._private
        if self._session is not None:
            await self._session.close()

    async def _run_private(self, opened: asyncio.Event) -> None:
        while True:
            with suppress(aiohttp.ClientError):
                async with self._client().ws_connect(self._urls.ws_private) as ws:
                    login = sign(self._creds.secret.reveal(), b"login")
                    await ws.send_str(f"login:{self._creds.api_key.reveal()}:{login}")
                    async for msg in ws:
                        if msg.type is not aiohttp.WSMsgType.TEXT:
                            continue
                        if msg.data in ("ok", "denied"):
                            opened.set()
                            continue
                        for event in _events.decode(msg.data):
                            self._emit(event)
            await asyncio.sleep(0.1)

    def submit(self, cmd: SubmitOrder) -> None:
        self._spawn("order", cmd)

    def cancel(self, cmd: CancelOrder) -> None:
        self._spawn("cancel", cmd)

    def cancel_all(self, cmd: CancelAllOrders) -> None:
        self._spawn("cancel_all", cmd)

    def amend(self, cmd: AmendOrder) -> None:
        self._spawn("amend", cmd)

    def query(self, cmd: QueryOrder) -> None:
        self._spawn("query", cmd)

    def _spawn(self, action: str, cmd: Command) -> None:
        asyncio.get_running_loop().create_task(self._request(action, cmd))

    async def _request(self, action: str, cmd: Command) -> None:
        body = msgspec.json.encode(cmd)
        headers = {"X-KEY": self._creds.api_key.reveal(), "X-SIG": sign(self._creds.secret.reveal(), body)}
        for _attempt in range(4):
            try:
                async with self._client().post(
                    f"{self._urls.rest}/api/{action}",
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                ) as resp:
                    payload = await resp.read()
                    if resp.status == 429:
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                        continue
                    if resp.status == 200:
                        if isinstance(cmd, QueryOrder):
                            for event in _events.decode(payload):
                                self._emit(event)
                        return
                    code = msgspec.json.decode(payload).get("error", "")
                    self._refused(cmd, REASON_OF.get(code, RejectReason.OTHER), code)
                    return
            except (TimeoutError, aiohttp.ClientError):
                return  # outcome unknown: the OMS queries the order by client id
        self._refused(cmd, RejectReason.RATE_LIMITED, "rate limited")

    def _refused(self, cmd: Command, reason: RejectReason, message: str) -> None:
        if isinstance(cmd, SubmitOrder):
            self._emit(
                OrderRejected(
                    ts=cmd.ts,
                    instrument_id=cmd.instrument_id,
                    client_order_id=cmd.client_order_id,
                    reason=reason,
                    message=message,
                )
            )
        elif isinstance(cmd, CancelOrder):
            self._emit(
                OrderCancelRejected(
                    ts=cmd.ts,
                    instrument_id=cmd.instrument_id,
                    client_order_id=cmd.client_order_id,
                    reason=reason,
                    message=message,
                )
            )


def local_urls(base: str) -> ConnectorUrls:
    ws = base.replace("http://", "ws://", 1)
    return ConnectorUrls(rest=base, ws_public=f"{ws}/ws/public", ws_private=f"{ws}/ws/private")


def _connector(dialect: Callable[[], ToyDialect]) -> VenueConnector:
    return VenueConnector(
        venue=VENUE,
        urls=ConnectorUrls(rest="https://toy.invalid", ws_public="wss://toy.invalid/ws/public"),
        local_urls=local_urls,
        instruments=lambda: [instrument()],
        market_data=ToyMarketData,
        execution=ToyExecution,
        dialect=dialect,
        test_credentials=lambda: Credentials(VENUE, "sim", KEY, SECRET),
        extras={"reject_errors": REJECT_ERRORS},
    )


CONNECTOR: Final = _connector(ToyDialect)
BROKEN_CONNECTOR: Final = _connector(lambda: ToyDialect(honour_skip=False))
"""A toy whose dialect ignores ``skip_sequence``: the suite must notice."""
