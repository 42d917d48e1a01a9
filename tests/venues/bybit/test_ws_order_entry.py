"""Bybit order entry on the trade socket (``/v5/trade``, picows) against the Bybit simulator dialect (loopback).

Place / amend / cancel go out as trade-socket ops carrying the REST bodies and come back through the
same event mapping as REST (the order and execution pushes on ``/v5/private``); venue refusals
(``reject_next``), rate limits (``rate_limit_next`` -> 10006, re-sent) and an unknown outcome (10016);
the trade socket lost before the reply: the op's outcome is left to the query, one order at the
venue; orders fall back to REST while the trade socket is down; ``order_entry="rest"``; the rate
budget holds an op and a timer sends it; the header timestamp is the offset-corrected clock; the
frame is written before ``submit`` returns (the simulator on its own thread while the client's loop is
blocked); the dialect answers raw ops the Bybit way. The frames without sockets: ``test_ws_wire.py``.
"""

from __future__ import annotations

import time
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
from tradeloop.model.events import Event, OrderAccepted, OrderCanceled, OrderRejected
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.connector import CONNECTOR
from tradeloop.venues.bybit.execution import BybitExecutionClient
from tradeloop.venues.bybit.simulator import BybitDialect
from tradeloop.venues.bybit.ws_wire import auth_frame
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimitSpec

P = fixed.parse
BTC = spec.INSTRUMENTS[spec.VENUE_SPOT][0]
CREDS = CONNECTOR.test_credentials()
BALANCES = {"USDT": P("100000"), "BTC": P("1")}
CMDS = Commands(BTC)
submit_cmd, amend_cmd, cancel_cmd = CMDS.submit, CMDS.amend, CMDS.cancel
BybitRig = Rig[BybitDialect, BybitExecutionClient]


class Skewed(LiveClock):
    """A local clock 10 s behind the simulator's."""

    def now_ns(self) -> int:
        return super().now_ns() - 10_000_000_000


client = shared.client_factory(BybitExecutionClient, CREDS, {BTC.id: BTC}, CONNECTOR.local_urls)


@asynccontextmanager
async def venue(
    *,
    order_entry: str = "websocket",
    budget: RateBudget | None = None,
    reconnect_after_s: float = 0.05,
    client_clock: LiveClock | None = None,
) -> AsyncIterator[BybitRig]:
    clock = LiveClock()
    trade_ws_spec = msgspec.structs.replace(spec.ws_trade_spec(), backoff=shared.reconnect_backoff(reconnect_after_s))

    def connect(sim: VenueSimulator, events: list[Event]) -> BybitExecutionClient:
        return client(sim, events, order_entry, clock=client_clock or clock, budget=budget, trade_ws_spec=trade_ws_spec)

    core = new_core(spec.VENUE_SPOT, (BTC,), BALANCES, clock)
    async with serve(BybitRig, core, BybitDialect(spec.VENUE_SPOT), CREDS, connect) as r:
        yield r


# -- against the simulator ------------------------------------------------------------------------


def test_place_amend_cancel_and_fill_go_over_the_trade_socket() -> None:
    async def main() -> None:
        async with venue() as r:
            await shared.placed_over_the_socket(r, submit_cmd("ws1", Side.BUY, "0.01", "59990", post_only=True))
            (accepted,) = r.of("ws1")
            venue_order = r.core.order("ws1")
            assert venue_order is not None
            assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id == venue_order.venue_order_id
            assert r.dialect.ws_ops[-1] == (
                "order.create",
                {
                    "symbol": "BTCUSDT",
                    "side": "Buy",
                    "orderType": "Limit",
                    "category": "spot",
                    "qty": "0.01",
                    "price": "59990",
                    "timeInForce": "PostOnly",
                    "orderLinkId": "ws1",
                },
            )
            await shared.amended_to(r, amend_cmd("ws1", price="59980.5", qty="0.02"))
            await shared.canceled_at_the_venue(r, cancel_cmd("ws1"))
            ioc = submit_cmd("ioc1", Side.BUY, "0.2", "60000.01", time_in_force=TimeInForce.IOC)
            fill = await shared.filled_at(r, ioc, P("60000.01"))
            assert fill.fee > 0
            assert r.dialect.requests == {"ws:order.create": 2, "ws:order.amend": 1, "ws:order.cancel": 1}
            assert r.rest_orders() == 0 and r.wired == ["ws1", "ws1", "ws1", "ioc1"]
            shared.all_sent_over_the_socket(r, 4)
            order = r.ex.tracker.orders.get("ioc1")
            assert order is not None and order.venue_order_id, "the reply's orderId is kept"

    run(main())


