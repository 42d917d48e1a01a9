"""Whole backtests: determinism of the journal, exact rebuild from it, accounting after every fill,
integer-only money, and the Binance recordings replayed through the backtest command's path."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import sample_path
from tradeloop.model.order import Order
from tradeloop.persistence import open_journal
from tradeloop.persistence.codec import JournalRecord
from tradeloop.runtime.runner import BacktestOutcome, BacktestRequest, run_backtest
from tradeloop.trading.rebuild import rebuild_state

SHORT = {"TRADELOOP__SYNTHETIC__DURATION_S": "60"}


def short_run(tmp: Path, name: str, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> BacktestOutcome:
    for k, v in SHORT.items():
        monkeypatch.setenv(k, v)
    return run_backtest(BacktestRequest(journal=str(tmp / f"{name}.sqlite"), check_invariants=True, **kw))


def order_state(order: Order) -> tuple[object, ...]:
    return (
        order.client_order_id,
        order.status,
        order.qty,
        order.price,
        order.filled_qty,
        order.filled_notional,
        order.fee_total,
        order.venue_order_id,
        sorted(order.trade_ids),
    )


def test_same_inputs_same_journal_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = short_run(tmp_path, "a", monkeypatch)
    b = short_run(tmp_path, "b", monkeypatch)
    assert a.summary.fills > 0
    assert a.summary.journal_sha256 == b.summary.journal_sha256
    file_a = hashlib.sha256((tmp_path / "a.sqlite").read_bytes()).hexdigest()
    file_b = hashlib.sha256((tmp_path / "b.sqlite").read_bytes()).hexdigest()
    assert file_a == file_b
    c = short_run(tmp_path, "c", monkeypatch, seed=8)
    assert c.summary.journal_sha256 != a.summary.journal_sha256


def test_replaying_the_journal_rebuilds_orders_positions_balances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = short_run(tmp_path, "run", monkeypatch)
    journal = open_journal(str(tmp_path / "run.sqlite"))
    rebuilt = rebuild_state(r for _, _, r in journal.read())
    journal.close()
    live = run.engine
    assert len(rebuilt.orders) == len(live.oms.orders) > 0
    assert [order_state(o) for o in rebuilt.orders.values()] == [order_state(o) for o in live.oms.orders.values()]
    assert rebuilt.portfolio is not None
    assert rebuilt.portfolio.snapshot() == live.portfolio.snapshot()


def test_accounting_invariant_held_after_every_fill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = short_run(tmp_path, "inv", monkeypatch)
    assert run.engine.stats.invariant_checks == run.summary.fills > 0
    p = run.engine.portfolio
    assert p.initial_equity is not None and p.equity() - p.initial_equity == p.pnl()


def _walk(value: object, path: str, out: list[str]) -> None:
    if isinstance(value, float):
        out.append(path)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _walk(getattr(value, name), f"{path}.{name}", out)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, f"{path}[{k!r}]", out)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _walk(v, f"{path}[{i}]", out)


def test_no_float_reaches_trading_core_money(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = short_run(tmp_path, "nofloat", monkeypatch)
    floats: list[str] = []
    journal = open_journal(str(tmp_path / "nofloat.sqlite"))
    records: list[JournalRecord] = [r for _, _, r in journal.read()]
    journal.close()
    for i, record in enumerate(records):
        _walk(record, f"record[{i}]:{type(record).__name__}", floats)
    p = run.engine.portfolio
    money = [*p.balances.values(), p.equity(), p.pnl(), p.fees(), p.volume(), *p.marks.values()]
    for pos in p.positions.values():
        money += [pos.qty, pos.cost, pos.realized, pos.fees, pos.volume]
    for order in run.engine.oms.orders.values():
        money += [order.qty, order.filled_qty, order.filled_notional, order.fee_total, order.price or 0]
    assert floats == []
    assert all(type(v) is int for v in money), [type(v) for v in money if type(v) is not int]
    # Decoding is typed and strict: a float in an int field would fail here.
    encoded = msgspec.msgpack.encode(records)
    assert msgspec.msgpack.decode(encoded, type=list[JournalRecord]) == records


def test_backtest_on_binance_spot_recordings_applies_every_diff_without_gap(tmp_path: Path) -> None:
    files = [
        str(sample_path("marketdata/binance_spot_btcusdt_20240808.gz")),
        str(sample_path("marketdata/binance_spot_btcusdt_20240809.gz")),
    ]
    run = run_backtest(
        BacktestRequest(
            data=files, journal=str(tmp_path / "bn.sqlite"), report=str(tmp_path / "bn.html"), check_invariants=True
        )
    )
    integrity = run.summary.book_integrity["binance:BTCUSDT"]
    counters = run.engine.book_manager.counters(next(iter(run.engine.instruments)))
    assert counters.gaps == 0 and integrity.gaps == 0 and integrity.valid_at_end
    assert counters.applied == 6493 and counters.snapshots == 1 and counters.stale == 2
    assert run.errors == [] and run.issues == []
    assert (tmp_path / "bn.html").stat().st_size > 10_000
