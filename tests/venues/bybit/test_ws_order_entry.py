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

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.model.commands import AmendOrder, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas
from tradeloop.model.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderEventBase,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.connector import CONNECTOR
from tradeloop.venues.bybit.execution import BybitExecutionClient
from tradeloop.venues.bybit.simulator import BybitDialect
from tradeloop.venues.bybit.ws_wire import (
    auth_frame,
)
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.backoff import BackoffSpec, JitterMode
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimitSpec
from tradeloop.venues.transport.rest import RestConfig

P = fixed.parse
BTC = spec.INSTRUMENTS[spec.VENUE_SPOT][0]
LINEAR = spec.INSTRUMENTS[spec.VENUE_LINEAR][0]
CREDS = CONNECTOR.test_credentials()
REST = RestConfig(timeout_s=1.0, connect_timeout_s=1.0, max_budget_wait_s=3.0)
BALANCES = {"USDT": P("100000"), "BTC": P("1")}
DATA = Path("/work/shared/data/bybit/ws_private")


def static_book(inst: Instrument, mid: str = "60000") -> BookDeltas:
    tick, m = inst.tick_size, P(mid)
    bids = [(m - k * tick, P("0.5")) for k in range(10)]
    asks = [(m + (k + 1) * tick, P("0.5")) for k in range(10)]
    return BookDeltas(inst.id, 0, 0, 1, 1, bids, asks, snapshot=True)


def new_core(clock: LiveClock) -> SimulatorCore:
    core = SimulatorCore(spec.VENUE_SPOT, [BTC], balances=BALANCES, clock=clock)
    core.apply_market(static_book(BTC))
    return core


def submit_cmd(cid: str, side: Side, qty: str, price: str | None, inst: Instrument = BTC, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        ts=0,
        strategy_id="t",
        instrument_id=inst.id,
        side=side,
        qty=P(qty),
        price=P(price) if price else None,
        client_order_id=cid,
        **kw,
    )


def amend_cmd(cid: str, price: str | None = None, qty: str | None = None, inst: Instrument = BTC) -> AmendOrder:
    return AmendOrder(
        ts=0,
        strategy_id="t",
        instrument_id=inst.id,
        client_order_id=cid,
        price=P(price) if price else None,
        qty=P(qty) if qty else None,
    )


def cancel_cmd(cid: str) -> CancelOrder:
    return CancelOrder(ts=0, strategy_id="t", instrument_id=BTC.id, client_order_id=cid)


class Skewed(LiveClock):
    """A local clock 10 s behind the simulator's."""

    def now_ns(self) -> int:
        return super().now_ns() - 10_000_000_000


@dataclass
class Rig:
    core: SimulatorCore
    sim: VenueSimulator
    dialect: BybitDialect
    ex: BybitExecutionClient
    events: list[Event] = field(default_factory=list)
    wired: list[str] = field(default_factory=list)

    def of(self, cid: str) -> list[Event]:
        return [e for e in self.events if isinstance(e, OrderEventBase) and e.client_order_id == cid]

    def has(self, cid: str, kind: type[Event]) -> bool:
        return any(isinstance(e, kind) for e in self.of(cid))

    def rest_orders(self) -> int:
        return sum(n for k, n in self.dialect.requests.items() if k.startswith("rest:"))