def test_refusals_rate_limits_and_unknown_outcomes_over_the_trade_socket() -> None:
    async def main() -> None:
        async with venue() as r:
            refusals = (
                ("poor1", "170131", RejectReason.INSUFFICIENT_BALANCE),
                ("dup1", "170141", RejectReason.DUPLICATE_CLIENT_ID),
                ("bad1", "10001", RejectReason.INVALID_ORDER),
            )
            await shared.each_refused(r, CMDS, refusals, message_names_the_error=True)
            # A stream refusal (EC_*): retCode 0 on the socket, then canceled with the reason on the stream.
            r.sim.faults.reject_next("EC_PostOnlyWillTakeLiquidity")
            r.ex.submit(submit_cmd("po1", Side.BUY, "0.01", "59990", post_only=True))
            await until(lambda: r.has("po1", OrderRejected), "po1 refused on the stream")
            assert r.of("po1")[0].reason is RejectReason.POST_ONLY_WOULD_CROSS  # type: ignore[attr-defined]
            # A rate-limit reply (10006): sent again, same orderLinkId, new reqId.
            await shared.rate_limited_then_sent_again(r, CMDS)
            assert [a["orderLinkId"] for op, a in r.dialect.ws_ops if op == "order.create"][-2:] == ["rl1", "rl1"]
            assert not r.has("rl1", OrderRejected)
            await shared.amend_and_cancel_refused(r, CMDS)
            # 10016 (internal error / restarting): outcome unknown, nothing emitted, the query settles it.
            await shared.unknown_outcome_left_to_the_query(r, CMDS, "10016")
            # A command Bybit cannot take: refused without sending, and not from inside the submit call.
            market = submit_cmd("mkt1", Side.BUY, "0.01", None, order_type=OrderType.MARKET, post_only=True)
            await shared.refused_without_sending(r, market, lambda: sum(r.dialect.requests.values()))
            assert r.rest_orders() == 0

    run(main())


def test_trade_socket_lost_before_the_reply_leaves_the_outcome_to_the_query_and_places_once() -> None:
    async def main() -> None:
        async with venue() as r:
            socket, ws = r.ex.socket, r.ex.ws_orders
            assert socket is not None and ws is not None
            connects = socket.counters.connects
            r.sim.faults.delay_next_reply(1.0)  # executed at once, answered late: the drop comes first
            r.ex.submit(submit_cmd("lost1", Side.BUY, "0.01", "59985"))
            await until(lambda: r.core.order("lost1") is not None, "the venue placed the order")
            socket.drop("test: lost before the reply")
            assert not socket.ready
            await until(lambda: socket.ready and socket.counters.connects == connects + 1, "reconnected")
            assert ws.unknown == 1 and ws.in_flight == 0
            # The reply is gone: no rejection, nothing re-sent. The order's push still comes on /v5/private.
            await until(lambda: r.has("lost1", OrderAccepted), "the private stream's update")
            assert not r.has("lost1", OrderRejected)
            report = await shared.query_reports_it_accepted(r, CMDS)
            venue_order = r.core.order("lost1")
            assert venue_order is not None and report.venue_order_id == venue_order.venue_order_id
            assert r.dialect.requests["ws:order.create"] == 1 and r.rest_orders() == 0, "never sent again"
            # The reconnected socket takes orders again.
            await shared.canceled_over_the_new_connection(r, CMDS)
            assert r.dialect.requests["ws:order.cancel"] == 1

    run(main())


