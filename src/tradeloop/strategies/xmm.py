"""Cross-exchange market making: quote on the less liquid venue, hedge every fill on the liquid one.

``maker`` names the instrument quoted (post-only, one bid and one ask) and ``hedge`` the instrument
where fills are hedged with IOC orders. Quotes are priced off the hedge venue's touch so that a
fill, hedged at that touch, keeps ``min_edge_bps`` after the maker venue's maker fee and the hedge
venue's taker fee (:func:`~tradeloop.strategies.arb_math.maker_quote`), relative to an expected
``basis_bps`` premium of the maker venue. A quote never crosses the maker venue's book (post-only
would be rejected); it is moved at once when the hedge touch moves against it, and otherwise only
when the target moved by ``refresh_bps`` or more.

Every maker fill makes the position across the two venues unbalanced; whenever the leg executor is
idle, the strategy hedges the net position on the hedge venue as a single-leg group (IOC at the
hedge touch, then the executor's retries and aggressive hedge within ``legs.hedge_slippage_bps``).
Small partial fills accumulate until the net reaches the hedge venue's lot, minimum size and
minimum order value (e.g. 100 USDT on Binance USD-M), so up to that much can stay unhedged.
A hedge that ends with a residual is reported by the executor (``leg_risk`` alert), and the
strategy tries again after ``rehedge_cooldown_ms``. The side that would add to an unhedged position
larger than ``max_unhedged``, or push the maker position past ``max_position``, stops quoting.
"""

from __future__ import annotations

import msgspec

from tradeloop.core import fixed
from tradeloop.core.config import ConfigError
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookStatus
from tradeloop.model.enums import LiquiditySide, OrderStatus, Side
from tradeloop.model.events import OrderAmendRejected, OrderDenied, OrderEvent, OrderFilled, OrderRejected
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import Order
from tradeloop.strategies import arb_math
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext
from tradeloop.strategies.legs import Leg, LegExecutor, LegGroupResult, LegRiskConfig
from tradeloop.strategies.xarb import FeeOverride, TakenLiquidity, account_capacity, fee_rates


class CrossExchangeMarketMakingConfig(StrategyConfig, frozen=True, kw_only=True):
    """Parameters of ``xmm`` (``[strategy.params]``); amounts are decimal strings.

    ``maker`` and ``hedge`` default to the first and second of ``instruments`` (or, without
    ``instruments``, of the node's instruments in sorted order).
    """

    maker: str = ""
    """Instrument quoted passively (the less liquid venue), ``"venue:SYMBOL"``."""
    hedge: str = ""
    """Instrument where fills are hedged (the liquid venue)."""
    order_qty: str = "0.01"
    """Size of each quote, base units."""
    min_edge_bps: str = "0.5"
    """Edge kept beyond the maker fee and the hedge taker fee, basis points."""
    refresh_bps: str = "0.5"
    """Move a quote towards its target only when the target moved at least this far."""
    basis_bps: str = "0"
    """Expected premium of the maker venue over the hedge venue, basis points."""
    max_position: str = "0.5"
    """Largest maker position change since the start, base units."""
    max_unhedged: str = "0.02"
    """Stop quoting the side that would add to an unhedged position beyond this, base units."""
    fees: dict[str, FeeOverride] = msgspec.field(default_factory=dict)
    perp_margin: str = "0.1"
    reject_cooldown_ms: int = 200
    """After a rejected quote or amend, leave that side alone this long."""
    rehedge_cooldown_ms: int = 1000
    """After a hedge that left a residual, wait this long before hedging again."""
    record_interval_ms: int = 1000
    legs: LegRiskConfig = msgspec.field(default_factory=LegRiskConfig)


