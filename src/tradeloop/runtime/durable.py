"""What live and paper sessions share to survive a crash: the journal they continue, the state they
recover from it, and the timers that keep the journal's recovery point under a second.

* :func:`open_session_journal` opens the configured journal; when it has records (a node that ran on
  it before) it loads the state (newest snapshot + the records after it) unless ``journal.recover``
  is off, in which case such a journal is refused.
* :func:`keep_journal` commits buffered records every ``journal.flush_interval_s`` and writes a
  snapshot every ``journal.snapshot_interval_s``.
* :func:`reconcile` resolves the recovered orders with the venues (and balances where the venue
  reports them) before the strategy starts: see :mod:`tradeloop.trading.reconcile`.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console

from tradeloop.core.clock import LiveClock
from tradeloop.core.config import ConfigError
from tradeloop.core.logging import get_logger
from tradeloop.model.enums import InstrumentKind
from tradeloop.model.instrument import Instrument
from tradeloop.persistence import JournalCorruptError, JournalError, open_journal
from tradeloop.persistence.journal import Journal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import JournalSection
from tradeloop.trading.reconcile import NodeParts, ReconcileReport, VenueAccount, reconcile_with_venues
from tradeloop.trading.recovery import RecoveredState, RecoveryError, load_state

__all__ = ["currencies_traded", "keep_journal", "open_session_journal", "reconcile", "stop_journal_timers"]

log = get_logger("tradeloop.durable")

_FLUSH_TIMER = "journal.flush"
_SNAPSHOT_TIMER = "journal.snapshot"


def open_session_journal(
    section: JournalSection, valuation: str, *, claim: int | None = None
) -> tuple[Journal, RecoveredState | None]:
    """The session's journal and, when it already has records, the state they leave.

    ``claim`` (a failover node's fencing token) makes this node the journal's writer before anything
    is read: from then on a node holding an older token gets ``JournalFenced`` at its next commit."""
    try:
        journal = open_journal(section.path)
    except JournalError as exc:
        raise ConfigError(f"journal {section.path}: {exc}") from None
    if claim is not None:
        try:
            journal.claim(claim)
        except BaseException:
            journal.close()
            raise
    if journal.last_seq() == 0:
        return journal, None
    if not section.recover:
        journal.close()
        raise ConfigError(
            f"journal {section.path} already has records and journal.recover is off; use a new path per session"
        )
    try:
        state = load_state(journal, valuation)
    except (JournalCorruptError, RecoveryError) as exc:
        journal.close()
        raise RecoveryError(f"cannot recover from journal {section.path}: {exc}") from None
    except BaseException:
        journal.close()
        raise
    assert state is not None
    log.info("state recovered from the journal", journal=str(section.path), detail=state.describe())
    return journal, state


def keep_journal(engine: BacktestEngine, clock: LiveClock, section: JournalSection) -> None:
    """Start the flush and snapshot timers of a live or paper session on ``clock``."""
    journal = engine.journal

    def flush(_name: str, _ts: int) -> None:
        journal.flush()

    def snapshot(_name: str, _ts: int) -> None:
        seq = engine.save_snapshot()
        log.debug("snapshot written", seq=seq)

    clock.set_timer(_FLUSH_TIMER, int(section.flush_interval_s * 1e9), flush)
    clock.set_timer(_SNAPSHOT_TIMER, int(section.snapshot_interval_s * 1e9), snapshot)


def stop_journal_timers(clock: LiveClock) -> None:
    clock.cancel_timer(_FLUSH_TIMER)
    clock.cancel_timer(_SNAPSHOT_TIMER)


def currencies_traded(instruments: list[Instrument]) -> dict[str, set[str]]:
    """Per venue, the currencies whose balances a reconciliation compares (bases of spot, quotes)."""
    out: dict[str, set[str]] = {}
    for inst in instruments:
        ccys = out.setdefault(inst.id.venue, set())
        ccys.add(inst.quote)
        if inst.kind is InstrumentKind.SPOT:
            ccys.add(inst.base)
    return out


async def reconcile(
    engine: BacktestEngine,
    recovered: RecoveredState,
    accounts: Mapping[str, VenueAccount],
    *,
    timeout_s: float,
    console: Console | None = None,
) -> ReconcileReport:
    """Reconcile a restored engine with its venues, then snapshot the result (so the next recovery
    starts here). ``accounts`` are the venues whose open orders and balances are compared (a paper
    session's simulated venues have none to compare: they start from the recovered balances)."""
    parts = NodeParts(engine.oms, engine.portfolio, engine.journal, engine.clock.now_ns)
    report = await reconcile_with_venues(
        engine=parts,
        clients=accounts,
        recovered=recovered,
        currencies=currencies_traded(list(engine.instruments.values())),
        timeout_s=timeout_s,
    )
    engine.save_snapshot()
    if console is not None:
        console.print(f"recovered: {recovered.describe()}; {report.describe()}")
    return report
