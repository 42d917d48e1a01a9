"""The admin API's snapshot of a running engine: a pure function of the engine's state.

Money and quantities are decimal strings (exact, from fixed point), times are int nanoseconds.
The shape is fixed by the admin API contract (``docs/operations.md``); the dashboard reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from tradeloop.core import fixed
from tradeloop.model.book import OrderBook
from tradeloop.model.order import Order
from tradeloop.ops.metrics import EngineMetrics, histogram_buckets, histogram_quantile
from tradeloop.trading.portfolio import Portfolio

if TYPE_CHECKING:
    from tradeloop.runtime.backtest import BacktestEngine

__all__ = [
    "OrderView",
    "PositionView",
    "Snapshot",
    "build_snapshot",
    "encode_snapshot",
    "order_views",
    "position_views",
]

Mode = Literal["paper", "backtest", "live"]

BOOK_LEVELS: Final = 5
EQUITY_POINTS: Final = 600
ALERTS: Final = 100


class RiskView(msgspec.Struct, frozen=True):
    state: str
    reason: str


class VenueView(msgspec.Struct, frozen=True):
    venue: str
    connected: bool
    books: int
    last_data_ts: int | None


class BookView(msgspec.Struct, frozen=True):
    instrument: str
    valid: bool
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class PositionView(msgspec.Struct, frozen=True):
    instrument: str
    qty: str
    mark: str | None


class OrderView(msgspec.Struct, frozen=True):
    client_order_id: str
    instrument: str
    side: str
    price: str | None
    qty: str
    filled_qty: str
    status: str


class PnlView(msgspec.Struct, frozen=True):
    equity: str
    realized: str
    unrealized: str
    fees: str
    total: str


class LatencyHistogram(msgspec.Struct, frozen=True):
    buckets: list[tuple[float, int]]
    """``(upper bound in microseconds, cumulative count)``; the ``+Inf`` bucket is ``count``."""
    count: int
    p50: float | None
    p99: float | None


class LatencyView(msgspec.Struct, frozen=True):
    tick_to_trade_us: LatencyHistogram


class AlertView(msgspec.Struct, frozen=True):
    ts: int
    kind: str
    message: str


class Snapshot(msgspec.Struct, frozen=True):
    """Everything the dashboard shows, at one engine instant."""

    node: str
    mode: Mode
    ts: int
    risk: RiskView
    venues: list[VenueView]
    books: list[BookView]
    positions: list[PositionView]
    orders: list[OrderView]
    pnl: PnlView
    equity_curve: list[tuple[int, str]]
    latency: LatencyView
    alerts: list[AlertView]


def _levels(levels: list[tuple[int, int]]) -> list[tuple[str, str]]:
    return [(fixed.to_str(px), fixed.to_str(qty)) for px, qty in levels]


def _book_view(book: OrderBook) -> BookView:
    return BookView(
        instrument=str(book.instrument_id),
        valid=book.valid,
        bids=_levels(book.top_bids(BOOK_LEVELS)),
        asks=_levels(book.top_asks(BOOK_LEVELS)),
    )


def _latency(metrics: EngineMetrics | None) -> LatencyView:
    if metrics is None:
        return LatencyView(LatencyHistogram(buckets=[], count=0, p50=None, p99=None))
    buckets, total = histogram_buckets(metrics.tick_to_trade)
    p50 = histogram_quantile(0.5, buckets, total)
    p99 = histogram_quantile(0.99, buckets, total)
    return LatencyView(
        LatencyHistogram(
            buckets=[(le * 1e6, int(count)) for le, count in buckets],
            count=int(total),
            p50=p50 * 1e6 if p50 is not None else None,
            p99=p99 * 1e6 if p99 is not None else None,
        )
    )


def position_views(portfolio: Portfolio) -> list[PositionView]:
    """Every position of ``portfolio`` with its mark, by instrument."""
    marks = portfolio.marks
    return [
        PositionView(
            instrument=str(iid),
            qty=fixed.to_str(pos.qty),
            mark=fixed.to_str(marks[iid]) if iid in marks else None,
        )
        for iid, pos in sorted(portfolio.positions.items())
    ]


def order_views(orders: Iterable[Order]) -> list[OrderView]:
    """``orders`` as views, by client order id."""
    return [
        OrderView(
            client_order_id=o.client_order_id,
            instrument=str(o.instrument_id),
            side=o.side.value,
            price=fixed.to_str(o.price) if o.price is not None else None,
            qty=fixed.to_str(o.qty),
            filled_qty=fixed.to_str(o.filled_qty),
            status=o.status.value,
        )
        for o in sorted(orders, key=lambda o: o.client_order_id)
    ]


def build_snapshot(
    engine: BacktestEngine,
    *,
    mode: Mode,
    metrics: EngineMetrics | None = None,
    connected: Mapping[str, bool] | None = None,
) -> Snapshot:
    """The engine's state now. ``connected`` maps venue -> connection health (a venue missing from
    it counts as connected: simulated venues live in the process)."""
    books = engine.book_manager.books()
    venues: list[VenueView] = []
    for venue in sorted(engine.venues):
        venue_books = [b for iid, b in books.items() if iid.venue == venue]
        last = max((b.ts_recv for b in venue_books if b.ts_recv), default=None)
        venues.append(
            VenueView(
                venue=venue,
                connected=connected.get(venue, True) if connected is not None else True,
                books=len(venue_books),
                last_data_ts=last,
            )
        )
    p = engine.portfolio
    positions = position_views(p)
    orders = order_views(engine.oms.open_orders())
    series = engine.series
    curve = list(zip(series.ts[-EQUITY_POINTS:], series.equity[-EQUITY_POINTS:], strict=True))
    return Snapshot(
        node=engine.config.node_tag,
        mode=mode,
        ts=engine.clock.now_ns(),
        risk=RiskView(state=engine.risk.state.value, reason=engine.risk.state_reason),
        venues=venues,
        books=[_book_view(books[iid]) for iid in sorted(books)],
        positions=positions,
        orders=orders,
        pnl=PnlView(
            equity=fixed.to_str(p.equity()),
            realized=fixed.to_str(p.realized_pnl()),
            unrealized=fixed.to_str(p.unrealized_pnl()),
            fees=fixed.to_str(p.fees()),
            total=fixed.to_str(p.pnl()),
        ),
        equity_curve=[(ts, fixed.to_str(eq)) for ts, eq in curve],
        latency=_latency(metrics),
        alerts=[AlertView(ts, kind, message) for ts, kind, message in series.alerts[-ALERTS:]],
    )


_encoder = msgspec.json.Encoder()


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot as JSON bytes."""
    return _encoder.encode(snapshot)
