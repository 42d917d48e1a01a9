"""Risk engine trading states, kill switch and post-trade limits (daily loss, drawdown)."""

from __future__ import annotations

from tradeloop.core.fixed import parse as P
from tradeloop.model.enums import Side, TradingState
from tradeloop.model.events import RiskAlert, TradingStateChanged

from .test_risk_helpers import (
    BTC,
    ETH,
    NEXT_MIDNIGHT,
    T0,
    amend,
    buy,
    denied_by,
    make,
    sell,
    state,
)

# -- trading states --------------------------------------------------------------------------------


def test_reducing_allows_reducing_denies_increasing_and_flipping() -> None:
    env = make()
    env.portfolio.positions[BTC] = P("1")
    assert env.engine.set_state(TradingState.REDUCING, "operator")
    assert env.engine.check_submit(sell("1")) is None  # to flat: allowed
    reason = env.engine.check_submit(buy("0.1"))
    assert reason is not None and reason.startswith("trading_state: REDUCING") and "would increase it" in reason
    reason = env.engine.check_submit(sell("1.00001"))
    assert reason is not None and "would flip it" in reason
    assert denied_by(env.engine.check_submit(buy("0.1", iid=ETH)), "trading_state")  # flat: nothing to reduce


def test_reducing_counts_open_reducing_orders() -> None:
    env = make()
    env.portfolio.positions[BTC] = -P("1")
    env.engine.set_state(TradingState.REDUCING, "operator")
    env.orders.add(Side.BUY, "0.6", "59990")
    assert env.engine.check_submit(buy("0.4")) is None
    assert denied_by(env.engine.check_submit(buy("0.40001")), "trading_state")


def test_halted_denies_submits_and_amends() -> None:
    env = make()
    order = env.orders.add(Side.BUY, "0.1", "59990")
    env.portfolio.positions[BTC] = P("1")
    env.engine.set_state(TradingState.HALTED, "maintenance")
    assert env.engine.check_submit(sell("0.1")) == "trading_state: trading is HALTED (maintenance)"
    assert env.engine.check_amend(amend(order, qty="0.05"), order) == "trading_state: trading is HALTED (maintenance)"
    assert env.cancels == []  # set_state does not cancel; the kill switch does


def test_set_state_emits_only_on_change() -> None:
    env = make()
    env.clock.advance_to(T0 + 5)
    assert env.engine.set_state(TradingState.REDUCING, "manual")
    assert not env.engine.set_state(TradingState.REDUCING, "again")
    assert env.emitted == [TradingStateChanged(ts=T0 + 5, state=TradingState.REDUCING, reason="manual")]
    assert env.engine.state_reason == "manual"


def test_kill_switch_halts_and_cancels_everything() -> None:
    env = make()
    env.engine.kill_switch("operator panic")
    assert state(env.engine) is TradingState.HALTED
    assert env.cancels == ["operator panic"]
    assert env.alerts() == [RiskAlert(ts=T0, check="kill_switch", message="operator panic")]
    assert [e.state for e in env.state_changes()] == [TradingState.HALTED]
    assert denied_by(env.engine.check_submit(buy("0.1")), "trading_state")
    env.engine.kill_switch("again")  # already halted: cancels again, no second state change
    assert env.cancels == ["operator panic", "again"]
    assert len(env.state_changes()) == 1


def test_restore_sets_state_silently() -> None:
    env = make()
    env.engine.restore(TradingState.HALTED, "from journal")
    assert state(env.engine) is TradingState.HALTED and env.emitted == []


# -- post-trade ------------------------------------------------------------------------------------


