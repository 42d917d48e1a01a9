"""What the venues' WebSocket order-entry tests share: commands, a simulator core with a static book, the rig
(simulator + execution client + the events it emitted), waiting helpers, the simulator on its own thread, and
the scenarios whose steps are the same on every venue (the venue-specific checks stay in the venue's file).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import pytest

from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.model.commands import AmendOrder, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas
from tradeloop.model.enums import OrderStatus, RejectReason, Side
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
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.backoff import BackoffSpec, JitterMode
from tradeloop.venues.transport.rest import RestConfig

P = fixed.parse
REST = RestConfig(timeout_s=1.0, connect_timeout_s=1.0, max_budget_wait_s=3.0)


def static_book(inst: Instrument, mid: str = "60000") -> BookDeltas:
    """Ten levels of 0.5 a side around ``mid``, one tick apart."""
    tick, m = inst.tick_size, P(mid)
    bids = [(m - k * tick, P("0.5")) for k in range(10)]
    asks = [(m + (k + 1) * tick, P("0.5")) for k in range(10)]
    return BookDeltas(inst.id, 0, 0, 1, 1, bids, asks, snapshot=True)


def new_core(venue: str, insts: tuple[Instrument, ...], balances: dict[str, int], clock: LiveClock) -> SimulatorCore:
    core = SimulatorCore(venue, list(insts), balances=balances, clock=clock)
    for inst in insts:
        core.apply_market(static_book(inst))
    return core


def reconnect_backoff(after_s: float) -> BackoffSpec:
    return BackoffSpec(base_s=after_s, cap_s=after_s, jitter=JitterMode.DECORRELATED)


@dataclass(frozen=True)
class Commands:
    """Order commands for ``inst`` unless another instrument is named."""

    inst: Instrument

    def submit(
        self, cid: str, side: Side, qty: str, price: str | None, inst: Instrument | None = None, **kw: Any
    ) -> SubmitOrder:
        return SubmitOrder(
            ts=0,
            strategy_id="t",
            instrument_id=(inst or self.inst).id,
            side=side,
            qty=P(qty),
            price=P(price) if price else None,
            client_order_id=cid,
            **kw,
        )

    def amend(
        self, cid: str, price: str | None = None, qty: str | None = None, inst: Instrument | None = None
    ) -> AmendOrder:
        return AmendOrder(
            ts=0,
            strategy_id="t",
            instrument_id=(inst or self.inst).id,
            client_order_id=cid,
            price=P(price) if price else None,
            qty=P(qty) if qty else None,
        )

    def cancel(self, cid: str, inst: Instrument | None = None) -> CancelOrder:
        return CancelOrder(ts=0, strategy_id="t", instrument_id=(inst or self.inst).id, client_order_id=cid)

    def query(self, cid: str) -> QueryOrder:
        return QueryOrder(ts=0, instrument_id=self.inst.id, client_order_id=cid)


class OrderClient(Protocol):
    on_wire: Callable[[str], None] | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


D = TypeVar("D")
X = TypeVar("X", bound=OrderClient)


@dataclass
class Rig(Generic[D, X]):
    """A venue simulator, the execution client connected to it, its events and the orders written to a socket."""

    core: SimulatorCore
    sim: VenueSimulator
    dialect: D
    ex: X
    events: list[Event] = field(default_factory=list)
    wired: list[str] = field(default_factory=list)

    def of(self, cid: str, kind: type[Event] | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if isinstance(e, OrderEventBase) and e.client_order_id == cid and (kind is None or isinstance(e, kind))
        ]

    def has(self, cid: str, kind: type[Event]) -> bool:
        return bool(self.of(cid, kind))

    def count(self, cid: str, kind: type[Event]) -> int:
        return len(self.of(cid, kind))

    def rest_orders(self) -> int:
        """Order requests the simulator served over REST."""
        return sum(n for k, n in self.dialect.requests.items() if k.startswith("rest:"))  # type: ignore[attr-defined]


R = TypeVar("R", bound=Rig[Any, Any])


def client_factory(
    client_type: Callable[..., X], credentials: Any, instruments: dict[Any, Instrument], urls: Callable[[str], Any]
) -> Callable[..., X]:
    """``connect(sim, events, order_entry="websocket", **kw)``: a ``client_type`` against ``sim`` (its URLs by
    ``urls(base_url)``) emitting into ``events``; ``clock`` and ``instruments`` may be given in ``kw``."""

    def connect(sim: VenueSimulator, events: list[Event], order_entry: str = "websocket", **kw: Any) -> X:
        return client_type(
            credentials,
            kw.pop("instruments", instruments),
            kw.pop("clock", None) or LiveClock(),
            events.append,
            urls(sim.base_url),
            rest_config=REST,
            order_entry=order_entry,
            **kw,
        )

    return connect


@asynccontextmanager
async def serve(
    rig_type: type[R],
    core: SimulatorCore,
    dialect: Any,
    credentials: Any,
    connect: Callable[[VenueSimulator, list[Event]], Any],
    *,
    start_timeout_s: float | None = None,
) -> AsyncIterator[R]:
    """A simulator serving ``dialect`` and the client ``connect(sim, events)`` builds against it, started."""
    sim = VenueSimulator(core, dialect, credentials)
    await sim.start()
    events: list[Event] = []
    ex = connect(sim, events)
    r = rig_type(core, sim, dialect, ex, events)
    ex.on_wire = r.wired.append
    try:
        if start_timeout_s is None:
            await ex.start()
        else:
            await asyncio.wait_for(ex.start(), start_timeout_s)
        yield r
    finally:
        with suppress(Exception):
            await ex.stop()
        await sim.stop()


async def until(cond: Callable[[], bool], what: str, timeout: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


# -- steps every venue's order entry goes through the same way ------------------------------------


async def placed_over_the_socket(r: Rig[Any, Any], cmd: SubmitOrder) -> None:
    """``cmd`` is written to the socket inside ``submit`` and accepted."""
    r.ex.submit(cmd)
    cid = cmd.client_order_id
    assert r.wired == [cid], "written inside submit"
    await until(lambda: r.has(cid, OrderAccepted), f"{cid} accepted")


async def amended_to(r: Rig[Any, Any], cmd: AmendOrder) -> None:
    """``cmd`` (a new price and size) is reported amended, once, to its price and size."""
    r.ex.amend(cmd)
    cid = cmd.client_order_id
    await until(lambda: r.has(cid, OrderAmended), f"{cid} amended")
    (amended,) = r.of(cid, OrderAmended)
    assert isinstance(amended, OrderAmended) and (amended.price, amended.qty) == (cmd.price, cmd.qty)


async def canceled_at_the_venue(r: Rig[Any, Any], cmd: CancelOrder) -> None:
    r.ex.cancel(cmd)
    cid = cmd.client_order_id
    await until(lambda: r.has(cid, OrderCanceled), f"{cid} canceled")
    assert r.core.open_orders() == []


async def filled_at(r: Rig[Any, Any], cmd: SubmitOrder, price: int) -> OrderFilled:
    """``cmd`` (an IOC that takes) fills in full, once, at ``price``."""
    r.ex.submit(cmd)
    cid = cmd.client_order_id
    await until(lambda: r.has(cid, OrderFilled), f"{cid} filled")
    (fill,) = r.of(cid, OrderFilled)
    assert isinstance(fill, OrderFilled) and (fill.last_qty, fill.last_price) == (cmd.qty, price)
    return fill


def all_sent_over_the_socket(r: Rig[Any, Any], sent: int) -> None:
    ws = r.ex.ws_orders
    assert ws is not None and (ws.sent, ws.held, ws.fell_back, ws.in_flight) == (sent, 0, 0, 0)


async def each_refused(
    r: Rig[Any, Any],
    cmds: Commands,
    cases: tuple[tuple[str, str, RejectReason], ...],
    *,
    message_names_the_error: bool = False,
) -> None:
    """Each ``(client id, venue error, reason)``: the venue refuses the place, mapped to ``reason``."""
    for cid, error, reason in cases:
        r.sim.faults.reject_next(error)
        r.ex.submit(cmds.submit(cid, Side.BUY, "0.01", "59990"))
        await until(lambda c=cid: bool(r.of(c)), f"{cid} answered")  # type: ignore[misc]
        (rejected,) = r.of(cid)
        assert isinstance(rejected, OrderRejected) and rejected.reason is reason, rejected
        if message_names_the_error:
            assert error in rejected.message
        assert r.core.order(cid) is None


async def rate_limited_then_sent_again(r: Rig[Any, Any], cmds: Commands) -> None:
    """A rate-limit reply: the op is sent again (the venue's file checks it kept its client id)."""
    ws = r.ex.ws_orders
    assert ws is not None
    r.sim.faults.rate_limit_next(1)
    r.ex.submit(cmds.submit("rl1", Side.BUY, "0.01", "59990"))
    await until(lambda: r.has("rl1", OrderAccepted), "rl1 accepted after the retry")
    assert r.sim.faults.consumed["rate_limit_next"] == 1 and ws.retried == 1


async def amend_and_cancel_refused(r: Rig[Any, Any], cmds: Commands) -> None:
    """Amend and cancel of orders the venue does not know: refusals mapped like REST."""
    r.ex.amend(cmds.amend("nosuch1", price="59000"))
    r.ex.cancel(cmds.cancel("nosuch2"))
    await until(lambda: bool(r.of("nosuch1")) and bool(r.of("nosuch2")), "refusals")
    (amend_refused,) = r.of("nosuch1")
    (cancel_refused,) = r.of("nosuch2")
    assert isinstance(amend_refused, OrderAmendRejected) and amend_refused.reason is RejectReason.UNKNOWN_ORDER
    assert isinstance(cancel_refused, OrderCancelRejected)
    assert cancel_refused.reason is RejectReason.UNKNOWN_ORDER


async def unknown_outcome_left_to_the_query(r: Rig[Any, Any], cmds: Commands, error: str) -> None:
    """A reply that does not say whether the op took (``error``): nothing emitted, the query settles it."""
    ws = r.ex.ws_orders
    assert ws is not None
    r.sim.faults.reject_next(error)
    r.ex.submit(cmds.submit("unk1", Side.BUY, "0.01", "59990"))
    await until(lambda: ws.unknown == 1, "the unknown outcome noted")
    await asyncio.sleep(0.05)
    assert r.of("unk1") == []
    r.ex.query(cmds.query("unk1"))
    await until(lambda: r.has("unk1", OrderStatusReport), "unk1 report")
    (report,) = r.of("unk1")
    assert isinstance(report, OrderStatusReport) and report.status is None


async def refused_without_sending(r: Rig[Any, Any], cmd: SubmitOrder, served: Callable[[], Any]) -> None:
    """A command the venue cannot take: refused as invalid without sending (``served()`` unchanged), and not
    from inside the submit call."""
    before = served()
    cid = cmd.client_order_id
    r.ex.submit(cmd)
    assert r.of(cid) == []
    await until(lambda: bool(r.of(cid)), f"{cid} refused")
    (refused,) = r.of(cid)
    assert isinstance(refused, OrderRejected) and refused.reason is RejectReason.INVALID_ORDER
    assert served() == before


async def lose_the_reply(r: Rig[Any, Any], cmds: Commands) -> None:
    """Place ``lost1`` and drop the socket once the frame is out: the venue places it, the socket reconnects."""
    socket = r.ex.socket
    connects = socket.counters.connects
    r.ex.submit(cmds.submit("lost1", Side.BUY, "0.01", "59985"))
    socket.drop("test: lost before the reply")  # the frame is out; its reply will not arrive
    assert not socket.ready
    await until(lambda: r.core.order("lost1") is not None, "the venue placed the order")
    await until(lambda: socket.ready and socket.counters.connects == connects + 1, "reconnected")


async def query_reports_it_accepted(r: Rig[Any, Any], cmds: Commands) -> OrderStatusReport:
    """The query for ``lost1`` reports it accepted; the venue holds it, once."""
    r.ex.query(cmds.query("lost1"))
    await until(lambda: r.has("lost1", OrderStatusReport), "lost1 report")
    (report,) = r.of("lost1", OrderStatusReport)
    assert isinstance(report, OrderStatusReport) and report.status is OrderStatus.ACCEPTED
    assert [o.client_order_id for o in r.core.open_orders()] == ["lost1"]
    return report


async def canceled_over_the_new_connection(r: Rig[Any, Any], cmds: Commands) -> None:
    r.ex.cancel(cmds.cancel("lost1"))
    await until(lambda: r.core.open_orders() == [], "canceled over the new connection")


async def orders_go_over_rest_while_down(
    r: Rig[Any, Any],
    take_down: Callable[[], None],
    submit: SubmitOrder,
    amend: AmendOrder,
    placed_over_rest: Callable[[], bool],
    amended_over_the_socket: Callable[[], bool],
) -> None:
    """With the socket down the place goes over REST (``placed_over_rest``); once it is back the amend goes
    over the socket (``amended_over_the_socket``)."""
    socket, ws = r.ex.socket, r.ex.ws_orders
    assert socket is not None and ws is not None
    take_down()
    await until(lambda: not socket.ready, "the socket down")
    r.ex.submit(submit)
    assert r.wired == [], "nothing written to a socket"
    await until(lambda: r.has("rest1", OrderAccepted), "rest1 accepted over REST")
    assert placed_over_rest(), "placed over REST only"
    assert ws.fell_back == 1
    await until(lambda: socket.ready, "the socket back", timeout=5.0)
    r.ex.amend(amend)
    await until(lambda: r.has("rest1", OrderAmended), "amended over the socket")
    assert amended_over_the_socket() and r.wired == ["rest1"]


def refuses_an_unknown_order_entry(make_client: Callable[..., Any]) -> None:
    """``make_client(order_entry=...)``: a mode other than "websocket" or "rest" is refused."""
    with pytest.raises(ValueError, match="order_entry"):
        make_client(order_entry="fix")


async def the_budget_holds_an_op_for_a_timer(r: Rig[Any, Any], cmds: Commands) -> None:
    """With room for one order per window, b2 waits (the caller not blocked) and a timer sends it."""
    ws = r.ex.ws_orders
    assert ws is not None
    r.ex.submit(cmds.submit("b1", Side.BUY, "0.01", "59990"))
    r.ex.submit(cmds.submit("b2", Side.BUY, "0.01", "59989"))
    assert r.wired == ["b1"] and ws.held == 1, "b2 waits for the budget, without blocking the caller"
    sent_at = asyncio.get_running_loop().time()
    await until(lambda: r.has("b2", OrderAccepted), "b2 sent by the timer and accepted")
    assert asyncio.get_running_loop().time() - sent_at >= 0.3
    assert r.wired == ["b1", "b2"] and r.has("b1", OrderAccepted) and r.rest_orders() == 0


# -- the frame leaves inside the call -------------------------------------------------------------


@contextmanager
def threaded_simulator(build: Callable[[], VenueSimulator], name: str) -> Iterator[VenueSimulator]:
    """The simulator ``build`` makes, on its own thread and event loop: it reads and acts on frames while the
    test's loop is blocked."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()

    async def start() -> VenueSimulator:
        sim = build()
        await sim.start()
        return sim

    sim = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
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


def frame_written_before_submit_returns(
    order_entry: str,
    cmds: Commands,
    build_simulator: Callable[[], VenueSimulator],
    thread_name: str,
    connect: Callable[[VenueSimulator, list[Event], str], Any],
    *,
    qty: str = "0.01",
    amend_qty: str | None = None,
    events_between: bool = False,
) -> None:
    """Place ``qty`` of ``sync1``, amend it (to ``amend_qty``, else to price 59950) and cancel it while the
    client's loop is blocked: over the WebSocket the venue acts on each before the call's thread runs again;
    over REST (the control) the place is not out. ``events_between`` waits for each op's event first."""
    amend = cmds.amend("sync1", qty=amend_qty) if amend_qty else cmds.amend("sync1", price="59950")

    def amended(order: Any) -> bool:
        return getattr(order, "qty", None) == P(amend_qty) if amend_qty else getattr(order, "price", None) == P("59950")

    with threaded_simulator(build_simulator, thread_name) as sim:

        async def main() -> None:
            events: list[Event] = []
            over_rest = order_entry == "rest"
            ex = connect(sim, events, "rest" if over_rest else "websocket")
            await ex.start()
            try:
                ex.submit(cmds.submit("sync1", Side.BUY, qty, "59990"))
                # No await from here: the client's loop cannot run until the checks below are done.
                placed = blocked_until(lambda: sim.core.order("sync1") is not None, 1.0 if over_rest else 2.0)
                if over_rest:  # the control: a request handed to a task is not out while the loop is blocked
                    assert not placed
                    return
                assert placed, "the order frame was not written before submit returned"
                if events_between:
                    await until(lambda: any(isinstance(e, OrderAccepted) for e in events), "accepted")
                ex.amend(amend)
                assert blocked_until(lambda: amended(sim.core.order("sync1")))
                if events_between:
                    await until(lambda: any(isinstance(e, OrderAmended) for e in events), "amended")
                ex.cancel(cmds.cancel("sync1"))
                assert blocked_until(lambda: sim.core.open_orders() == [])
                await until(lambda: any(isinstance(e, OrderCanceled) for e in events), "the events follow")
            finally:
                await ex.stop()

        run(main())
