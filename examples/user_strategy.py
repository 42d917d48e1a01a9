"""A user strategy that lives outside tradeloop: a trade-flow momentum taker.

Run it without installing anything::

    tradeloop backtest --strategy examples/user_strategy.py:TradeFlowMomentum \
        --config examples/user_strategy.toml --report runs/flow/report.html

Signal: the public trades' aggressor volume, buys minus sells, each side decayed with a half-life
(``half_life_ms``), as a fraction of both sides together: the *flow imbalance*, in [-1, 1]. Every
``decision_interval_ms`` the strategy picks a target position: long ``max_position`` when the
imbalance is above ``entry``, short when it is below ``-entry``, flat once it is back inside
``exit``, unchanged in between. It moves towards the target with immediate-or-cancel limit orders
at most ``max_slippage_ticks`` through the touch, ``order_qty`` at a time, one order at a time,
and flattens when the run stops.

Only the public strategy API is used: the hooks and ``self.ctx`` of
:mod:`tradeloop.strategies.base`, the model types, and :mod:`tradeloop.core.fixed` for exact
amounts. The signal is float math; every price and size sent is an exact multiple of the
instrument's tick and lot. ``ctx.record`` draws the imbalance and its entry thresholds in the
report's "trade flow" panel, and ``ctx.alert`` puts refused orders in the report's alerts table.
"""

from __future__ import annotations

from tradeloop.core import fixed
from tradeloop.model.data import BookStatus, Trade
from tradeloop.model.enums import Side, TimeInForce
from tradeloop.model.events import OrderDenied, OrderEvent, OrderRejected
from tradeloop.model.identifiers import InstrumentId
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext

_MS = 1_000_000


