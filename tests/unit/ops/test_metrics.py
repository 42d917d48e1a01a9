"""EngineMetrics: histogram maths, what a backtest with metrics records, and the Grafana dashboard."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from tradeloop.core import fixed
from tradeloop.data.synthetic import SyntheticConfig, SyntheticMarket
from tradeloop.model.book import SequenceRule
from tradeloop.model.data import BookDeltas
from tradeloop.model.enums import Side
from tradeloop.model.events import OrderDenied, OrderFilled, OrderRejected
from tradeloop.ops.metrics import METRIC_NAMES, EngineMetrics, histogram_buckets, histogram_quantile
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, VenueSection

from ...integration.helpers import IID, START, P, book_snapshot, feed, instrument

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "tradeloop.json"


def scrape(metrics: EngineMetrics) -> dict[str, float]:
    """Every sample of ``render()`` as ``name{labels}`` -> value (parsed by prometheus_client)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


# -- histogram maths ------------------------------------------------------------------------------


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [(1.0, 2.0), (2.0, 6.0), (4.0, 10.0)]
    # rank 5 lies in (1, 2] holding ranks 2..6: 1 + (5 - 2) / (6 - 2)
    assert histogram_quantile(0.5, buckets, 10) == pytest.approx(1.75)
    # rank 9.9 in (2, 4] holding 6..10: 2 + 2 * 3.9 / 4
    assert histogram_quantile(0.99, buckets, 10) == pytest.approx(3.95)
    # rank 1 in the first bucket, which starts at 0
    assert histogram_quantile(0.1, buckets, 10) == pytest.approx(0.5)
    # a rank beyond the finite buckets (in +Inf) reports the highest finite bound
    assert histogram_quantile(0.99, buckets, 12) == 4.0
    assert histogram_quantile(0.5, [], 0) is None and histogram_quantile(0.5, buckets, 0) is None
    with pytest.raises(ValueError):
        histogram_quantile(1.5, buckets, 10)


def test_histogram_buckets_reads_cumulative_counts() -> None:
    bounds = (0.001, 0.01, 0.1)
    h = Histogram("t_seconds", "test", registry=CollectorRegistry(), buckets=bounds)
    values = [0.0005, 0.002, 0.003, 0.05, 0.2, 0.01]
    for v in values:
        h.observe(v)
    buckets, total = histogram_buckets(h)
    expected = [(b, float(sum(1 for v in values if v <= b))) for b in bounds]
    assert buckets == expected and total == len(values)


# -- a backtest with metrics ------------------------------------------------------------------------


def _engine(config: BacktestConfig, metrics: EngineMetrics | None) -> tuple[BacktestEngine, SyntheticMarket]:
    market = SyntheticMarket(config.synthetic)
    engine = BacktestEngine(
        config,
        market.instruments(),
        market.start_ns,
        sequence_rules=market.sequence_rules(),
        journal=MemoryJournal(),
        metrics=metrics,
    )
    return engine, market


def test_backtest_with_metrics_records_what_happened_and_leaves_the_journal_alone() -> None:
    config = BacktestConfig(synthetic=SyntheticConfig(duration_s=20))
    metrics = EngineMetrics()
    engine, market = _engine(config, metrics)
    engine.run(iter(market))
    plain, _ = _engine(config, None)
    plain.run(iter(market))
    # Metrics only read: the journal is the same byte for byte.
    assert engine.journal.digest() == plain.journal.digest()

    got = scrape(metrics)
    records = [r for _, _, r in engine.journal.read()]
    # Every submit/amend that left got a reply (the backtest runs on until all are answered).
    assert got["tradeloop_order_round_trip_seconds_count{}"] == engine.execution.sent > 0
    assert 0 < got["tradeloop_tick_to_trade_seconds_count{}"] <= engine.execution.sent
    # Orders by state: working states now, terminal states cumulative == the OMS's own orders.
    statuses = Counter(o.status.value for o in engine.oms.orders.values())
    for state in ("FILLED", "CANCELED", "REJECTED", "DENIED", "ACCEPTED", "SUBMITTED"):
        assert got[f"tradeloop_orders{{state={state}}}"] == statuses.get(state, 0)
    rejects = Counter(r.reason.value for r in records if isinstance(r, OrderRejected))
    rejects.update("denied:" + r.reason.partition(":")[0] for r in records if isinstance(r, OrderDenied))
    for reason, n in rejects.items():
        assert got[f"tradeloop_order_rejects_total{{reason={reason}}}"] == n
    assert got["tradeloop_events_total{kind=OrderFilled}"] == sum(isinstance(r, OrderFilled) for r in records)
    kinds = Counter(type(item).__name__ for _, item in market)
    assert got["tradeloop_events_total{kind=BookDeltas}"] == kinds["BookDeltas"]
    assert got["tradeloop_events_total{kind=Trade}"] == kinds["Trade"]
    # State gauges equal the engine's exact values (as display floats).
    p = engine.portfolio
    for iid, pos in p.positions.items():
        assert got[f"tradeloop_position{{instrument={iid}}}"] == fixed.to_float(pos.qty)
    assert got["tradeloop_pnl{kind=total}"] == fixed.to_float(p.pnl())
    assert got["tradeloop_pnl{kind=equity}"] == fixed.to_float(p.equity())
    assert got["tradeloop_pnl{kind=fees}"] == fixed.to_float(p.fees())
    now = engine.clock.now_ns()
    for iid, book in engine.book_manager.books().items():
        assert got[f"tradeloop_feed_staleness_seconds{{book={iid}}}"] == pytest.approx((now - book.ts_recv) / 1e9)
    assert got["tradeloop_risk_state{}"] == 0


