"""``tradeloop paper`` killed with SIGKILL and started again on the same journal: it recovers the
portfolio and orders, resolves every order it had working (its simulated venue restarted empty, so
each is canceled, or rejected if it was never accepted), and trades on from the recovered balances."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.secret_scan import record_output
from tradeloop.model.events import NodeRecovered, OrderInitialized
from tradeloop.persistence import open_journal
from tradeloop.trading.recovery import StateFold, load_state
from tradeloop.trading.state import decode_state

ENV = {"COLUMNS": "1000", "PATH": "/usr/bin:/bin"}


def _paper(journal: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tradeloop.cli", "paper", "--speed", "10", "--journal", str(journal), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )


def test_paper_recovers_after_kill_9(tmp_path: Path) -> None:
    journal_path = tmp_path / "paper.sqlite"
    crashed = _paper(journal_path)
    time.sleep(4.0)
    crashed.send_signal(signal.SIGKILL)
    out, _ = crashed.communicate(timeout=10)
    record_output("tradeloop paper (killed)", out)
    assert crashed.returncode == -signal.SIGKILL

    journal = open_journal(journal_path)
    try:
        before = load_state(journal, "USDT")
    finally:
        journal.close()
    assert before is not None and before.portfolio.fill_count > 0, "nothing traded before the kill"

    again = _paper(journal_path, "--duration", "2")
    out, _ = again.communicate(timeout=60)
    record_output("tradeloop paper (restarted)", out)
    assert again.returncode == 0, out[-3000:]
    assert "recovered:" in out

    journal = open_journal(journal_path)
    try:
        records = [(seq, r) for seq, _, r in journal.read()]
        snapshot = journal.latest_snapshot()
    finally:
        journal.close()
    marker = [r for _, r in records if isinstance(r, NodeRecovered)]
    assert len(marker) == 1 and marker[0].orders_recovered == len(before.orders)
    fold = StateFold(valuation="USDT")
    for seq, record in records:  # raises if any client order id was handed out twice
        fold.apply(seq, record)
    assert all(fold.orders[cid].is_terminal for cid in before.orders)
    initialized = [r.client_order_id for _, r in records if isinstance(r, OrderInitialized)]
    assert len(initialized) == len(set(initialized)) > len(before.client_order_ids)
    # The session's last snapshot is the state the whole journal folds to.
    assert snapshot is not None
    state = decode_state(snapshot.payload)
    assert state.seq == records[-1][0]
    final = fold.finish()
    assert dict(((v, c), a) for v, c, a in state.portfolio.balances) == final.balances
