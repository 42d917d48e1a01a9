"""OperatorControl: kill, resume and reduce-only on a real risk engine, recorded in a real audit log."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tradeloop.core.fixed import parse as P
from tradeloop.model.enums import TradingState
from tradeloop.model.events import RiskAlert, TradingStateChanged
from tradeloop.runtime.control import OperatorControl
from tradeloop.security.audit import AuditLog, verify_audit_log
from tradeloop.trading.risk import RiskEngine

from ..trading.test_risk_helpers import BTC, T0, Env, buy, denied_by, make, sell


class Rig:
    """A risk engine (fake views), the operator control on it, the cancels it asks for, its audit log."""

    def __init__(self, tmp_path: Path, **risk: str | int) -> None:
        self.env: Env = make(**risk)
        self.cancels: list[str] = []
        self.audit_path = tmp_path / "audit.jsonl"
        self.audit = AuditLog(self.audit_path, clock=self.env.clock.now_ns)
        self.control = OperatorControl(self.env.engine, self.audit, self.cancels.append)

    @property
    def risk(self) -> RiskEngine:
        return self.env.engine

    def actions(self) -> list[tuple[str, str, dict[str, str]]]:
        return [(e.actor, e.action, e.detail) for e in self.audit.entries()]


class BrokenAudit:
    def append(self, actor: str, action: str, detail: Mapping[str, str] | None = None) -> object:
        raise OSError("disk full")


def test_kill_halts_alerts_cancels_once_and_audits(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.env.clock.advance_to(T0 + 7)
    rig.control.kill("admin-api", "  venue misbehaving ")
    message = "kill_switch by admin-api: venue misbehaving"
    assert rig.risk.state is TradingState.HALTED and rig.control.state is TradingState.HALTED
    assert rig.env.emitted == [
        RiskAlert(ts=T0 + 7, check="kill_switch", message=message),
        TradingStateChanged(ts=T0 + 7, state=TradingState.HALTED, reason=message),
    ]
    assert rig.cancels == [message] and rig.env.cancels == []  # the control cancels, not the risk engine too
    assert rig.actions() == [
        ("admin-api", "kill_switch", {"reason": "venue misbehaving", "previous_state": "ACTIVE", "state": "HALTED"})
    ]
    assert rig.audit.entries()[0].ts_ns == T0 + 7
    assert denied_by(rig.risk.check_submit(buy("0.1")), "trading_state")
    assert denied_by(rig.risk.check_submit(sell("0.1")), "trading_state")


def test_kill_when_halted_cancels_again_and_accepts_an_empty_reason(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.control.kill("cli", "first")
    rig.control.kill("cli", "")
    assert rig.cancels == ["kill_switch by cli: first", "kill_switch by cli: no reason given"]
    assert len(rig.env.state_changes()) == 1 and len(rig.env.alerts()) == 2
    assert [(a, d["reason"], d["previous_state"]) for _, a, d in rig.actions()] == [
        ("kill_switch", "first", "ACTIVE"),
        ("kill_switch", "no reason given", "HALTED"),
    ]


def test_resume_is_the_only_way_back_and_is_audited_with_the_previous_state(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_drawdown="1000")
    rig.risk.on_equity(T0, P("10000"))
    rig.risk.on_equity(T0 + 1, P("8000"))  # a 2000 drawdown: the risk engine halts by itself
    assert rig.risk.state is TradingState.HALTED
    rig.risk.on_equity(T0 + 2, P("12000"))  # the condition clears: still halted
    rig.env.clock.advance_to(T0 + 10**12)
    assert rig.risk.state is TradingState.HALTED
    rig.control.resume("ops-carol", "reviewed the drawdown")
    assert rig.risk.state is TradingState.ACTIVE
    assert rig.env.state_changes()[-1] == TradingStateChanged(
        ts=T0 + 10**12, state=TradingState.ACTIVE, reason="resume by ops-carol: reviewed the drawdown"
    )
    assert rig.actions() == [
        (
            "ops-carol",
            "resume",
            {"reason": "reviewed the drawdown", "previous_state": "HALTED", "state": "ACTIVE"},
        )
    ]
    assert rig.risk.check_submit(buy("0.1")) is None
    assert verify_audit_log(rig.audit_path) == []


def test_resume_needs_a_reason_and_an_actor_and_then_changes_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.control.kill("cli", "x")
    with pytest.raises(ValueError, match="resume: a reason is required"):
        rig.control.resume("cli", "   ")
    with pytest.raises(ValueError, match="actor"):
        rig.control.resume(" ", "fine")
    with pytest.raises(ValueError, match="actor"):
        rig.control.kill("", "x")
    assert rig.risk.state is TradingState.HALTED
    assert [a for _, a, _ in rig.actions()] == ["kill_switch"]


def test_a_resume_that_cannot_be_audited_does_not_happen(tmp_path: Path) -> None:
    env = make()
    cancels: list[str] = []
    control = OperatorControl(env.engine, BrokenAudit(), cancels.append)
    env.engine.set_state(TradingState.HALTED, "breaker")
    with pytest.raises(OSError, match="disk full"):
        control.resume("ops", "try")
    assert env.engine.state is TradingState.HALTED
    with pytest.raises(OSError, match="disk full"):
        control.set_reducing("ops", "try")
    assert env.engine.state is TradingState.HALTED


def test_a_kill_that_cannot_be_audited_still_halts_and_cancels(tmp_path: Path) -> None:
    env = make()
    cancels: list[str] = []
    control = OperatorControl(env.engine, BrokenAudit(), cancels.append)
    with pytest.raises(OSError, match="disk full"):
        control.kill("ops", "now")
    assert env.engine.state is TradingState.HALTED and cancels == ["kill_switch by ops: now"]


def test_set_reducing_from_active_and_from_halted(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.env.portfolio.positions[BTC] = P("1")  # long 1 BTC
    rig.control.set_reducing("ops", "venue maintenance soon")
    assert rig.risk.state is TradingState.REDUCING
    assert denied_by(rig.risk.check_submit(buy("0.1")), "trading_state")
    assert rig.risk.check_submit(sell("0.5")) is None
    rig.control.kill("ops", "worse")
    rig.control.set_reducing("ops", "unwind after the halt")
    assert rig.risk.state is TradingState.REDUCING
    assert [(a, d["previous_state"], d["state"]) for _, a, d in rig.actions()] == [
        ("set_reducing", "ACTIVE", "REDUCING"),
        ("kill_switch", "REDUCING", "HALTED"),
        ("set_reducing", "HALTED", "REDUCING"),
    ]
    assert rig.cancels == ["kill_switch by ops: worse"]  # lowering the state cancels nothing


def test_without_an_audit_log_actions_still_work() -> None:
    env = make()
    control = OperatorControl(env.engine, None, env.cancels.append)
    control.kill("ops", "x")
    control.resume("ops", "y")
    assert env.engine.state is TradingState.ACTIVE and env.cancels == ["kill_switch by ops: x"]
