"""What a run produces: the sampled series behind the report charts and the run summary.

Everything exact stays exact: equity, positions, prices, fees and PnL are ``int`` nanos (see
:mod:`tradeloop.core.fixed`). Floats appear only in :attr:`RunSeries.extra_panels` (strategy
signals such as a z-score, which are display-only) and in wall-clock throughput figures.

:class:`RunSeries` is a mutable recorder filled while the engine runs. Samples are taken at a fixed
interval of engine time; for very long runs the recorder keeps at most ``max_samples`` of them by
deterministic decimation (see :class:`Decimation`), while :attr:`RunSeries.drawdown` still sees
every sample, so the drawdown it reports is exact for the full run.

:class:`RunRecord` is what is kept of a run on disk (``run.json`` next to its report): the
summary, how the run was set up, and its equity curve, for ``tradeloop report`` to compare runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from tradeloop.core import fixed
from tradeloop.model.enums import LiquiditySide, Side

__all__ = [
    "DEFAULT_CURVE_POINTS",
    "DEFAULT_MAX_SAMPLES",
    "RUN_RECORD_FORMAT",
    "BookIntegrity",
    "Decimation",
    "DrawdownTracker",
    "EquityCurve",
    "FillPoint",
    "RunData",
    "RunRecord",
    "RunRecordError",
    "RunSeries",
    "RunSummary",
    "envelope_indices",
    "equity_curve",
    "max_drawdown",
    "read_run_record",
    "run_record_path",
    "write_run_record",
]

DEFAULT_MAX_SAMPLES = 20_000
"""Default cap on stored samples per series (equity/inventory/mid, each quote line, each extra panel)."""

_BPS = 10_000
_T = TypeVar("_T")


class FillPoint(msgspec.Struct, frozen=True):
    """One fill of ours, as drawn on the price chart.

    ``price``, ``qty`` (always positive; direction is ``side``) and ``fee`` (quote) are nanos.
    ``instrument`` is the instrument id string, e.g. ``"binance:BTCUSDT"``.
    """

    ts: int
    instrument: str
    side: Side
    price: int
    qty: int
    liquidity: LiquiditySide
    fee: int


class BookIntegrity(msgspec.Struct, frozen=True):
    """Order-book health for one instrument over a run.

    ``applied``: updates applied; ``gaps``: sequence gaps detected; ``resyncs``: snapshots taken to
    recover; ``valid_at_end``: whether the book was valid when the run ended.
    """

    applied: int
    gaps: int
    resyncs: int
    valid_at_end: bool


class DrawdownTracker(msgspec.Struct):
    """Running maximum drawdown of an equity stream (exact integers).

    The drawdown at a point is ``running peak - equity``. The tracker keeps the largest one seen
    (the first, on ties) and the peak it fell from.
    """

    peak: int | None = None
    max_drawdown: int = 0
    peak_at_max: int = 0

    def update(self, equity: int) -> None:
        """Feed the next equity value (nanos)."""
        if self.peak is None or equity > self.peak:
            self.peak = equity
        dd = self.peak - equity
        if dd > self.max_drawdown:
            self.max_drawdown = dd
            self.peak_at_max = self.peak

    def result(self) -> tuple[int, int]:
        """``(max drawdown in nanos, that drawdown in basis points of its peak)``.

        The basis points are rounded half-even; they are 0 when there is no drawdown or when the
        peak was not positive (a percentage of a non-positive equity means nothing).
        """
        if self.max_drawdown <= 0 or self.peak_at_max <= 0:
            return self.max_drawdown, 0
        return self.max_drawdown, fixed.div_round(self.max_drawdown * _BPS, self.peak_at_max)


def max_drawdown(equity: Sequence[int]) -> tuple[int, int]:
    """Maximum drawdown of an equity series.

    Returns ``(absolute drawdown in nanos, drawdown in basis points of the peak it fell from)``.
    The absolute drawdown is the largest ``running peak - equity``; on ties the first one counts.
    Basis points are rounded half-even and are 0 if the peak was not positive. An empty or
    never-falling series gives ``(0, 0)``.

    >>> max_drawdown([100, 120, 90, 130, 125])
    (30, 2500)
    """
    tracker = DrawdownTracker()
    for value in equity:
        tracker.update(value)
    return tracker.result()


class Decimation(msgspec.Struct):
    """Deterministic decimation state of one capped series.

    The series keeps the samples whose arrival index is a multiple of ``stride``, plus always the
    most recent sample (``tail_off_grid`` says whether that one is off the grid and will be replaced
    by the next arrival). When the stored length exceeds the cap, ``stride`` doubles and every
    other grid sample is dropped. The result depends only on the sequence of samples: the first and
    the last sample are always kept, and the same run always keeps the same samples.
    """

    offered: int = 0
    stride: int = 1
    tail_off_grid: bool = False

    def begin_append(self) -> bool:
        """Register one arriving sample. Returns whether the stored last sample must be dropped first."""
        drop_tail = self.tail_off_grid
        self.tail_off_grid = self.offered % self.stride != 0
        self.offered += 1
        return drop_tail

    def compact(self, length: int, cap: int) -> list[int] | None:
        """After an append: the indices to keep if ``length`` exceeds ``cap``, else ``None``."""
        if length <= cap:
            return None
        keep = list(range(length))
        while len(keep) > cap:
            grid = keep[:-1] if self.tail_off_grid else keep
            self.stride *= 2
            kept = grid[::2]
            last = keep[-1]
            if kept[-1] != last:
                kept.append(last)
            self.tail_off_grid = (self.offered - 1) % self.stride != 0
            keep = kept
        return keep


def _take(values: list[_T], indices: Iterable[int]) -> list[_T]:
    return [values[i] for i in indices]


_SAMPLES = "samples"


class RunSeries(msgspec.Struct):
    """Time series recorded during a run, for the report charts.

    Fields:

    * ``ts``: engine time (ns) of each sample; ``equity``: account equity (quote nanos) per sample.
    * ``inventory``: instrument id -> signed position qty (nanos) per sample.
    * ``mid``: instrument id -> mid price (nanos) per sample, ``None`` while the book is invalid.
    * ``fills``: every fill, in arrival order (not decimated; the report aggregates them for drawing).
    * ``quotes``: instrument id -> ``(ts, our best bid, our best ask)``; ``None`` when we have no order on
      that side. Optional. Recorded at sample times after the sample (:meth:`record_quote`); an
      instrument that quoted at one sample and has nothing recorded at the next gets a
      ``(ts, None, None)`` point there, so the quote lines stop where the orders did.
    * ``extra_panels``: panel name -> ``(ts, value)`` for strategy-specific series (spread, z-score...),
      drawn as extra panels when present.
    * ``alerts``: ``(ts, kind, message)`` of every strategy alert and risk alert, in order.

    ``interval_ns`` is the sampling interval (informational). Each series keeps at most
    ``max_samples`` points, decimated deterministically (:class:`Decimation`); ``drawdown`` is
    updated with every sample before decimation.
    """

    interval_ns: int = 0
    max_samples: int = DEFAULT_MAX_SAMPLES
    ts: list[int] = msgspec.field(default_factory=list)
    equity: list[int] = msgspec.field(default_factory=list)
    inventory: dict[str, list[int]] = msgspec.field(default_factory=dict)
    mid: dict[str, list[int | None]] = msgspec.field(default_factory=dict)
    fills: list[FillPoint] = msgspec.field(default_factory=list)
    quotes: dict[str, list[tuple[int, int | None, int | None]]] = msgspec.field(default_factory=dict)
    extra_panels: dict[str, list[tuple[int, float]]] = msgspec.field(default_factory=dict)
    alerts: list[tuple[int, str, str]] = msgspec.field(default_factory=list)
    drawdown: DrawdownTracker = msgspec.field(default_factory=DrawdownTracker)
    decimation: dict[str, Decimation] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_samples < 3:
            raise ValueError("max_samples must be at least 3")

    # -- recording ------------------------------------------------------------------------------

    def record_sample(self, ts: int, equity: int, inventory: Mapping[str, int], mids: Mapping[str, int | None]) -> None:
        """Record one sample at engine time ``ts`` (ns, non-decreasing).

        ``inventory`` maps instrument id -> position qty (an instrument absent from it is flat this
        sample); ``mids`` maps instrument id -> mid price or ``None`` (absent means ``None``). An
        instrument seen for the first time is back-filled as flat / no mid.
        """
        if self.ts and ts < self.ts[-1]:
            raise ValueError(f"sample time went backwards: {ts} < {self.ts[-1]}")
        if self.ts:
            self._close_quotes(self.ts[-1])
        self.drawdown.update(equity)
        state = self._state(_SAMPLES)
        if state.begin_append():
            self._pop_last_sample()
        n_before = len(self.ts)
        self.ts.append(ts)
        self.equity.append(equity)
        for inst in inventory:
            if inst not in self.inventory:
                self.inventory[inst] = [0] * n_before
        for inst in mids:
            if inst not in self.mid:
                self.mid[inst] = [None] * n_before
        for inst, qtys in self.inventory.items():
            qtys.append(inventory.get(inst, 0))
        for inst, prices in self.mid.items():
            prices.append(mids.get(inst))
        keep = state.compact(len(self.ts), self.max_samples)
        if keep is not None:
            self.ts = _take(self.ts, keep)
            self.equity = _take(self.equity, keep)
            self.inventory = {k: _take(v, keep) for k, v in self.inventory.items()}
            self.mid = {k: _take(v, keep) for k, v in self.mid.items()}

    def record_fill(self, fill: FillPoint) -> None:
        """Record one of our fills."""
        self.fills.append(fill)

    def record_quote(self, instrument: str, ts: int, bid: int | None, ask: int | None) -> None:
        """Record our best bid / ask on ``instrument`` (``None`` for no order on a side)."""
        points = self.quotes.setdefault(instrument, [])
        self._append_capped("quote:" + instrument, points, (ts, bid, ask))

    def record_extra(self, panel: str, ts: int, value: float) -> None:
        """Record a display-only strategy value (e.g. spread, z-score) for the extra panel ``panel``."""
        points = self.extra_panels.setdefault(panel, [])
        self._append_capped("extra:" + panel, points, (ts, value))

    def record_alert(self, ts: int, kind: str, message: str) -> None:
        """Record a strategy or risk incident (kept in full: incidents are few and all matter)."""
        self.alerts.append((ts, kind, message))

    # -- queries --------------------------------------------------------------------------------

    @property
    def samples_offered(self) -> int:
        """Number of samples recorded before decimation."""
        return self._state(_SAMPLES).offered

    def instruments(self) -> list[str]:
        """Every instrument id appearing anywhere in the series, sorted."""
        names: set[str] = set(self.inventory) | set(self.mid) | set(self.quotes)
        names.update(f.instrument for f in self.fills)
        return sorted(names)

    # -- internals ------------------------------------------------------------------------------

    def _state(self, key: str) -> Decimation:
        state = self.decimation.get(key)
        if state is None:
            state = self.decimation[key] = Decimation()
        return state

    def _close_quotes(self, prev_ts: int) -> None:
        """Mark "no order" at the previous sample for instruments that quoted before but not then.

        Quotes are recorded at sample times, only for instruments with an order working; without
        this mark a chart would draw the last quote on until the next one, across the idle time.
        """
        for inst, points in self.quotes.items():
            last_ts, bid, ask = points[-1]
            if last_ts < prev_ts and (bid is not None or ask is not None):
                self.record_quote(inst, prev_ts, None, None)

    def _pop_last_sample(self) -> None:
        self.ts.pop()
        self.equity.pop()
        for qtys in self.inventory.values():
            qtys.pop()
        for prices in self.mid.values():
            prices.pop()

    def _append_capped(self, key: str, points: list[_T], point: _T) -> None:
        state = self._state(key)
        if state.begin_append():
            points.pop()
        points.append(point)
        keep = state.compact(len(points), self.max_samples)
        if keep is not None:
            points[:] = _take(points, keep)


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The numbers of one run, as shown in the console and at the top of the report.

    All money (``volume``, ``fees``, PnL, drawdown, equity) is ``int`` quote nanos and positions are
    ``int`` base nanos. ``realized_pnl`` is before fees (as :class:`~tradeloop.model.position.Position`
    keeps it); ``total_pnl`` is net: ``realized_pnl + unrealized_pnl - fees``. Times are engine ns.
    ``wall_seconds`` and ``events_per_second`` measure the host, not the strategy.
    """

    strategy: str
    seed: int
    data_source: str
    start_ts: int
    end_ts: int
    events_processed: int
    wall_seconds: float
    events_per_second: float
    fills: int
    maker_fills: int
    taker_fills: int
    volume: int
    fees: int
    realized_pnl: int
    unrealized_pnl: int
    total_pnl: int
    max_drawdown: int
    max_drawdown_bps: int
    final_positions: dict[str, int] = msgspec.field(default_factory=dict)
    journal_path: str | None = None
    journal_sha256: str | None = None
    book_integrity: dict[str, BookIntegrity] = msgspec.field(default_factory=dict)
    quote_currency: str = ""
    """Currency of money fields (e.g. ``"USDT"``), for labels only."""
    initial_equity: int | None = None
    """Equity when the run started (quote nanos), the base of the return; ``None`` if unknown."""

    def return_nanos(self) -> int | None:
        """Total PnL as a fraction of the initial equity, in nanos (``10**9`` = +100 %), half-even.

        ``None`` when the initial equity is unknown or not positive.
        """
        if self.initial_equity is None or self.initial_equity <= 0:
            return None
        return fixed.div_round(self.total_pnl * fixed.SCALE, self.initial_equity)


