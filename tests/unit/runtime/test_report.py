"""Run results, console summary and HTML report."""

from __future__ import annotations

import base64
import random
import re
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from tradeloop.core import fixed
from tradeloop.model.enums import LiquiditySide, Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.position import Position
from tradeloop.runtime.report import render_panels, write_html_report, write_png_charts
from tradeloop.runtime.results import (
    BookIntegrity,
    Decimation,
    FillPoint,
    RunSeries,
    RunSummary,
    max_drawdown,
)
from tradeloop.runtime.summary import format_bps, format_duration, format_money, format_qty, render_summary

BTC = "binance:BTCUSDT"
ETH = "binance:ETHUSDT"
T0 = 1_718_000_000 * 10**9  # 2024-06-10 06:13:20 UTC
SEC = 10**9
CENT = 10**7  # 0.01 in nanos (tick)
LOT = 10**5  # 0.0001 in nanos (lot)


def synthetic_run(n_samples: int = 3_000, seed: int = 7) -> tuple[RunSummary, RunSeries]:
    """A deterministic fake run: two instruments, random-walk mids, a market maker's fills."""
    rng = random.Random(seed)
    series = RunSeries(interval_ns=SEC)
    mids = {BTC: fixed.from_int(65_000), ETH: fixed.from_int(3_400)}
    ticks = {BTC: 50 * CENT, ETH: 5 * CENT}
    positions = {BTC: Position(InstrumentId.parse(BTC)), ETH: Position(InstrumentId.parse(ETH))}
    cash = fixed.from_int(100_000)
    fees = volume = maker = taker = 0
    for i in range(n_samples):
        ts = T0 + i * SEC
        for inst in mids:
            mids[inst] += rng.choice((-1, 0, 1)) * ticks[inst]
        eth_valid = not (1_200 <= i < 1_260)  # a book gap on ETH
        if i % 7 == 3:
            inst = BTC if i % 2 else ETH
            skew = positions[inst].qty / fixed.from_int(2 if inst == BTC else 20)  # lean against inventory
            side = Side.BUY if rng.random() < 0.5 - skew else Side.SELL
            qty = rng.randint(1, 50) * LOT * (10 if inst == BTC else 200)
            liq = LiquiditySide.MAKER if rng.random() < 0.7 else LiquiditySide.TAKER
            half = ticks[inst] // 2
            price = mids[inst] - side.sign * half if liq is LiquiditySide.MAKER else mids[inst] + side.sign * half
            notional = fixed.mul(qty, price)
            fee = fixed.mul(notional, 10**5 if liq is LiquiditySide.MAKER else 4 * 10**5)  # 1 / 4 bps
            positions[inst].apply_fill(side.sign * qty, price, notional, fee)
            cash += -side.sign * notional - fee
            fees += fee
            volume += notional
            maker += liq is LiquiditySide.MAKER
            taker += liq is LiquiditySide.TAKER
            series.record_fill(FillPoint(ts, inst, side, price, qty, liq, fee))
        equity = cash + sum(p.market_value(mids[k]) for k, p in positions.items())
        series.record_sample(
            ts,
            equity,
            {k: p.qty for k, p in positions.items()},
            {BTC: mids[BTC], ETH: mids[ETH] if eth_valid else None},
        )
        if i % 5 == 0:
            series.record_quote(BTC, ts, mids[BTC] - 2 * ticks[BTC], mids[BTC] + 2 * ticks[BTC])
            series.record_extra("z-score", ts, rng.gauss(0.0, 1.0))
    realized = sum(p.realized for p in positions.values())
    unrealized = sum(p.unrealized(mids[k]) for k, p in positions.items())
    dd, dd_bps = series.drawdown.result()
    summary = RunSummary(
        strategy="demo_mm",
        seed=seed,
        data_source="synthetic random walk (2 instruments)",
        start_ts=T0,
        end_ts=T0 + (n_samples - 1) * SEC,
        events_processed=1_234_567,
        wall_seconds=3.5,
        events_per_second=1_234_567 / 3.5,
        fills=len(series.fills),
        maker_fills=maker,
        taker_fills=taker,
        volume=volume,
        fees=fees,
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        total_pnl=realized + unrealized - fees,
        max_drawdown=dd,
        max_drawdown_bps=dd_bps,
        final_positions={k: p.qty for k, p in positions.items()},
        journal_path="runs/demo/journal.tlj",
        journal_sha256="ab" * 32,
        book_integrity={
            BTC: BookIntegrity(applied=250_000, gaps=0, resyncs=0, valid_at_end=True),
            ETH: BookIntegrity(applied=180_000, gaps=1, resyncs=1, valid_at_end=True),
        },
        quote_currency="USDT",
    )
    return summary, series


