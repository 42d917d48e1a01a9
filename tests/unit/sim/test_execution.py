"""The execution client: latency on both legs, dropped replies, injected rejections."""

from __future__ import annotations

from tradeloop.core.clock import SimClock
from tradeloop.model.commands import CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import OrderStatus, RejectReason, Side
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderCancelRejected,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.venues.base import ExecutionClient
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.sim.execution import SimExecutionClient
from tradeloop.venues.sim.venue import SimulatedVenue

from .helpers import INSTRUMENTS, SPOT_ID, d, levels

OL = 3_000_000
RL = 2_000_000


class Setup:
    def __init__(self) -> None:
        self.clock = SimClock(10_000)
        self.received: list[tuple[int, Event]] = []
        config = SimVenueConfig(order_latency_ns=OL, response_latency_ns=RL, maker_fee=0, taker_fee=0)
        self.venue = SimulatedVenue("sim", INSTRUMENTS, config, self.clock, lambda e: None, {"USDT": d("10000")})
        self.client = SimExecutionClient(self.venue, self.clock, self._receive)
        self.venue.on_market_data(
            BookDeltas(SPOT_ID, 0, 0, 1, 1, levels(("100", "5")), levels(("101", "0.4"), ("102", "5")), snapshot=True)
        )

    def _receive(self, event: Event) -> None:
        self.received.append((self.clock.now_ns(), event))

    def submit(self, cid: str, qty: str, price: str) -> None:
        self.client.submit(
            SubmitOrder(
                ts=self.clock.now_ns(),
                strategy_id="s",
                instrument_id=SPOT_ID,
                side=Side.BUY,
                qty=d(qty),
                price=d(price),
                client_order_id=cid,
            )
        )

    def run_until(self, ts: int) -> None:
        self.clock.advance_to(ts)


def test_client_satisfies_protocol() -> None:
    s = Setup()
    client: ExecutionClient = s.client
    assert (client.venue, client.supports_amend) == ("sim", True)


def test_events_arrive_after_order_and_response_latency() -> None:
    s = Setup()
    t0 = s.clock.now_ns()
    s.submit("a1", "1", "101")
    s.run_until(t0 + OL + RL - 1)
    assert s.received == []
    assert s.venue.order("a1") is not None  # the venue already has it
    s.run_until(t0 + OL + RL + 10_000)
    assert [(ts, type(e)) for ts, e in s.received] == [
        (t0 + OL + RL, OrderAccepted),
        (t0 + OL + RL, OrderFilled),
    ]
    assert all(e.ts == t0 + OL for _, e in s.received)  # stamped with venue time


def test_market_data_fills_arrive_after_response_latency() -> None:
    s = Setup()
    s.submit("a1", "1", "100")
    s.run_until(50_000_000)
    s.received.clear()
    t1 = s.clock.now_ns()
    s.venue.on_market_data(Trade(SPOT_ID, t1, t1, d("100"), d("5.5"), Side.SELL))
    s.run_until(t1 + RL)
    [(ts, fill)] = s.received
    assert ts == t1 + RL
    assert isinstance(fill, OrderFilled) and fill.last_qty == d("0.5")


def test_dropped_replies_are_recovered_by_query() -> None:
    s = Setup()
    s.client.drop_next_replies(1)
    s.submit("a1", "1", "101")  # accepted and 0.4 filled at the venue, but the replies are lost
    s.run_until(100_000_000)
    assert s.received == []
    assert s.client.dropped_events == 2
    # A later spontaneous fill is delivered.
    t1 = s.clock.now_ns()
    s.venue.on_market_data(Trade(SPOT_ID, t1, t1, d("101"), d("0.1"), Side.SELL))
    s.run_until(t1 + RL)
    assert [type(e) for _, e in s.received] == [OrderFilled]
    s.received.clear()

    t2 = s.clock.now_ns()
    s.client.query(QueryOrder(ts=t2, instrument_id=SPOT_ID, client_order_id="a1"))
    s.run_until(t2 + OL + RL)
    events = [e for _, e in s.received]
    *fills, report = events
    assert [(f.last_qty, f.last_price) for f in fills if isinstance(f, OrderFilled)] == [
        (d("0.4"), d("101")),
        (d("0.1"), d("101")),
    ]
    assert len(fills) == 2
    assert isinstance(report, OrderStatusReport)
    assert (report.status, report.filled_qty) == (OrderStatus.PARTIALLY_FILLED, d("0.5"))


def test_reject_next_refuses_requests_without_reaching_the_venue() -> None:
    s = Setup()
    s.client.reject_next(2, RejectReason.RATE_LIMITED)
    s.submit("a1", "1", "100")
    s.client.cancel(CancelOrder(ts=0, strategy_id="s", instrument_id=SPOT_ID, client_order_id="a1"))
    s.submit("a2", "1", "100")
    s.run_until(100_000_000)
    events = [e for _, e in s.received]
    assert isinstance(events[0], OrderRejected) and events[0].reason is RejectReason.RATE_LIMITED
    assert isinstance(events[1], OrderCancelRejected) and events[1].reason is RejectReason.RATE_LIMITED
    assert isinstance(events[2], OrderAccepted) and events[2].client_order_id == "a2"
    assert s.venue.order("a1") is None
    assert [o.client_order_id for o in s.venue.open_orders()] == ["a2"]


def test_replies_keep_request_order_at_equal_times() -> None:
    s = Setup()
    for i in range(5):
        s.submit(f"o{i}", "0.1", "99")
    s.run_until(100_000_000)
    assert [e.client_order_id for _, e in s.received if isinstance(e, OrderAccepted)] == [f"o{i}" for i in range(5)]
