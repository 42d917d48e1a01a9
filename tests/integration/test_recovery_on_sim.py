"""Recovery on the simulated venue, on engine time: the state a journal leaves (with and without a
snapshot), restoring it into a new node, and reconciling each kind of recovered order with a venue
that restarted (so knows none of them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.helpers import IID, START, P, book_snapshot, feed, instrument, make_engine, settle, trade
from tradeloop.core.clock import LiveClock
from tradeloop.model.commands import AmendOrder, SubmitOrder
from tradeloop.model.enums import OrderStatus, OrderType, Side, TimeInForce
from tradeloop.model.events import (
    NodeRecovered,
    OrderCanceled,
    OrderDenied,
    OrderInitialized,
    OrderRejected,
    OrderSubmitted,
)
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.durable import reconcile
from tradeloop.trading.recovery import RecoveryError, StateFold, load_state
from tradeloop.trading.state import decode_state, encode_state


def _traded_engine() -> BacktestEngine:
    """A node with fills behind it, a resting order and a partly filled one."""
    engine = make_engine()
    feed(engine, [book_snapshot(START + 1_000)])
    engine.ctx.submit(IID, Side.BUY, P("0.5"), P("100.10"))  # crosses: filled
    engine.ctx.submit(IID, Side.SELL, P("0.2"), P("101.00"))  # rests
    part = engine.ctx.submit(IID, Side.BUY, P("3"), P("100.00"))  # joins the bid
    settle(engine, START + 2_000_000_000)
    feed(engine, [trade(START + 3_000_000_000, "100.00", "6", Side.SELL)])  # takes the queue ahead, then some of ours
    order = engine.oms.order(part)
    assert order is not None and 0 < order.filled_qty < order.qty
    return engine


def _same(a: StateFold, engine: BacktestEngine) -> None:
    assert a.portfolio is not None
    assert a.portfolio.snapshot() == engine.portfolio.snapshot()
    assert a.portfolio.initial_equity == engine.portfolio.initial_equity
    open_fold = {cid: (o.status, o.filled_qty, o.fee_total) for cid, o in a.orders.items() if not o.is_terminal}
    open_engine = {
        cid: (o.status, o.filled_qty, o.fee_total) for cid, o in engine.oms.orders.items() if not o.is_terminal
    }
    assert open_fold == open_engine


def test_snapshot_round_trip_and_tail_fold_give_the_engine_state() -> None:
    engine = _traded_engine()
    journal = engine.journal
    # Folding the whole journal gives the engine's state...
    whole = StateFold(valuation="USDT")
    whole.apply_all(journal.read())
    _same(whole, engine)
    # ... and so does a snapshot taken half way plus the records after it.
    state = engine.capture_state()
    decoded = decode_state(encode_state(state))
    assert decoded == state
    from_snapshot = StateFold.from_state(decoded)
    _same(from_snapshot, engine)
    engine.save_snapshot()
    more = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00"))
    settle(engine, START + 4_000_000_000)
    recovered = load_state(journal, "USDT")
    assert recovered is not None and recovered.snapshot_seq == state.seq
    assert recovered.replayed > 0 and more in recovered.orders
    assert recovered.portfolio.snapshot() == engine.portfolio.snapshot()


def test_a_snapshot_it_cannot_read_means_a_fold_from_the_start() -> None:
    engine = _traded_engine()
    engine.journal.save_snapshot(engine.journal.last_seq(), START, b"not a state")
    recovered = load_state(engine.journal, "USDT")
    assert recovered is not None and recovered.snapshot_seq is None
    assert recovered.portfolio.snapshot() == engine.portfolio.snapshot()


def test_a_fold_refuses_an_order_initialized_twice() -> None:
    engine = _traded_engine()
    first = next(r for _, _, r in engine.journal.read() if isinstance(r, OrderInitialized))
    engine.journal.append(first)
    with pytest.raises(RecoveryError, match="initialized twice"):
        load_state(engine.journal, "USDT")


def _intent(cid: str) -> OrderInitialized:
    return OrderInitialized(
        ts=START,
        instrument_id=IID,
        client_order_id=cid,
        strategy_id="s",
        side=Side.BUY,
        qty=P("0.1"),
        price=P("90"),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        post_only=False,
        reduce_only=False,
    )


def _restarted(engine: BacktestEngine) -> tuple[BacktestEngine, object]:
    """A new node on the same journal with the state restored; its simulated venue starts empty."""
    recovered = load_state(engine.journal, "USDT")
    assert recovered is not None
    journal = MemoryJournal()
    for _, _, record in engine.journal.read():
        journal.append(record)
    again = make_engine()
    again.journal = journal
    again.oms._journal = journal
    again.restore(recovered)
    return again, recovered


def test_recovered_orders_are_resolved_with_a_venue_that_forgot_them() -> None:
    engine = _traded_engine()
    working = {o.client_order_id for o in engine.oms.open_orders()}
    assert working
    # An intent journaled but never sent (the node died between OrderInitialized and OrderSubmitted).
    never_sent = "BTneversent1"
    engine.journal.append(
        _intent(never_sent)
    )
    # Sent, no reply before the crash.
    in_flight = "BTinflight1"
    engine.journal.append(
        _intent(in_flight)
    )
    engine.journal.append(OrderSubmitted(ts=START, instrument_id=IID, client_order_id=in_flight))
    again, recovered = _restarted(engine)
    assert {o.client_order_id for o in again.oms.open_orders()} == working | {in_flight}
    # Until the venue answers, no new order goes to the instrument.
    for cid in sorted(recovered.orders):  # type: ignore[attr-defined]
        order = again.oms.order(cid)
        assert order is not None
        again.oms.reconcile(order)
    held = again.ctx.submit(IID, Side.BUY, P("0.1"), P("95"))
    denied = again.oms.order(held)
    assert denied is not None and denied.status is OrderStatus.DENIED
    settle(again, again.clock.now_ns() + 1_000_000_000)
    assert again.oms.recovering() == []
    assert again.oms.open_orders() == []
    records = [r for _, _, r in again.journal.read()]
    reasons = {r.client_order_id: r for r in records if isinstance(r, OrderCanceled | OrderRejected)}
    assert isinstance(reasons[never_sent], OrderCanceled) and "never sent" in reasons[never_sent].reason
    assert isinstance(reasons[in_flight], OrderRejected)
    assert {cid for cid in working if isinstance(reasons.get(cid), OrderCanceled)} == working
    assert any(isinstance(r, OrderDenied) and "recovering" in r.reason for r in records)
    # The node can trade again: a new id, never one handed out before.
    cid = again.ctx.submit(IID, Side.BUY, P("0.1"), P("95"))
    assert cid not in recovered.client_order_ids  # type: ignore[attr-defined]
    assert cid != held


def test_paper_style_reconcile_waits_for_every_answer_and_journals_a_summary() -> None:
    async def scenario() -> None:
        clock = LiveClock()
        live = BacktestEngine(
            make_engine().config,
            [instrument()],
            clock.now_ns(),
            journal=MemoryJournal(),
            strategy_spec="tests.integration.helpers:Idle",
            clock=clock,
        )
        traded = _traded_engine()
        recovered = load_state(traded.journal, "USDT")
        assert recovered is not None
        live.restore(recovered)
        report = await reconcile(live, recovered, {}, timeout_s=5.0)
        assert report.orders_recovered == len(recovered.orders) > 0
        assert live.oms.open_orders() == []
        assert any(isinstance(r, NodeRecovered) for _, _, r in live.journal.read())
        assert live.journal.latest_snapshot() is not None

    asyncio.run(scenario())


def test_a_send_gate_stops_submits_and_amends_before_they_leave() -> None:
    closed = {"why": None}

    def gate(cmd: SubmitOrder | AmendOrder) -> str | None:
        return closed["why"]

    engine = make_engine()
    engine.execution._gate = gate
    engine.execution._on_refused = engine.oms.on_send_refused
    feed(engine, [book_snapshot(START + 1_000)])
    cid = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00"))
    settle(engine, START + 2_000_000_000)
    order = engine.oms.order(cid)
    assert order is not None and order.status is OrderStatus.ACCEPTED
    closed["why"] = "lease lost"
    sent = engine.execution.sent
    engine.ctx.amend(cid, price=P("99.50"))
    blocked = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("98.00"))
    settle(engine, START + 3_000_000_000)
    assert engine.execution.sent == sent and engine.execution.refused == 2
    assert order.status is OrderStatus.ACCEPTED and order.price == P("99.00")
    refused = engine.oms.order(blocked)
    assert refused is not None and refused.status is OrderStatus.DENIED


def test_a_damaged_record_in_the_middle_stops_recovery_naming_it(tmp_path: Path) -> None:
    import sqlite3

    from tradeloop.persistence import SQLiteJournal
    from tradeloop.runtime.config import JournalSection
    from tradeloop.runtime.durable import open_session_journal

    engine = _traded_engine()
    path = tmp_path / "journal.sqlite"
    journal = SQLiteJournal(path)
    for _, _, record in engine.journal.read():
        journal.append(record)
    journal.close()
    with sqlite3.connect(path) as db:
        (payload,) = db.execute("SELECT payload FROM journal WHERE seq = 5").fetchone()
        db.execute("UPDATE journal SET payload = ? WHERE seq = 5", (bytes([payload[0] ^ 0xFF]) + payload[1:],))
    with pytest.raises(RecoveryError, match=r"seq 5"):
        open_session_journal(JournalSection(path=str(path)), "USDT")