def _small_engine(metrics: EngineMetrics) -> BacktestEngine:
    config = BacktestConfig(venues={"simA": VenueSection(balances={"USDT": "100000", "BTC": "2"})})
    return BacktestEngine(
        config,
        [instrument()],
        START,
        sequence_rules={"simA": SequenceRule.RANGE},
        journal=MemoryJournal(),
        strategy_spec="tests.integration.helpers:Idle",
        metrics=metrics,
    )


def test_resyncs_risk_state_and_denials_are_counted() -> None:
    metrics = EngineMetrics()
    engine = _small_engine(metrics)
    gap = BookDeltas(IID, START + 2, START + 2, 13, 13, [(P("99.99"), P("1"))], [])
    feed(engine, [book_snapshot(START, seq=10), gap, book_snapshot(START + 3, seq=20)])
    got = scrape(metrics)
    assert got[f"tradeloop_book_resyncs_total{{book={IID}}}"] == engine.book_manager.counters(IID).resyncs == 1

    engine.control.kill("test", "checking the gauge")
    assert scrape(metrics)["tradeloop_risk_state{}"] == 2
    engine.ctx.submit(IID, Side.BUY, P("0.01"), P("100.00"))  # denied: trading is halted
    got = scrape(metrics)
    assert got["tradeloop_order_rejects_total{reason=denied:trading_state}"] == 1
    assert got["tradeloop_orders{state=DENIED}"] == 1
    engine.control.resume("test", "done")
    assert scrape(metrics)["tradeloop_risk_state{}"] == 0


def test_round_trip_is_only_observed_for_replies_and_tick_to_trade_only_inside_a_tick() -> None:
    metrics = EngineMetrics()
    engine = _small_engine(metrics)
    feed(engine, [book_snapshot(START)])
    engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.95"))  # from outside market data handling
    got = scrape(metrics)
    assert got["tradeloop_tick_to_trade_seconds_count{}"] == 0
    assert got["tradeloop_order_round_trip_seconds_count{}"] == 0  # reply not in yet
    engine.clock.advance_to(engine.clock.now_ns() + 10_000_000)
    assert scrape(metrics)["tradeloop_order_round_trip_seconds_count{}"] == 1


def test_latencies_kept_off_the_hot_path_are_in_every_read() -> None:
    # Observations wait in a list until the histogram is read (snapshots), refreshed or scraped.
    metrics = EngineMetrics()
    engine = _small_engine(metrics)
    feed(engine, [book_snapshot(START)])
    metrics.market_data_started(book_snapshot(START + 1))
    metrics.order_sent("A1")
    metrics.order_sent("A2")
    metrics.market_data_finished()
    metrics.venue_replied("A1")
    assert histogram_buckets(metrics.tick_to_trade)[1] == 2  # read directly, without a scrape
    assert histogram_buckets(metrics.order_round_trip)[1] == 1
    got = scrape(metrics)
    assert got["tradeloop_tick_to_trade_seconds_count{}"] == 2
    assert got["tradeloop_events_total{kind=BookDeltas}"] == 1  # counted when it started (feed() bypasses the probe)


def test_each_engine_metrics_has_its_own_registry_and_attaches_once() -> None:
    a, b = EngineMetrics(), EngineMetrics()
    a.observe_loop_lag(0.01)
    assert scrape(a)["tradeloop_event_loop_lag_seconds_count{}"] == 1
    assert scrape(b)["tradeloop_event_loop_lag_seconds_count{}"] == 0
    assert not any(name.startswith("tradeloop_") for name in REGISTRY._names_to_collectors)
    engine = _small_engine(a)
    with pytest.raises(RuntimeError):
        a.attach(engine)


# -- the Grafana dashboard --------------------------------------------------------------------------


def _exprs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in _exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in _exprs(v)]
    return []


def test_grafana_dashboard_uses_only_exposed_metrics_and_all_of_them() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["panels"] and dashboard["schemaVersion"] >= 30
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    exposed = {
        family.name + suffix for family in EngineMetrics().registry.collect() for suffix in suffixes[family.type]
    }
    exprs = _exprs(dashboard["panels"])
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        names = set(re.findall(r"\btradeloop_[a-z_]+", expr))
        assert names, f"panel query without a tradeloop metric: {expr}"
        unknown = names - exposed
        assert not unknown, f"{expr} uses metrics EngineMetrics does not expose: {unknown}"
        used |= names
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert set(METRIC_NAMES) <= families, f"metrics missing from the dashboard: {set(METRIC_NAMES) - families}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        if p["type"] != "row":
            assert p["targets"] and all(t["refId"] for t in p["targets"])
