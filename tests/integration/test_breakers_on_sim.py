"""Every circuit breaker and the operator's kill/resume on a two-venue node of simulated venues.

Each test trips one breaker by driving market data and orders, then observes the journaled
``TradingStateChanged`` (target state and reason) and ``RiskAlert`` (check and message), and either
every open order canceled at both venues (HALTED) or position-increasing orders denied (REDUCING).
Nothing resumes on its own: only ``engine.control.resume`` does, with an audit entry.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tradeloop.model.book import OrderBook, SequenceRule
from tradeloop.model.commands import CancelAllOrders
from tradeloop.model.data import BookDeltas
from tradeloop.model.enums import OrderStatus, RejectReason, Side, TradingState
from tradeloop.model.events import RiskAlert, TradingStateChanged
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import AuditSection, BacktestConfig, VenueSection
from tradeloop.security.audit import AuditLog, verify_audit_log
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext
from tradeloop.trading.risk_config import (
    BreakersConfig,
    RejectRateBreakerConfig,
    RiskConfig,
    StaleDataBreakerConfig,
    VolatilityBreakerConfig,
)

from .helpers import IID, START, P, feed, settle

A = IID
B = InstrumentId("simB", "BTCUSDT")
SEC = 1_000_000_000


class BuyOnEveryBook(Strategy[StrategyConfig]):
    """Joins the best bid of simA on every simA book (to see which state its orders meet)."""

    def __init__(self, strategy_id: str, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        self.sent: list[str] = []

    def on_book(self, book: OrderBook) -> None:
        bid = book.best_bid()
        if book.instrument_id == A and bid is not None:
            self.sent.append(self.ctx.submit(A, Side.BUY, P("0.1"), bid))


def make(
    risk: RiskConfig, audit_path: Path | None = None, strategy: str = "tests.integration.helpers:Idle"
) -> BacktestEngine:
    venue = VenueSection(balances={"USDT": "100000", "BTC": "2"})
    config = BacktestConfig(
        venues={"simA": venue, "simB": venue},
        risk=risk,
        audit=AuditSection(path=str(audit_path) if audit_path else None),
    )
    instruments = [
        Instrument(
            id=iid,
            base="BTC",
            quote="USDT",
            tick_size=P("0.01"),
            lot_size=P("0.00001"),
            min_qty=P("0.00001"),
            min_notional=P("5"),
        )
        for iid in (A, B)
    ]
    return BacktestEngine(
        config,
        instruments,
        START,
        sequence_rules={"simA": SequenceRule.RANGE, "simB": SequenceRule.RANGE},
        journal=MemoryJournal(),
        strategy_spec=strategy,
        check_invariants=True,
    )


def snap(iid: InstrumentId, ts: int, seq: int, bid: str, ask: str) -> BookDeltas:
    return BookDeltas(
        instrument_id=iid,
        ts_event=ts,
        ts_recv=ts,
        first_seq=seq,
        last_seq=seq,
        snapshot=True,
        bids=[(P(bid), P("5"))],
        asks=[(P(ask), P("5"))],
    )


def breakers(**kw: Any) -> RiskConfig:
    return RiskConfig(breakers=BreakersConfig(**kw))


def journaled(engine: BacktestEngine, kind: type[Any]) -> list[Any]:
    return [r for _, _, r in engine.journal.read() if isinstance(r, kind)]


def submit(engine: BacktestEngine, iid: InstrumentId, side: Side, qty: str, price: str) -> str:
    return engine.ctx.submit(iid, side, P(qty), P(price))


def status(engine: BacktestEngine, cid: str) -> OrderStatus:
    order = engine.oms.order(cid)
    assert order is not None
    return order.status


def rest_orders_on_both_venues(engine: BacktestEngine) -> list[str]:
    cids = [
        submit(engine, A, Side.BUY, "0.1", "96.00"),
        submit(engine, A, Side.SELL, "0.1", "104.50"),
        submit(engine, B, Side.BUY, "0.1", "96.00"),
        submit(engine, B, Side.SELL, "0.1", "104.50"),
    ]
    settle(engine, engine.clock.now_ns() + SEC)
    assert [len(engine.venues[v].open_orders()) for v in ("simA", "simB")] == [2, 2]
    return cids


def assert_tripped(engine: BacktestEngine, check: str, state: TradingState) -> RiskAlert:
    """One alert of ``check`` and one state change to ``state`` with the alert's message as reason."""
    [alert] = [a for a in journaled(engine, RiskAlert) if a.check == check]
    [change] = journaled(engine, TradingStateChanged)
    assert change.state is state and change.reason == alert.message and change.ts == alert.ts
    assert engine.risk.state is state and engine.risk.state_reason == alert.message
    assert (alert.ts, f"risk.{check}", alert.message) in engine.series.alerts  # the report's alerts table
    return alert


