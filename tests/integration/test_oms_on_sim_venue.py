"""The OMS, risk and execution engines against the simulated venue, with fault injection."""

from __future__ import annotations

import msgspec

from tradeloop.model.enums import OrderStatus, RejectReason, Side, TradingState
from tradeloop.model.events import (
    OrderAccepted,
    OrderInitialized,
    OrderOutcomeUnknown,
    OrderTransitionRefused,
)
from tradeloop.runtime.config import VenueSection
from tradeloop.trading.execution import ThrottleConfig

from .helpers import IID, START, P, book_snapshot, feed, make_engine, settle, trade

SEC = 1_000_000_000


def records(engine):  # type: ignore[no-untyped-def]
    return [r for _, _, r in engine.journal.read()]


def test_intent_is_journaled_before_the_order_leaves() -> None:
    engine = make_engine()
    feed(engine, [book_snapshot(START)])
    client = engine.execution.client("simA")
    journaled_when_sent: list[list[str]] = []
    original = client.submit

    def spy(cmd):  # type: ignore[no-untyped-def]
        cid = cmd.client_order_id
        kinds = [type(r).__name__ for r in records(engine) if getattr(r, "client_order_id", None) == cid]
        journaled_when_sent.append(kinds)
        original(cmd)

    client.submit = spy  # type: ignore[method-assign]
    cid = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00"))
    settle(engine, engine.clock.now_ns() + SEC)
    assert journaled_when_sent == [["SubmitOrder", "OrderInitialized", "OrderSubmitted"]]
    kinds = [type(r).__name__ for r in records(engine) if getattr(r, "client_order_id", None) == cid]
    assert kinds[:4] == ["SubmitOrder", "OrderInitialized", "OrderSubmitted", "OrderAccepted"]


def test_lost_reply_makes_outcome_unknown_then_query_resolves_without_duplicate() -> None:
    engine = make_engine()
    feed(engine, [book_snapshot(START)])
    client = engine.execution.client("simA")
    client.drop_next_replies(1)  # type: ignore[attr-defined]
    cid = engine.ctx.submit(IID, Side.BUY, P("0.5"), P("100.10"))  # crosses: fills at once, reply lost
    settle(engine, engine.clock.now_ns() + SEC)
    order = engine.oms.order(cid)
    assert order is not None and order.status is OrderStatus.SUBMITTED and order.filled_qty == 0
    settle(engine, engine.clock.now_ns() + 6 * SEC)  # past the 5 s request timeout
    kinds = [type(r).__name__ for r in records(engine) if getattr(r, "client_order_id", None) == cid]
    assert "OrderOutcomeUnknown" in kinds and "QueryOrder" in kinds
    assert order.status is OrderStatus.FILLED and order.filled_qty == P("0.5")
    assert not order.outcome_unknown
    assert engine.portfolio.position_qty(IID) == P("2.5")  # 2 BTC held + 0.5 bought, exactly once
    venue_orders = [o for o in engine.venues["simA"].open_orders()]
    assert venue_orders == []
    assert engine.venues["simA"].order(cid) is not None
    assert sum(1 for r in records(engine) if isinstance(r, OrderInitialized)) == 1
    assert sum(1 for r in records(engine) if isinstance(r, OrderOutcomeUnknown)) == 1


def test_duplicate_client_id_submit_is_idempotent() -> None:
    engine = make_engine()
    feed(engine, [book_snapshot(START)])
    cid = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00"))
    order = engine.oms.order(cid)
    assert order is not None
    from tradeloop.model.commands import SubmitOrder

    engine.oms.handle_command(
        SubmitOrder(
            ts=START,
            strategy_id="S1",
            instrument_id=IID,
            side=Side.BUY,
            qty=P("0.1"),
            price=P("99.00"),
            client_order_id=cid,
        )
    )
    settle(engine, engine.clock.now_ns() + SEC)
    assert len(engine.oms.orders) == 1
    assert len(engine.venues["simA"].open_orders()) == 1


def test_illegal_transition_is_refused_and_recorded_not_applied() -> None:
    engine = make_engine()
    feed(engine, [book_snapshot(START)])
    cid = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("100.10"))
    settle(engine, engine.clock.now_ns() + SEC)
    order = engine.oms.order(cid)
    assert order is not None and order.status is OrderStatus.FILLED
    engine.oms.on_venue_event(
        OrderAccepted(ts=engine.clock.now_ns(), instrument_id=IID, client_order_id=cid, venue_order_id="late")
    )
    assert order.status is OrderStatus.FILLED and order.venue_order_id != "late"
    refused = [r for r in records(engine) if isinstance(r, OrderTransitionRefused)]
    assert len(refused) == 1 and refused[0].status is OrderStatus.FILLED and refused[0].event == "OrderAccepted"