class CrossExchangeMarketMaking(Strategy[CrossExchangeMarketMakingConfig]):
    """``xmm``: post-only quotes on the maker venue, IOC hedges on the hedge venue."""

    config_type = CrossExchangeMarketMakingConfig

    def __init__(self, strategy_id: str, config: CrossExchangeMarketMakingConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        try:
            names = config.instruments or [str(i) for i in sorted(ctx.instruments)]
            maker_text = config.maker or (names[0] if names else "")
            hedge_text = config.hedge or (names[1] if len(names) > 1 else "")
            if not maker_text or not hedge_text:
                raise ConfigError("xmm needs a maker and a hedge instrument (maker = ..., hedge = ...)")
            self.maker = ctx.resolve_instrument(InstrumentId.parse(maker_text))
            self.hedge = ctx.resolve_instrument(InstrumentId.parse(hedge_text))
            self._qty = fixed.parse(config.order_qty)
            self._min_edge = arb_math.bps_to_rate(config.min_edge_bps)
            self._refresh = arb_math.bps_to_rate(config.refresh_bps)
            self._basis = arb_math.bps_to_rate(config.basis_bps)
            self._max_pos = fixed.parse(config.max_position)
            self._max_unhedged = fixed.parse(config.max_unhedged)
            self._margin = fixed.parse(config.perp_margin)
            self._maker_fees = fee_rates(ctx, config.fees, self.maker)
            self._hedge_fees = fee_rates(ctx, config.fees, self.hedge)
        except ValueError as exc:  # FixedPointError included
            raise ConfigError(f"xmm: {exc}") from None
        if self.maker.venue == self.hedge.venue:
            raise ConfigError("xmm: maker and hedge must be on different venues")
        mi, hi = ctx.instrument(self.maker), ctx.instrument(self.hedge)
        if (mi.base, mi.quote) != (hi.base, hi.quote):
            raise ConfigError(f"xmm: {self.maker} and {self.hedge} do not trade the same asset")
        if self._qty <= 0 or self._qty % mi.lot_size or self._max_pos < 0 or self._max_unhedged < 0:
            raise ConfigError("xmm: order_qty must be a positive multiple of the maker lot; limits >= 0")
        if self._refresh < 0 or config.record_interval_ms <= 0:
            raise ConfigError("xmm: refresh_bps must be >= 0 and record_interval_ms positive")
        self.legs = LegExecutor(ctx, config.legs, on_done=self._on_hedge_done)
        self._quotes: dict[Side, str] = {}
        self._cooldown_until: dict[Side, int] = {}
        self._rehedge_after = 0
        self._reference: dict[InstrumentId, int] = {}
        self._next_record = 0
        self.taken = TakenLiquidity()
        self.maker_fills = 0
        self.hedges = 0
        """Hedge groups sent."""
        self.unclean_hedges = 0
        """Hedge groups that ended with a residual."""

    # -- state --------------------------------------------------------------------------------

    def inventory(self, iid: InstrumentId) -> int:
        """Position change since the start, base units."""
        return self.ctx.position(iid) - self._reference.get(iid, 0)

    def unhedged(self) -> int:
        """Net position change across maker and hedge venues (what a hedge still has to cover)."""
        return self.inventory(self.maker) + self.inventory(self.hedge)

    def target_quotes(self) -> tuple[int | None, int | None]:
        """Bid and ask to quote on the maker venue now (``None``: do not quote that side)."""
        hedge_book, maker_book = self.ctx.book(self.hedge), self.ctx.book(self.maker)
        if hedge_book is None or maker_book is None:
            return None, None
        inst = self.ctx.instrument(self.maker)
        kw = {
            "hedge_fee": self._hedge_fees[1],
            "maker_fee": self._maker_fees[0],
            "min_edge": self._min_edge,
            "tick": inst.tick_size,
            "maker_basis": self._basis,
        }
        hedge_bid, hedge_ask = hedge_book.best_bid(), hedge_book.best_ask()
        maker_bid, maker_ask = maker_book.best_bid(), maker_book.best_ask()
        bid = arb_math.maker_quote(Side.BUY, hedge_bid, **kw) if hedge_bid is not None else None
        ask = arb_math.maker_quote(Side.SELL, hedge_ask, **kw) if hedge_ask is not None else None
        # Post-only: never at or through the other side of the maker book.
        if bid is not None and maker_ask is not None and bid >= maker_ask:
            bid = maker_ask - inst.tick_size
        if ask is not None and maker_bid is not None and ask <= maker_bid:
            ask = maker_bid + inst.tick_size
        if bid is not None and (bid <= 0 or not self._room(Side.BUY, bid)):
            bid = None
        if ask is not None and not self._room(Side.SELL, ask):
            ask = None
        return bid, ask

    def _room(self, side: Side, price: int) -> bool:
        """Inventory, unhedged exposure and both accounts allow another quote fill on ``side``."""
        sign = side.sign
        if sign * self.inventory(self.maker) + self._qty > self._max_pos:
            return False
        if sign * self.unhedged() + self._qty > self._max_unhedged:
            return False
        mi, hi = self.ctx.instrument(self.maker), self.ctx.instrument(self.hedge)
        # Balances are totals (a resting quote's own lock is included); the hedge must be affordable on fill.
        maker_reserve = max(*self._maker_fees, 0)
        if account_capacity(self.ctx, mi, side, price, mi.lot_size, maker_reserve, self._margin) < self._qty:
            return False
        hedge_reserve = max(*self._hedge_fees, 0)
        return (
            account_capacity(self.ctx, hi, side.opposite, price, hi.lot_size, hedge_reserve, self._margin) >= self._qty
        )

    # -- hooks --------------------------------------------------------------------------------

    def on_start(self) -> None:
        self._reference = {iid: self.ctx.position(iid) for iid in (self.maker, self.hedge)}

    def on_book(self, book: OrderBook) -> None:
        iid = book.instrument_id
        if iid != self.maker and iid != self.hedge:
            return
        now = self.ctx.now_ns()
        self._hedge_if_needed()
        bid, ask = self.refresh_quotes()
        if now >= self._next_record:
            self._record(now, bid, ask)

    def refresh_quotes(self) -> tuple[int | None, int | None]:
        """Move (or place, or pull) both quotes to their targets; returns the targets."""
        bid, ask = self.target_quotes()
        self._requote(Side.BUY, bid)
        self._requote(Side.SELL, ask)
        return bid, ask

    def on_book_status(self, status: BookStatus) -> None:
        if not status.valid and status.instrument_id in (self.maker, self.hedge):
            # No pricing off a broken book: pull the quotes until it is rebuilt.
            self.ctx.cancel_all(self.maker)

    def on_order(self, event: OrderEvent) -> None:
        self.legs.on_order(event)
        if self.legs.owns(event.client_order_id):
            return
        order = self.ctx.order(event.client_order_id)
        if order is None or order.instrument_id != self.maker:
            return
        if isinstance(event, OrderRejected | OrderAmendRejected | OrderDenied):
            self._cooldown_until[order.side] = self.ctx.now_ns() + self.config.reject_cooldown_ms * 1_000_000
        if not order.is_terminal and (order.side not in self._quotes or self._working(order.side) is None):
            self._quotes[order.side] = order.client_order_id  # cancel/replace gave it a new id

    def on_fill(self, fill: OrderFilled) -> None:
        if fill.liquidity is LiquiditySide.TAKER and fill.instrument_id == self.hedge:
            book = self.ctx.book(self.hedge)
            self.taken.add(book, self.hedge, fill.side is Side.SELL, fill.last_price, fill.last_qty)
        if fill.instrument_id == self.maker and not self.legs.owns(fill.client_order_id):
            self.maker_fills += 1
            self._hedge_if_needed()

    def on_stop(self) -> None:
        self.ctx.cancel_all()

    # -- hedging ------------------------------------------------------------------------------

    def _hedge_if_needed(self) -> None:
        if self.legs.busy() or self.ctx.now_ns() < self._rehedge_after:
            return
        hi = self.ctx.instrument(self.hedge)
        net = self.unhedged()
        qty = hi.round_qty(abs(net))
        if qty < max(hi.lot_size, hi.min_qty):
            return  # less than the hedge venue trades: wait for more fills
        book = self.ctx.book(self.hedge)
        if book is None:
            return  # hedge once the book is valid again
        side = Side.SELL if net > 0 else Side.BUY
        # Price off the book as the venue sees it: without liquidity our earlier hedges took.
        levels = self.taken.levels(book, side is Side.SELL, 1)
        if not levels:
            return
        touch = levels[0][0]
        if hi.notional(touch, qty) < hi.min_notional:
            return  # below the hedge venue's minimum order value: wait for more fills
        self.hedges += 1
        self.legs.execute([Leg(self.hedge, side, qty, touch)])

    def _on_hedge_done(self, result: LegGroupResult) -> None:
        if not result.clean:
            self.unclean_hedges += 1
            self._rehedge_after = self.ctx.now_ns() + self.config.rehedge_cooldown_ms * 1_000_000
            return
        self._hedge_if_needed()
        if not self.legs.busy():
            self.refresh_quotes()  # a side pulled while unhedged may quote again

    # -- quoting ------------------------------------------------------------------------------

    def _working(self, side: Side) -> Order | None:
        cid = self._quotes.get(side)
        if cid is None:
            return None
        order = self.ctx.order(cid)
        if order is None or order.is_terminal:
            del self._quotes[side]
            return None
        return order

    def _requote(self, side: Side, price: int | None) -> None:
        until = self._cooldown_until.get(side)
        if until is not None and self.ctx.now_ns() < until and price is not None:
            return
        order = self._working(side)
        if order is not None:
            if order.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
                return  # a request is in flight; decide again on its answer
            if price is None:
                self.ctx.cancel(order.client_order_id)
                return
            assert order.price is not None
            # Too aggressive for the current hedge price: move now. Otherwise only past the threshold.
            worse = order.price > price if side is Side.BUY else order.price < price
            if worse or abs(order.price - price) >= max(fixed.mul(price, self._refresh), 1):
                self.ctx.amend(order.client_order_id, price=price)
            return
        if price is None:
            return
        self._quotes[side] = self.ctx.submit(self.maker, side, self._qty, price, post_only=True)

    def _record(self, now: int, bid: int | None, ask: int | None) -> None:
        self._next_record = now + self.config.record_interval_ms * 1_000_000
        hedge_book = self.ctx.book(self.hedge)
        if hedge_book is not None:
            hb, ha = hedge_book.best_bid(), hedge_book.best_ask()
            if bid is not None and hb:
                self.ctx.record("quote_bps/bid below hedge bid", (hb - bid) / hb * 10_000)
            if ask is not None and ha:
                self.ctx.record("quote_bps/ask above hedge ask", (ask - ha) / ha * 10_000)
        self.ctx.record("unhedged", fixed.to_float(self.unhedged()))