async def until(cond: Callable[[], bool], what: str, timeout: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


@asynccontextmanager
async def venue(
    *,
    order_entry: str = "websocket",
    budget: RateBudget | None = None,
    reconnect_after_s: float = 0.05,
    client_clock: LiveClock | None = None,
) -> AsyncIterator[Rig]:
    clock = LiveClock()
    core = new_core(clock)
    dialect = BybitDialect(spec.VENUE_SPOT)
    sim = VenueSimulator(core, dialect, CREDS)
    await sim.start()
    events: list[Event] = []
    backoff = BackoffSpec(base_s=reconnect_after_s, cap_s=reconnect_after_s, jitter=JitterMode.DECORRELATED)
    ex = BybitExecutionClient(
        CREDS,
        {BTC.id: BTC},
        client_clock or clock,
        events.append,
        CONNECTOR.local_urls(sim.base_url),
        rest_config=REST,
        budget=budget,
        order_entry=order_entry,  # type: ignore[arg-type]
        trade_ws_spec=msgspec.structs.replace(spec.ws_trade_spec(), backoff=backoff),
    )
    r = Rig(core, sim, dialect, ex, events)
    ex.on_wire = r.wired.append
    try:
        await ex.start()
        yield r
    finally:
        with suppress(Exception):
            await ex.stop()
        await sim.stop()


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


# -- against the simulator ------------------------------------------------------------------------


def test_place_amend_cancel_and_fill_go_over_the_trade_socket() -> None:
    async def main() -> None:
        async with venue() as r:
            r.ex.submit(submit_cmd("ws1", Side.BUY, "0.01", "59990", post_only=True))
            assert r.wired == ["ws1"], "written inside submit"
            await until(lambda: r.has("ws1", OrderAccepted), "ws1 accepted")
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
            r.ex.amend(amend_cmd("ws1", price="59980.5", qty="0.02"))
            await until(lambda: r.has("ws1", OrderAmended), "ws1 amended")
            (amended,) = [e for e in r.of("ws1") if isinstance(e, OrderAmended)]
            assert (amended.price, amended.qty) == (P("59980.5"), P("0.02"))
            r.ex.cancel(cancel_cmd("ws1"))
            await until(lambda: r.has("ws1", OrderCanceled), "ws1 canceled")
            assert r.core.open_orders() == []
            r.ex.submit(submit_cmd("ioc1", Side.BUY, "0.2", "60000.01", time_in_force=TimeInForce.IOC))
            await until(lambda: r.has("ioc1", OrderFilled), "ioc1 filled")
            (fill,) = [e for e in r.of("ioc1") if isinstance(e, OrderFilled)]
            assert (fill.last_qty, fill.last_price) == (P("0.2"), P("60000.01")) and fill.fee > 0
            assert r.dialect.requests == {"ws:order.create": 2, "ws:order.amend": 1, "ws:order.cancel": 1}
            assert r.rest_orders() == 0 and r.wired == ["ws1", "ws1", "ws1", "ioc1"]
            ws = r.ex.ws_orders
            assert ws is not None and (ws.sent, ws.held, ws.fell_back, ws.in_flight) == (4, 0, 0, 0)
            order = r.ex.tracker.orders.get("ioc1")
            assert order is not None and order.venue_order_id, "the reply's orderId is kept"

    run(main())


def test_refusals_rate_limits_and_unknown_outcomes_over_the_trade_socket() -> None:
    async def main() -> None:
        async with venue() as r:
            ws = r.ex.ws_orders
            assert ws is not None
            for cid, error, reason in (
                ("poor1", "170131", RejectReason.INSUFFICIENT_BALANCE),
                ("dup1", "170141", RejectReason.DUPLICATE_CLIENT_ID),
                ("bad1", "10001", RejectReason.INVALID_ORDER),
            ):
                r.sim.faults.reject_next(error)
                r.ex.submit(submit_cmd(cid, Side.BUY, "0.01", "59990"))
                await until(lambda c=cid: bool(r.of(c)), f"{cid} answered")  # type: ignore[misc]
                (rejected,) = r.of(cid)
                assert isinstance(rejected, OrderRejected) and rejected.reason is reason, rejected
                assert error in rejected.message and r.core.order(cid) is None
            # A stream refusal (EC_*): retCode 0 on the socket, then canceled with the reason on the stream.
            r.sim.faults.reject_next("EC_PostOnlyWillTakeLiquidity")
            r.ex.submit(submit_cmd("po1", Side.BUY, "0.01", "59990", post_only=True))
            await until(lambda: r.has("po1", OrderRejected), "po1 refused on the stream")
            assert r.of("po1")[0].reason is RejectReason.POST_ONLY_WOULD_CROSS  # type: ignore[attr-defined]
            # A rate-limit reply (10006): sent again, same orderLinkId, new reqId.
            r.sim.faults.rate_limit_next(1)
            r.ex.submit(submit_cmd("rl1", Side.BUY, "0.01", "59990"))
            await until(lambda: r.has("rl1", OrderAccepted), "rl1 accepted after the retry")
            assert r.sim.faults.consumed["rate_limit_next"] == 1 and ws.retried == 1
            assert [a["orderLinkId"] for op, a in r.dialect.ws_ops if op == "order.create"][-2:] == ["rl1", "rl1"]
            assert not r.has("rl1", OrderRejected)
            # Amend and cancel refusals map like REST.
            r.ex.amend(amend_cmd("nosuch1", price="59000"))
            r.ex.cancel(cancel_cmd("nosuch2"))
            await until(lambda: bool(r.of("nosuch1")) and bool(r.of("nosuch2")), "refusals")
            (amend_refused,) = r.of("nosuch1")
            (cancel_refused,) = r.of("nosuch2")
            assert isinstance(amend_refused, OrderAmendRejected) and amend_refused.reason is RejectReason.UNKNOWN_ORDER
            assert isinstance(cancel_refused, OrderCancelRejected)
            assert cancel_refused.reason is RejectReason.UNKNOWN_ORDER
            # 10016 (internal error / restarting): outcome unknown, nothing emitted, the query settles it.
            r.sim.faults.reject_next("10016")
            r.ex.submit(submit_cmd("unk1", Side.BUY, "0.01", "59990"))
            await until(lambda: ws.unknown == 1, "the unknown outcome noted")
            await asyncio.sleep(0.05)
            assert r.of("unk1") == []
            r.ex.query(QueryOrder(ts=0, instrument_id=BTC.id, client_order_id="unk1"))
            await until(lambda: r.has("unk1", OrderStatusReport), "unk1 report")
            (report,) = r.of("unk1")
            assert isinstance(report, OrderStatusReport) and report.status is None
            # A command Bybit cannot take: refused without sending, and not from inside the submit call.
            sent = sum(r.dialect.requests.values())
            r.ex.submit(submit_cmd("mkt1", Side.BUY, "0.01", None, order_type=OrderType.MARKET, post_only=True))
            assert r.of("mkt1") == []
            await until(lambda: bool(r.of("mkt1")), "mkt1 refused")
            assert isinstance(r.of("mkt1")[0], OrderRejected) and r.of("mkt1")[0].reason is RejectReason.INVALID_ORDER  # type: ignore[attr-defined]
            assert sum(r.dialect.requests.values()) == sent and r.rest_orders() == 0

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
            r.ex.query(QueryOrder(ts=0, instrument_id=BTC.id, client_order_id="lost1"))
            await until(lambda: r.has("lost1", OrderStatusReport), "lost1 report")
            (report,) = [e for e in r.of("lost1") if isinstance(e, OrderStatusReport)]
            venue_order = r.core.order("lost1")
            assert venue_order is not None and report.status is OrderStatus.ACCEPTED
            assert report.venue_order_id == venue_order.venue_order_id
            assert [o.client_order_id for o in r.core.open_orders()] == ["lost1"]
            assert r.dialect.requests["ws:order.create"] == 1 and r.rest_orders() == 0, "never sent again"
            # The reconnected socket takes orders again.
            r.ex.cancel(cancel_cmd("lost1"))
            await until(lambda: r.core.open_orders() == [], "canceled over the new connection")
            assert r.dialect.requests["ws:order.cancel"] == 1

    run(main())


def test_orders_go_over_rest_while_the_trade_socket_is_down() -> None:
    async def main() -> None:
        async with venue(reconnect_after_s=0.8) as r:
            socket, ws = r.ex.socket, r.ex.ws_orders
            assert socket is not None and ws is not None
            socket.drop("test: trade socket down")
            r.ex.submit(submit_cmd("rest1", Side.BUY, "0.01", "59990"))
            assert r.wired == [], "nothing written to a socket"
            await until(lambda: r.has("rest1", OrderAccepted), "rest1 accepted over REST")
            assert r.dialect.requests == {f"rest:{spec.CREATE}": 1} and ws.fell_back == 1
            await until(lambda: socket.ready, "the socket back", timeout=5.0)
            r.ex.amend(amend_cmd("rest1", price="59970"))
            await until(lambda: r.has("rest1", OrderAmended), "amended over the trade socket")
            assert r.dialect.requests["ws:order.amend"] == 1 and r.wired == ["rest1"]

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
    with pytest.raises(ValueError, match="order_entry"):
        BybitExecutionClient(
            CREDS, {BTC.id: BTC}, LiveClock(), print, CONNECTOR.local_urls("http://127.0.0.1:1"), order_entry="fix"
        )  # type: ignore[arg-type]


def test_the_rate_budget_holds_an_op_and_a_timer_sends_it() -> None:
    tight = [
        RateLimitSpec(name=s.name, limit=1, window_s=0.4) if s.name == spec.CREATE else s
        for s in spec.RATE_LIMITS[spec.VENUE_SPOT]
    ]

    async def main() -> None:
        async with venue(budget=RateBudget(spec.VENUE_SPOT, "test", tight)) as r:
            ws = r.ex.ws_orders
            assert ws is not None
            r.ex.submit(submit_cmd("b1", Side.BUY, "0.01", "59990"))
            r.ex.submit(submit_cmd("b2", Side.BUY, "0.01", "59989"))
            assert r.wired == ["b1"] and ws.held == 1, "b2 waits for the budget, without blocking the caller"
            sent_at = asyncio.get_running_loop().time()
            await until(lambda: r.has("b2", OrderAccepted), "b2 sent by the timer and accepted")
            assert asyncio.get_running_loop().time() - sent_at >= 0.3
            assert r.wired == ["b1", "b2"] and r.has("b1", OrderAccepted) and r.rest_orders() == 0

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


@contextmanager
def threaded_simulator() -> Iterator[VenueSimulator]:
    """The Bybit simulator on its own thread and event loop: it reads and acts on frames while the
    test's loop is blocked."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bybit-sim", daemon=True)
    thread.start()

    async def build() -> VenueSimulator:
        sim = VenueSimulator(new_core(LiveClock()), BybitDialect(spec.VENUE_SPOT), CREDS)
        await sim.start()
        return sim

    sim = asyncio.run_coroutine_threadsafe(build(), loop).result(10)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def blocked_until(cond: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    """Block this thread (and so the client's event loop) until ``cond`` holds; whether it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


@pytest.mark.parametrize("order_entry", ["websocket", "rest"])
def test_the_order_frame_is_written_before_submit_returns(order_entry: str) -> None:
    with threaded_simulator() as sim:

        async def main() -> None:
            events: list[Event] = []
            rest_only = order_entry == "rest"
            ex = BybitExecutionClient(
                CREDS,
                {BTC.id: BTC},
                LiveClock(),
                events.append,
                CONNECTOR.local_urls(sim.base_url),
                rest_config=REST,
                order_entry="rest" if rest_only else "websocket",
            )
            await ex.start()
            try:
                ex.submit(submit_cmd("sync1", Side.BUY, "0.01", "59990"))
                # No await from here: the client's loop cannot run until the checks below are done.
                placed = blocked_until(lambda: sim.core.order("sync1") is not None, 1.0 if rest_only else 2.0)
                if rest_only:  # the control: a request handed to a task is not out while the loop is blocked
                    assert not placed
                    return
                assert placed, "the order frame was not written before submit returned"
                ex.amend(amend_cmd("sync1", price="59950"))
                assert blocked_until(lambda: getattr(sim.core.order("sync1"), "price", None) == P("59950"))
                ex.cancel(cancel_cmd("sync1"))
                assert blocked_until(lambda: sim.core.open_orders() == [])
                await until(lambda: any(isinstance(e, OrderCanceled) for e in events), "the events follow")
            finally:
                await ex.stop()

        run(main())


# -- the dialect, raw -----------------------------------------------------------------------------


def test_the_simulator_answers_trade_ops_the_bybit_way() -> None:
    async def main() -> None:
        core = new_core(LiveClock())
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
