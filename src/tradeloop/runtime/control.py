"""Operator control of a node: the kill switch, resume and reduce-only, each recorded in the audit log.

These are the only ways trading state goes back down: the risk engine and the circuit breakers only
escalate (``ACTIVE`` -> ``REDUCING`` -> ``HALTED``), and only :meth:`OperatorControl.resume` returns
to ``ACTIVE``. Every action is journaled through the risk engine (``RiskAlert`` for the kill switch,
``TradingStateChanged`` for every change, its reason naming the actor) and appended to the audit log
when the node has one (action, actor, reason, previous and new state).

Ordering with the audit log: the kill switch acts first and audits after (stopping trading must never
wait for, or fail on, a disk); resume and reduce-only audit first and act only once the entry is
written, so no state is ever lowered without a record. An audit failure propagates to the caller.

Call these on the engine's thread (in paper and live mode: the event loop that runs the engine, as
the admin API does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from tradeloop.core.logging import get_logger
from tradeloop.model.enums import TradingState
from tradeloop.trading import risk_config as rc
from tradeloop.trading.risk import RiskEngine

log = get_logger("tradeloop.control")

KILL_ACTION = "kill_switch"
RESUME_ACTION = "resume"
SET_REDUCING_ACTION = "set_reducing"


class AuditSink(Protocol):
    """What the operator control needs of :class:`tradeloop.security.audit.AuditLog`."""

    def append(self, actor: str, action: str, detail: Mapping[str, str] | None = None) -> object: ...


class OperatorControl:
    """Kill switch, resume and reduce-only for one node.

    ``cancel_all(reason)`` must cancel every open order on every venue (in the node it sends one
    cancel-all per venue through the order manager, journaled).
    """

    def __init__(self, risk: RiskEngine, audit: AuditSink | None, cancel_all: Callable[[str], None]) -> None:
        self._risk = risk
        self._audit = audit
        self._cancel_all = cancel_all

    @property
    def state(self) -> TradingState:
        """Current trading state."""
        return self._risk.state

    @property
    def reason(self) -> str:
        """Reason given with the last state change."""
        return self._risk.state_reason

    def kill(self, actor: str, reason: str) -> None:
        """Halt trading and cancel every open order on every venue; audit entry ``kill_switch``.

        Works in every state (killing a halted node cancels again). An empty reason is accepted (a
        panic button must not fail on a form field) and recorded as ``"no reason given"``.
        """
        _check_actor(actor)
        why = reason.strip() or "no reason given"
        previous = self._risk.state
        message = f"{rc.KILL_SWITCH} by {actor}: {why}"
        log.warning("kill switch", actor=actor, reason=why, previous_state=previous.value)
        self._risk.trip(rc.KILL_SWITCH, message, TradingState.HALTED, cancel=False)
        self._cancel_all(message)
        self._record(actor, KILL_ACTION, why, previous)

    def resume(self, actor: str, reason: str) -> None:
        """Go back to ``ACTIVE`` (the only way there); audit entry ``resume`` written first.

        Re-arms the post-trade limits and the circuit breakers: a condition that still holds trips
        again when it is next seen. Resuming an active node is recorded too and changes nothing.
        """
        self._lower(actor, RESUME_ACTION, reason, TradingState.ACTIVE)

    def set_reducing(self, actor: str, reason: str) -> None:
        """Move to ``REDUCING`` (only position-reducing orders pass), from ``ACTIVE`` or from ``HALTED``
        (to unwind after a halt); audit entry ``set_reducing`` written first."""
        self._lower(actor, SET_REDUCING_ACTION, reason, TradingState.REDUCING)

    def _lower(self, actor: str, action: str, reason: str, state: TradingState) -> None:
        _check_actor(actor)
        why = reason.strip()
        if not why:
            raise ValueError(f"{action}: a reason is required")
        previous = self._risk.state
        self._record(actor, action, why, previous, state)
        log.warning("operator state change", actor=actor, action=action, reason=why, previous_state=previous.value)
        self._risk.set_state(state, f"{action} by {actor}: {why}")

    def _record(
        self, actor: str, action: str, reason: str, previous: TradingState, state: TradingState | None = None
    ) -> None:
        if self._audit is None:
            return
        new = state if state is not None else self._risk.state
        self._audit.append(actor, action, {"reason": reason, "previous_state": previous.value, "state": new.value})


def _check_actor(actor: str) -> None:
    if not actor.strip():
        raise ValueError("an operator action needs an actor")
