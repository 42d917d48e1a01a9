"""What a run produces: the sampled series behind the report charts and the run summary.

Everything exact stays exact: equity, positions, prices, fees and PnL are ``int`` nanos (see
:mod:`tradeloop.core.fixed`). Floats appear only in :attr:`RunSeries.extra_panels` (strategy
signals such as a z-score, which are display-only) and in wall-clock throughput figures.

:class:`RunSeries` is a mutable recorder filled while the engine runs. Samples are taken at a fixed
interval of engine time; for very long runs the recorder keeps at most ``max_samples`` of them by
deterministic decimation (see :class:`Decimation`), while :attr:`RunSeries.drawdown` still sees
every sample, so the drawdown it reports is exact for the full run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

import msgspec

from tradeloop.core import fixed
from tradeloop.model.enums import LiquiditySide, Side

__all__ = [
    "DEFAULT_MAX_SAMPLES",
    "BookIntegrity",
    "Decimation",
    "DrawdownTracker",
    "FillPoint",
    "RunSeries",
    "RunSummary",
    "max_drawdown",
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
      that side. Optional.
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
