"""Market making around an order-book-imbalance fair price.

Fair price = mid + skew x imbalance, where imbalance = (bid volume - ask volume) /
(bid volume + ask volume) over the top ``depth_levels`` levels and ``skew_bps`` scales it to price.
Quotes sit ``half_spread_bps`` either side of fair (rounded away from fair onto the tick grid),
are post-only, and are not touched for moves smaller than ``refresh_ticks``. Inventory skews the
quotes (``inventory_skew_bps`` per unit of ``max_inventory``) and the heavy side stops quoting at
``max_inventory``. An invalid book cancels the quotes until the book is rebuilt.

Signal math is in float (allowed for signals); every price and size that leaves the strategy is
an exact fixed-point multiple of the instrument's tick and lot.
"""

from __future__ import annotations

from tradeloop.core import fixed
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookStatus
from tradeloop.model.enums import OrderStatus, Side
from tradeloop.model.events import OrderAmendRejected, OrderDenied, OrderEvent, OrderRejected
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import Order
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext


class MarketMakingConfig(StrategyConfig, frozen=True, kw_only=True):
    order_qty: str = "0.01"
    """Size of each quote, in base units (decimal string)."""
    half_spread_bps: int = 0
    depth_levels: int = 5
    skew_bps: int = 2
    max_inventory: str = "0.1"
    inventory_skew_bps: int = 3
    refresh_ticks: int = 3
    post_only: bool = True
    reject_cooldown_ms: int = 200
    """After a rejected quote or amend, leave that side alone this long (no reject storms)."""


class MarketMaking(Strategy[MarketMakingConfig]):
    """One bid and one ask per instrument, kept around the imbalance-skewed fair price."""

    config_type = MarketMakingConfig

    def __init__(self, strategy_id: str, config: MarketMakingConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        if not self.instrument_ids:
            self.instrument_ids = sorted(ctx.instruments)[:1]
        self._qty = fixed.parse(config.order_qty)
        self._max_inv = fixed.parse(config.max_inventory)
        self._quotes: dict[tuple[InstrumentId, Side], str] = {}
        self._watched = set(self.instrument_ids)
        self._cooldown_until: dict[tuple[InstrumentId, Side], int] = {}
        self._reference: dict[InstrumentId, int] = {}

    def on_start(self) -> None:
        # Inventory is measured from what the account held at the start (e.g. spot holdings).
        self._reference = {iid: self.ctx.position(iid) for iid in self.instrument_ids}

    def inventory(self, instrument_id: InstrumentId) -> int:
        """Position change since the start, in base units."""
        return self.ctx.position(instrument_id) - self._reference.get(instrument_id, 0)

    def fair_price(self, book: OrderBook) -> float | None:
        """Imbalance-skewed fair price (float signal), or ``None`` if the book has an empty side."""
        mid_x2 = book.mid_x2()
        if mid_x2 is None:
            return None
        mid = mid_x2 / (2 * fixed.SCALE)
        bid_vol = book.volume(True, self.config.depth_levels)
        ask_vol = book.volume(False, self.config.depth_levels)
        total = bid_vol + ask_vol
        imbalance = (bid_vol - ask_vol) / total if total else 0.0
        return mid * (1.0 + self.config.skew_bps * imbalance / 10_000)

    def target_quotes(self, book: OrderBook) -> tuple[int | None, int | None]:
        """Bid and ask prices to quote now (``None`` = do not quote that side)."""
        fair = self.fair_price(book)
        if fair is None:
            return None, None
        inst = self.ctx.instrument(book.instrument_id)
        pos = self.inventory(book.instrument_id)
        inv_ratio = pos / self._max_inv if self._max_inv else 0.0
        center = fair * (1.0 - self.config.inventory_skew_bps * inv_ratio / 10_000)
        half = center * self.config.half_spread_bps / 10_000
        bid = fixed.from_float_for_signal(center - half, inst.tick_size, "floor")
        ask = fixed.from_float_for_signal(center + half, inst.tick_size, "ceil")
        best_bid, best_ask = book.best_bid(), book.best_ask()
        if self.config.post_only:
            # Join the touch at most: a quote one tick inside a one-tick spread is racing the venue.
            if best_bid is not None:
                bid = min(bid, best_bid)
            if best_ask is not None:
                ask = max(ask, best_ask)
        return (
            bid if pos + self._qty <= self._max_inv else None,
            ask if pos - self._qty >= -self._max_inv else None,
        )

    def on_book(self, book: OrderBook) -> None:
        iid = book.instrument_id
        if iid not in self._watched:
            return
        bid, ask = self.target_quotes(book)
        # Never quote into our own opposite order (the risk engine would deny it as a self-trade).
        tick = self.ctx.instrument(iid).tick_size
        own_ask, own_bid = self._working(iid, Side.SELL), self._working(iid, Side.BUY)
        if bid is not None and own_ask is not None and own_ask.price is not None and bid >= own_ask.price:
            bid = own_ask.price - tick
        if ask is not None and own_bid is not None and own_bid.price is not None and ask <= own_bid.price:
            ask = own_bid.price + tick
        self._requote(iid, Side.BUY, bid)
        self._requote(iid, Side.SELL, ask)

    def _working(self, iid: InstrumentId, side: Side) -> Order | None:
        cid = self._quotes.get((iid, side))
        if cid is None:
            return None
        order = self.ctx.order(cid)
        if order is None or order.is_terminal:
            del self._quotes[(iid, side)]
            return None
        return order

    def _requote(self, iid: InstrumentId, side: Side, price: int | None) -> None:
        until = self._cooldown_until.get((iid, side))
        if until is not None and self.ctx.now_ns() < until and price is not None:
            return
        order = self._working(iid, side)
        if order is not None:
            if order.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
                return  # a request is in flight; decide again on its answer
            if price is None:
                self.ctx.cancel(order.client_order_id)
                return
            tick = self.ctx.instrument(iid).tick_size
            if order.price is not None and abs(order.price - price) < self.config.refresh_ticks * tick:
                return
            self.ctx.amend(order.client_order_id, price=price)
            return
        if price is None:
            return
        self._quotes[(iid, side)] = self.ctx.submit(iid, side, self._qty, price, post_only=self.config.post_only)

    def on_book_status(self, status: BookStatus) -> None:
        if not status.valid and status.instrument_id in self._watched:
            self.ctx.cancel_all(status.instrument_id)

    def on_order(self, event: OrderEvent) -> None:
        order = self.ctx.order(event.client_order_id)
        if order is None:
            return
        if isinstance(event, OrderRejected | OrderAmendRejected | OrderDenied):
            cooldown = self.config.reject_cooldown_ms * 1_000_000
            self._cooldown_until[(order.instrument_id, order.side)] = self.ctx.now_ns() + cooldown
        if order.is_terminal:
            return
        # Quotes replaced by cancel/replace come back under a new client id: follow it.
        key = (order.instrument_id, order.side)
        if key not in self._quotes or self._working(*key) is None:
            self._quotes[key] = order.client_order_id

    def on_stop(self) -> None:
        self.ctx.cancel_all()