# -- run record -----------------------------------------------------------------------------------

RUN_RECORD_FORMAT = "tradeloop.run/1"
"""Format tag written into every ``run.json``."""

RUN_RECORD_NAME = "run.json"
RUN_RECORD_SUFFIX = ".run.json"
DEFAULT_CURVE_POINTS = 2_000
"""Equity points kept in a run record (min/max envelope of the sampled equity)."""


class RunRecordError(ValueError):
    """A file is not a readable tradeloop run record."""


class EquityCurve(msgspec.Struct, frozen=True):
    """Equity over a run, reduced for storage: engine ns and quote nanos, index-aligned."""

    ts: list[int] = msgspec.field(default_factory=list)
    equity: list[int] = msgspec.field(default_factory=list)


class RunData(msgspec.Struct, frozen=True, kw_only=True):
    """What market a run saw: a human description, and the recordings replayed (empty: synthetic)."""

    description: str
    files: list[str] = msgspec.field(default_factory=list)


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to compare a run with others, written as ``run.json`` next to its report.

    Money is ``int`` nanos throughout, exactly as in :class:`RunSummary` (JSON integers are exact;
    decode them as integers, not doubles). ``config`` is the effective backtest config (amounts
    as the decimal strings it was written with), enough to run the same backtest again.
    """

    format: str = RUN_RECORD_FORMAT
    summary: RunSummary
    strategy: str
    """The strategy as it was asked for: built-in name, ``module:Class`` or ``path.py:Class``."""
    strategy_id: str
    strategy_params: dict[str, Any] = msgspec.field(default_factory=dict)
    seed: int
    data: RunData
    report_path: str | None = None
    equity: EquityCurve = msgspec.field(default_factory=EquityCurve)
    alert_counts: dict[str, int] = msgspec.field(default_factory=dict)
    """Number of alerts on record per kind."""
    config: dict[str, Any] = msgspec.field(default_factory=dict)


def envelope_indices(values: Sequence[int], max_points: int) -> list[int]:
    """Indices of ``values`` keeping the first, the last, and each bucket's min and max.

    Deterministic; returns every index when there are at most ``max_points`` values. The result
    has at most about ``max_points + 2`` entries and keeps the global extremes.
    """
    n = len(values)
    if n <= max_points:
        return list(range(n))
    buckets = max(1, max_points // 2)
    keep = {0, n - 1}
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        seg = range(lo, hi)
        keep.add(min(seg, key=values.__getitem__))
        keep.add(max(seg, key=values.__getitem__))
    return sorted(keep)


def equity_curve(series: RunSeries, max_points: int = DEFAULT_CURVE_POINTS) -> EquityCurve:
    """The sampled equity of ``series`` reduced to about ``max_points`` points (extremes kept)."""
    idx = envelope_indices(series.equity, max_points)
    return EquityCurve([series.ts[i] for i in idx], [series.equity[i] for i in idx])


def run_record_path(report: str | Path | None, journal: str | Path | None) -> Path | None:
    """Where a run's record goes: next to its report, else next to its journal file.

    ``report.html`` (or ``journal.sqlite``) gives ``run.json`` in the same folder; any other name
    gives ``<stem>.run.json``, so several runs can share a folder. ``None`` when the run has
    neither a report nor a journal file (an in-memory or URL journal).
    """
    base: Path | None = None
    if report:
        base = Path(report)
    elif journal and str(journal) not in ("", ":memory:") and "://" not in str(journal):
        base = Path(journal)
    if base is None:
        return None
    name = RUN_RECORD_NAME if base.stem in ("report", "journal") else base.stem + RUN_RECORD_SUFFIX
    return base.with_name(name)


def write_run_record(record: RunRecord, path: str | Path) -> Path:
    """Write ``record`` as indented JSON (creating the folder) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n")
    return out


def read_run_record(path: str | Path) -> RunRecord:
    """Read a ``run.json``; :class:`RunRecordError` says why a file is not one."""
    src = Path(path)
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise RunRecordError(f"{src}: cannot read ({exc.strerror})") from None
    try:
        head = msgspec.json.decode(data, type=dict[str, Any])
    except msgspec.DecodeError as exc:
        raise RunRecordError(f"{src}: not a tradeloop run record (not a JSON object: {exc})") from None
    fmt = head.get("format")
    if fmt != RUN_RECORD_FORMAT:
        raise RunRecordError(f"{src}: not a tradeloop run record (format {fmt!r}, expected {RUN_RECORD_FORMAT!r})")
    try:
        return msgspec.json.decode(data, type=RunRecord)
    except msgspec.ValidationError as exc:
        raise RunRecordError(f"{src}: malformed run record: {exc}") from None