def fixed_summary(**overrides: object) -> RunSummary:
    """A summary with hand-picked numbers whose formatting is checked literally."""
    base: dict[str, object] = {
        "strategy": "fixed",
        "seed": 42,
        "data_source": "unit",
        "start_ts": T0,
        "end_ts": T0 + 3_723 * SEC,
        "events_processed": 1_000_000,
        "wall_seconds": 2.0,
        "events_per_second": 500_000.0,
        "fills": 12,
        "maker_fills": 9,
        "taker_fills": 3,
        "volume": 98_765_432_109_876,  # 98,765.432109876
        "fees": 4_005_000_000,  # 4.005 -> 4.00 (half-even)
        "realized_pnl": 1_500_000_000_000,  # 1,500.00
        "unrealized_pnl": -261_427_109_877,  # -261.427109877 -> -261.43
        "total_pnl": 1_234_567_890_123,  # 1,234.567890123 -> 1,234.57
        "max_drawdown": 321_999_999_999,  # 321.999999999 -> 322.00
        "max_drawdown_bps": 1_234,  # 12.34%
        "final_positions": {BTC: 15_000_000, ETH: -2_500_000_000},  # 0.015, -2.5
        "journal_path": "runs/x/journal.tlj",
        "journal_sha256": "0f" * 32,
        "book_integrity": {BTC: BookIntegrity(applied=4_321, gaps=2, resyncs=1, valid_at_end=False)},
        "quote_currency": "USDT",
    }
    base.update(overrides)
    return msgspec.convert(base, RunSummary)


@pytest.fixture(scope="module")
def run() -> tuple[RunSummary, RunSeries]:
    return synthetic_run()


# -- max_drawdown ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("equity", "expected"),
    [
        ([], (0, 0)),
        ([100], (0, 0)),
        ([100, 110, 120], (0, 0)),
        ([100, 120, 90, 130, 125], (30, 2_500)),  # peak 120 -> 90
        ([1_000, 900, 950, 800, 1_200, 1_100], (200, 2_000)),  # peak 1000 -> 800
        ([100, 50, 200, 150], (50, 5_000)),  # tie: the first drawdown counts
        ([3, 2], (1, 3_333)),  # 3333.33 bps
        ([20_000, 19_999], (1, 0)),  # 0.5 bps -> 0 (half-even)
        ([20_000, 19_997], (3, 2)),  # 1.5 bps -> 2 (half-even)
        ([-10, -20], (10, 0)),  # non-positive peak: no percentage
        ([5, 5, 5], (0, 0)),
    ],
)
def test_max_drawdown_hand_values(equity: list[int], expected: tuple[int, int]) -> None:
    assert max_drawdown(equity) == expected
    scaled = [fixed.from_int(v) for v in equity]
    assert max_drawdown(scaled) == (fixed.from_int(expected[0]), expected[1])


def test_series_drawdown_sees_every_sample_despite_decimation() -> None:
    rng = random.Random(1)
    series = RunSeries(max_samples=50)
    equity = [fixed.from_int(1_000)]
    for _ in range(2_000):
        equity.append(equity[-1] + rng.randint(-10, 10) * 10**8)
    for i, e in enumerate(equity):
        series.record_sample(i, e, {}, {})
    assert len(series.equity) <= 50
    assert series.drawdown.result() == max_drawdown(equity)
    assert series.drawdown.result()[0] > 0


# -- decimation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 9, 10, 11, 57, 1_000, 4_097])
def test_decimation_keeps_first_last_and_grid(n: int) -> None:
    cap = 10
    series = RunSeries(max_samples=cap)
    for i in range(n):
        series.record_sample(i * 10, i, {BTC: i}, {BTC: i if i % 3 else None})
    state = series.decimation["samples"]
    assert series.samples_offered == n
    assert len(series.ts) <= cap
    assert series.ts[0] == 0
    assert series.ts[-1] == (n - 1) * 10
    expected = sorted({i for i in range(n) if i % state.stride == 0} | {n - 1})
    assert series.equity == expected
    assert series.ts == [i * 10 for i in expected]
    assert series.inventory[BTC] == expected
    assert series.mid[BTC] == [i if i % 3 else None for i in expected]
    assert series.ts == sorted(series.ts)


