"""The venue-neutral WebSocket order entry (``OrderSocket`` + ``WsOrderEntry``) against a scripted
picows server on loopback, with a minimal dialect of its own: no venue involved.

The dialect: an op's frame is ``<request id>:<tail>``; the server answers ``R:<request id>:<verdict>``
where the tail says what to answer (``ok``; ``limit-once``: rate limited the first time, then ok;
``unknown``; ``silent``: no answer). The login frame is ``login`` answered ``login-ok``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.transport.order_entry import OpVerdict, WsOp, WsOrderEntry
from tradeloop.venues.transport.order_socket import LoginReply, OrderSocket
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimitSpec
from tradeloop.venues.transport.ws import HeartbeatKind, HeartbeatSpec, WsSpec

IID = InstrumentId("toy", "BTCUSDT")
COSTS = {"place": {"orders": 1}}


class _Server(WSListener):
    def __init__(self, seen: list[bytes], limited: set[bytes]) -> None:
        super().__init__()
        self.seen = seen
        self.limited = limited

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        self.seen.append(payload)
        if payload == b"login":
            transport.send(WSMsgType.TEXT, b"login-ok")
            return
        rid, _, tail = payload.partition(b":")
        verdict = tail
        if tail == b"limit-once":
            verdict = b"ok" if tail in self.limited else b"limit"
            self.limited.add(tail)
        if verdict != b"silent":
            transport.send(WSMsgType.TEXT, b"R:" + rid + b":" + verdict)


class ToyWire:
    def frame(self, request_id: int, op: WsOp) -> bytes:
        return b"%d:%b" % (request_id, op.tail)

    def read_reply(self, payload: bytes) -> tuple[str, bytes] | None:
        if not payload.startswith(b"R:"):
            return None
        _, rid, verdict = payload.split(b":")
        return rid.decode(), verdict

    def verdict(self, reply: bytes) -> OpVerdict:
        return {b"limit": OpVerdict.RATE_LIMITED, b"unknown": OpVerdict.UNKNOWN}.get(reply, OpVerdict.DONE)


@dataclass
class Rig:
    socket: OrderSocket
    entry: WsOrderEntry[bytes]
    seen: list[bytes]
    acks: list[tuple[str, bytes]] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)

    def op(self, cid: str, tail: bytes) -> WsOp:
        cmd = SubmitOrder(ts=0, strategy_id="t", instrument_id=IID, client_order_id=cid, side=Side.BUY, qty=1, price=1)
        return WsOp("place", cmd, tail)


async def until(cond: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


@asynccontextmanager
async def rig(limit: int = 100) -> AsyncIterator[Rig]:
    seen: list[bytes] = []
    limited: set[bytes] = set()
    server = await ws_create_server(lambda _r: _Server(seen, limited), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    socket = OrderSocket(
        WsSpec(url=f"ws://127.0.0.1:{port}/", heartbeat=HeartbeatSpec(kind=HeartbeatKind.NONE)),
        login=lambda: b"login",
        read_login_reply=lambda p: LoginReply(True) if p == b"login-ok" else None,
        subscribe=lambda: (),
        on_frame=lambda payload, ts: r.entry.handle(payload) or None,  # type: ignore[func-returns-value]
        on_open=lambda: None,
        on_close=lambda reason: r.entry.connection_lost(),
        name="toy-orders",
    )
    budget = RateBudget("toy", "acct", [RateLimitSpec(name="orders", limit=limit, window_s=0.3)])
    holder: list[Rig] = []
    entry: WsOrderEntry[bytes] = WsOrderEntry(
        socket,
        budget,
        ToyWire(),
        costs=COSTS,
        on_ack=lambda op, reply: holder[0].acks.append((op.cmd.client_order_id, reply)),
        fallback=lambda op: holder[0].fallbacks.append(op.cmd.client_order_id),
        on_unknown=lambda op: holder[0].unknowns.append(op.cmd.client_order_id),
        patience_s=2.0,
        name="toy-orders",
    )
    r = Rig(socket, entry, seen)
    holder.append(r)
    try:
        yield r
    finally:
        await socket.close()
        server.close()


def test_ops_are_written_inside_send_and_answered_by_request_id() -> None:
    async def main() -> None:
        async with rig() as r:
            r.entry.send(r.op("a", b"ok"))  # not logged in yet: the caller's fallback takes it
            assert r.fallbacks == ["a"] and r.entry.fell_back == 1
            r.socket.start()
            await r.socket.wait_open(3)
            r.entry.send(r.op("b", b"ok"))
            r.entry.send(r.op("c", b"ok"))
            assert r.entry.sent == 2 and r.entry.in_flight == 2  # written before send returned
            await until(lambda: len(r.acks) == 2, "both answers")
            assert r.acks == [("b", b"ok"), ("c", b"ok")] and r.seen[1:] == [b"1:ok", b"2:ok"]
            assert r.entry.in_flight == 0 and r.unknowns == []

    asyncio.run(main())


def test_a_rate_limit_reply_is_sent_again_with_a_new_request_id() -> None:
    async def main() -> None:
        async with rig() as r:
            r.socket.start()
            await r.socket.wait_open(3)
            r.entry.send(r.op("a", b"limit-once"))
            await until(lambda: r.acks != [], "the answer after the retry")
            assert r.acks == [("a", b"ok")] and r.entry.retried == 1
            assert r.seen[1:] == [b"1:limit-once", b"2:limit-once"]

    asyncio.run(main())


def test_unknown_outcomes_are_reported_and_never_sent_again() -> None:
    async def main() -> None:
        async with rig() as r:
            r.socket.start()
            await r.socket.wait_open(3)
            r.entry.send(r.op("a", b"unknown"))
            await until(lambda: r.unknowns == ["a"], "the unknown verdict")
            r.entry.send(r.op("b", b"silent"))
            r.socket.drop("test: lost before the reply")
            await until(lambda: r.unknowns == ["a", "b"], "the op lost with the connection")
            await until(lambda: r.socket.ready, "reconnected")
            assert r.acks == [] and r.entry.unknown == 2
            assert [s for s in r.seen if s != b"login"] == [b"1:unknown", b"2:silent"], "nothing re-sent"

    asyncio.run(main())


def test_the_budget_holds_an_op_and_a_timer_sends_it() -> None:
    async def main() -> None:
        async with rig(limit=1) as r:
            r.socket.start()
            await r.socket.wait_open(3)
            r.entry.send(r.op("a", b"ok"))
            r.entry.send(r.op("b", b"ok"))
            assert r.entry.sent == 1 and r.entry.held == 1
            await until(lambda: len(r.acks) == 2, "the held op sent and answered", timeout=2.0)
            assert [cid for cid, _ in r.acks] == ["a", "b"]

    asyncio.run(main())