def assert_all_canceled(engine: BacktestEngine, cids: list[str]) -> None:
    settle(engine, engine.clock.now_ns() + SEC)
    assert engine.venues["simA"].open_orders() == [] and engine.venues["simB"].open_orders() == []
    assert engine.oms.open_orders() == []
    assert all(status(engine, c) is OrderStatus.CANCELED for c in cids)


def assert_halted_denies_everything(engine: BacktestEngine) -> None:
    for iid in (A, B):
        cid = submit(engine, iid, Side.SELL, "0.1", "104.00")  # even a reducing one
        assert status(engine, cid) is OrderStatus.DENIED


# -- breakers --------------------------------------------------------------------------------------


def test_reject_rate_halts_and_cancels_on_both_venues() -> None:
    engine = make(breakers(reject_rate=RejectRateBreakerConfig(max_reject_bps=5000, min_orders=4, window_ms=10_000)))
    feed(engine, [snap(A, START, 1, "100.00", "100.10"), snap(B, START, 1, "100.00", "100.10")])
    cids = rest_orders_on_both_venues(engine)  # simA: 2 accepted so far
    engine.execution.client("simA").reject_next(3, RejectReason.RATE_LIMITED)  # type: ignore[attr-defined]
    rejected = [submit(engine, A, Side.BUY, "0.1", f"97.{i}0") for i in range(3)]
    settle(engine, engine.clock.now_ns() + SEC)
    assert [status(engine, c) for c in rejected] == [OrderStatus.REJECTED] * 3
    # 2 of 4 answers rejected is exactly the limit; the 5th answer makes it 3 of 5 = 6000 bps
    alert = assert_tripped(engine, "reject_rate", TradingState.HALTED)
    assert alert.message == (
        "reject_rate: simA rejected 3 of the last 5 submits in 10000 ms (6000 bps, max 5000 bps); "
        "last reject: RATE_LIMITED injected rejection (simulated venue)"
    )
    assert engine.breakers.trips == {"reject_rate": 1}
    assert_all_canceled(engine, cids)
    assert [c.reason for c in journaled(engine, CancelAllOrders)] == [alert.message]
    assert_halted_denies_everything(engine)


def test_volatility_moves_to_reducing_and_denies_increasing_orders() -> None:
    engine = make(breakers(volatility=VolatilityBreakerConfig(max_move_bps=300, window_ms=60_000)))
    feed(engine, [snap(A, START, 1, "100.00", "100.10"), snap(B, START, 1, "100.00", "100.10")])
    cids = rest_orders_on_both_venues(engine)
    assert journaled(engine, RiskAlert) == []
    t = engine.clock.now_ns()
    feed(engine, [snap(A, t + 500_000_000, 2, "103.00", "103.10")])  # 100.05 -> 103.05: 295 bps, under
    assert engine.risk.state is TradingState.ACTIVE
    feed(engine, [snap(A, t + 2 * SEC, 3, "104.00", "104.10")])  # 100.05 (at START) -> 104.05 (at START + 4 s)
    alert = assert_tripped(engine, "volatility", TradingState.REDUCING)
    bps = math.ceil(math.log(104.05 / 100.05) * 10_000)
    assert alert.message == (
        f"volatility: simA:BTCUSDT mid rose from 100.05 to 104.05 within 4000 ms, a {bps} bps log move "
        "(max 300 bps in 60000 ms)"
    )
    # REDUCING keeps working orders, denies what would grow the 2 BTC position, lets a reduction through
    assert [len(engine.venues[v].open_orders()) for v in ("simA", "simB")] == [2, 2]
    assert all(status(engine, c) is OrderStatus.ACCEPTED for c in cids)
    denied = submit(engine, A, Side.BUY, "0.1", "103.00")
    assert status(engine, denied) is OrderStatus.DENIED
    reducing = submit(engine, B, Side.SELL, "0.5", "105.00")
    settle(engine, engine.clock.now_ns() + SEC)
    assert status(engine, reducing) is OrderStatus.ACCEPTED


def test_a_strategy_reacting_to_the_tripping_book_already_meets_the_new_state() -> None:
    engine = make(
        breakers(volatility=VolatilityBreakerConfig(max_move_bps=300)),
        strategy="tests.integration.test_breakers_on_sim:BuyOnEveryBook",
    )
    strategy = engine.strategy
    assert isinstance(strategy, BuyOnEveryBook)
    feed(engine, [snap(A, START, 1, "100.00", "100.10")])
    feed(engine, [snap(A, START + SEC, 2, "104.00", "104.10")])  # trips: REDUCING
    first, second = strategy.sent
    assert status(engine, first) is OrderStatus.ACCEPTED
    assert status(engine, second) is OrderStatus.DENIED  # the buy on the jump book would grow the position
    assert engine.risk.state is TradingState.REDUCING


