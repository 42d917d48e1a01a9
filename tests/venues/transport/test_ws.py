"""ReconnectingWebSocket against aiohttp WebSocket servers on 127.0.0.1.

Every client points at a venue-looking URL and reaches the loopback server through the ``endpoint``
override (the server checks the path and query arrive intact). Time limits are short; each test
runs in about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from aiohttp import web

from tradeloop.venues.transport.backoff import BackoffSpec
from tradeloop.venues.transport.endpoint import with_endpoint
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimitSpec
from tradeloop.venues.transport.ws import (
    HeartbeatKind,
    HeartbeatSpec,
    NotConnected,
    ReconnectingWebSocket,
    WsConnection,
    WsSpec,
)

VENUE_URL = "wss://stream.venue.invalid:9443/stream?streams=btcusdt@depth"
SUBSCRIBE = '{"op":"subscribe","args":["depth"]}'
QUICK = BackoffSpec(base_s=0.05, cap_s=0.5)


@dataclass
class Conn:
    n: int
    opened_at: float
    query: str
    subscribe: str | None = None
    ended_at: float | None = None
    received: list[str] = field(default_factory=list)  # text frames after the subscription
    pings_at: list[float] = field(default_factory=list)  # ping frames / ping messages, server time


Behaviour = Callable[[Conn, web.WebSocketResponse], Awaitable[None]]


class WsServer:
    """Accepts, records the first message (the subscription), then runs ``behave`` for the connection."""

    def __init__(self, behave: Behaviour, autoping: bool = True) -> None:
        self.behave = behave
        self.autoping = autoping
        self.conns: list[Conn] = []

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=self.autoping)
        await ws.prepare(request)
        conn = Conn(len(self.conns) + 1, time.monotonic(), request.query_string)
        self.conns.append(conn)
        try:
            msg = await ws.receive(timeout=2)
            if msg.type is aiohttp.WSMsgType.TEXT:
                conn.subscribe = msg.data
                await self.behave(conn, ws)
        finally:
            conn.ended_at = time.monotonic()
        return ws

    @property
    def subscriptions(self) -> list[str | None]:
        return [c.subscribe for c in self.conns]


async def drain(conn: Conn, ws: web.WebSocketResponse) -> None:
    """Keep reading (answering pings, recording messages) until the client closes."""
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            conn.received.append(msg.data)


@contextlib.asynccontextmanager
async def serving(server: WsServer) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/stream", server.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Client:
    """A ReconnectingWebSocket that subscribes in on_open and records frames and closes."""

    def __init__(self, spec: WsSpec, endpoint: str, seed: int = 1) -> None:
        self.frames: list[tuple[int | None, str | bytes]] = []
        self.closes: list[str] = []
        self.opens: list[int] = []
        self.ws = ReconnectingWebSocket(
            spec,
            on_open=self.on_open,
            on_frame=self.on_frame,
            on_close=self.closes.append,
            endpoint=endpoint,
            rng=random.Random(seed),
        )

    async def on_open(self, conn: WsConnection) -> None:
        self.opens.append(conn.id)
        await conn.send(SUBSCRIBE)

    def on_frame(self, data: str | bytes, ts_recv_ns: int) -> None:
        assert abs(ts_recv_ns - time.time_ns()) < 1_000_000_000
        self.frames.append((self.ws.connection_id, data))

    def data(self) -> list[dict[str, int]]:
        return [orjson.loads(d) for _, d in self.frames]


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def spec(**kwargs: object) -> WsSpec:
    base: dict[str, object] = {"url": VENUE_URL, "backoff": QUICK, "close_timeout_s": 0.2}
    base.update(kwargs)
    return WsSpec(**base)  # type: ignore[arg-type]


def frame(n: int, i: int) -> str:
    return orjson.dumps({"conn": n, "seq": i}).decode()


async def send_three_then_drop(conn: Conn, ws: web.WebSocketResponse) -> None:
    for i in range(3):
        await ws.send_str(frame(conn.n, i))
    if conn.n == 1:
        await ws.close()  # a clean close by the server
    elif conn.n == 2:
        assert ws._req is not None and ws._req.transport is not None
        ws._req.transport.close()  # the network drops: no close frame
    else:
        await drain(conn, ws)


def full_jitter_delays(seed: int, base: float, factor: float, n: int, reset_each_time: bool) -> list[float]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        ceiling = base if reset_each_time else base * factor**k
        out.append(rng.uniform(0.0, ceiling))
    return out


def test_lost_connections_reconnect_with_backoff_and_resubscribe() -> None:
    server = WsServer(send_three_then_drop)
    seed = 5
    backoff = BackoffSpec(base_s=0.2, cap_s=5.0, factor=2.0)

    async def scenario() -> Client:
        async with serving(server) as url:
            client = Client(spec(backoff=backoff, healthy_after_s=60.0), url, seed)
            task = client.ws.start()
            await until(lambda: len(client.frames) == 9, 5, "frames of three connections")
            await client.ws.wait_open(1)
            await client.ws.close()
            assert task.done()
            return client

    client = asyncio.run(scenario())
    assert server.subscriptions == [SUBSCRIBE] * 3  # on_open resubscribed after each loss
    assert [c.query for c in server.conns] == ["streams=btcusdt@depth"] * 3
    assert client.data() == [{"conn": n, "seq": i} for n in (1, 2, 3) for i in range(3)]
    assert [conn_id for conn_id, _ in client.frames] == [1] * 3 + [2] * 3 + [3] * 3
    # on_close exactly once per lost connection, before the next on_open, plus the final close.
    assert len(client.closes) == 3
    assert client.closes[0].startswith("closed by server")
    assert client.closes[1].startswith(("connection lost", "connection error"))
    assert client.closes[2] == "closed by client"
    counters = client.ws.counters
    assert (counters.connects, counters.disconnects, counters.frames) == (3, 3, 9)
    # The waits between a loss and the next connect follow the seeded full-jitter backoff (no reset:
    # no connection lived healthy_after_s).
    expected = full_jitter_delays(seed, 0.2, 2.0, 2, reset_each_time=False)
    for k, delay in enumerate(expected):
        ended, reopened = server.conns[k].ended_at, server.conns[k + 1].opened_at
        assert ended is not None
        assert reopened - ended >= delay - 0.005, (k, reopened - ended, delay)


def test_backoff_starts_over_after_a_healthy_connection() -> None:
    # With factor 10 and no reset the second delay would be uniform(0, 2.0) - for this seed 1.5 s;
    # a connection that lived healthy_after_s resets it to uniform(0, 0.2).
    seed = 2
    no_reset = full_jitter_delays(seed, 0.2, 10.0, 2, reset_each_time=False)
    assert no_reset[1] > 1.0
    with_reset = full_jitter_delays(seed, 0.2, 10.0, 2, reset_each_time=True)
    server = WsServer(send_three_then_drop)

    async def scenario() -> None:
        async with serving(server) as url:
            client = Client(
                spec(backoff=BackoffSpec(base_s=0.2, cap_s=5.0, factor=10.0), healthy_after_s=0.0), url, seed
            )
            client.ws.start()
            await until(lambda: len(client.frames) == 9, 5, "frames of three connections")
            await client.ws.close()

    asyncio.run(scenario())
    ended, reopened = server.conns[1].ended_at, server.conns[2].opened_at
    assert ended is not None
    assert with_reset[1] - 0.005 <= reopened - ended < no_reset[1]


def test_connects_are_charged_to_a_connection_rate_budget() -> None:
    """OKX allows 3 connection requests per second per IP: reconnects wait for the budget, not just the backoff."""

    async def drop_first(conn: Conn, ws: web.WebSocketResponse) -> None:
        if conn.n == 1:
            await ws.close()
        else:
            await drain(conn, ws)

    server = WsServer(drop_first)
    budget = RateBudget("okx", "ip", [RateLimitSpec(name="connect", limit=1, window_s=0.3)])

    async def scenario() -> None:
        async with serving(server) as url:
            ws = ReconnectingWebSocket(
                spec(backoff=BackoffSpec(base_s=0.001, cap_s=0.001)),
                on_open=lambda conn: conn.send(SUBSCRIBE),
                on_frame=lambda d, t: None,
                on_close=lambda reason: None,
                endpoint=url,
                connect_budget=budget,
                connect_costs={"connect": 1},
            )
            ws.start()
            await until(lambda: len(server.conns) == 2 and ws.connected, 3, "the second connection")
            await ws.close()

    asyncio.run(scenario())
    assert server.conns[1].opened_at - server.conns[0].opened_at >= 0.29
    assert budget.admitted == 2 and budget.waits >= 1


def test_stalled_feed_is_closed_by_the_watchdog_and_reconnected() -> None:
    async def stall_first(conn: Conn, ws: web.WebSocketResponse) -> None:
        for i in range(2):
            await ws.send_str(frame(conn.n, i))
        await drain(conn, ws)  # connection 1 stays open but its data stops

    server = WsServer(stall_first)

    async def scenario() -> Client:
        async with serving(server) as url:
            client = Client(spec(stale_after_s=0.3), url)
            client.ws.start()
            await until(lambda: len(client.frames) == 4, 5, "frames of the second connection")
            await client.ws.close()
            return client

    client = asyncio.run(scenario())
    assert server.subscriptions == [SUBSCRIBE, SUBSCRIBE]
    assert client.ws.counters.stale_timeouts == 1
    assert client.closes == ["stale: no data for 0.3s", "closed by client"]
    first = server.conns[0]
    assert first.ended_at is not None and first.ended_at - first.opened_at >= 0.3


def test_app_heartbeat_is_sent_on_schedule_and_pongs_are_swallowed() -> None:
    async def bybit_like(conn: Conn, ws: web.WebSocketResponse) -> None:
        async def feed() -> None:
            i = 0
            while not ws.closed:
                await ws.send_str(frame(conn.n, i))
                i += 1
                await asyncio.sleep(0.05)

        feeder = asyncio.create_task(feed())
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    req = orjson.loads(msg.data)
                    if req.get("op") == "ping":
                        conn.pings_at.append(time.monotonic())
                        conn.received.append(req["req_id"])
                        await ws.send_str(orjson.dumps({"op": "pong", "args": [req["req_id"]]}).decode())
        finally:
            feeder.cancel()

    server = WsServer(bybit_like)
    hb = HeartbeatSpec(
        kind=HeartbeatKind.APP_MESSAGE,
        interval_s=0.1,
        message='{"op":"ping","req_id":"{n}"}',
        pong_contains=('"op":"pong"',),
        pong_timeout_s=1.0,
    )

    async def scenario() -> Client:
        async with serving(server) as url:
            client = Client(spec(heartbeat=hb), url)
            client.ws.start()
            await client.ws.wait_open(2)
            await asyncio.sleep(0.55)
            await client.ws.close()
            return client

    client = asyncio.run(scenario())
    conn = server.conns[0]
    assert len(server.conns) == 1
    assert 4 <= len(conn.pings_at) <= 6
    assert conn.received == [str(n) for n in range(1, len(conn.pings_at) + 1)]  # "{n}" numbered the pings
    gaps = [b - a for a, b in zip(conn.pings_at, conn.pings_at[1:], strict=False)]
    assert all(g >= 0.09 for g in gaps), gaps
    assert all("pong" not in str(d) for _, d in client.frames)  # pongs never reach on_frame
    assert len(client.frames) >= 8
    counters = client.ws.counters
    assert counters.pings_sent == len(conn.pings_at)
    assert counters.pings_sent - 1 <= counters.pongs_received <= counters.pings_sent
    assert counters.heartbeat_timeouts == 0


def test_missing_pong_drops_the_connection() -> None:
    server = WsServer(drain)  # reads pings, never answers
    hb = HeartbeatSpec(
        kind=HeartbeatKind.APP_MESSAGE, interval_s=0.1, message="ping", pong_equals=("pong",), pong_timeout_s=0.15
    )

    async def scenario() -> Client:
        async with serving(server) as url:
            client = Client(spec(heartbeat=hb), url)
            client.ws.start()
            await until(lambda: len(server.conns) == 2 and server.conns[1].subscribe is not None, 5, "reconnect")
            await client.ws.close()
            return client

    client = asyncio.run(scenario())
    assert client.ws.counters.heartbeat_timeouts >= 1
    assert client.closes[0] == "heartbeat: no pong within 0.15s"
    assert server.conns[0].received[:1] == ["ping"]


def test_idle_only_heartbeat_waits_for_silence() -> None:
    """OKX style: the text ``ping`` only after interval_s without traffic, answered by ``pong``."""
    feed_stopped: list[float] = []

    async def okx_like(conn: Conn, ws: web.WebSocketResponse) -> None:
        for i in range(12):
            if i:
                await asyncio.sleep(0.03)
            await ws.send_str(frame(conn.n, i))
        feed_stopped.append(time.monotonic())  # right after the last data frame left
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT and msg.data == "ping":
                conn.pings_at.append(time.monotonic())
                await ws.send_str("pong")

    server = WsServer(okx_like)
    hb = HeartbeatSpec(
        kind=HeartbeatKind.APP_MESSAGE, interval_s=0.15, message="ping", when_idle=True, pong_equals=("pong",)
    )

    async def scenario() -> Client:
        async with serving(server) as url:
            client = Client(spec(heartbeat=hb), url)
            client.ws.start()
            await until(lambda: len(server.conns) == 1 and len(server.conns[0].pings_at) >= 2, 5, "two pings")
            await client.ws.close()
            return client

    client = asyncio.run(scenario())
    pings = server.conns[0].pings_at
    assert pings[0] >= feed_stopped[0] + 0.14  # no ping while data flowed, the first one interval_s after
    assert pings[1] - pings[0] >= 0.14  # the pong was traffic: the next ping waits another interval
    assert [d["seq"] for d in client.data()] == list(range(12))
    assert client.ws.counters.pongs_received >= 1


def test_ws_ping_frames_and_server_pings_are_answered() -> None:
    pong_payloads: list[bytes] = []

    async def raw(conn: Conn, ws: web.WebSocketResponse) -> None:
        await ws.ping(b"srv")
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.PING:
                conn.pings_at.append(time.monotonic())
                await ws.pong(msg.data)
            elif msg.type is aiohttp.WSMsgType.PONG:
                pong_payloads.append(msg.data)

    server = WsServer(raw, autoping=False)
    hb = HeartbeatSpec(kind=HeartbeatKind.WS_PING, interval_s=0.1, pong_timeout_s=0.5)

    async def scenario() -> Client:
        async with serving(server) as url:
            client = Client(spec(heartbeat=hb), url)
            client.ws.start()
            await until(lambda: bool(server.conns) and len(server.conns[0].pings_at) >= 3, 5, "three ping frames")
            await client.ws.close()
            return client

    client = asyncio.run(scenario())
    assert pong_payloads == [b"srv"]  # Binance rule: the server's ping gets a pong with its payload
    counters = client.ws.counters
    assert counters.server_pings == 1
    assert counters.pings_sent >= 3 and counters.pongs_received >= 2
    assert counters.connects == 1 and counters.heartbeat_timeouts == 0
    assert client.frames == []


def test_rotation_opens_the_new_connection_before_closing_the_old() -> None:
    async def stream(conn: Conn, ws: web.WebSocketResponse) -> None:
        async def feed() -> None:
            i = 0
            while not ws.closed:
                await ws.send_str(frame(conn.n, i))
                i += 1
                await asyncio.sleep(0.02)

        feeder = asyncio.create_task(feed())
        try:
            await drain(conn, ws)
        finally:
            feeder.cancel()

    server = WsServer(stream)

    async def scenario() -> Client:
        async with serving(server) as url:
            client = Client(spec(max_lifetime_s=0.25), url)
            client.ws.start()
            await until(lambda: client.ws.counters.rotations >= 2 and client.ws.connected, 5, "two rotations")
            await asyncio.sleep(0.05)
            await client.ws.close()
            return client

    client = asyncio.run(scenario())
    counters = client.ws.counters
    assert counters.rotations == 2 and counters.connects == 3
    assert client.closes == ["rotation", "rotation", "closed by client"]
    assert server.subscriptions == [SUBSCRIBE] * 3
    for old, new in zip(server.conns, server.conns[1:], strict=False):
        assert old.ended_at is not None and new.opened_at < old.ended_at  # make before break
        assert new.opened_at - old.opened_at >= 0.25
    # Frames arrive grouped by connection, each connection's in order: nothing interleaved or repeated.
    data = client.data()
    assert [d["conn"] for d in data] == sorted(d["conn"] for d in data)
    assert {d["conn"] for d in data} == {1, 2, 3}
    for n in (1, 2, 3):
        seqs = [d["seq"] for d in data if d["conn"] == n]
        assert seqs == list(range(len(seqs)))


def test_on_open_failure_send_while_down_and_connect_failures() -> None:
    attempts: list[int] = []
    server = WsServer(drain)

    async def scenario() -> None:
        async with serving(server) as url:
            closes: list[str] = []

            async def on_open(conn: WsConnection) -> None:
                attempts.append(conn.id)
                await conn.send(SUBSCRIBE)
                if conn.id == 1:
                    raise RuntimeError("login refused")

            slow_heartbeat = HeartbeatSpec(kind=HeartbeatKind.WS_PING, interval_s=30.0)
            ws = ReconnectingWebSocket(
                spec(heartbeat=slow_heartbeat),
                on_open=on_open,
                on_frame=lambda d, t: None,
                on_close=closes.append,
                endpoint=url,
            )
            with pytest.raises(NotConnected):
                await ws.send("hello")
            ws.start()
            await ws.wait_open(3)
            await ws.send('{"op":"extra"}')
            await until(lambda: bool(server.conns[-1].received), 2, "the extra message")
            assert closes == ["on_open failed (RuntimeError: login refused)"]
            started = time.monotonic()
            await ws.close()
            assert time.monotonic() - started < 0.5  # the idle supervisor does not hold the close up
            await ws.close()  # idempotent
            assert closes[-1] == "closed by client" and len(closes) == 2
            with pytest.raises(NotConnected):
                await ws.send("late")

        # Nothing listens any more: connects fail, are counted and retried until close().
        down = ReconnectingWebSocket(
            spec(), on_open=on_open, on_frame=lambda d, t: None, on_close=closes.append, endpoint=url
        )
        down.start()
        await until(lambda: down.counters.connect_failures >= 2, 3, "failed connects")
        started = time.monotonic()
        await down.close()
        assert time.monotonic() - started < 1.0
        assert down.counters.connects == 0 and len(closes) == 2

    asyncio.run(scenario())
    assert attempts == [1, 2]
    assert server.subscriptions == [SUBSCRIBE, SUBSCRIBE]
    assert server.conns[1].received == ['{"op":"extra"}']


def test_endpoint_override_and_spec_validation() -> None:
    assert with_endpoint(VENUE_URL, "ws://127.0.0.1:8765") == "ws://127.0.0.1:8765/stream?streams=btcusdt@depth"
    assert with_endpoint(VENUE_URL, "ws://127.0.0.1:8765/other") == "ws://127.0.0.1:8765/other"
    assert with_endpoint(VENUE_URL, None) == VENUE_URL
    with pytest.raises(ValueError, match="absolute URL"):
        with_endpoint(VENUE_URL, "127.0.0.1:8765")
    with pytest.raises(ValueError, match="needs its message"):
        HeartbeatSpec(kind=HeartbeatKind.APP_MESSAGE)
    with pytest.raises(ValueError, match="stale_after_s"):
        WsSpec(url=VENUE_URL, stale_after_s=0)
