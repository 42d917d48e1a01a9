"""Report additions: strategy-series grouping, price overlays, alerts table, quote gaps, run records."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import numpy as np
import pytest
from matplotlib import rc_context

from tests.unit.runtime.test_report import BTC, ETH, SEC, T0, _images, fixed_summary
from tradeloop.core import fixed
from tradeloop.runtime.charts import _draw_extras, _time_axis, group_extra_panels, render_panels
from tradeloop.runtime.plotting import RC, new_figure
from tradeloop.runtime.report import MAX_ALERT_ROWS, format_return, write_html_report
from tradeloop.runtime.results import (
    EquityCurve,
    RunData,
    RunRecord,
    RunRecordError,
    RunSeries,
    RunSummary,
    envelope_indices,
    equity_curve,
    read_run_record,
    run_record_path,
    write_run_record,
)


def _series(n: int = 20) -> RunSeries:
    series = RunSeries(interval_ns=SEC)
    for i in range(n):
        series.record_sample(T0 + i * SEC, fixed.from_int(1_000 + i), {BTC: 0}, {BTC: fixed.from_int(60_000 + i)})
    return series


# -- grouping of strategy series ------------------------------------------------------------------


def test_group_extra_panels_by_prefix_main_first_constants_detected() -> None:
    panels = {
        "zscore/entry": [(1, 2.0)],
        "spread": [(1, 0.5), (2, 0.7)],
        "zscore": [(1, 0.1), (2, -0.3)],
        "zscore/exit": [(1, 0.5), (5, 0.5), (9, 0.5)],
        "empty": [],
        "nan": [(1, float("nan")), (2, float("nan"))],
    }
    groups = group_extra_panels(panels)
    assert [g.key for g in groups] == ["zscore", "spread", "nan"]
    zscore = groups[0]
    assert [ln.name for ln in zscore.lines] == ["zscore", "zscore/entry", "zscore/exit"]
    assert [ln.label for ln in zscore.lines] == ["zscore", "entry", "exit"]
    assert [ln.constant for ln in zscore.lines] == [None, 2.0, 0.5]
    assert groups[1].lines[0].constant is None
    assert groups[2].lines[0].constant is None  # NaN is not a threshold


def test_thresholds_are_drawn_as_horizontal_lines_only_when_recorded() -> None:
    series = _series()
    for i in range(20):
        series.record_extra("zscore", T0 + i * SEC, (-1) ** i * i / 10)
    series.record_extra("zscore/entry", T0, 1.5)
    series.record_extra("zscore/-entry", T0, -1.5)
    series.record_extra("spread", T0, 3.0)
    series.record_extra("spread", T0 + SEC, 4.0)
    groups = group_extra_panels(series.extra_panels)
    with rc_context(RC):
        fig = new_figure(4.0)
        _draw_extras(fig, 4.0, groups, _time_axis(fixed_summary(), series))
    z_ax, spread_ax = fig.axes
    horizontal = sorted(
        float(np.asarray(ln.get_ydata())[0])
        for ln in z_ax.get_lines()
        if len(set(np.asarray(ln.get_ydata()).tolist())) == 1 and ln.get_linestyle() == "--"
    )
    assert horizontal == [-1.5, 1.5]
    labels = [t.get_text() for t in z_ax.get_legend().get_texts()]
    assert labels == ["zscore", "entry = 1.5", "-entry = -1.5"]
    # The spread panel has only its own line (no threshold was recorded for it).
    assert [ln.get_linestyle() for ln in spread_ax.get_lines()] == ["-"]
    assert z_ax.get_title(loc="left") == "zscore" and spread_ax.get_title(loc="left") == "spread"


def test_series_named_after_an_instrument_go_on_its_price_chart(tmp_path: Path) -> None:
    series = _series()
    for i in range(20):
        series.record_extra(f"{BTC}/reservation price", T0 + i * SEC, 60_000.0 + i)
    keys = [key for key, _, _ in render_panels(fixed_summary(), series)]
    assert keys == ["equity", "inventory", f"price:{BTC}"]  # no separate strategy panel
    series.record_extra("edge_bps", T0, 1.0)
    keys = [key for key, _, _ in render_panels(fixed_summary(), series)]
    assert keys == ["equity", "inventory", f"price:{BTC}", "extras"]


def test_two_instruments_get_a_price_panel_each() -> None:
    series = RunSeries()
    for i in range(10):
        series.record_sample(
            T0 + i * SEC, fixed.from_int(1), {BTC: 0, ETH: 0}, {BTC: fixed.from_int(60_000), ETH: fixed.from_int(3_000)}
        )
    series.record_quote(ETH, T0, fixed.from_int(2_999), None)
    keys = [key for key, _, _ in render_panels(fixed_summary(), series)]
    assert keys == ["equity", "inventory", f"price:{BTC}", f"price:{ETH}"]


# -- alerts ---------------------------------------------------------------------------------------


def test_alerts_table_lists_time_kind_and_escaped_message(tmp_path: Path) -> None:
    series = _series()
    series.record_alert(T0 + 3 * SEC, "leg_risk", "hedged <simB> leg: 0.01 @ 60,000")
    series.record_alert(T0 + 7 * SEC, "risk.drawdown", "drawdown 5.1% > 5%")
    series.record_alert(T0 + 8 * SEC, "leg_risk", "second")
    html = write_html_report(fixed_summary(), series, tmp_path / "r.html").read_text(encoding="utf-8")
    section = html[html.index('<section id="alerts">') : html.index("</section>", html.index('id="alerts"'))]
    assert "3 alerts (leg_risk: 2, risk.drawdown: 1)" in section
    rows = re.findall(r"<tr><td class=\"t\">([^<]+)</td><td>([^<]+)</td><td>([^<]*)</td></tr>", section)
    assert rows == [
        ("2024-06-10 06:13:23.000 UTC", "leg_risk", "hedged &lt;simB&gt; leg: 0.01 @ 60,000"),
        ("2024-06-10 06:13:27.000 UTC", "risk.drawdown", "drawdown 5.1% &gt; 5%"),
        ("2024-06-10 06:13:28.000 UTC", "leg_risk", "second"),
    ]
    assert "<simB>" not in html


def test_no_alerts_no_section_and_many_alerts_are_capped(tmp_path: Path) -> None:
    series = _series()
    html = write_html_report(fixed_summary(), series, tmp_path / "a.html").read_text(encoding="utf-8")
    assert 'id="alerts"' not in html
    for i in range(MAX_ALERT_ROWS + 25):
        series.record_alert(T0 + i, "risk.order_rate", f"alert {i}")
    html = write_html_report(fixed_summary(), series, tmp_path / "b.html").read_text(encoding="utf-8")
    assert html.count('<tr><td class="t">') == MAX_ALERT_ROWS
    assert f"{MAX_ALERT_ROWS + 25:,} alerts (risk.order_rate: {MAX_ALERT_ROWS + 25:,})" in html
    assert f"the first {MAX_ALERT_ROWS:,} are listed" in html


def test_report_folder_is_created(tmp_path: Path) -> None:
    out = write_html_report(fixed_summary(), _series(), tmp_path / "new" / "dir" / "report.html")
    assert out.is_file() and len(_images(out.read_text(encoding="utf-8"))) == 3


# -- quotes stop where the orders did -------------------------------------------------------------


def test_quote_gap_is_marked_at_the_next_sample() -> None:
    s = RunSeries()
    quoting = {0: (10, 20), 1: (11, 21), 4: (12, None)}
    for i in range(6):
        s.record_sample(i * 10, 0, {}, {})
        if i in quoting:
            s.record_quote(BTC, i * 10, *quoting[i])
    # Quoted at samples 0 and 1, not at 2 or 3, again at 4, not at 5 (no sample after 5 yet).
    assert s.quotes[BTC] == [(0, 10, 20), (10, 11, 21), (20, None, None), (40, 12, None)]
    s.record_sample(60, 0, {}, {})
    assert s.quotes[BTC][-1] == (50, None, None)


# -- return, run records --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "initial", "expected", "text"),
    [
        (82_722_971_540, 320_000_100_000_000, 258_509, "0.0259%"),  # 82.72 / 320,000.10
        (-5 * 10**9, 100 * 10**9, -50_000_000, "-5.0000%"),
        (1, 3, 333_333_333, "33.3333%"),  # half-even to the nano
        (0, 10**9, 0, "0.0000%"),
    ],
)
def test_return_on_initial_equity(total: int, initial: int, expected: int, text: str) -> None:
    summary = fixed_summary(total_pnl=total, initial_equity=initial)
    assert summary.return_nanos() == expected
    assert format_return(expected) == text


def test_return_unknown_without_a_positive_initial_equity() -> None:
    assert fixed_summary().return_nanos() is None
    assert fixed_summary(initial_equity=0).return_nanos() is None
    assert format_return(None) == "-"


def test_envelope_indices_keep_ends_and_extremes() -> None:
    assert envelope_indices([5, 3, 8], 10) == [0, 1, 2]
    values = [0] * 1_000
    values[123], values[777] = 50, -50
    idx = envelope_indices(values, 20)
    assert idx[0] == 0 and idx[-1] == 999 and {123, 777} <= set(idx)
    assert len(idx) <= 22 and idx == sorted(set(idx))


def test_equity_curve_is_index_aligned_and_exact() -> None:
    series = RunSeries()
    for i in range(5_000):
        series.record_sample(T0 + i, 10**12 + (i % 97) * 10**7 - (i == 2_500) * 10**11, {}, {})
    curve = equity_curve(series, max_points=100)
    assert len(curve.ts) == len(curve.equity) <= 102
    by_ts = dict(zip(series.ts, series.equity, strict=True))
    assert all(by_ts[t] == e for t, e in zip(curve.ts, curve.equity, strict=True))
    assert min(curve.equity) == min(series.equity)


@pytest.mark.parametrize(
    ("report", "journal", "expected"),
    [
        ("runs/demo/report.html", "runs/demo/journal.sqlite", "runs/demo/run.json"),
        ("runs/a/r.html", None, "runs/a/r.run.json"),
        (None, "runs/b/journal.sqlite", "runs/b/run.json"),
        (None, "/tmp/x.sqlite", "/tmp/x.run.json"),
        (None, ":memory:", None),
        (None, "sqlite:///runs/c.db", None),
        (None, None, None),
    ],
)
def test_run_record_path(report: str | None, journal: str | None, expected: str | None) -> None:
    got = run_record_path(report, journal)
    assert (str(got) if got is not None else None) == expected


def _record(summary: RunSummary) -> RunRecord:
    return RunRecord(
        summary=summary,
        strategy="market_making",
        strategy_id="S1",
        strategy_params={"order_qty": "0.01", "levels": 3},
        seed=42,
        data=RunData(description="unit", files=["a.gz"]),
        equity=EquityCurve([T0, T0 + SEC], [10**12, 10**12 + 1]),
        alert_counts={"leg_risk": 2},
        config={"seed": 42},
    )


def test_run_record_roundtrip_keeps_every_nano(tmp_path: Path) -> None:
    big = 123_456_789_012_345_678_901  # beyond 2**64: JSON integers stay exact
    record = _record(fixed_summary(volume=big, initial_equity=10**15))
    path = write_run_record(record, tmp_path / "sub" / "run.json")
    assert read_run_record(path) == record
    raw = msgspec.json.decode(path.read_bytes())
    assert raw["summary"]["volume"] == big and raw["format"] == "tradeloop.run/1"


def test_reading_something_else_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("not json")
    with pytest.raises(RunRecordError, match="not a tradeloop run record"):
        read_run_record(bad)
    bad.write_text('{"format": "something/2"}')
    with pytest.raises(RunRecordError, match="format 'something/2'"):
        read_run_record(bad)
    bad.write_text('{"format": "tradeloop.run/1", "summary": {}}')
    with pytest.raises(RunRecordError, match="malformed run record"):
        read_run_record(bad)
    with pytest.raises(RunRecordError, match="cannot read"):
        read_run_record(tmp_path / "missing.json")