def test_daily_loss_halts_alerts_and_cancels() -> None:
    env = make(max_daily_loss="5000")
    engine = env.engine
    engine.on_equity(T0, P("100000"))
    engine.on_equity(T0 + 1, P("95000"))  # exactly at the limit
    assert state(engine) is TradingState.ACTIVE and env.emitted == []
    engine.on_equity(T0 + 2, P("94999.99"))
    assert state(engine) is TradingState.HALTED
    [alert] = env.alerts()
    assert alert.check == "daily_loss" and alert.ts == T0 + 2
    assert alert.message == "daily_loss: equity 94999.99 is 5000.01 below the day's start 100000 (max 5000)"
    [change] = env.state_changes()
    assert change.state is TradingState.HALTED and change.reason == alert.message
    assert env.cancels == [alert.message]
    engine.on_equity(T0 + 3, P("94000"))  # still breached: no repeat
    assert len(env.emitted) == 2 and len(env.cancels) == 1


def test_daily_loss_in_bps_with_reducing_action() -> None:
    env = make(max_daily_loss_bps=200, daily_loss_action="reducing")
    env.engine.on_equity(T0, P("100000"))
    env.engine.on_equity(T0 + 1, P("98000"))
    assert state(env.engine) is TradingState.ACTIVE
    env.engine.on_equity(T0 + 2, P("97999"))
    assert state(env.engine) is TradingState.REDUCING
    assert "201 bps, max 200 bps" in env.alerts()[0].message
    assert env.cancels == []  # REDUCING keeps working orders


def test_day_rollover_resets_daily_baseline() -> None:
    env = make(max_daily_loss="5000")
    engine = env.engine
    engine.on_equity(T0, P("100000"))
    engine.on_equity(NEXT_MIDNIGHT - 1, P("96000"))  # -4000 today: fine
    engine.on_equity(NEXT_MIDNIGHT + 1, P("93000"))  # new day starts from 96000: -3000
    assert engine.day_start_equity == P("96000")
    assert state(engine) is TradingState.ACTIVE and env.emitted == []
    engine.on_equity(NEXT_MIDNIGHT + 2, P("90999"))  # -5001 from 96000
    assert state(engine) is TradingState.HALTED
    assert env.alerts()[0].check == "daily_loss"


def test_drawdown_from_running_peak() -> None:
    env = make(max_drawdown="3000", drawdown_action="reducing", max_daily_loss="1000000")
    engine = env.engine
    engine.on_equity(T0, P("100000"))
    engine.on_equity(T0 + 1, P("110000"))
    engine.on_equity(T0 + 2, P("107000"))  # 3000 below peak: at the limit
    assert engine.peak_equity == P("110000") and state(engine) is TradingState.ACTIVE
    engine.on_equity(T0 + 3, P("106999"))
    assert state(engine) is TradingState.REDUCING
    [alert] = env.alerts()
    assert alert.check == "drawdown" and "below the peak 110000" in alert.message


def test_drawdown_halted_action_cancels_and_then_escalates_only() -> None:
    env = make(max_drawdown_bps=1000, max_daily_loss="100")
    engine = env.engine
    engine.on_equity(T0, P("100000"))
    engine.on_equity(T0 + 1, P("99000"))  # daily loss 1000 > 100 -> HALTED
    assert state(engine) is TradingState.HALTED and len(env.cancels) == 1
    engine.on_equity(T0 + 2, P("89000"))  # drawdown 11%: alert, already halted -> no new change/cancel
    assert [a.check for a in env.alerts()] == ["daily_loss", "drawdown"]
    assert len(env.state_changes()) == 1 and len(env.cancels) == 1


def test_operator_resume_rearms_and_reset_peak_accepts_drawdown() -> None:
    env = make(max_drawdown="1000")
    engine = env.engine
    engine.on_equity(T0, P("10000"))
    engine.on_equity(T0 + 1, P("8000"))
    assert state(engine) is TradingState.HALTED
    engine.set_state(TradingState.ACTIVE, "resume")
    engine.on_equity(T0 + 2, P("8000"))  # still 2000 below peak: trips again
    assert state(engine) is TradingState.HALTED
    engine.reset_peak()
    engine.set_state(TradingState.ACTIVE, "resume after reset")
    engine.on_equity(T0 + 3, P("7500"))
    assert state(engine) is TradingState.ACTIVE
    assert len(env.cancels) == 2
