"""Binance spot order entry on the WebSocket API (``/ws-api/v3``, picows) against the Binance simulator
dialect (loopback).

Pure: the signature against the documented test vector, every op's parameters equal to the REST
query the client builds, frames the simulator's signature check accepts, replies and their verdicts.
Against the simulator: place / keep-priority amend / cancel-replace amend / cancel and a fill go out as
WebSocket API methods and map to the same events as REST; refusals (``reject_next``), a rate-limit
reply retried, an unknown outcome (-1007); a socket lost before the reply emits nothing and the query
resolves it with one order at the venue; orders go over REST while the socket is down;
``order_entry="rest"`` keeps orders off the socket; the rate budget holds an op for a timer; the frame
is written before ``submit`` returns (the simulator on its own thread while the client's loop is
blocked); the dialect answers raw requests the Binance way. Each test runs its own simulator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

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
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.binance import orders
from tradeloop.venues.binance.auth import ws_api_params, ws_api_params_for
from tradeloop.venues.binance.connector import CONNECTOR, PRODUCTION, local_urls
from tradeloop.venues.binance.execution import BinanceExecutionClient
from tradeloop.venues.binance.simulator import BinanceDialect
from tradeloop.venues.binance.simulator_auth import AuthError, check_ws_api
from tradeloop.venues.binance.spec import RATE_LIMITS, WS_API_METHODS, WS_API_URL, BinanceMarket
from tradeloop.venues.binance.ws_wire import (
    BinanceOpWire,
    read_tail,
    signed_frame,
    ws_cancel_params,
    ws_cancel_replace_params,
    ws_keep_priority_params,
    ws_place_params,
    ws_reply,
    ws_verdict,
)
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.backoff import BackoffSpec
from tradeloop.venues.transport.order_entry import OpVerdict, WsOp
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimitSpec
from tradeloop.venues.transport.ws import WsSpec

P = fixed.parse
INST: Instrument = CONNECTOR.instruments()[0]
IID = INST.id
TICK = INST.tick_size
MID = P("60000")  # the static book's mid
CREDS = CONNECTOR.test_credentials()
BALANCES = {"USDT": P("100000"), "BTC": P("1")}
# Binance's published WebSocket API signing example (web-socket-api docs; public, never a real key).
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
CMDS = Commands(INST)
submit_cmd, amend_cmd, cancel_cmd = CMDS.submit, CMDS.amend, CMDS.cancel


class BinanceRig(Rig[BinanceDialect, BinanceExecutionClient]):
    def ws_params(self, method: str) -> list[dict[str, str]]:
        return [params for m, params in self.dialect.ws_ops if m == method]


client = shared.client_factory(BinanceExecutionClient, CREDS, {IID: INST}, local_urls)


@asynccontextmanager
async def venue(
    *, order_entry: str = "websocket", budget: RateBudget | None = None, reconnect_after_s: float = 0.05
) -> AsyncIterator[BinanceRig]:
    clock = LiveClock()
    backoff = BackoffSpec(base_s=reconnect_after_s, cap_s=reconnect_after_s)

    def connect(sim: VenueSimulator, events: list[Event]) -> BinanceExecutionClient:
        return client(
            sim,
            events,
            order_entry,
            clock=clock,
            budget=budget,
            private_ws=WsSpec(url="", backoff=BackoffSpec(base_s=0.05, cap_s=0.05)),
            orders_ws=WsSpec(url="", backoff=backoff),
        )

    core = new_core("binance", (INST,), BALANCES, clock)
    async with serve(BinanceRig, core, BinanceDialect(), CREDS, connect, start_timeout_s=5) as r:
        yield r


# -- frames and replies, without sockets ----------------------------------------------------------


def test_the_signature_matches_the_documented_test_vector() -> None:
    params = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01000000",
        "price": "52000.00",
        "recvWindow": "100",
    }
    expected = "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
    assert ws_api_params(DOC_KEY, DOC_SECRET, params, 1645423376532)["signature"] == expected
    doc_creds = Credentials("binance", "doc", DOC_KEY, DOC_SECRET)
    wire = BinanceOpWire(doc_creds, lambda: 1645423376532)
    frame = msgspec.json.decode(
        wire.frame(3, WsOp("place", submit_cmd("x", Side.SELL, "1", "1"), wire.tail("place", params)))
    )
    assert frame == {
        "id": 3,
        "method": "order.place",
        "params": {**params, "apiKey": DOC_KEY, "timestamp": "1645423376532", "signature": expected},
    }


def _rest_params(query: str) -> dict[str, str]:
    return {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k not in ("signature", "timestamp")}


def test_op_params_equal_the_rest_query_and_frames_pass_the_venues_check() -> None:
    now = int(time.time() * 1000)
    places = [
        submit_cmd("p1", Side.BUY, "0.01", "59990.5"),
        submit_cmd("p2", Side.SELL, "0.02", "60010", time_in_force=TimeInForce.IOC),
        submit_cmd("p3", Side.BUY, "0.03", "59000", time_in_force=TimeInForce.FOK),
        submit_cmd("p4", Side.BUY, "0.01", "59990", post_only=True),
        submit_cmd("p5", Side.SELL, "0.05", None, order_type=OrderType.MARKET),
    ]
    cases: list[tuple[str, dict[str, str], str]] = []
    for cmd in places:
        cases.append(("place", ws_place_params(cmd, INST), orders.place_request(CREDS, now, cmd, INST).query))
    cancel = cancel_cmd("p1")
    cases.append(("cancel", ws_cancel_params(cancel), orders.cancel_request(CREDS, now, cancel).query))
    keep = orders.amend_keep_priority_request(CREDS, now, INST, "p1", P("0.005")).query
    cases.append(("amend", ws_keep_priority_params(INST, "p1", P("0.005")), keep))
    args = (INST, "p4", Side.BUY, TimeInForce.GTC, True, P("0.01"), P("59980"))
    replace = orders.cancel_replace_request(CREDS, now, *args).query
    cases.append(("cancel_replace", ws_cancel_replace_params(*args), replace))
    for kind, params, query in cases:
        assert params == _rest_params(query), kind
    # Post-only is LIMIT_MAKER, market has no price or timeInForce, the REST reply type is kept.
    assert ws_place_params(places[3], INST)["type"] == "LIMIT_MAKER" and "timeInForce" not in cases[3][1]
    assert "price" not in cases[4][1] and cases[4][1]["type"] == "MARKET" and cases[0][1]["newOrderRespType"] == "FULL"
    assert cases[-1][1]["cancelReplaceMode"] == "STOP_ON_FAILURE"
    # Each frame is signed at send time with the wire's clock, and the simulator's check accepts it.
    wire = BinanceOpWire(CREDS, lambda: now)
    for n, (kind, params, _) in enumerate(cases):
        raw = wire.frame(n, WsOp(kind, cancel, wire.tail(kind, params)))
        # Byte for byte the reference frame (params, apiKey, timestamp, signature), and the tail reads back.
        assert raw == signed_frame(CREDS, n, WS_API_METHODS[kind], params, now)
        assert read_tail(wire.tail(kind, params)) == (WS_API_METHODS[kind], params)
        frame = msgspec.json.decode(raw)
        assert frame["id"] == n and frame["params"]["timestamp"] == str(now)
        check_ws_api(CREDS, frame["params"], now)
        with pytest.raises(AuthError):
            check_ws_api(CREDS, {**frame["params"], "price": "1"}, now)
    with pytest.raises(orders.OrderRequestError):
        ws_place_params(submit_cmd("no price", Side.BUY, "0.01", None), INST)


def test_replies_and_their_verdicts() -> None:
    ok = ws_reply(
        b'{"id":7,"status":200,"result":{"orderId":5,"status":"NEW"},"rateLimits":['
        b'{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":3},'
        b'{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":12},'
        b'{"rateLimitType":"RAW_REQUESTS","interval":"MINUTE","intervalNum":5,"limit":61000,"count":9}]}'
    )
    assert ok is not None and (ok.request_id, ok.status, ok.code) == ("7", 200, 0)
    assert msgspec.json.decode(ok.body) == {"orderId": 5, "status": "NEW"}
    assert ok.usage == (("ORDERS_10S", 3), ("REQUEST_WEIGHT", 12)) and ws_verdict(ok) is OpVerdict.DONE
    verdicts = {}
    for status, code in ((429, -1015), (400, -1003), (418, -1003), (400, -1007), (400, -1006), (400, -2010)):
        reply = ws_reply(b'{"id":"8","status":%d,"error":{"code":%d,"msg":"m"}}' % (status, code))
        assert reply is not None and (reply.code, reply.msg) == (code, "m")
        verdicts[status, code] = ws_verdict(reply)
    assert verdicts == {
        (429, -1015): OpVerdict.RATE_LIMITED,
        (400, -1003): OpVerdict.RATE_LIMITED,
        (418, -1003): OpVerdict.RATE_LIMITED,
        (400, -1007): OpVerdict.UNKNOWN,
        (400, -1006): OpVerdict.UNKNOWN,
        (400, -2010): OpVerdict.DONE,
    }
    assert ws_reply(b'{"subscriptionId":0,"event":{"e":"executionReport"}}') is None
    assert ws_reply(b"not json") is None


# -- against the simulator ------------------------------------------------------------------------


def test_place_amend_cancel_and_fill_go_over_the_websocket_api() -> None:
    async def main() -> None:
        async with venue() as r:
            await shared.placed_over_the_socket(r, submit_cmd("ws1", Side.BUY, "0.02", "59990", post_only=True))
            assert len(r.of("ws1")) == 1 and r.core.order("ws1") is not None
            (placed,) = r.ws_params("order.place")
            expected = ws_place_params(submit_cmd("ws1", Side.BUY, "0.02", "59990", post_only=True), INST)
            assert {k: v for k, v in placed.items() if k not in ("apiKey", "timestamp")} == expected
            # Same price, smaller size: order.amend.keepPriority.
            r.ex.amend(amend_cmd("ws1", qty="0.01"))
            await until(lambda: r.has("ws1", OrderAmended), "ws1 reduced")
            venue_order = r.core.order("ws1")
            assert venue_order is not None and venue_order.qty == P("0.01")
            # A new price: order.cancelReplace, reported as one amend.
            r.ex.amend(amend_cmd("ws1", price="59980"))
            await until(lambda: len(r.of("ws1", OrderAmended)) == 2, "ws1 replaced")
            amended = r.of("ws1", OrderAmended)[-1]
            assert isinstance(amended, OrderAmended) and (amended.price, amended.qty) == (P("59980"), P("0.01"))
            venue_order = r.core.order("ws1")
            assert venue_order is not None and (venue_order.price, venue_order.qty) == (P("59980"), P("0.01"))
            await shared.canceled_at_the_venue(r, cancel_cmd("ws1"))
            await asyncio.sleep(0.1)  # the stream's reports of the same facts are not passed on again
            assert [type(e) for e in r.of("ws1")] == [OrderAccepted, OrderAmended, OrderAmended, OrderCanceled]
            assert r.core.open_orders() == []
            ioc = submit_cmd("ioc1", Side.BUY, "0.2", "60000.01", time_in_force=TimeInForce.IOC)
            await shared.filled_at(r, ioc, MID + TICK)
            assert r.dialect.requests == {
                "ws:order.place": 2,
                "ws:order.amend.keepPriority": 1,
                "ws:order.cancelReplace": 1,
                "ws:order.cancel": 1,
            }
            assert r.rest_orders() == 0 and r.wired == ["ws1", "ws1", "ws1", "ws1", "ioc1"]
            shared.all_sent_over_the_socket(r, 5)
            assert r.ex.budget.used("ORDERS_10S") >= 3, "WebSocket orders draw from the REST budget"

    run(main())


def test_refusals_rate_limits_and_unknown_outcomes_over_the_websocket_api() -> None:
    async def main() -> None:
        async with venue() as r:
            refusals = (
                ("poor1", "Account has insufficient balance for requested action.", RejectReason.INSUFFICIENT_BALANCE),
                ("dup1", "Duplicate order sent.", RejectReason.DUPLICATE_CLIENT_ID),
                ("bad1", "-1013", RejectReason.INVALID_ORDER),
                ("late1", "-1021", RejectReason.TIMESTAMP_OUTSIDE_WINDOW),
            )
            await shared.each_refused(r, CMDS, refusals)
            # A rate-limit reply (429, -1015): sent again, same client order id, new request id.
            await shared.rate_limited_then_sent_again(r, CMDS)
            assert [p["newClientOrderId"] for p in r.ws_params("order.place")][-2:] == ["rl1", "rl1"]
            # Amend and cancel refusals map like REST.
            r.ex.cancel(cancel_cmd("nosuch2"))
            await until(lambda: bool(r.of("nosuch2")), "cancel refused")
            (cancel_refused,) = r.of("nosuch2")
            assert isinstance(cancel_refused, OrderCancelRejected)
            assert cancel_refused.reason is RejectReason.UNKNOWN_ORDER
            r.sim.faults.reject_next("-2013")
            r.ex.amend(amend_cmd("rl1", price="59970"))
            await until(lambda: r.has("rl1", OrderAmendRejected), "amend refused")
            (amend_refused,) = r.of("rl1", OrderAmendRejected)
            assert isinstance(amend_refused, OrderAmendRejected) and amend_refused.reason is RejectReason.UNKNOWN_ORDER
            # -1007 "timeout waiting for response": nothing emitted, the query settles it.
            await shared.unknown_outcome_left_to_the_query(r, CMDS, "-1007")
            # A command Binance cannot take: refused without sending, and not from inside the submit call.
            await shared.refused_without_sending(
                r, submit_cmd("nopx1", Side.BUY, "0.01", None), lambda: sum(r.dialect.requests.values())
            )
            assert r.rest_orders() == 0

    run(main())


def test_socket_lost_before_the_reply_emits_nothing_and_the_query_resolves_it_without_a_duplicate() -> None:
    async def main() -> None:
        async with venue() as r:
            socket, ws = r.ex.socket, r.ex.ws_orders
            assert socket is not None and ws is not None
            await shared.lose_the_reply(r, CMDS)
            await asyncio.sleep(0.1)
            assert ws.unknown == 1
            assert not r.has("lost1", OrderRejected) and not r.has("lost1", OrderStatusReport)
            report = await shared.query_reports_it_accepted(r, CMDS)
            assert report.venue_order_id is not None and report.qty == P("0.01")
            assert r.dialect.requests["ws:order.place"] == 1 and r.rest_orders() == 0, "never sent again"
            # A keep-priority amend lost the same way ends up no longer expected (as over REST), so a later
            # amend is planned afresh. Here the user data stream, a connection of its own, may report the
            # amend first; that the order entry's on_unknown hook clears it by itself is tested in
            # tests/venues/transport/test_order_entry.py.
            tracked = r.ex.tracker.get("lost1")
            assert tracked is not None
            sent = ws.sent
            r.ex.amend(amend_cmd("lost1", qty="0.005"))
            assert ws.sent == sent + 1 and tracked.amend_pending
            socket.drop("test: amend lost before the reply")
            await until(lambda: ws.unknown == 2, "the amend's outcome unknown")
            assert not tracked.amend_pending
            await until(lambda: socket.ready, "reconnected again")
            await shared.canceled_over_the_new_connection(r, CMDS)
            assert r.dialect.requests["ws:order.cancel"] == 1

    run(main())


def test_orders_go_over_rest_while_the_socket_is_down() -> None:
    async def main() -> None:
        async with venue(reconnect_after_s=0.8) as r:
            await shared.orders_go_over_rest_while_down(
                r,
                r.sim.faults.drop_connections,
                submit_cmd("rest1", Side.BUY, "0.02", "59990"),
                amend_cmd("rest1", qty="0.01"),
                lambda: r.dialect.requests["rest:/api/v3/order"] == 1 and "ws:order.place" not in r.dialect.requests,
                lambda: r.dialect.requests["ws:order.amend.keepPriority"] == 1,
            )

    run(main())


def test_rest_order_entry_keeps_orders_off_the_socket() -> None:
    async def main() -> None:
        async with venue(order_entry="rest") as r:
            assert r.ex.ws_orders is None and r.ex.socket is None and r.ex.order_entry == "rest"
            r.ex.submit(submit_cmd("r1", Side.BUY, "0.02", "59990"))
            await until(lambda: r.has("r1", OrderAccepted), "r1 accepted")
            r.ex.amend(amend_cmd("r1", price="59980"))
            await until(lambda: r.has("r1", OrderAmended), "r1 replaced")
            r.ex.cancel(cancel_cmd("r1"))
            await until(lambda: r.has("r1", OrderCanceled), "r1 canceled")
            assert r.wired == [] and not any(k.startswith("ws:") for k in r.dialect.requests)
            assert r.dialect.requests["rest:/api/v3/order/cancelReplace"] == 1

    run(main())
    urls = local_urls("http://127.0.0.1:1")
    shared.refuses_an_unknown_order_entry(
        lambda **kw: BinanceExecutionClient(CREDS, {IID: INST}, LiveClock(), print, urls, **kw)
    )
    usdm = BinanceExecutionClient(CREDS, {}, LiveClock(), print, PRODUCTION, market=BinanceMarket.USDM)
    assert usdm.order_entry == "rest", "USD-M orders stay on REST"
    assert (
        PRODUCTION.ws_orders == WS_API_URL
        and local_urls("http://127.0.0.1:9").ws_orders == "ws://127.0.0.1:9/ws-api/v3"
    )


def test_the_rate_budget_holds_an_op_and_a_timer_sends_it() -> None:
    tight = [
        RateLimitSpec(name=s.name, limit=1, window_s=0.4) if s.name == "ORDERS_10S" else s
        for s in RATE_LIMITS[BinanceMarket.SPOT]
    ]

    async def main() -> None:
        async with venue(budget=RateBudget("binance", "test", tight)) as r:
            await shared.the_budget_holds_an_op_for_a_timer(r, CMDS)

    run(main())


# -- the frame leaves inside the call -------------------------------------------------------------


@pytest.mark.parametrize("order_entry", ["websocket", "rest"])
def test_the_order_frame_is_written_before_submit_returns(order_entry: str) -> None:
    def simulator() -> VenueSimulator:
        return VenueSimulator(new_core("binance", (INST,), BALANCES, LiveClock()), BinanceDialect(), CREDS)

    shared.frame_written_before_submit_returns(
        order_entry, CMDS, simulator, "binance-sim", client, qty="0.02", amend_qty="0.01", events_between=True
    )  # a keep-priority amend: the place must be acknowledged first


# -- the dialect, raw -----------------------------------------------------------------------------


def test_the_simulator_answers_order_methods_the_binance_way() -> None:
    async def main() -> None:
        core = new_core("binance", (INST,), BALANCES, LiveClock())
        dialect = BinanceDialect()
        sim = VenueSimulator(core, dialect, CREDS)
        await sim.start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(local_urls(sim.base_url).ws_orders) as ws,
            ):
                n = 0

                async def ask(method: str, params: dict[str, str], *, sign: bool = True) -> dict[str, Any]:
                    nonlocal n
                    n += 1
                    now = core.clock.now_ns() // 1_000_000
                    signed = ws_api_params_for(CREDS, params, now) if sign else {**params, "timestamp": str(now)}
                    await ws.send_str(msgspec.json.encode({"id": n, "method": method, "params": signed}).decode())
                    reply = dict(msgspec.json.decode((await ws.receive(2)).data))
                    assert reply["id"] == n
                    return reply

                place = ws_place_params(submit_cmd("a1", Side.BUY, "0.02", "59990"), INST)
                unsigned = await ask("order.place", place, sign=False)
                assert (unsigned["status"], unsigned["error"]["code"]) == (401, -2015) and core.order("a1") is None
                placed = await ask("order.place", place)
                assert placed["status"] == 200 and placed["result"]["clientOrderId"] == "a1"
                assert placed["result"]["status"] == "NEW" and placed["result"]["fills"] == []
                limits = {
                    (x["rateLimitType"], x["interval"], x["intervalNum"]): x["count"] for x in placed["rateLimits"]
                }
                assert limits[("ORDERS", "SECOND", 10)] == 2 and limits[("REQUEST_WEIGHT", "MINUTE", 1)] == 2
                sim.faults.rate_limit_next(1)
                limited = await ask("order.place", {**place, "newClientOrderId": "a2"})
                assert (limited["status"], limited["error"]["code"]) == (429, -1015) and core.order("a2") is None
                # A replacement refused after the cancel: 409, the cancel half done, as on REST.
                bad = ws_cancel_replace_params(INST, "a1", Side.BUY, TimeInForce.GTC, True, P("0.02"), P("60000.01"))
                half = await ask("order.cancelReplace", bad)
                assert (half["status"], half["error"]["code"]) == (409, -2021)
                assert half["error"]["data"]["cancelResult"] == "SUCCESS" and core.open_orders() == []
                gone = await ask("order.cancel", ws_cancel_params(cancel_cmd("a1")))
                assert (gone["status"], gone["error"]["code"]) == (400, -2011)
                assert dialect.requests == {"ws:order.place": 3, "ws:order.cancelReplace": 1, "ws:order.cancel": 1}
        finally:
            await sim.stop()

    run(main())