def test_decimation_is_deterministic() -> None:
    def build() -> bytes:
        rng = random.Random(5)
        s = RunSeries(max_samples=100)
        for i in range(5_000):
            s.record_sample(i, rng.randint(0, 10**12), {BTC: rng.randint(-5, 5)}, {BTC: rng.randint(1, 9)})
            if i % 3 == 0:
                s.record_quote(BTC, i, i, None)
                s.record_extra("z", i, rng.random())
        return msgspec.json.encode(s)

    first = build()
    assert first == build()
    again = msgspec.json.decode(first, type=RunSeries)
    assert len(again.ts) <= 100
    assert again.ts[0] == 0 and again.ts[-1] == 4_999
    assert again.quotes[BTC][0][0] == 0 and again.quotes[BTC][-1][0] == 4_998
    assert len(again.quotes[BTC]) <= 100
    assert again.extra_panels["z"][0][0] == 0 and len(again.extra_panels["z"]) <= 100


def test_decimation_state_compact_directly() -> None:
    d = Decimation()
    kept: list[int] = []
    for i in range(25):
        if d.begin_append():
            kept.pop()
        kept.append(i)
        keep = d.compact(len(kept), 6)
        if keep is not None:
            kept = [kept[j] for j in keep]
    assert kept[0] == 0 and kept[-1] == 24
    assert len(kept) <= 6
    assert all(k % d.stride == 0 for k in kept[:-1])


def test_record_sample_backfills_new_instruments_and_rejects_time_going_back() -> None:
    s = RunSeries()
    s.record_sample(1, 10, {BTC: 5}, {BTC: 100})
    s.record_sample(2, 11, {ETH: 7}, {ETH: None})
    s.record_sample(3, 12, {}, {ETH: 300})
    assert s.inventory == {BTC: [5, 0, 0], ETH: [0, 7, 0]}
    assert s.mid == {BTC: [100, None, None], ETH: [None, None, 300]}
    assert s.instruments() == [BTC, ETH]
    with pytest.raises(ValueError, match="backwards"):
        s.record_sample(2, 12, {}, {})
    with pytest.raises(ValueError):
        RunSeries(max_samples=2)


def test_results_roundtrip_through_msgspec(run: tuple[RunSummary, RunSeries]) -> None:
    summary, series = run
    assert msgspec.json.decode(msgspec.json.encode(summary), type=RunSummary) == summary
    assert msgspec.json.decode(msgspec.json.encode(series), type=RunSeries) == series


# -- formatting and console -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0.00"),
        (1_234_567_890_123, "1,234.57"),
        (-1_234_567_890_123, "-1,234.57"),
        (4_005_000_000, "4.00"),  # half-even
        (4_015_000_000, "4.02"),
        (1_000_000_000_000_000, "1,000,000.00"),
        (4_000_000, "0.004000"),  # too small for 2 decimals: shown, not hidden as 0.00
        (-1, "-0.000000001"),
    ],
)
def test_format_money(nanos: int, text: str) -> None:
    assert format_money(nanos) == text


def test_other_formats() -> None:
    assert format_qty(15_000_000) == "0.015"
    assert format_qty(-2_500_000_000) == "-2.5"
    assert format_qty(65_432_100_000_000) == "65,432.1"
    assert format_bps(1_234) == "12.34%"
    assert format_bps(5) == "0.05%"
    assert format_duration(3_723 * SEC) == "01:02:03"
    assert format_duration(90_061 * SEC) == "1d 01:01:01"
    assert format_duration(4_250_000_000) == "4.250s"


def test_render_summary_console() -> None:
    console = Console(record=True, width=200, color_system=None)
    console.print(render_summary(fixed_summary()))
    text = console.export_text()
    for expected in (
        "1,234.57 USDT",
        "-261.43 USDT",
        "1,500.00 USDT",
        "4.00 USDT",
        "98,765.43 USDT",
        "322.00 USDT (12.34%)",
        "12 (maker 9, taker 3)",
        "1,000,000",
        "01:02:03",
        "0f" * 32,
        "position 0.015",
        "position -2.5",
        "4,321 applied, 2 gaps, 1 resyncs, INVALID at end",
    ):
        assert expected in text, expected


