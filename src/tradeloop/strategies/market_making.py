"""Market making with two pricing models behind one strategy (``--strategy market_making``).

``model = "imbalance"`` (the default, the design's own): fair price = mid + skew x normalized
order-book imbalance over the top ``depth_levels`` levels, quotes ``half_spread_bps`` either side,
shifted against inventory. ``model = "avellaneda_stoikov"``: quotes around the reservation price
``r = s - q*gamma*sigma^2*(T-t)`` with the optimal spread ``gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/kappa)``,
``sigma`` estimated online from the mid and ``kappa`` from public trades (or both fixed in the config),
over a rolling or finite horizon. The math is in :mod:`tradeloop.strategies.pricing` and
:mod:`tradeloop.strategies.estimators`.

Common to both: ``levels`` quotes per side ``level_spacing_ticks`` apart, post-only, never crossing
or locking the touch nor our own opposite quotes; inventory limits (at ``+max_inventory`` no bids,
at ``-max_inventory`` no asks, counting the open orders of that side so several levels filling at
once cannot overshoot); a refresh threshold (a working quote whose target moved by fewer than
``refresh_threshold_ticks`` ticks is left alone); amend (the OMS does cancel/replace on venues
without amend) or, with ``use_amend = false``, cancel and new order; a cooldown after a rejected
quote; and all quotes pulled while the book is invalid.

Signal math is float; every price and size that leaves the strategy is an exact multiple of the
instrument's tick and lot. Inventory is the position change since the start (spot holdings are
not inventory risk the strategy took on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec

from tradeloop.core import fixed
from tradeloop.core.config import ConfigError
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookStatus, Trade
from tradeloop.model.enums import OrderStatus, Side
from tradeloop.model.events import (
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderInitialized,
    OrderRejected,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import Order
from tradeloop.strategies import pricing
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext
from tradeloop.strategies.estimators import EwmaVolatility, TradeIntensity

_WORKING = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})
_REFUSALS: frozenset[type[OrderEvent]] = frozenset({OrderRejected, OrderAmendRejected, OrderDenied})
_AMEND_ANSWERS: frozenset[type[OrderEvent]] = frozenset({OrderAmended, OrderAmendRejected})
_MS = 1_000_000
_SELL = Side.SELL


class ImbalanceModelConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[strategy.params.imbalance]``: fair price from the order-book imbalance."""

    depth_levels: int = 5
    """Book levels per side summed into the bid and ask volumes."""
    skew_bps: float = 2.0
    """Fair-price offset from the mid, in bps, at a fully one-sided book (imbalance +1 or -1)."""
    half_spread_bps: float = 0.0
    """Quotes sit this far either side of the (inventory-shifted) fair price."""
    inventory_skew_bps: float = 3.0
    """Both quotes move this many bps against the inventory at ``max_inventory``."""

    def __post_init__(self) -> None:
        if self.depth_levels < 1:
            raise ValueError("imbalance.depth_levels must be at least 1")
        if self.half_spread_bps < 0:
            raise ValueError("imbalance.half_spread_bps must not be negative")


class AvellanedaStoikovConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[strategy.params.avellaneda_stoikov]``: reservation price and optimal spread.

    Units: ``gamma`` per (quote currency x order size), ``q`` = inventory / ``order_qty``, ``sigma``
    in quote currency per sqrt(second) (the estimator's fraction x mid), ``kappa`` per unit of
    quote currency, ``T - t`` in seconds.
    """

    gamma: float = 0.05
    """Risk aversion."""
    horizon: pricing.HorizonMode = "rolling"
    """``rolling``: ``T - t = horizon_s`` always; ``finite``: counts down to 0 over each session of ``horizon_s``."""
    horizon_s: float = 30.0
    sigma_bps: float | None = None
    """Fixed volatility in bps of the price per sqrt(second); unset = estimated online (EWMA)."""
    kappa: float | None = None
    """Fixed order-arrival decay per unit of quote currency; unset = estimated from trades."""
    volatility_sample_ms: int = 1000
    volatility_halflife_s: float = 60.0
    volatility_min_samples: int = 20
    kappa_interval_ms: int = 1000
    """Trade-reach intervals of the kappa estimator (see :class:`TradeIntensity`)."""
    kappa_window: int = 300
    """Intervals the kappa fit looks back over."""
    kappa_min_intervals: int = 30
    kappa_grid_points: int = 12
    kappa_quantile: float = 0.95

    def __post_init__(self) -> None:
        if self.gamma <= 0 or self.horizon_s <= 0:
            raise ValueError("avellaneda_stoikov.gamma and horizon_s must be positive")
        if self.sigma_bps is not None and self.sigma_bps < 0:
            raise ValueError("avellaneda_stoikov.sigma_bps must not be negative")
        if self.kappa is not None and self.kappa <= 0:
            raise ValueError("avellaneda_stoikov.kappa must be positive")
        if min(self.volatility_sample_ms, self.kappa_interval_ms, self.kappa_window) <= 0:
            raise ValueError("avellaneda_stoikov sample intervals and window must be positive")
        if min(self.volatility_min_samples, self.kappa_min_intervals) < 1 or self.volatility_halflife_s <= 0:
            raise ValueError("avellaneda_stoikov warm-up counts and half-life must be positive")
        if self.kappa_grid_points < 3 or not 0 < self.kappa_quantile <= 1:
            raise ValueError("avellaneda_stoikov.kappa_grid_points must be >= 3 and kappa_quantile in (0, 1]")


_LEGACY_IMBALANCE_KEYS = ("depth_levels", "skew_bps", "half_spread_bps", "inventory_skew_bps")


class MarketMakingConfig(StrategyConfig, frozen=True, kw_only=True):
    """``[strategy.params]`` of ``market_making``. Sizes are decimal strings in base units."""

    model: Literal["imbalance", "avellaneda_stoikov"] = "imbalance"
    order_qty: str = "0.01"
    """Size of each quote."""
    levels: int = 1
    """Quotes per side."""
    level_spacing_ticks: int = 1
    """Distance between consecutive levels of one side."""
    max_inventory: str = "0.1"
    """Inventory limit either way (position change since the start, base units)."""
    refresh_threshold_ticks: int | None = None
    """A working quote is amended only when its target moved at least this many ticks (default 3)."""
    post_only: bool = True
    use_amend: bool = True
    """Move quotes by amend (cancel/replace done by the OMS where the venue lacks amend); false: cancel + new."""
    max_improve_ticks: int = 0
    """How far the best quote may improve on the touch (0: join at most)."""
    reject_cooldown_ms: int = 200
    """After a rejected or denied quote or amend, leave that side alone this long (no reject storms)."""
    record_interval_ms: int = 1000
    """How often the model's series (reservation price, spread, sigma, kappa...) are recorded for the report."""
    imbalance: ImbalanceModelConfig | None = None
    avellaneda_stoikov: AvellanedaStoikovConfig = msgspec.field(default_factory=AvellanedaStoikovConfig)
    # The older flat spelling of the imbalance model's parameters and of the refresh threshold.
    depth_levels: int | None = None
    skew_bps: float | None = None
    half_spread_bps: float | None = None
    inventory_skew_bps: float | None = None
    refresh_ticks: int | None = None

    def __post_init__(self) -> None:
        if fixed.parse(self.order_qty) <= 0:
            raise ValueError("order_qty must be positive")
        if fixed.parse(self.max_inventory) < 0:
            raise ValueError("max_inventory must not be negative")
        if self.levels < 1 or self.level_spacing_ticks < 1:
            raise ValueError("levels and level_spacing_ticks must be at least 1")
        if self.max_improve_ticks < 0 or self.reject_cooldown_ms < 0 or self.record_interval_ms <= 0:
            raise ValueError("max_improve_ticks and reject_cooldown_ms must be >= 0, record_interval_ms > 0")
        if self.refresh_threshold_ticks is not None and self.refresh_ticks is not None:
            raise ValueError("give refresh_threshold_ticks or its older name refresh_ticks, not both")
        if self.resolved_refresh_threshold_ticks() < 0:
            raise ValueError("refresh_threshold_ticks must not be negative")
        legacy = [k for k in _LEGACY_IMBALANCE_KEYS if getattr(self, k) is not None]
        if legacy and self.imbalance is not None:
            raise ValueError(f"{', '.join(legacy)} given both flat and in the [imbalance] table; use the table")
        self.resolved_imbalance()  # validates the flat keys too

    def resolved_refresh_threshold_ticks(self) -> int:
        if self.refresh_threshold_ticks is not None:
            return self.refresh_threshold_ticks
        return self.refresh_ticks if self.refresh_ticks is not None else 3

    def resolved_imbalance(self) -> ImbalanceModelConfig:
        """The imbalance model's parameters, from the ``[imbalance]`` table or the flat keys."""
        if self.imbalance is not None:
            return self.imbalance
        given = {k: getattr(self, k) for k in _LEGACY_IMBALANCE_KEYS if getattr(self, k) is not None}
        return ImbalanceModelConfig(**given)


@dataclass
class _Instrument:
    """Per-instrument state of the strategy."""

    iid: InstrumentId
    tick: int
    reference_position: int = 0
    volatility: EwmaVolatility | None = None
    intensity: TradeIntensity | None = None
    slots: dict[Side, list[str | None]] = field(default_factory=dict)
    cooldown_until: dict[Side, int] = field(default_factory=lambda: {Side.BUY: 0, Side.SELL: 0})
    awaiting_replacement: dict[Side, int] = field(default_factory=dict)
    display: dict[str, float] = field(default_factory=dict)


class MarketMaking(Strategy[MarketMakingConfig]):
    """Quote ladders on both sides of each instrument around the configured model's prices."""

    config_type = MarketMakingConfig

    def __init__(self, strategy_id: str, config: MarketMakingConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        self.instrument_ids = [ctx.resolve_instrument(iid) for iid in self.instrument_ids] or sorted(ctx.instruments)[
            :1
        ]
        self._qty = fixed.parse(config.order_qty)
        self._max_inv = fixed.parse(config.max_inventory)
        self._refresh_ticks = config.resolved_refresh_threshold_ticks()
        self._imbalance = config.resolved_imbalance()
        self._as = config.avellaneda_stoikov
        self._states: dict[InstrumentId, _Instrument] = {}
        for iid in self.instrument_ids:
            inst = ctx.instrument(iid)
            if self._qty % inst.lot_size:
                raise ConfigError(
                    f"market_making: order_qty {config.order_qty} is not a multiple of lot "
                    f"{fixed.to_str(inst.lot_size)} of {iid}"
                )
            st = _Instrument(
                iid, inst.tick_size, slots={Side.BUY: [None] * config.levels, Side.SELL: [None] * config.levels}
            )
            if config.model == "avellaneda_stoikov":
                a = self._as
                if a.sigma_bps is None:
                    st.volatility = EwmaVolatility(
                        a.volatility_halflife_s, a.volatility_sample_ms / 1000, a.volatility_min_samples
                    )
                if a.kappa is None:
                    st.intensity = TradeIntensity(
                        a.kappa_interval_ms / 1000,
                        a.kappa_window,
                        a.kappa_min_intervals,
                        a.kappa_grid_points,
                        a.kappa_quantile,
                    )
            self._states[iid] = st
        self._slot_of: dict[str, tuple[InstrumentId, Side, int]] = {}
        self._amending: set[str] = set()
        self._pending_amend_price: dict[str, int] = {}
        self._submitting = False
        self._start_ns = 0

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self) -> None:
        self._start_ns = self.ctx.now_ns()
        for st in self._states.values():
            st.reference_position = self.ctx.position(st.iid)
        self.ctx.set_timer("mm.record", self.config.record_interval_ms * _MS, self.on_timer)

    def inventory(self, instrument_id: InstrumentId) -> int:
        """Position change since the start, in base units (nanos)."""
        st = self._states.get(instrument_id)
        return self.ctx.position(instrument_id) - (st.reference_position if st is not None else 0)

    def on_book(self, book: OrderBook) -> None:
        st = self._states.get(book.instrument_id)
        if st is None:
            return
        mid_x2 = book.mid_x2()
        if mid_x2 is None:
            return
        mid = mid_x2 / (2 * fixed.SCALE)
        now = self.ctx.now_ns()
        if st.volatility is not None:
            st.volatility.update(now, mid)
        if st.intensity is not None:
            st.intensity.on_mid(now, mid)
        st.awaiting_replacement.clear()  # replacements arrive in the same call as the cancel they follow
        quotes = self.model_quotes(st.iid, book, mid)
        if quotes is None:
            return
        bids, asks = self.target_ladders(book, quotes)
        self._reconcile(st, Side.SELL, asks)
        self._reconcile(st, Side.BUY, bids)

    def on_trade(self, trade: Trade) -> None:
        st = self._states.get(trade.instrument_id)
        if st is not None and st.intensity is not None:
            st.intensity.on_trade(self.ctx.now_ns(), fixed.to_float(trade.price), trade.aggressor is Side.BUY)

    def on_book_status(self, status: BookStatus) -> None:
        if not status.valid and status.instrument_id in self._states:
            self.ctx.cancel_all(status.instrument_id)

    def on_order(self, event: OrderEvent) -> None:
        cid = event.client_order_id
        order = self.ctx.order(cid)
        if order is None:
            return
        st = self._states.get(order.instrument_id)
        if st is None:
            return
        kind = type(event)  # event types are final: matched exactly
        if kind in _REFUSALS:
            st.cooldown_until[order.side] = self.ctx.now_ns() + self.config.reject_cooldown_ms * _MS
        if kind in _AMEND_ANSWERS:
            self._amending.discard(cid)
            self._pending_amend_price.pop(cid, None)
        if kind is OrderCanceled and cid in self._amending:
            # The OMS is doing cancel/replace (the venue has no amend): the replacement follows at once.
            slot = self._slot_of.get(cid)
            if slot is not None:
                st.awaiting_replacement[order.side] = slot[2]
        if order.is_terminal:
            self._amending.discard(cid)
            self._pending_amend_price.pop(cid, None)
            return
        if kind is OrderInitialized and not self._submitting and cid not in self._slot_of:
            k = st.awaiting_replacement.pop(order.side, None)
            if k is not None and self._slot_order(st, order.side, k) is None:
                self._assign(st, order.side, k, cid)

    def on_timer(self, name: str, ts: int) -> None:
        many = len(self._states) > 1
        for st in self._states.values():
            suffix = f" {st.iid}" if many else ""
            for panel, value in st.display.items():
                self.ctx.record(panel + suffix, value)

    def on_stop(self) -> None:
        self.ctx.cancel_all()

    # -- pricing --------------------------------------------------------------------------------

    def model_quotes(self, instrument_id: InstrumentId, book: OrderBook, mid: float) -> tuple[float, float] | None:
        """Float bid and ask of the configured model, or ``None`` while its estimators warm up."""
        st = self._states[instrument_id]
        inventory = self.inventory(instrument_id)
        if self.config.model == "imbalance":
            cfg = self._imbalance
            bid_vol = fixed.to_float(book.volume(True, cfg.depth_levels))
            ask_vol = fixed.to_float(book.volume(False, cfg.depth_levels))
            fair = pricing.imbalance_fair_price(mid, bid_vol, ask_vol, cfg.skew_bps)
            ratio = inventory / self._max_inv if self._max_inv else 0.0
            bid, ask = pricing.imbalance_quotes(fair, ratio, cfg.inventory_skew_bps, cfg.half_spread_bps)
            st.display = {"fair_price": fair, "imbalance": pricing.book_imbalance(bid_vol, ask_vol)}
            return bid, ask
        a = self._as
        if st.volatility is not None:
            sigma_rel = st.volatility.sigma()
        else:
            sigma_rel = (a.sigma_bps or 0.0) * pricing.BPS
        kappa = st.intensity.kappa() if st.intensity is not None else a.kappa
        if sigma_rel is None or kappa is None:
            return None
        sigma = sigma_rel * mid
        tau = pricing.time_left_s(a.horizon, a.horizon_s, self._start_ns, self.ctx.now_ns())
        q = inventory / self._qty
        bid, ask, r, spread = pricing.avellaneda_stoikov_quotes(mid, q, a.gamma, sigma, tau, kappa)
        st.display = {
            "reservation_price": r,
            "spread_bps": spread / mid / pricing.BPS,
            "sigma_bps": sigma_rel / pricing.BPS,
            "kappa": kappa,
        }
        return bid, ask

    def target_ladders(self, book: OrderBook, quotes: tuple[float, float]) -> tuple[list[int], list[int]]:
        """Exact bid and ask prices per level, cut to what the inventory limits allow and kept
        clear of the touch and of our own opposite orders."""
        iid = book.instrument_id
        st = self._states[iid]
        cfg = self.config
        tick = st.tick
        best_bid, best_ask = book.best_bid(), book.best_ask()
        improve = cfg.max_improve_ticks if cfg.post_only else None
        bids = pricing.bid_ladder(quotes[0], tick, cfg.levels, cfg.level_spacing_ticks, best_bid, best_ask, improve)
        asks = pricing.ask_ladder(quotes[1], tick, cfg.levels, cfg.level_spacing_ticks, best_bid, best_ask, improve)
        inventory = self.inventory(iid)
        bids = bids[: pricing.levels_within_limit(inventory, self._max_inv, self._qty, cfg.levels, True)]
        asks = asks[: pricing.levels_within_limit(inventory, self._max_inv, self._qty, cfg.levels, False)]
        # Never quote into our own opposite orders (counting amends in flight): the risk engine would
        # deny it as a self-trade, and a venue could match us against ourselves.
        lowest_ask, highest_bid = self._own_extremes(iid)
        if lowest_ask is not None:
            bids = [min(p, lowest_ask - tick) for p in bids]
        if highest_bid is not None:
            asks = [max(p, highest_bid + tick) for p in asks]
        return [p for p in bids if p > 0], asks

    def _own_extremes(self, iid: InstrumentId) -> tuple[int | None, int | None]:
        lowest_ask: int | None = None
        highest_bid: int | None = None
        pending_prices = self._pending_amend_price
        for o in self.ctx.open_orders(iid):
            price = o.price
            if price is None:
                continue
            pending = pending_prices.get(o.client_order_id)
            if o.side is _SELL:
                low = price if pending is None else min(price, pending)
                lowest_ask = low if lowest_ask is None else min(lowest_ask, low)
            else:
                high = price if pending is None else max(price, pending)
                highest_bid = high if highest_bid is None else max(highest_bid, high)
        return lowest_ask, highest_bid

    # -- quote bookkeeping ----------------------------------------------------------------------

    def _slot_order(self, st: _Instrument, side: Side, k: int) -> Order | None:
        cid = st.slots[side][k]
        if cid is None:
            return None
        order = self.ctx.order(cid)
        if order is None or order.is_terminal:
            st.slots[side][k] = None
            self._slot_of.pop(cid, None)
            return None
        return order

    def _assign(self, st: _Instrument, side: Side, k: int, cid: str | None) -> None:
        old = st.slots[side][k]
        if old is not None:
            self._slot_of.pop(old, None)
        st.slots[side][k] = cid
        if cid is not None:
            self._slot_of[cid] = (st.iid, side, k)

    def _room_for(self, st: _Instrument, side: Side) -> bool:
        """Whether one more quote on ``side`` keeps inventory plus every open order of that side
        (including ones being canceled, which may still fill) within the limit."""
        open_qty = sum(o.leaves_qty for o in self.ctx.open_orders(st.iid) if o.side is side)
        inventory = self.inventory(st.iid)
        if side is Side.BUY:
            return inventory + open_qty + self._qty <= self._max_inv
        return inventory - open_qty - self._qty >= -self._max_inv

    def _reconcile(self, st: _Instrument, side: Side, targets: list[int]) -> None:
        """Bring the quotes of one side to ``targets`` (best first; fewer than ``levels`` = pull the rest)."""
        cooling = self.ctx.now_ns() < st.cooldown_until[side]
        threshold = self._refresh_ticks * st.tick
        for k in range(self.config.levels):
            target = targets[k] if k < len(targets) else None
            order = self._slot_order(st, side, k)
            if order is not None:
                if order.status not in _WORKING:
                    continue  # a request is in flight; decide again on its answer
                cid = order.client_order_id
                if target is None:
                    self.ctx.cancel(cid)
                    self._assign(st, side, k, None)
                    continue
                price = order.price if order.price is not None else target
                if cooling or price == target or abs(price - target) < threshold:
                    continue
                if self.config.use_amend:
                    self._amending.add(cid)
                    self._pending_amend_price[cid] = target
                    self.ctx.amend(cid, price=target)
                    continue
                self.ctx.cancel(cid)
                self._assign(st, side, k, None)
            if target is None or cooling or not self._room_for(st, side):
                continue
            self._submitting = True
            try:
                cid = self.ctx.submit(st.iid, side, self._qty, target, post_only=self.config.post_only)
            finally:
                self._submitting = False
            self._assign(st, side, k, cid)
