"""VenueSimulator with a tiny dialect written here (no real venue): routes, control routes, faults
consumed by a dialect, and real server-side closes seen by a real aiohttp client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import Side
from tradeloop.model.events import OrderAccepted, OrderFilled, OrderRejected
from tradeloop.security.credentials import Credentials
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.faults import FAULTS
from tradeloop.venues.simulator.server import VenueSimulator

from .test_core import IID, instrument

P = fixed.parse
KEY = "toy-test-key"
SECRET = "toy-test-secret-0123456789"


class ToyDialect:
    """A made-up venue: ``POST /api/order`` (JSON, ``X-KEY`` header) and ``/ws/market`` (JSON snapshot,
    then deltas with a per-connection ``seq`` and a toy checksum; ``"ping"`` -> ``"pong"``)."""

    venue = "toy"

    def install(self, sim: VenueSimulator) -> None:
        self.sim = sim
        sim.app.router.add_post("/api/order", self.place)
        sim.app.router.add_get("/ws/market", self.market)

    async def place(self, request: web.Request) -> web.Response:
        sim = self.sim
        if request.headers.get("X-KEY") != sim.credentials.api_key.reveal():
            return web.json_response({"code": "bad-key"}, status=401)
        if sim.faults.take_rate_limit():
            return web.json_response({"code": "slow-down"}, status=429, headers={"Retry-After": "1"})
        body = await request.json()
        error = sim.faults.take_reject()
        if error is not None:
            return web.json_response({"code": error}, status=400)
        delay = sim.faults.take_delay()
        events = sim.core.submit(
            SubmitOrder(
                ts=sim.core.clock.now_ns(),
                strategy_id="",
                instrument_id=IID,
                side=Side(body["side"]),
                qty=P(body["qty"]),
                price=P(body["price"]),
                client_order_id=body["cid"],
            )
        )
        if delay:
            await asyncio.sleep(delay)
        out: list[dict[str, Any]] = []
        for e in events:
            if isinstance(e, OrderAccepted):
                out.append({"type": "accepted", "id": e.venue_order_id})
            elif isinstance(e, OrderFilled):
                out.append({"type": "fill", "qty": fixed.to_str(e.last_qty)})
            elif isinstance(e, OrderRejected):
                out.append({"type": "rejected", "reason": e.reason.value})
        return web.json_response(out)

    async def market(self, request: web.Request) -> web.WebSocketResponse:
        sim = self.sim
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sim.track(ws)
        queue: asyncio.Queue[BookDeltas | Trade] = asyncio.Queue()
        sim.core.add_market_listener(queue.put_nowait)
        book = sim.core.book(IID)
        seq = 1
        await ws.send_json(
            {"type": "snapshot", "seq": seq, "bids": [[fixed.to_str(p), fixed.to_str(q)] for p, q in book.top_bids(5)]}
        )

        async def send_loop() -> None:
            nonlocal seq
            while True:
                item = await queue.get()
                bad = sim.faults.take_malformed()
                if bad is not None:
                    await ws.send_bytes(bad)
                if sim.faults.stalled() or not isinstance(item, BookDeltas):
                    continue
                seq += 1
                if sim.faults.take_skip():
                    continue
                checksum = sum(p for p, _ in book.top_bids(3)) % 1000
                if sim.faults.take_corrupt():
                    checksum += 1
                await ws.send_json({"type": "delta", "seq": seq, "checksum": checksum})

        sender = sim.spawn(send_loop())
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT and msg.data == "ping" and not sim.faults.stalled():
                    await ws.send_str("pong")
        finally:
            sender.cancel()
            sim.core.remove_market_listener(queue.put_nowait)
        return ws


def make_sim() -> VenueSimulator:
    core = SimulatorCore("toy", [instrument()], balances={"USDT": P("1000"), "BTC": P("1")})
    core.apply_market(BookDeltas(IID, 1, 1, 1, 1, [(P("100.00"), P("5"))], [(P("100.10"), P("5"))], True))
    return VenueSimulator(core, ToyDialect(), Credentials("toy", "test", KEY, SECRET))


def run(scenario: Callable[[VenueSimulator, aiohttp.ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        sim = make_sim()
        await sim.start()
        try:
            async with aiohttp.ClientSession() as session:
                await asyncio.wait_for(scenario(sim, session), 10)
        finally:
            await sim.stop()

    asyncio.run(main())


def delta(seq: int, bid: str = "99.99", size: str = "1") -> BookDeltas:
    return BookDeltas(IID, seq, seq, seq, seq, [(P(bid), P(size))], [])


async def state(sim: VenueSimulator, session: aiohttp.ClientSession) -> dict[str, Any]:
    async with session.get(f"{sim.base_url}/__sim/state") as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


async def post_fault(sim: VenueSimulator, session: aiohttp.ClientSession, body: object) -> tuple[int, Any]:
    async with session.post(f"{sim.base_url}/__sim/fault", data=msgspec.json.encode(body)) as resp:
        return resp.status, await resp.json()


async def order(sim: VenueSimulator, session: aiohttp.ClientSession, cid: str, key: str = KEY) -> tuple[int, Any]:
    body = {"cid": cid, "side": "BUY", "qty": "0.01", "price": "99.00"}
    async with session.post(f"{sim.base_url}/api/order", json=body, headers={"X-KEY": key}) as resp:
        return resp.status, await resp.json()


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), 2)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    result: dict[str, Any] = msgspec.json.decode(msg.data)
    return result


def test_start_serves_on_a_free_loopback_port_and_stop_frees_it() -> None:
    async def main() -> None:
        sim = make_sim()
        await sim.start()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.base_url)
        assert sim.base_url.endswith(f":{sim.port}") and sim.port > 0
        async with aiohttp.ClientSession() as session:
            got = await state(sim, session)
            await sim.stop()
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"{sim.base_url}/__sim/state")
        assert got["venue"] == "toy" and got["connections"] == 0 and got["open_orders"] == []
        assert got["balances"] == [
            {"currency": "BTC", "total": P("1"), "locked": 0},
            {"currency": "USDT", "total": P("1000"), "locked": 0},
        ]

    asyncio.run(main())


def test_fault_route_arms_faults_and_refuses_bad_ones_naming_the_known_faults() -> None:
    async def scenario(sim: VenueSimulator, session: aiohttp.ClientSession) -> None:
        status, body = await post_fault(sim, session, {"fault": "skip_sequence", "count": 2})
        assert status == 200 and body["pending"]["skip_sequence"] == 2
        status, body = await post_fault(sim, session, {"fault": "send_malformed", "payload": "{oops"})
        assert status == 200 and sim.faults.pending()["send_malformed"] == 1
        for bad in ({"fault": "meteor"}, {"fault": "skip_sequence", "count": -1}, {"count": 1}, [1, 2]):
            status, body = await post_fault(sim, session, bad)
            assert status == 400
            assert f"known faults: {', '.join(FAULTS)}" in body["error"], body
        async with session.post(f"{sim.base_url}/__sim/fault", data=b"{not json") as resp:
            assert resp.status == 400
        got = await state(sim, session)
        assert got["faults"]["armed"]["skip_sequence"] == 2
        assert got["faults"]["pending"]["send_malformed"] == 1

    run(scenario)


def test_dialect_routes_use_the_core_the_credentials_and_the_request_faults() -> None:
    async def scenario(sim: VenueSimulator, session: aiohttp.ClientSession) -> None:
        assert await order(sim, session, "x0", key="wrong") == (401, {"code": "bad-key"})
        sim.faults.rate_limit_next()
        sim.faults.reject_next("no-money")
        assert (await order(sim, session, "x1"))[0] == 429
        assert await order(sim, session, "x1") == (400, {"code": "no-money"})
        status, events = await order(sim, session, "x1")
        assert status == 200 and events == [{"type": "accepted", "id": "toy-O1"}]
        status, events = await order(sim, session, "x1")  # same client id while open
        assert events == [{"type": "rejected", "reason": "DUPLICATE_CLIENT_ID"}]
        await post_fault(sim, session, {"fault": "delay_next_reply", "seconds": 0.3})
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        status, events = await order(sim, session, "x2")
        assert loop.time() - t0 >= 0.3 and events[0]["type"] == "accepted"
        got = await state(sim, session)
        assert [o["client_order_id"] for o in got["open_orders"]] == ["x1", "x2"]
        usdt = next(b for b in got["balances"] if b["currency"] == "USDT")
        assert usdt["locked"] == 2 * (P("0.99") + fixed.mul(P("0.99"), P("0.0004")))
        assert got["faults"]["consumed"]["rate_limit_next"] == 1 == got["faults"]["consumed"]["delay_next_reply"]

    run(scenario)


def test_drop_connections_closes_the_server_side_of_every_socket() -> None:
    async def scenario(sim: VenueSimulator, session: aiohttp.ClientSession) -> None:
        sockets = [await session.ws_connect(f"{sim.base_url.replace('http', 'ws')}/ws/market") for _ in range(2)]
        for ws in sockets:
            assert (await receive_json(ws))["type"] == "snapshot"
        assert (await state(sim, session))["connections"] == 2
        await post_fault(sim, session, {"fault": "drop_connections"})
        for ws in sockets:
            msg = await asyncio.wait_for(ws.receive(), 2)
            assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1001, "simulated disconnect")
            await asyncio.wait_for(ws.close(), 2)
            assert ws.closed
        got = await state(sim, session)
        assert got["connections"] == 0 and got["connections_dropped"] == 2
        again = await session.ws_connect(f"{sim.base_url.replace('http', 'ws')}/ws/market")  # reconnect works
        assert (await receive_json(again))["type"] == "snapshot"
        assert sim.connection_count == 1
        await again.close()

    run(scenario)


def test_market_faults_are_applied_by_the_dialect_in_order() -> None:
    async def scenario(sim: VenueSimulator, session: aiohttp.ClientSession) -> None:
        ws = await session.ws_connect(f"{sim.base_url.replace('http', 'ws')}/ws/market")
        assert (await receive_json(ws))["seq"] == 1
        sim.faults.skip_sequence()
        sim.faults.corrupt_checksum()
        sim.faults.send_malformed(b"\x00garbage")
        for seq in (2, 3, 4):
            sim.core.apply_market(delta(seq, size=str(seq)))
        msg = await asyncio.wait_for(ws.receive(), 2)
        assert msg.type is aiohttp.WSMsgType.BINARY and msg.data == b"\x00garbage"
        third = await receive_json(ws)
        fourth = await receive_json(ws)
        assert [third["seq"], fourth["seq"]] == [3, 4]  # seq 2 was skipped but consumed
        honest = sum(p for p, _ in sim.core.book(IID).top_bids(3)) % 1000
        assert third["checksum"] == honest + 1 and fourth["checksum"] == honest
        await ws.send_str("ping")
        assert (await asyncio.wait_for(ws.receive(), 2)).data == "pong"
        sim.faults.stall_feed(0.3)
        sim.core.apply_market(delta(5))
        await ws.send_str("ping")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.receive(), 0.2)
        await asyncio.sleep(0.15)
        sim.core.apply_market(delta(6))
        assert (await receive_json(ws))["seq"] == 3 + 2  # the stalled update never used a number
        await ws.close()

    run(scenario)


def test_stop_closes_connected_clients() -> None:
    async def main() -> None:
        sim = make_sim()
        await sim.start()
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{sim.base_url.replace('http', 'ws')}/ws/market")
            await receive_json(ws)
            await asyncio.wait_for(sim.stop(), 3)
            msg = await asyncio.wait_for(ws.receive(), 2)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert sim.connections_dropped == 1

    asyncio.run(main())
