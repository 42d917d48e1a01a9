"""An example third-party tradeloop strategy, registered by entry point (see ``pyproject.toml``).

:class:`GridQuoter` keeps a symmetric grid of post-only quotes around the mid: ``levels`` bids at
``step_bps``, ``2 x step_bps``, ... below it and as many asks above. The grid is rebuilt around the
new mid when the mid has moved ``recenter_bps`` from the grid's centre, or after a fill, at most
once per ``min_rebuild_ms``. A side stops quoting when the position change from the start reaches
``max_position``. Prices are exact integer arithmetic on the tick grid (no floats at all).
"""

from __future__ import annotations

from tradeloop.core import fixed
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookStatus
from tradeloop.model.enums import Side
from tradeloop.model.events import OrderFilled
from tradeloop.model.identifiers import InstrumentId
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext

__all__ = ["GridConfig", "GridQuoter", "grid_prices"]

_BPS = 10_000


class GridConfig(StrategyConfig, frozen=True, kw_only=True):
    """Parameters of :class:`GridQuoter` (amounts are decimal strings in base units)."""

    levels: int = 3
    step_bps: int = 2
    order_qty: str = "0.002"
    max_position: str = "0.02"
    recenter_bps: int = 3
    min_rebuild_ms: int = 1_000

    def __post_init__(self) -> None:
        if self.levels < 1 or self.step_bps < 1 or self.recenter_bps < 1 or self.min_rebuild_ms < 0:
            raise ValueError("levels, step_bps and recenter_bps must be at least 1, min_rebuild_ms >= 0")


def grid_prices(center: int, tick: int, levels: int, step_bps: int) -> tuple[list[int], list[int]]:
    """Bid and ask prices (nanos, on the tick grid) ``k x step_bps`` from ``center``, k = 1..levels.

    Bids round down and asks round up, away from the centre.
    """
    bids = [
        fixed.round_to_step(fixed.div_round(center * (_BPS - k * step_bps), _BPS, "floor"), tick, "floor")
        for k in range(1, levels + 1)
    ]
    asks = [
        fixed.round_to_step(fixed.div_round(center * (_BPS + k * step_bps), _BPS, "ceil"), tick, "ceil")
        for k in range(1, levels + 1)
    ]
    return bids, asks


class GridQuoter(Strategy[GridConfig]):
    """A grid of resting quotes that earns the spread while the price oscillates."""

    config_type = GridConfig

    def __init__(self, strategy_id: str, config: GridConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        self.iid: InstrumentId = self.instrument_ids[0] if self.instrument_ids else sorted(ctx.instruments)[0]
        self._qty = fixed.parse(config.order_qty)
        self._max = fixed.parse(config.max_position)
        self._center: int | None = None
        self._last_build = -(10**18)
        self._start_position = 0
        self._filled_since_build = False

    def on_start(self) -> None:
        self._start_position = self.ctx.position(self.iid)

    def on_book(self, book: OrderBook) -> None:
        if book.instrument_id != self.iid:
            return
        mid_x2 = book.mid_x2()
        if mid_x2 is None:
            return
        mid = mid_x2 // 2
        now = self.ctx.now_ns()
        if now - self._last_build < self.config.min_rebuild_ms * 1_000_000:
            return
        moved = self._center is None or abs(mid - self._center) * _BPS >= self.config.recenter_bps * self._center
        if moved or self._filled_since_build:
            self._rebuild(mid, book)

    def _rebuild(self, mid: int, book: OrderBook) -> None:
        inst = self.ctx.instrument(self.iid)
        self.ctx.cancel_all(self.iid)
        self._center = mid
        self._last_build = self.ctx.now_ns()
        self._filled_since_build = False
        bids, asks = grid_prices(mid, inst.tick_size, self.config.levels, self.config.step_bps)
        inventory = self.ctx.position(self.iid) - self._start_position
        best_bid, best_ask = book.best_bid(), book.best_ask()
        for n, price in enumerate(bids, start=1):
            if inventory + n * self._qty <= self._max and (best_ask is None or price < best_ask):
                self.ctx.submit(self.iid, Side.BUY, self._qty, price, post_only=True)
        for n, price in enumerate(asks, start=1):
            if inventory - n * self._qty >= -self._max and (best_bid is None or price > best_bid):
                self.ctx.submit(self.iid, Side.SELL, self._qty, price, post_only=True)

    def on_fill(self, fill: OrderFilled) -> None:
        self._filled_since_build = True

    def on_book_status(self, status: BookStatus) -> None:
        if status.instrument_id == self.iid and not status.valid:
            self.ctx.cancel_all(self.iid)
            self._center = None

    def on_stop(self) -> None:
        self.ctx.cancel_all()