def test_orders_go_over_rest_while_the_trade_socket_is_down() -> None:
    async def main() -> None:
        async with venue(reconnect_after_s=0.8) as r:
            socket = r.ex.socket
            assert socket is not None
            await shared.orders_go_over_rest_while_down(
                r,
                lambda: socket.drop("test: trade socket down"),
                submit_cmd("rest1", Side.BUY, "0.01", "59990"),
                amend_cmd("rest1", price="59970"),
                lambda: r.dialect.requests == {f"rest:{spec.CREATE}": 1},
                lambda: r.dialect.requests["ws:order.amend"] == 1,
            )

    run(main())


def test_rest_order_entry_keeps_orders_off_the_socket() -> None:
    async def main() -> None:
        async with venue(order_entry="rest") as r:
            assert r.ex.ws_orders is None and r.ex.socket is None and r.ex.order_entry == "rest"
            r.ex.submit(submit_cmd("r1", Side.BUY, "0.01", "59990"))
            await until(lambda: r.has("r1", OrderAccepted), "r1 accepted")
            r.ex.cancel(cancel_cmd("r1"))
            await until(lambda: r.has("r1", OrderCanceled), "r1 canceled")
            assert r.wired == [] and r.dialect.requests == {f"rest:{spec.CREATE}": 1, f"rest:{spec.CANCEL}": 1}

    run(main())
    urls = CONNECTOR.local_urls("http://127.0.0.1:1")
    shared.refuses_an_unknown_order_entry(
        lambda **kw: BybitExecutionClient(CREDS, {BTC.id: BTC}, LiveClock(), print, urls, **kw)
    )


def test_the_rate_budget_holds_an_op_and_a_timer_sends_it() -> None:
    tight = [
        RateLimitSpec(name=s.name, limit=1, window_s=0.4) if s.name == spec.CREATE else s
        for s in spec.RATE_LIMITS[spec.VENUE_SPOT]
    ]

    async def main() -> None:
        async with venue(budget=RateBudget(spec.VENUE_SPOT, "test", tight)) as r:
            await shared.the_budget_holds_an_op_for_a_timer(r, CMDS)

    run(main())


def test_op_timestamps_use_the_measured_clock_offset() -> None:
    async def main() -> None:
        # A local clock 10 s behind: auth and op headers would be outside the window without the offset.
        async with venue(client_clock=Skewed()) as r:
            assert 9_900_000_000 < r.ex.rest.clock_offset.offset_ns < 10_100_000_000
            r.ex.submit(submit_cmd("sk1", Side.BUY, "0.01", "59990"))
            await until(lambda: r.has("sk1", OrderAccepted), "sk1 accepted")
            assert r.dialect.requests == {"ws:order.create": 1}

    run(main())


# -- the frame leaves inside the call -------------------------------------------------------------


@pytest.mark.parametrize("order_entry", ["websocket", "rest"])
def test_the_order_frame_is_written_before_submit_returns(order_entry: str) -> None:
    def simulator() -> VenueSimulator:
        return VenueSimulator(
            new_core(spec.VENUE_SPOT, (BTC,), BALANCES, LiveClock()), BybitDialect(spec.VENUE_SPOT), CREDS
        )

    shared.frame_written_before_submit_returns(order_entry, CMDS, simulator, "bybit-sim", client)


# -- the dialect, raw -----------------------------------------------------------------------------