class TradeFlowConfig(StrategyConfig, frozen=True, kw_only=True):
    """Parameters of :class:`TradeFlowMomentum` (amounts are decimal strings, in base units)."""

    order_qty: str = "0.005"
    """Size of each order."""
    max_position: str = "0.02"
    """Largest position change from the starting holdings, either way."""
    half_life_ms: int = 3_000
    """Half-life of the decayed aggressor volumes behind the imbalance."""
    entry: float = 0.4
    """Go long above this imbalance, short below minus this."""
    exit: float = 0.1
    """Go flat once the imbalance is back within plus/minus this."""
    decision_interval_ms: int = 250
    max_slippage_ticks: int = 2
    """How far through the touch an order may trade."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.exit < self.entry <= 1.0:
            raise ValueError("need 0 <= exit < entry <= 1")
        if self.half_life_ms <= 0 or self.decision_interval_ms <= 0 or self.max_slippage_ticks < 0:
            raise ValueError("half_life_ms and decision_interval_ms must be positive, max_slippage_ticks >= 0")
        if fixed.parse(self.order_qty) <= 0 or fixed.parse(self.max_position) <= 0:
            raise ValueError("order_qty and max_position must be positive")


class TradeFlowMomentum(Strategy[TradeFlowConfig]):
    """Follow the aggressors: take liquidity in the direction the public trades lean."""

    config_type = TradeFlowConfig

    def __init__(self, strategy_id: str, config: TradeFlowConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        self.iid: InstrumentId = self.instrument_ids[0] if self.instrument_ids else sorted(ctx.instruments)[0]
        if self.iid not in ctx.instruments:
            known = ", ".join(str(i) for i in sorted(ctx.instruments))
            raise ValueError(f"{self.iid} is not traded in this run (instruments: {known})")
        self._qty = fixed.parse(config.order_qty)
        self._max = fixed.parse(config.max_position)
        self._half_life_ns = config.half_life_ms * _MS
        self._buy_vol = 0.0
        self._sell_vol = 0.0
        self._flow_ts: int | None = None
        self._target = 0
        self._start_position = 0
        self._working: str | None = None
        self._stopped = False
        self._flatten_attempts = 0

    # -- signal (float math, display only until it picks a target) ----------------------------

    def _decay_to(self, ts: int) -> None:
        if self._flow_ts is not None and ts > self._flow_ts:
            factor = 0.5 ** ((ts - self._flow_ts) / self._half_life_ns)
            self._buy_vol *= factor
            self._sell_vol *= factor
        if self._flow_ts is None or ts > self._flow_ts:
            self._flow_ts = ts

    def imbalance(self) -> float:
        """Decayed (buy - sell) / (buy + sell) aggressor volume; 0 before any trade."""
        total = self._buy_vol + self._sell_vol
        return (self._buy_vol - self._sell_vol) / total if total > 0 else 0.0

    def on_trade(self, trade: Trade) -> None:
        if trade.instrument_id != self.iid:
            return
        self._decay_to(trade.ts_recv)
        if trade.aggressor is Side.BUY:
            self._buy_vol += fixed.to_float(trade.qty)
        else:
            self._sell_vol += fixed.to_float(trade.qty)

    # -- decisions ----------------------------------------------------------------------------

    def on_start(self) -> None:
        self._start_position = self.ctx.position(self.iid)
        self.ctx.record("trade flow/long entry", self.config.entry)
        self.ctx.record("trade flow/short entry", -self.config.entry)
        self.ctx.set_timer("decide", self.config.decision_interval_ms * _MS, self.on_timer)

    def inventory(self) -> int:
        """Position change since the start, in base nanos."""
        return self.ctx.position(self.iid) - self._start_position

    def on_timer(self, name: str, ts: int) -> None:
        if self._stopped:
            return
        self._decay_to(ts)
        imbalance = self.imbalance()
        self.ctx.record("trade flow", imbalance)
        if imbalance > self.config.entry:
            self._target = self._max
        elif imbalance < -self.config.entry:
            self._target = -self._max
        elif abs(imbalance) < self.config.exit:
            self._target = 0
        self._trade_towards(self._target, self._qty)

    def _trade_towards(self, target: int, max_qty: int) -> None:
        if self._working is not None:
            order = self.ctx.order(self._working)
            if order is not None and not order.is_terminal:
                return  # one order at a time; decide again when it is done
            self._working = None
        book = self.ctx.book(self.iid)
        if book is None:
            return
        inst = self.ctx.instrument(self.iid)
        delta = target - self.inventory()
        qty = min(abs(delta), max_qty) // inst.lot_size * inst.lot_size
        if qty <= 0:
            return
        slip = self.config.max_slippage_ticks * inst.tick_size
        if delta > 0:
            touch, side, price_limit = book.best_ask(), Side.BUY, slip
        else:
            touch, side, price_limit = book.best_bid(), Side.SELL, -slip
        if touch is None:
            return
        price = touch + price_limit
        self._working = self.ctx.submit(self.iid, side, qty, price, time_in_force=TimeInForce.IOC)

    def on_order(self, event: OrderEvent) -> None:
        if isinstance(event, OrderDenied):
            self.ctx.alert("order refused", f"{event.client_order_id} denied: {event.reason}")
        elif isinstance(event, OrderRejected):
            self.ctx.alert("order refused", f"{event.client_order_id} rejected: {event.reason} {event.message}".strip())
        order = self.ctx.order(event.client_order_id)
        if self._stopped and order is not None and order.is_terminal and event.client_order_id == self._working:
            self._flatten()  # an IOC that did not take everything: try the rest

    def on_book_status(self, status: BookStatus) -> None:
        if status.instrument_id == self.iid and not status.valid:
            self.ctx.cancel_all(self.iid)

    def on_stop(self) -> None:
        self._stopped = True
        self.ctx.cancel_all()
        self._working = None
        self._flatten()

    def _flatten(self) -> None:
        """Close the position change in one IOC (a few attempts if the touch is thin)."""
        if self.inventory() == 0:
            return
        if self._flatten_attempts >= 3:
            self.ctx.alert("not flat", f"{self.iid}: position change {fixed.to_str(self.inventory())} left at stop")
            return
        self._flatten_attempts += 1
        self._working = None
        self._trade_towards(0, abs(self.inventory()))