def test_stale_feed_on_one_venue_halts_cancels_everywhere_and_stays_until_resumed(tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.jsonl"
    engine = make(breakers(stale_data=StaleDataBreakerConfig(max_age_ms=3000, check_interval_ms=1000)), audit_path)
    feed(engine, [snap(A, START, 1, "100.00", "100.10"), snap(B, START, 1, "100.00", "100.10")])  # to START+1s
    cids = rest_orders_on_both_venues(engine)  # to START+2s
    # only simA keeps coming; simB's last update was at START
    feed(engine, [snap(A, START + 2 * SEC + i * 250_000_000, 2 + i, "100.00", "100.10") for i in range(8)])
    alert = assert_tripped(engine, "stale_data", TradingState.HALTED)
    assert alert.message == "stale_data: simB:BTCUSDT no update for 4000 ms (max 3000 ms)"
    assert alert.ts == START + 4 * SEC  # the first check after the book got older than 3 s
    assert_all_canceled(engine, cids)
    assert_halted_denies_everything(engine)

    # the feed comes back and time passes: still halted
    t = engine.clock.now_ns()
    feed(engine, [snap(iid, t + i * 500_000_000, 20 + i, "100.00", "100.10") for i in range(20) for iid in (A, B)])
    settle(engine, engine.clock.now_ns() + 60 * SEC)
    assert engine.risk.state is TradingState.HALTED
    assert len(journaled(engine, TradingStateChanged)) == 1
    assert AuditLog(audit_path).entries() == []

    engine.control.resume("ops-alice", "simB feed restored")
    assert engine.risk.state is TradingState.ACTIVE
    [entry] = AuditLog(audit_path).entries()
    assert (entry.actor, entry.action) == ("ops-alice", "resume")
    assert entry.detail == {"reason": "simB feed restored", "previous_state": "HALTED", "state": "ACTIVE"}
    assert entry.ts_ns == engine.clock.now_ns()  # engine time
    assert verify_audit_log(audit_path) == []
    last = journaled(engine, TradingStateChanged)[-1]
    assert last.state is TradingState.ACTIVE and last.reason == "resume by ops-alice: simB feed restored"
    cid = submit(engine, B, Side.BUY, "0.1", "99.00")
    settle(engine, engine.clock.now_ns() + SEC)
    assert status(engine, cid) is OrderStatus.ACCEPTED


def test_daily_loss_halts_and_cancels_on_both_venues() -> None:
    engine = make(RiskConfig(max_daily_loss="50"))
    feed(engine, [snap(A, START, 1, "100.00", "100.10"), snap(B, START, 1, "100.00", "100.10")])
    first = submit(engine, A, Side.BUY, "0.1", "100.10")  # fills: the day's baseline
    settle(engine, engine.clock.now_ns() + SEC)
    assert status(engine, first) is OrderStatus.FILLED
    resting = [submit(engine, A, Side.SELL, "0.1", "104.50"), submit(engine, B, Side.SELL, "0.1", "104.50")]
    settle(engine, engine.clock.now_ns() + SEC)
    t = engine.clock.now_ns()
    feed(engine, [snap(A, t + 1, 2, "80.00", "80.10"), snap(B, t + 2, 2, "80.00", "80.10")])
    assert engine.risk.state is TradingState.ACTIVE  # equity is checked on fills and samples
    second = submit(engine, A, Side.BUY, "0.1", "80.10")
    settle(engine, engine.clock.now_ns() + SEC)
    assert status(engine, second) is OrderStatus.FILLED
    alert = assert_tripped(engine, "daily_loss", TradingState.HALTED)
    # marks fell 20.00 on 2.1 + 2 BTC = 82; the second buy paid 0.05 over the mid on 0.1 and a 0.04 % fee
    loss = P("82") + P("0.005") + P("0.1") * P("80.10") * 4 // 10_000 // 10**9
    assert loss == P("82.008204")
    assert "is 82.008204 below the day's start" in alert.message and alert.message.endswith("(max 50)")
    assert_all_canceled(engine, resting)
    assert_halted_denies_everything(engine)


def test_drawdown_moves_to_reducing() -> None:
    engine = make(RiskConfig(max_drawdown="30", drawdown_action="reducing"))
    feed(engine, [snap(A, START, 1, "100.00", "100.10"), snap(B, START, 1, "100.00", "100.10")])
    submit(engine, B, Side.BUY, "0.1", "100.10")  # fills: equity peak
    settle(engine, engine.clock.now_ns() + SEC)
    resting = submit(engine, A, Side.SELL, "0.1", "104.50")
    t = engine.clock.now_ns()
    feed(engine, [snap(A, t + 1, 2, "90.00", "90.10")])  # 2 BTC on simA: -20
    sell = submit(engine, B, Side.SELL, "0.1", "100.00")  # a fill re-checks equity: still within 30
    settle(engine, engine.clock.now_ns() + SEC)
    assert status(engine, sell) is OrderStatus.FILLED and engine.risk.state is TradingState.ACTIVE
    t = engine.clock.now_ns()
    feed(engine, [snap(A, t + 1, 3, "80.00", "80.10")])  # -40 from the peak
    sell = submit(engine, B, Side.SELL, "0.1", "100.00")
    settle(engine, engine.clock.now_ns() + SEC)
    alert = assert_tripped(engine, "drawdown", TradingState.REDUCING)
    assert "below the peak" in alert.message and alert.message.endswith("(max 30)")
    assert status(engine, resting) is OrderStatus.ACCEPTED  # REDUCING keeps working orders
    assert status(engine, submit(engine, A, Side.BUY, "0.1", "80.10")) is OrderStatus.DENIED


# -- operator control ------------------------------------------------------------------------------


def test_kill_cancels_every_order_on_every_venue_denies_submits_and_is_audited(tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.jsonl"
    engine = make(RiskConfig(), audit_path)
    feed(engine, [snap(A, START, 1, "100.00", "100.10"), snap(B, START, 1, "100.00", "100.10")])
    cids = rest_orders_on_both_venues(engine)
    engine.control.kill("ops-bob", "fat finger on simB")
    assert engine.risk.state is TradingState.HALTED
    message = "kill_switch by ops-bob: fat finger on simB"
    alert = assert_tripped(engine, "kill_switch", TradingState.HALTED)
    assert alert.message == message
    [cancel_all] = journaled(engine, CancelAllOrders)
    assert (cancel_all.strategy_id, cancel_all.reason, cancel_all.venue) == ("operator", message, None)
    assert_all_canceled(engine, cids)
    assert_halted_denies_everything(engine)
    settle(engine, engine.clock.now_ns() + 3600 * SEC)  # time alone changes nothing
    assert engine.risk.state is TradingState.HALTED
    [entry] = AuditLog(audit_path).entries()
    assert (entry.actor, entry.action) == ("ops-bob", "kill_switch")
    assert entry.detail == {"reason": "fat finger on simB", "previous_state": "ACTIVE", "state": "HALTED"}

    engine.control.resume("ops-bob", "checked")
    assert [e.action for e in AuditLog(audit_path).entries()] == ["kill_switch", "resume"]
    assert verify_audit_log(audit_path) == []
    cid = submit(engine, A, Side.BUY, "0.1", "99.00")
    settle(engine, engine.clock.now_ns() + SEC)
    assert status(engine, cid) is OrderStatus.ACCEPTED


def test_default_config_wires_no_breaker_and_no_audit() -> None:
    engine = make(RiskConfig())
    assert engine.clock.next_timer_ns() is None  # no stale data timer
    engine.control.set_reducing("ops", "maintenance")  # works without an audit log
    assert engine.risk.state is TradingState.REDUCING


def test_kill_also_cancels_orders_the_engine_does_not_know() -> None:
    # Orders left at the venue from before a restart are not in the OMS; the kill switch must still
    # ask every venue to cancel everything, not only the orders it knows.
    from tradeloop.model.commands import SubmitOrder
    from tradeloop.model.enums import OrderType, TimeInForce

    engine = make(RiskConfig())
    feed(engine, [snap(A, START, 1, "100.00", "100.10"), snap(B, START, 1, "100.00", "100.10")])
    for venue, iid in (("simA", A), ("simB", B)):
        engine.venues[venue].handle_submit(
            SubmitOrder(
                ts=engine.clock.now_ns(),
                strategy_id="previous-run",
                instrument_id=iid,
                side=Side.BUY,
                qty=P("0.1"),
                price=P("95.00"),
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                client_order_id=f"ORPHAN{venue}",
            )
        )
    settle(engine, engine.clock.now_ns() + SEC)
    assert [len(engine.venues[v].open_orders()) for v in ("simA", "simB")] == [1, 1]
    assert engine.oms.open_orders() == []
    engine.control.kill("ops-bob", "flatten everything")
    settle(engine, engine.clock.now_ns() + SEC)
    assert [len(engine.venues[v].open_orders()) for v in ("simA", "simB")] == [0, 0]