def test_the_simulator_answers_trade_ops_the_bybit_way() -> None:
    async def main() -> None:
        core = new_core(spec.VENUE_SPOT, (BTC,), BALANCES, LiveClock())
        dialect = BybitDialect(spec.VENUE_SPOT)
        sim = VenueSimulator(core, dialect, CREDS)
        await sim.start()
        urls = CONNECTOR.local_urls(sim.base_url)
        key, secret = CREDS.api_key.reveal(), CREDS.secret.reveal()
        place = {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "category": "spot", "qty": "0.01"}

        def op(
            req_id: str, args: dict[str, Any], *, name: str = "order.create", ts: int | None = None
        ) -> dict[str, Any]:
            stamp = str(ts if ts is not None else int(time.time() * 1000))
            header = {"X-BAPI-TIMESTAMP": stamp, "X-BAPI-RECV-WINDOW": "5000"}
            return {"reqId": req_id, "header": header, "op": name, "args": [args]}

        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(urls.ws_orders) as ws,
                session.ws_connect(urls.ws_private) as private,
            ):

                async def ask(message: dict[str, Any]) -> dict[str, Any]:
                    await ws.send_str(msgspec.json.encode(message).decode())
                    return dict(msgspec.json.decode((await ws.receive(2)).data))

                before = await ask(op("1", {**place, "price": "59990", "orderLinkId": "a1"}))
                assert (before["reqId"], before["op"], before["retCode"]) == ("1", "order.create", 10003)
                assert core.order("a1") is None
                expires = int(time.time() * 1000) + 5000
                bad = await ask({"op": "auth", "args": [key, expires, "0" * 64]})
                assert (bad["op"], bad["retCode"]) == ("auth", 10004)
                good = await ask(msgspec.json.decode(auth_frame(key, secret, expires)))
                assert (good["op"], good["retCode"], good["retMsg"]) == ("auth", 0, "OK") and good["connId"]
                pong = await ask({"op": "ping"})
                assert pong["op"] == "pong" and pong["retCode"] == 0
                await private.send_str(auth_frame(key, secret, expires).decode())  # one signature for both sockets
                await private.receive(2)
                await private.send_str('{"op":"subscribe","args":["order"]}')
                await private.receive(2)
                placed = await ask(op("2", {**place, "price": "59990", "orderLinkId": "a1"}))
                venue_order = core.order("a1")
                assert venue_order is not None and placed["retCode"] == 0 and placed["retMsg"] == "OK"
                assert placed["data"] == {"orderId": venue_order.venue_order_id, "orderLinkId": "a1"}
                assert set(placed["header"]) >= {"X-Bapi-Limit", "X-Bapi-Limit-Status", "Timenow"}
                assert (placed["reqId"], placed["op"], placed["connId"]) == ("2", "order.create", good["connId"])
                push = dict(msgspec.json.decode((await private.receive(2)).data))  # the push: on /v5/private
                assert push["topic"] == "order" and push["data"][0]["orderLinkId"] == "a1"
                again = await ask(op("2", {**place, "price": "59980", "orderLinkId": "a2"}))
                assert again["retCode"] == 20006 and core.order("a2") is None
                stale = await ask(op("3", {**place, "price": "59980", "orderLinkId": "a2"}, ts=1_000))
                assert stale["retCode"] == 10002 and core.order("a2") is None
                amended = await ask(
                    op(
                        "4",
                        {"symbol": "BTCUSDT", "category": "spot", "orderLinkId": "a1", "price": "59970"},
                        name="order.amend",
                    )
                )
                assert amended["retCode"] == 0 and getattr(core.order("a1"), "price", None) == P("59970")
                sim.faults.rate_limit_next()
                limited = await ask(
                    op("5", {"symbol": "BTCUSDT", "category": "spot", "orderLinkId": "a1"}, name="order.cancel")
                )
                assert limited["retCode"] == 10006 and limited["header"]["X-Bapi-Limit-Status"] == "0"
                canceled = await ask(
                    op("6", {"symbol": "BTCUSDT", "category": "spot", "orderLinkId": "a1"}, name="order.cancel")
                )
                assert canceled["retCode"] == 0 and core.open_orders() == []
                gone = await ask(
                    op("7", {"symbol": "BTCUSDT", "category": "spot", "orderLinkId": "a1"}, name="order.cancel")
                )
                assert gone["retCode"] == 170213
                unknown = await ask(op("8", {}, name="order.teleport"))
                assert unknown["retCode"] == 10404
                # Counted once past auth and the reqId check (the stale one was refused after it).
                assert dialect.requests == {"ws:order.create": 2, "ws:order.amend": 1, "ws:order.cancel": 3}
        finally:
            await sim.stop()

    run(main())
