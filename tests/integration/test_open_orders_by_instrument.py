"""The OMS keeps its open orders also split by instrument (the risk checks and strategies ask per
instrument on every order): at every step of a backtest with two instruments, fills, cancels and
amends, ``open_orders(iid)`` is exactly the all-orders view filtered by instrument, in the same order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tradeloop.runtime.runner import BacktestRequest, run_backtest
from tradeloop.trading.oms import OrderManager


def test_open_orders_by_instrument_match_the_filtered_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADELOOP__SYNTHETIC__DURATION_S", "40")
    checked = {"steps": 0, "nonempty": 0}
    apply = OrderManager._apply

    def checked_apply(self: OrderManager, *args: Any, **kwargs: Any) -> bool:
        applied = apply(self, *args, **kwargs)
        everything = self.open_orders()
        for iid in {o.instrument_id for o in self.orders.values()}:
            filtered = [o for o in everything if o.instrument_id == iid]
            by_instrument = self.open_orders(iid)
            assert [o.client_order_id for o in by_instrument] == [o.client_order_id for o in filtered]
            assert all(a is b for a, b in zip(by_instrument, filtered, strict=True))
            checked["nonempty"] += bool(filtered)
        checked["steps"] += 1
        return applied

    monkeypatch.setattr(OrderManager, "_apply", checked_apply)
    outcome = run_backtest(BacktestRequest(journal=str(tmp_path / "j.sqlite")))
    assert outcome.summary.fills > 0
    assert checked["steps"] > 500 and checked["nonempty"] > 500