def test_kill_switch_cancels_every_open_order_on_the_venue() -> None:
    engine = make_engine()
    feed(engine, [book_snapshot(START)])
    for i in range(5):
        engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00") - P("0.01") * i)
        engine.ctx.submit(IID, Side.SELL, P("0.1"), P("101.00") + P("0.01") * i)
    settle(engine, engine.clock.now_ns() + SEC)
    assert len(engine.venues["simA"].open_orders()) == 10
    engine.risk.kill_switch("operator test")
    settle(engine, engine.clock.now_ns() + SEC)
    assert engine.venues["simA"].open_orders() == []
    assert all(o.status is OrderStatus.CANCELED for o in engine.oms.orders.values())
    assert engine.risk.state is TradingState.HALTED
    cid = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00"))
    order = engine.oms.order(cid)
    assert order is not None and order.status is OrderStatus.DENIED


def test_throttled_order_canceled_before_it_leaves_never_reaches_the_venue() -> None:
    engine = make_engine(
        venues={"simA": VenueSection(balances={"USDT": "100000", "BTC": "2"}, throttle=ThrottleConfig(rate=1, burst=1))}
    )
    feed(engine, [book_snapshot(START)])
    first = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00"))
    second = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("98.00"))
    assert engine.execution.queued("simA") == 1
    engine.ctx.cancel(second)
    settle(engine, engine.clock.now_ns() + 3 * SEC)
    o1, o2 = engine.oms.order(first), engine.oms.order(second)
    assert o1 is not None and o1.status is OrderStatus.ACCEPTED
    assert o2 is not None and o2.status is OrderStatus.CANCELED
    assert engine.venues["simA"].order(second) is None


def test_rejected_order_changes_no_state() -> None:
    engine = make_engine()
    feed(engine, [book_snapshot(START)])
    before = engine.portfolio.snapshot()
    client = engine.execution.client("simA")
    client.reject_next(1, RejectReason.INSUFFICIENT_BALANCE)  # type: ignore[attr-defined]
    cid = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("100.10"))
    settle(engine, engine.clock.now_ns() + SEC)
    order = engine.oms.order(cid)
    assert order is not None and order.status is OrderStatus.REJECTED
    assert engine.portfolio.snapshot() == before
    assert engine.oms.open_orders() == []


def test_amend_on_venue_without_amend_is_cancel_replace() -> None:
    from tradeloop.runtime.config import SimSection

    engine = make_engine(
        venues={"simA": VenueSection(balances={"USDT": "100000", "BTC": "2"}, sim=SimSection(supports_amend=False))}
    )
    feed(engine, [book_snapshot(START)])
    cid = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00"))
    settle(engine, engine.clock.now_ns() + SEC)
    engine.ctx.amend(cid, price=P("99.50"))
    settle(engine, engine.clock.now_ns() + SEC)
    old = engine.oms.order(cid)
    assert old is not None and old.status is OrderStatus.CANCELED
    working = engine.oms.open_orders(IID)
    assert len(working) == 1 and working[0].price == P("99.50") and working[0].client_order_id != cid
    assert [o.price for o in engine.venues["simA"].open_orders()] == [P("99.50")]


def test_resting_order_fills_from_trades_and_accounting_holds() -> None:
    engine = make_engine()
    feed(engine, [book_snapshot(START)])
    cid = engine.ctx.submit(IID, Side.BUY, P("1"), P("100.00"))  # joins 5 BTC already at 100.00
    settle(engine, engine.clock.now_ns() + SEC)
    t = engine.clock.now_ns()
    feed(engine, [trade(t + 1, "100.00", "5", Side.SELL), trade(t + 2, "100.00", "0.4", Side.SELL)])
    order = engine.oms.order(cid)
    assert order is not None and order.filled_qty == P("0.4") and order.status is OrderStatus.PARTIALLY_FILLED
    assert engine.stats.invariant_checks >= 1
    assert msgspec.json.decode(msgspec.json.encode(engine.portfolio.snapshot())) == engine.portfolio.snapshot()