# -- HTML report ----------------------------------------------------------------------------------


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_html_report_contents(run: tuple[RunSummary, RunSeries], tmp_path: Path) -> None:
    _, series = run
    summary = fixed_summary()
    path = write_html_report(summary, series, tmp_path / "report.html")
    assert path == tmp_path / "report.html" and path.exists()
    html = path.read_text(encoding="utf-8")
    for expected in (
        "1,234.57 USDT",
        "-261.43 USDT",
        "322.00 USDT (12.34%)",
        "98,765.43 USDT",
        "4.00 USDT",
        "0.015",
        "-2.5",
        "0f" * 32,
        "runs/x/journal.tlj",
        "2024-06-10 06:13:20.000 UTC",
        "4,321",
    ):
        assert expected in html, expected
    # One embedded PNG per panel: equity, inventory, price+fills for each instrument, extra panels.
    images = _images(html)
    assert len(images) == 5
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    for section in ("equity", "inventory", f"price:{BTC}", f"price:{ETH}", "extras"):
        assert f'id="{section}"' in html
    # Self-contained: nothing fetched.
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "<link" not in html


def test_html_report_is_byte_identical(run: tuple[RunSummary, RunSeries], tmp_path: Path) -> None:
    summary, series = run
    a = write_html_report(summary, series, tmp_path / "a.html").read_bytes()
    b = write_html_report(summary, series, str(tmp_path / "b.html")).read_bytes()
    assert a == b
    # Rebuilding the same run from scratch gives the same bytes too.
    summary2, series2 = synthetic_run()
    assert write_html_report(summary2, series2, tmp_path / "c.html").read_bytes() == a


def test_report_panels_follow_the_series(tmp_path: Path) -> None:
    series = RunSeries()
    for i in range(10):
        series.record_sample(T0 + i * SEC, fixed.from_int(100 + i), {BTC: i * LOT}, {BTC: fixed.from_int(60_000)})
    keys = [key for key, _, _ in render_panels(fixed_summary(), series)]
    assert keys == ["equity", "inventory", f"price:{BTC}"]  # no extras, no quotes, single instrument


def test_report_handles_an_empty_run(tmp_path: Path) -> None:
    summary = fixed_summary(final_positions={}, book_integrity={}, journal_path=None, journal_sha256=None)
    html = write_html_report(summary, RunSeries(), tmp_path / "empty.html").read_text(encoding="utf-8")
    assert len(_images(html)) == 1  # the equity panel, saying there are no samples
    assert "Journal sha256" not in html


def test_many_fills_are_aggregated_for_drawing(tmp_path: Path) -> None:
    series = RunSeries()
    for i in range(200):
        series.record_sample(T0 + i * SEC, fixed.from_int(1_000), {BTC: 0}, {BTC: fixed.from_int(60_000)})
    for i in range(10_000):
        side = Side.BUY if i % 2 else Side.SELL
        series.record_fill(
            FillPoint(T0 + i * 19_000_000, BTC, side, fixed.from_int(60_000), LOT, LiquiditySide.MAKER, 0)
        )
    html = write_html_report(fixed_summary(), series, tmp_path / "many.html").read_text(encoding="utf-8")
    assert len(_images(html)) == 3


def test_png_charts(run: tuple[RunSummary, RunSeries], tmp_path: Path) -> None:
    summary, series = run
    out = write_png_charts(summary, series, tmp_path / "charts.png")
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert write_png_charts(summary, series, tmp_path / "again.png").read_bytes() == data


def test_envelope_keeps_spikes_ends_and_gaps() -> None:
    import numpy as np

    from tradeloop.runtime.plotting import envelope_idx as _envelope_idx

    y = np.zeros(100_000)
    y[12_345] = 50.0
    y[67_890] = -50.0
    y[40_000:40_010] = np.nan
    idx = _envelope_idx(y, max_points=1_000)
    assert len(idx) <= 1_600
    assert idx[0] == 0 and idx[-1] == 99_999
    assert {12_345, 67_890, 40_000} <= set(idx.tolist())
    assert np.array_equal(idx, np.unique(idx))
    assert np.array_equal(_envelope_idx(y[:500]), np.arange(500))


def test_long_run_is_capped_and_still_reported(tmp_path: Path) -> None:
    series = RunSeries(interval_ns=SEC)
    n = 50_000
    for i in range(n):
        mid = fixed.from_int(60_000) + (i % 997) * CENT
        series.record_sample(T0 + i * SEC, fixed.from_int(1_000) + (i % 1_009) * CENT, {BTC: i % 13 * LOT}, {BTC: mid})
    assert len(series.ts) <= series.max_samples
    assert series.ts[0] == T0 and series.ts[-1] == T0 + (n - 1) * SEC
    summary = fixed_summary(start_ts=T0, end_ts=T0 + (n - 1) * SEC)
    html = write_html_report(summary, series, tmp_path / "long.html").read_text(encoding="utf-8")
    assert f"decimated from {n:,}" in html
    assert len(_images(html)) == 3
