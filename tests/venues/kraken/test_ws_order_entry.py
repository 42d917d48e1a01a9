"""Kraken order entry over WebSocket v2 (``add_order``/``amend_order``/``cancel_order`` on ``ws-auth``, picows)
against the Kraken simulator dialect (loopback).

Place / amend / cancel go out as WebSocket methods carrying the private stream's token and come back
through the same tracker as REST replies (fills from the ``executions`` stream); venue refusals
(``reject_next``), a rate-limit reply retried (``rate_limit_next``) and an unknown outcome
(``EService:Unavailable``); an order socket lost before the reply leaves the outcome to the
``executions`` stream and the query, with one order at the venue; orders fall back to REST while the
socket is down; ``order_entry="rest"`` keeps them off it; WebSocket ops draw on the trading
engine's rate budget; the frame is written before ``submit`` returns (the simulator runs on its own
thread while the client's loop is blocked); the frames equal the reference builders byte for byte;
the dialect answers raw order methods the Kraken way. Each test runs its own simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.venues import ws_order_entry_support as shared
from tests.venues.ws_order_entry_support import Commands, Rig, new_core, run, serve, until
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.model.enums import OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.kraken import connector, spec
from tradeloop.venues.kraken.connector import local_urls
from tradeloop.venues.kraken.execution import KrakenExecutionClient
from tradeloop.venues.kraken.simulator import KrakenDialect
from tradeloop.venues.kraken.ws_wire import (
    KrakenOpWire,
    WsFrames,
    amend_params,
    cancel_params,
    place_event,
    place_params,
    read_reply,
    ws_frame,
    ws_request,
)
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.order_entry import OpVerdict, WsOp
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimitSpec

P = fixed.parse
INSTS = {i.id: i for i in spec.instruments()}
BTC = INSTS[InstrumentId("kraken", "BTC/USD")]
ETHBTC = INSTS[InstrumentId("kraken", "ETH/BTC")]
CREDS = connector.test_credentials()
BALANCES = {"USD": P("100000"), "BTC": P("1")}
TOKEN = "WW91ciB0b2tlbiBoZXJlIHdpdGggc29tZSBiYXNlNjQ"
CMDS = Commands(BTC)
submit_cmd, amend_cmd, cancel_cmd = CMDS.submit, CMDS.amend, CMDS.cancel


class KrakenRig(Rig[KrakenDialect, KrakenExecutionClient]):
    def requests(self, prefix: str) -> dict[str, int]:
        """Order requests the simulator served (``ws:`` or ``rest:``), without the token and queries."""
        order_methods = {"AddOrder", "AmendOrder", "CancelOrder", *spec.WS_ORDER_METHODS}
        return {
            k: n
            for k, n in self.dialect.rest.requests.items()
            if k.startswith(prefix) and k.partition(":")[2] in order_methods
        }

    def rest_orders(self) -> int:
        return sum(self.requests("rest:").values())


def ws_spec_for(url: str, reconnect_after_s: float) -> Any:
    return msgspec.structs.replace(spec.private_ws_spec(url), backoff=shared.reconnect_backoff(reconnect_after_s))


client = shared.client_factory(KrakenExecutionClient, CREDS, {BTC.id: BTC}, local_urls)


@asynccontextmanager
async def venue(
    *, order_entry: str = "websocket", budget: RateBudget | None = None, reconnect_after_s: float = 0.05
) -> AsyncIterator[KrakenRig]:
    clock = LiveClock()

    def connect(sim: VenueSimulator, events: list[Event]) -> KrakenExecutionClient:
        ws_spec = ws_spec_for(local_urls(sim.base_url).ws_private, reconnect_after_s)
        return client(sim, events, order_entry, clock=clock, budget=budget, rate_limit_patience_s=3.0, ws_spec=ws_spec)

    core = new_core("kraken", (BTC,), BALANCES, clock)
    async with serve(KrakenRig, core, KrakenDialect(), CREDS, connect) as r:
        yield r


# -- the frames, without sockets ------------------------------------------------------------------


def test_frames_are_the_reference_requests_byte_for_byte() -> None:
    for inst in (BTC, ETHBTC):
        frames = WsFrames(inst)
        tick, lot = inst.tick_size, inst.lot_size
        for n, (price, qty) in enumerate([(P("0.05") // tick * tick, 100 * lot), (7 * tick, 123 * lot)]):
            px, sz = fixed.to_str(price), fixed.to_str(qty)
            for cid in (f"c{n}", "abcdefghijKLMNOPQRST"):  # the second is longer than 18: sent as 32 hex digits
                for cmd in (
                    amend_cmd(cid, px, None, inst),
                    amend_cmd(cid, None, sz, inst),
                    amend_cmd(cid, px, sz, inst),
                ):
                    for post_only in (False, True):
                        expected = ws_request("amend_order", amend_params(cmd, inst, post_only=post_only), TOKEN, n)
                        assert ws_frame(frames.amend(cmd, post_only=post_only), TOKEN.encode(), n) == expected
                cancel = cancel_cmd(cid, inst)
                assert ws_frame(frames.cancel(cancel), TOKEN.encode(), n) == ws_request(
                    "cancel_order", cancel_params(cancel), TOKEN, n
                )
                for side, extra in (
                    (Side.BUY, {"post_only": True}),
                    (Side.SELL, {"time_in_force": TimeInForce.IOC}),
                    (Side.SELL, {"order_type": OrderType.MARKET}),
                ):
                    limit = extra.get("order_type") is not OrderType.MARKET
                    place = submit_cmd(cid, side, sz, px if limit else None, inst, **extra)
                    assert ws_frame(frames.place(place), TOKEN.encode(), n) == ws_request(
                        "add_order", place_params(place, inst), TOKEN, n
                    )
    # Written out by hand: what REST's AddOrder says (post-only, a sell's fee in quote, IOC), in v2's words.
    sell = submit_cmd("s1", Side.SELL, "0.0125", "60000.5", time_in_force=TimeInForce.IOC, post_only=True)
    assert msgspec.json.decode(ws_frame(WsFrames(BTC).place(sell), b"T", 42)) == {
        "method": "add_order",
        "params": {
            "order_type": "limit",
            "side": "sell",
            "order_qty": 0.0125,
            "symbol": "BTC/USD",
            "limit_price": 60000.5,
            "time_in_force": "ioc",
            "post_only": True,
            "fee_preference": "quote",
            "cl_ord_id": "s1",
            "token": "T",
        },
        "req_id": 42,
    }
    assert b'"order_qty":0.0125,' in ws_frame(WsFrames(BTC).place(sell), b"T", 42), "exact decimals, not floats"
    amend = amend_cmd("a1", price="59990", qty="0.02")
    assert ws_frame(WsFrames(BTC).amend(amend, post_only=True), b"T", 7) == (
        b'{"method":"amend_order","params":{"cl_ord_id":"a1","order_qty":0.02,"limit_price":59990,'
        b'"post_only":true,"token":"T"},"req_id":7}'
    )


def test_frames_refuse_what_kraken_cannot_take() -> None:
    frames = WsFrames(BTC)
    with pytest.raises(ValueError, match="changes nothing"):
        frames.amend(amend_cmd("ok1"))
    with pytest.raises(ValueError):
        frames.amend(amend_cmd("ok1", price="60000.05"))  # off BTC/USD's 0.1 tick
    with pytest.raises(ValueError, match="letters/digits"):
        frames.cancel(cancel_cmd('x"y'))  # a quote would break the hand-built JSON
    with pytest.raises(ValueError, match="no price"):
        frames.place(submit_cmd("lim1", Side.BUY, "0.01", None))
    with pytest.raises(ValueError, match="built with the instrument"):
        frames.place(submit_cmd("eth1", Side.BUY, "0.01", "0.05", inst=ETHBTC))


def test_replies_are_read_and_judged_like_rest_errors() -> None:
    wire = KrakenOpWire(TOKEN)
    ok = b'{"method":"add_order","req_id":4,"result":{"order_id":"OABC-1","cl_ord_id":"a"},"success":true,' \
         b'"time_in":"2026-01-01T00:00:00.000000Z","time_out":"2026-01-01T00:00:00.000100Z"}'  # fmt: skip
    got = wire.read_reply(ok)
    assert got is not None and got[0] == "4" and wire.verdict(got[1]) is OpVerdict.DONE
    accepted = place_event(got[1], submit_cmd("a", Side.BUY, "0.01", "59990"), 5)
    assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id == "OABC-1"
    for error, verdict, reason in (
        ("EOrder:Rate limit exceeded", OpVerdict.RATE_LIMITED, RejectReason.RATE_LIMITED),
        ("EAPI:Rate limit exceeded", OpVerdict.RATE_LIMITED, RejectReason.RATE_LIMITED),
        ("EService:Unavailable", OpVerdict.UNKNOWN, RejectReason.OTHER),
        ("EService:Busy", OpVerdict.UNKNOWN, RejectReason.OTHER),
        ("EOrder:Insufficient funds", OpVerdict.DONE, RejectReason.INSUFFICIENT_BALANCE),
        ("EOrder:Post only order", OpVerdict.DONE, RejectReason.POST_ONLY_WOULD_CROSS),
    ):
        frame = msgspec.json.encode({"method": "add_order", "req_id": 9, "success": False, "error": error})
        reply = read_reply(frame)
        assert reply is not None and wire.verdict(reply) is verdict, error
        rejected = place_event(reply, submit_cmd("b", Side.BUY, "0.01", "59990"), 5)
        assert isinstance(rejected, OrderRejected) and rejected.reason is reason and rejected.message == error
    assert read_reply(b'{"method":"pong","req_id":3,"time_in":"x","time_out":"y"}') is None
    assert read_reply(b'{"method":"subscribe","req_id":1,"success":true,"result":{"channel":"executions"}}') is None
    assert read_reply(b'{"channel":"executions","type":"update","data":[{"exec_type":"amended"}]}') is None
    assert read_reply(b'{"channel":"heartbeat"}') is None
    op = WsOp("cancel_order", cancel_cmd("c1"), WsFrames(BTC).cancel(cancel_cmd("c1")))
    assert wire.frame(3, op) == ws_request("cancel_order", {"cl_ord_id": ["c1"]}, TOKEN, 3)


# -- against the simulator ------------------------------------------------------------------------


def test_place_amend_cancel_and_fill_go_over_the_websocket() -> None:
    async def main() -> None:
        async with venue() as r:
            assert r.ex.supports_amend and r.ex.order_entry == "websocket"
            await shared.placed_over_the_socket(r, submit_cmd("ws1", Side.BUY, "0.01", "59990", post_only=True))
            venue_order = r.core.order("ws1")
            assert venue_order is not None
            assert r.count("ws1", OrderAccepted) == 1, "the reply and the executions push report it once"
            (accepted,) = [e for e in r.of("ws1") if isinstance(e, OrderAccepted)]
            assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id == venue_order.venue_order_id
            assert r.dialect.orders.ops[-1] == (
                "add_order",
                {
                    "order_type": "limit",
                    "side": "buy",
                    "order_qty": 0.01,
                    "symbol": "BTC/USD",
                    "limit_price": 59990,
                    "post_only": True,
                    "cl_ord_id": "ws1",
                },
            )
            await shared.amended_to(r, amend_cmd("ws1", price="59980.5", qty="0.02"))
            await asyncio.sleep(0.05)
            assert r.count("ws1", OrderAmended) == 1, "the reply and the amended push report it once"
            venue_order = r.core.order("ws1")
            assert venue_order is not None and (venue_order.price, venue_order.qty) == (P("59980.5"), P("0.02"))
            assert r.dialect.orders.ops[-1] == (
                "amend_order",
                {"cl_ord_id": "ws1", "order_qty": 0.02, "limit_price": 59980.5, "post_only": True},
            )
            await shared.canceled_at_the_venue(r, cancel_cmd("ws1"))
            ioc = submit_cmd("ioc1", Side.BUY, "0.2", "60000.1", time_in_force=TimeInForce.IOC)
            await shared.filled_at(r, ioc, P("60000.1"))
            assert r.requests("ws:") == {"ws:add_order": 2, "ws:amend_order": 1, "ws:cancel_order": 1}
            assert r.requests("rest:") == {} and r.wired == ["ws1", "ws1", "ws1", "ioc1"]
            shared.all_sent_over_the_socket(r, 4)

    run(main())


def test_refusals_rate_limits_and_unknown_outcomes_over_the_websocket() -> None:
    async def main() -> None:
        async with venue() as r:
            refusals = (
                ("poor1", "EOrder:Insufficient funds", RejectReason.INSUFFICIENT_BALANCE),
                ("dup1", "EOrder:Duplicate order", RejectReason.DUPLICATE_CLIENT_ID),
                ("bad1", "EGeneral:Invalid arguments", RejectReason.INVALID_ORDER),
            )
            await shared.each_refused(r, CMDS, refusals)
            # A post-only order that would take: the core's refusal, mapped like REST's.
            r.ex.submit(submit_cmd("cross1", Side.BUY, "0.01", "60000.1", post_only=True))
            await until(lambda: bool(r.of("cross1")), "cross1 answered")
            (crossed,) = r.of("cross1")
            assert isinstance(crossed, OrderRejected) and crossed.reason is RejectReason.POST_ONLY_WOULD_CROSS
            # A rate-limit reply: sent again, same cl_ord_id, new req_id.
            await shared.rate_limited_then_sent_again(r, CMDS)
            assert [p["cl_ord_id"] for m, p in r.dialect.orders.ops if m == "add_order"][-2:] == ["rl1", "rl1"]
            await shared.amend_and_cancel_refused(r, CMDS)
            # EService:Unavailable: outcome unknown, nothing emitted, the query settles it.
            await shared.unknown_outcome_left_to_the_query(r, CMDS, "EService:Unavailable")
            # A command Kraken cannot take: refused without sending, and not from inside the submit call.
            off_tick = submit_cmd("tick1", Side.BUY, "0.01", "59990.05")
            await shared.refused_without_sending(r, off_tick, lambda: dict(r.dialect.rest.requests))
            assert r.requests("rest:") == {}

    run(main())


def test_socket_lost_before_the_reply_leaves_it_to_the_stream_and_the_query_without_a_duplicate() -> None:
    async def main() -> None:
        async with venue() as r:
            ws = r.ex.ws_orders
            assert r.ex.socket is not None and ws is not None
            await shared.lose_the_reply(r, CMDS)
            await until(lambda: ws.unknown == 1, "the op's outcome unknown")
            # The order entry emitted nothing; the private stream (its own connection) reported the order.
            await until(lambda: r.has("lost1", OrderAccepted), "accepted from the executions stream")
            await shared.query_reports_it_accepted(r, CMDS)
            venue_order = r.core.order("lost1")
            assert venue_order is not None
            accepted, report = r.of("lost1")
            assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id == venue_order.venue_order_id
            assert isinstance(report, OrderStatusReport) and report.venue_order_id == venue_order.venue_order_id
            assert r.requests("ws:") == {"ws:add_order": 1} and r.requests("rest:") == {}, "never sent again"
            # The reconnected socket takes orders again.
            await shared.canceled_over_the_new_connection(r, CMDS)
            assert r.requests("ws:")["ws:cancel_order"] == 1

    run(main())


def test_orders_go_over_rest_while_the_socket_is_down() -> None:
    async def main() -> None:
        async with venue(reconnect_after_s=0.8) as r:
            await shared.orders_go_over_rest_while_down(
                r,
                r.sim.faults.drop_connections,
                submit_cmd("rest1", Side.BUY, "0.01", "59990"),
                amend_cmd("rest1", price="59970"),
                lambda: r.requests("rest:") == {"rest:AddOrder": 1} and r.requests("ws:") == {},
                lambda: r.requests("ws:") == {"ws:amend_order": 1},
            )

    run(main())


def test_rest_order_entry_keeps_orders_off_the_socket() -> None:
    async def main() -> None:
        async with venue(order_entry="rest") as r:
            assert r.ex.ws_orders is None and r.ex.socket is None and r.ex.order_entry == "rest"
            r.ex.submit(submit_cmd("r1", Side.BUY, "0.01", "59990"))
            await until(lambda: r.has("r1", OrderAccepted), "r1 accepted")
            r.ex.amend(amend_cmd("r1", qty="0.02"))
            await until(lambda: r.has("r1", OrderAmended), "r1 amended over REST")
            assert r.wired == [] and r.requests("ws:") == {}
            assert r.requests("rest:") == {"rest:AddOrder": 1, "rest:AmendOrder": 1}

    run(main())
    urls = local_urls("http://127.0.0.1:1")
    shared.refuses_an_unknown_order_entry(
        lambda **kw: KrakenExecutionClient(CREDS, {BTC.id: BTC}, LiveClock(), print, urls, **kw)
    )


def test_websocket_ops_draw_on_the_trading_engines_rate_budget() -> None:
    tight = [*spec.REST_WINDOWS, *(RateLimitSpec(name=w.name, limit=1, window_s=0.4) for w in spec.ORDER_WINDOWS)]

    async def main() -> None:
        async with venue(budget=RateBudget("kraken", "test", tight)) as r:
            await shared.the_budget_holds_an_op_for_a_timer(r, CMDS)  # no REST order either: r.requests("rest:") == {}

    run(main())


# -- the frame leaves inside the call -------------------------------------------------------------


@pytest.mark.parametrize("order_entry", ["websocket", "rest"])
def test_the_order_frame_is_written_before_submit_returns(order_entry: str) -> None:
    def simulator() -> VenueSimulator:
        return VenueSimulator(new_core("kraken", (BTC,), BALANCES, LiveClock()), KrakenDialect(), CREDS)

    shared.frame_written_before_submit_returns(order_entry, CMDS, simulator, "kraken-sim", client)


# -- the dialect, raw -----------------------------------------------------------------------------


def test_the_simulator_answers_order_methods_the_kraken_way() -> None:
    async def main() -> None:
        core = new_core("kraken", (BTC,), BALANCES, LiveClock())
        dialect = KrakenDialect()
        sim = VenueSimulator(core, dialect, CREDS)
        await sim.start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(local_urls(sim.base_url).ws_private) as ws,
            ):
                status = msgspec.json.decode((await ws.receive(2)).data)
                assert status["channel"] == "status"

                async def ask(method: str, params: dict[str, Any], req_id: int) -> dict[str, Any]:
                    await ws.send_str(
                        msgspec.json.encode({"method": method, "params": params, "req_id": req_id}).decode()
                    )
                    return dict(msgspec.json.decode((await ws.receive(2)).data))

                place = {"order_type": "limit", "side": "buy", "order_qty": 0.01, "symbol": "BTC/USD"}
                place |= {"limit_price": 59990, "cl_ord_id": "a1"}
                refused = await ask("add_order", {**place, "token": "not-a-token"}, 1)
                assert (refused["method"], refused["req_id"], refused["success"]) == ("add_order", 1, False)
                assert refused["error"] == "ESession:Invalid session" and core.order("a1") is None
                token = dialect.rest.new_token(CREDS.api_key.reveal())
                placed = await ask("add_order", {**place, "token": token}, 2)
                venue_order = core.order("a1")
                assert venue_order is not None and placed["success"] is True and placed["req_id"] == 2
                assert placed["result"] == {"order_id": venue_order.venue_order_id, "cl_ord_id": "a1"}
                assert placed["time_in"].endswith("Z") and placed["time_out"] >= placed["time_in"]
                amended = await ask("amend_order", {"cl_ord_id": "a1", "limit_price": 59980.5, "token": token}, 3)
                venue_order = core.order("a1")
                assert amended["success"] is True and amended["result"]["cl_ord_id"] == "a1"
                assert venue_order is not None and venue_order.price == P("59980.5")
                crossing = await ask(
                    "amend_order", {"cl_ord_id": "a1", "limit_price": 60000.1, "post_only": True, "token": token}, 4
                )
                assert crossing["success"] is False and crossing["error"] == "EOrder:Post only order"
                gone = await ask("cancel_order", {"cl_ord_id": ["zz9"], "token": token}, 5)
                assert gone["success"] is False and gone["error"] == "EOrder:Unknown order"
                sim.faults.reject_next("EOrder:Insufficient funds")
                poor = await ask("add_order", {**place, "cl_ord_id": "a2", "token": token}, 6)
                assert poor["error"] == "EOrder:Insufficient funds" and core.order("a2") is None
                sim.faults.rate_limit_next()
                limited = await ask("cancel_order", {"cl_ord_id": ["a1"], "token": token}, 7)
                assert limited["error"] == "EOrder:Rate limit exceeded" and core.open_orders() != []
                canceled = await ask("cancel_order", {"cl_ord_id": ["a1"], "token": token}, 8)
                assert canceled["success"] is True and canceled["result"] == {"cl_ord_id": "a1"}
                assert core.open_orders() == []
                counts = {k: n for k, n in dialect.rest.requests.items() if k.startswith("ws:")}
                assert counts == {"ws:add_order": 3, "ws:amend_order": 2, "ws:cancel_order": 3}
        finally:
            await sim.stop()

    run(main())
