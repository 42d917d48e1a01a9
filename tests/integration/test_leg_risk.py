"""Leg execution on two simulated venues: clean groups, rejected legs, partial fills, refusals.

Every scenario runs the real OMS, risk engine and simulated venues; the venue's fault injection
(``SimExecutionClient.reject_next``) makes one leg be rejected.
"""

from __future__ import annotations

from typing import cast

import pytest

from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.data import BookDeltas, Level
from tradeloop.model.enums import InstrumentKind, RejectReason, Side, TimeInForce
from tradeloop.model.events import OrderEvent, StrategyAlert
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, VenueSection
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext
from tradeloop.strategies.legs import Leg, LegExecutor, LegGroupResult, LegRiskConfig, aggressive_price
from tradeloop.venues.sim.execution import SimExecutionClient

P = fixed.parse
A = InstrumentId("simA", "BTCUSDT")
B = InstrumentId("simB", "BTCUSDT")
START = 1_700_000_000_000_000_000
MS = 1_000_000


class LegHarness(Strategy[StrategyConfig]):
    """Holds a LegExecutor that the tests drive; forwards order events to it."""

    def __init__(self, strategy_id: str, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        self.results: list[LegGroupResult] = []
        self.legs = LegExecutor(
            ctx, LegRiskConfig(retries=2, hedge_slippage_bps=20, leg_timeout_ms=500), on_done=self.results.append
        )

    def on_order(self, event: OrderEvent) -> None:
        self.legs.on_order(event)


def spot(iid: InstrumentId) -> Instrument:
    return Instrument(
        id=iid,
        base="BTC",
        quote="USDT",
        kind=InstrumentKind.SPOT,
        tick_size=P("0.1"),
        lot_size=P("0.001"),
        min_qty=P("0.001"),
        min_notional=P("5"),
    )


def make_engine(b_balances: dict[str, str] | None = None) -> BacktestEngine:
    venues = {
        "simA": VenueSection(balances={"USDT": "100000", "BTC": "2"}),
        "simB": VenueSection(balances=b_balances or {"USDT": "100000", "BTC": "2"}),
    }
    return BacktestEngine(
        BacktestConfig(venues=venues),
        [spot(A), spot(B)],
        START,
        sequence_rules={"simA": SequenceRule.NONE, "simB": SequenceRule.NONE},
        journal=MemoryJournal(),
        strategy_spec="tests.integration.test_leg_risk:LegHarness",
        check_invariants=True,
    )


def snapshot(iid: InstrumentId, ts: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> BookDeltas:
    def levels(rows: list[tuple[str, str]]) -> list[Level]:
        return [(P(p), P(q)) for p, q in rows]

    return BookDeltas(
        instrument_id=iid,
        ts_event=ts,
        ts_recv=ts,
        first_seq=1,
        last_seq=1,
        snapshot=True,
        bids=levels(bids),
        asks=levels(asks),
    )


def setup(
    engine: BacktestEngine, b_asks: list[tuple[str, str]] | None = None, b_bids: list[tuple[str, str]] | None = None
) -> LegHarness:
    """simA 60000.0 / 60000.1, simB 60030.0 / 60030.1 (deep), delivered to venue and engine."""
    items = [
        snapshot(A, START, [("60000.0", "5"), ("59999.0", "5")], [("60000.1", "5"), ("60001.0", "5")]),
        snapshot(B, START, b_bids or [("60030.0", "5"), ("60029.0", "5")], b_asks or [("60030.1", "5")]),
    ]
    for item in items:
        engine.venues[item.instrument_id.venue].on_market_data(item)
        engine.hub.on_data(item)
    engine.strategy.on_start()
    return cast(LegHarness, engine.strategy)


def arb_legs(qty: str = "0.5", sell_price: str = "60030.0") -> list[Leg]:
    return [Leg(A, Side.BUY, P(qty), P("60000.1")), Leg(B, Side.SELL, P(qty), P(sell_price))]


def client(engine: BacktestEngine, venue: str) -> SimExecutionClient:
    return cast(SimExecutionClient, engine.execution.client(venue))


def run_for(engine: BacktestEngine, ns: int) -> None:
    engine.clock.advance_to(engine.clock.now_ns() + ns)


def positions(engine: BacktestEngine) -> tuple[int, int]:
    """BTC change on each venue since the start (spot position = base balance)."""
    return engine.portfolio.position_qty(A) - P("2"), engine.portfolio.position_qty(B) - P("2")


def journal_alerts(engine: BacktestEngine) -> list[StrategyAlert]:
    return [rec for _, _, rec in engine.journal.read() if isinstance(rec, StrategyAlert)]


def test_clean_group_fills_both_legs_and_raises_no_alert() -> None:
    engine = make_engine()
    harness = setup(engine)
    gid = harness.legs.execute(arb_legs())
    assert harness.legs.busy()
    run_for(engine, 10 * MS)
    assert not harness.legs.busy()
    (result,) = harness.results
    assert result.group_id == gid
    assert result.filled == {"simA:BTCUSDT": P("0.5"), "simB:BTCUSDT": -P("0.5")}
    assert result.clean and not result.hedged
    assert positions(engine) == (P("0.5"), -P("0.5"))
    assert engine.series.alerts == [] and journal_alerts(engine) == []


def test_rejected_leg_is_retried_and_the_alert_is_journaled() -> None:
    engine = make_engine()
    harness = setup(engine)
    client(engine, "simB").reject_next(1, RejectReason.OTHER)
    harness.legs.execute(arb_legs())
    run_for(engine, 50 * MS)
    (result,) = harness.results
    assert result.hedged and result.clean
    assert result.filled == {"simA:BTCUSDT": P("0.5"), "simB:BTCUSDT": -P("0.5")}
    assert positions(engine) == (P("0.5"), -P("0.5"))
    assert "retry 1 simB:BTCUSDT SELL 0.500 at 60030.0" in result.message
    ((_, kind, message),) = engine.series.alerts
    assert kind == "leg_risk" and message == result.message
    (alert,) = journal_alerts(engine)
    assert alert.kind == "leg_risk" and alert.message == result.message and alert.strategy_id == "S1"


def test_leg_rejected_every_time_unwinds_the_filled_leg_to_flat() -> None:
    engine = make_engine()
    harness = setup(engine)
    # Initial sell, two retries and the aggressive hedge are all refused.
    client(engine, "simB").reject_next(4, RejectReason.OTHER)
    harness.legs.execute(arb_legs())
    run_for(engine, 100 * MS)
    (result,) = harness.results
    assert result.hedged and result.clean
    a_pos, b_pos = positions(engine)
    assert abs(a_pos + b_pos) < spot(A).lot_size and a_pos == 0 and b_pos == 0
    assert result.filled == {"simA:BTCUSDT": 0, "simB:BTCUSDT": 0}
    assert "unwind simA:BTCUSDT SELL 0.500 IOC at 59880.0" in result.message  # 60000.0 - 20 bps (120.0)
    assert [kind for _, kind, _ in engine.series.alerts] == ["leg_risk"]
    assert len(journal_alerts(engine)) == 1
    # Four submits on simB (initial, 2 retries, hedge), then the unwind on simA: buy then sell.
    sells_b = [o for o in engine.oms.orders.values() if o.instrument_id == B]
    assert len(sells_b) == 4 and all(o.filled_qty == 0 for o in sells_b)


def test_partial_fill_is_hedged_within_the_slippage_bound() -> None:
    engine = make_engine()
    # Only 0.2 bid at the arb price on simB; more size lower down, within 20 bps.
    harness = setup(engine, b_bids=[("60030.0", "0.2"), ("59990.0", "5")])
    harness.legs.execute(arb_legs())
    run_for(engine, 100 * MS)
    (result,) = harness.results
    assert result.hedged and result.clean
    assert positions(engine) == (P("0.5"), -P("0.5"))
    # The retries at 60030.0 find that level already taken; the hedge limit is 60030.0 - 120.0.
    hedge_price = aggressive_price(spot(B), Side.SELL, P("60030.0"), 20)
    assert hedge_price == P("59910.0")
    assert "hedge simB:BTCUSDT SELL 0.300 IOC at 59910.0" in result.message
    fills_b = sorted((f.price, f.qty) for f in engine.series.fills if f.instrument == "simB:BTCUSDT")
    assert fills_b == [(P("59990.0"), P("0.3")), (P("60030.0"), P("0.2"))]


def test_insufficient_balance_skips_retries_and_unwinds() -> None:
    engine = make_engine(b_balances={"USDT": "100000", "BTC": "0.1"})
    harness = setup(engine)
    harness.legs.execute(arb_legs())
    run_for(engine, 50 * MS)
    (result,) = harness.results
    assert result.clean and result.hedged
    assert engine.portfolio.position_qty(A) == P("2") and engine.portfolio.position_qty(B) == P("0.1")
    assert "INSUFFICIENT_BALANCE" in result.message and "retry" not in result.message
    assert "unwind simA:BTCUSDT SELL 0.500" in result.message


def test_unwind_that_cannot_trade_reports_the_residual() -> None:
    engine = make_engine()
    harness = setup(engine)
    client(engine, "simB").reject_next(4, RejectReason.OTHER)
    client(engine, "simA").reject_next(0, RejectReason.OTHER)
    harness.legs.execute(arb_legs())
    # Once simA's buy filled, every later simA request is refused too: the unwind cannot trade.
    run_for(engine, 3 * MS)
    client(engine, "simA").reject_next(10, RejectReason.OTHER)
    run_for(engine, 100 * MS)
    (result,) = harness.results
    assert not result.clean
    assert result.residual == {"simA:BTCUSDT": P("0.5"), "simB:BTCUSDT": 0}
    assert "UNHEDGED residual simA:BTCUSDT 0.5" in result.message
    assert positions(engine) == (P("0.5"), 0)
    assert [kind for _, kind, _ in engine.series.alerts] == ["leg_risk"]


def test_resting_legs_time_out_and_are_canceled() -> None:
    engine = make_engine()
    harness = setup(engine)
    # GTC legs priced away from the market rest; the timeout cancels both, nothing filled.
    legs = [Leg(A, Side.BUY, P("0.5"), P("59990.0")), Leg(B, Side.SELL, P("0.5"), P("60040.0"))]
    harness.legs.execute(legs, time_in_force=TimeInForce.GTC)
    run_for(engine, 400 * MS)
    assert harness.legs.busy() and harness.results == []
    run_for(engine, 200 * MS)
    (result,) = harness.results
    assert result.clean and not result.hedged
    assert "timeout after 500 ms" in result.message
    assert engine.oms.open_orders() == []
    assert [kind for _, kind, _ in engine.series.alerts] == ["leg_risk"]


def test_bad_legs_are_refused_with_a_clear_error() -> None:
    engine = make_engine()
    harness = setup(engine)
    with pytest.raises(ValueError, match="at least one leg"):
        harness.legs.execute([])
    with pytest.raises(ValueError, match="unknown instrument"):
        harness.legs.execute([Leg(InstrumentId("simC", "BTCUSDT"), Side.BUY, P("1"), None)])
    with pytest.raises(ValueError, match="multiple of the lot"):
        harness.legs.execute([Leg(A, Side.BUY, P("0.0005"), None)])
    with pytest.raises(ValueError, match="tick grid"):
        harness.legs.execute([Leg(A, Side.BUY, P("1"), P("60000.05"))])
    assert not harness.legs.busy()


def test_single_leg_group_must_fill_completely() -> None:
    engine = make_engine()
    harness = setup(engine, b_bids=[("60030.0", "0.2"), ("60000.0", "5")])
    # A hedge of a fill made elsewhere: sell 0.5 on simB; only 0.2 at the limit, the rest is hedged.
    harness.legs.execute([Leg(B, Side.SELL, P("0.5"), P("60030.0"))])
    run_for(engine, 50 * MS)
    (result,) = harness.results
    assert result.clean and result.hedged
    assert result.filled == {"simB:BTCUSDT": -P("0.5")}
    assert "hedge simB:BTCUSDT SELL 0.300 IOC at 59910.0" in result.message


def test_single_leg_group_that_cannot_trade_reports_its_residual() -> None:
    engine = make_engine()
    harness = setup(engine)
    client(engine, "simB").reject_next(4, RejectReason.OTHER)
    harness.legs.execute([Leg(B, Side.SELL, P("0.5"), P("60030.0"))])
    run_for(engine, 50 * MS)
    (result,) = harness.results
    # Selling 0.5 was the hedge of a long 0.5 elsewhere: that long is what is left open.
    assert result.residual == {"simB:BTCUSDT": P("0.5")} and not result.clean
    assert "UNHEDGED residual simB:BTCUSDT 0.5" in result.message
    assert [kind for _, kind, _ in engine.series.alerts] == ["leg_risk"]


def test_rate_limit_denial_waits_and_does_not_use_up_attempts() -> None:
    engine = make_engine()
    harness = setup(engine)
    # Use up simB's order budget (20 per second) with orders that rest far from the market.
    for _ in range(20):
        engine.ctx.submit(B, Side.BUY, P("0.001"), P("59000.0"))
    harness.legs.execute(arb_legs())
    run_for(engine, 3 * MS)
    assert harness.legs.busy()  # the simB leg was denied; the executor waits instead of giving up
    run_for(engine, 1500 * MS)
    (result,) = harness.results
    assert result.clean and result.hedged
    assert positions(engine) == (P("0.5"), -P("0.5"))
    assert "order_rate" in result.message


def test_orders_that_stay_unresolved_are_reported_not_waited_on_forever() -> None:
    engine = make_engine()
    harness = setup(engine)
    legs = [Leg(A, Side.BUY, P("0.5"), P("59990.0")), Leg(B, Side.SELL, P("0.5"), P("60040.0"))]
    harness.legs.execute(legs, time_in_force=TimeInForce.GTC)
    run_for(engine, 100 * MS)
    # The venues act on the coming cancels but their answers are lost: the orders stay pending.
    client(engine, "simA").drop_next_replies(1)
    client(engine, "simB").drop_next_replies(1)
    run_for(engine, 450 * MS)  # first deadline (500 ms): cancels sent, answers lost
    assert harness.results == [] and harness.legs.busy()
    run_for(engine, 500 * MS)  # second deadline: give up waiting, report
    (result,) = harness.results
    assert "orders still unresolved after two timeouts" in result.message
    assert [kind for _, kind, _ in engine.series.alerts] == ["leg_risk"]
    assert not harness.legs.busy()
    # The OMS later resolves them by querying the venue (canceled, nothing filled): no late alert.
    run_for(engine, 10_000 * MS)
    assert engine.oms.open_orders() == [] and len(engine.series.alerts) == 1
