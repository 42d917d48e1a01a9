"""Cross-exchange arbitrage: buy where it is cheap, sell where it is dear, at the same instant.

The strategy watches one asset on two or more venues. On every book change it looks at each
ordered pair (buy venue, sell venue) and walks both books level by level while every unit still
earns more than ``min_edge_bps`` after both venues' taker fees (relative to the expected basis
between the venues, see below). The size is the smallest of: what both books can fill with the
edge intact, ``order_qty``, the inventory room on both venues (``max_inventory``, measured from
the starting position) and what each account can pay for (quote for a spot buy, base for a spot
sell, margin for a linear perpetual). The best pair (largest expected result after fees) is sent
as two IOC limit orders through a :class:`~tradeloop.strategies.legs.LegExecutor`, which handles
leg risk (retry, hedge within a bound, or unwind) and reports it. While a group is working, and
for ``cooldown_ms`` after, no new group is sent.

**Expected basis.** Venues may price the asset differently on purpose (a perpetual's premium or
discount to spot). ``basis_bps`` sets a fixed premium per instrument; ``basis_mode = "ema"`` instead
tracks each instrument's premium over the first one as an exponential moving average of the mid
ratio (``basis_halflife_s``, no trading before ``basis_warmup_s``), so only deviations from the
usual basis count as edge.

Fees come from the node (``ctx.fee_rates``, the simulated venue's fees in a backtest) unless
``fees`` overrides them per venue. All sizing is exact integer arithmetic (``arb_math``); the
basis estimate and the display series (``edge_bps ...``, ``basis_bps``) are float signals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import msgspec

from tradeloop.core import fixed
from tradeloop.core.config import ConfigError
from tradeloop.model.book import OrderBook
from tradeloop.model.data import Level
from tradeloop.model.enums import InstrumentKind, LiquiditySide, Side
from tradeloop.model.events import OrderEvent, OrderFilled
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.strategies import arb_math
from tradeloop.strategies.base import Strategy, StrategyConfig, StrategyContext
from tradeloop.strategies.legs import Leg, LegExecutor, LegGroupResult, LegRiskConfig


class FeeOverride(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Fee rates of one venue as decimal fraction strings (``"0.0004"`` = 4 bps)."""

    maker: str
    taker: str

    def rates(self) -> tuple[int, int]:
        maker, taker = fixed.parse(self.maker), fixed.parse(self.taker)
        if not -fixed.SCALE < maker < fixed.SCALE or not 0 <= taker < fixed.SCALE:
            raise ValueError(f"fee rates out of range: maker {self.maker}, taker {self.taker}")
        return maker, taker


def fee_rates(ctx: StrategyContext, overrides: Mapping[str, FeeOverride], iid: InstrumentId) -> tuple[int, int]:
    """(maker, taker) of ``iid``'s venue: the config override if any, else what the node says."""
    override = overrides.get(iid.venue)
    if override is not None:
        return override.rates()
    try:
        return ctx.fee_rates(iid)
    except LookupError:
        raise ConfigError(f"no fee rates for {iid.venue}; set [strategy.params.fees.{iid.venue}]") from None


class CrossExchangeArbitrageConfig(StrategyConfig, frozen=True, kw_only=True):
    """Parameters of ``xarb`` (``[strategy.params]``); amounts are decimal strings."""

    order_qty: str = "0.01"
    """Largest size of one arbitrage, base units."""
    min_edge_bps: str = "0.5"
    """Edge required beyond both taker fees, basis points (decimal string, may be "0")."""
    max_inventory: str = "0.1"
    """Largest position change per instrument since the start, base units."""
    depth_levels: int = 20
    """Book levels walked on each side when sizing."""
    cooldown_ms: int = 100
    """Pause after each group before the next one."""
    basis_mode: Literal["fixed", "ema"] = "fixed"
    basis_bps: dict[str, str] = msgspec.field(default_factory=dict)
    """Fixed mode: expected premium of an instrument (``"venue:SYMBOL"``) in bps; others 0."""
    basis_halflife_s: float = 60.0
    basis_warmup_s: float = 20.0
    fees: dict[str, FeeOverride] = msgspec.field(default_factory=dict)
    """Per venue: override the node's fee rates."""
    perp_margin: str = "0.1"
    """Initial margin fraction assumed when sizing a linear-perpetual leg."""
    record_interval_ms: int = 1000
    """How often the edge and basis display series are sampled."""
    legs: LegRiskConfig = msgspec.field(default_factory=LegRiskConfig)


def account_capacity(
    ctx: StrategyContext, inst: Instrument, side: Side, price: int, step: int, fee_reserve: int, perp_margin: int
) -> int:
    """Largest multiple of ``step`` the account on ``inst``'s venue can trade at limit ``price`` now.

    Spot buys are limited by the quote balance (notional plus fee reserve), spot sells by the base
    balance. A linear perpetual is limited by margin: the portfolio books a position's cost in cash,
    so the venue account's equity is ``cash + position x mark`` and the open position keeps
    ``perp_margin`` of its value locked (an estimate; the venue has the last word).
    """
    venue = inst.id.venue
    if inst.kind is InstrumentKind.SPOT:
        if side is Side.SELL:
            return max(ctx.balance(venue, inst.base), 0) // step * step
        return arb_math.spot_buy_capacity(ctx.balance(venue, inst.quote), price, fee_reserve, step)
    book = ctx.book(inst.id)
    mid_x2 = book.mid_x2() if book is not None else None
    mark = mid_x2 // 2 if mid_x2 is not None else price
    pos = ctx.position(inst.id)
    equity = ctx.balance(venue, inst.quote) + fixed.mul(pos, mark)
    used = fixed.mul(fixed.mul(abs(pos), mark), perp_margin, "ceil")
    return arb_math.perp_capacity(equity - used, price, perp_margin, fee_reserve, step)


class TakenLiquidity:
    """Book levels our own taker fills consumed, hidden until the feed updates those levels.

    A replayed (or slow) feed keeps showing liquidity we already took; trading against it again
    only produces expired IOCs. Each record keeps the level's size when we took from it: once the
    book shows another size there, the feed has caught up and the record is dropped.
    """

    def __init__(self) -> None:
        self._taken: dict[tuple[InstrumentId, bool], dict[int, tuple[int, int]]] = {}

    def add(self, book: OrderBook | None, iid: InstrumentId, book_is_bid: bool, price: int, qty: int) -> None:
        """Remember ``qty`` taken at ``price`` from the bid side (``book_is_bid``) or ask side."""
        if book is None:
            return
        size = book.qty_at(price, book_is_bid)
        side = self._taken.setdefault((iid, book_is_bid), {})
        seen, taken = side.get(price, (size, 0))
        side[price] = (size, taken + qty if seen == size else qty)

    def levels(self, book: OrderBook, book_is_bid: bool, n: int) -> list[Level]:
        """Top ``n`` levels of one side with our own consumption taken out."""
        levels = book.top_bids(n) if book_is_bid else book.top_asks(n)
        side = self._taken.get((book.instrument_id, book_is_bid))
        if not side:
            return levels
        out: list[Level] = []
        for price, size in levels:
            record = side.get(price)
            if record is not None:
                if record[0] != size:
                    del side[price]
                else:
                    size -= record[1]
            if size > 0:
                out.append((price, size))
        for price in [p for p in side if book.qty_at(p, book_is_bid) != side[p][0]]:
            del side[price]
        return out


class _Basis:
    """EMA of log(mid_i / mid_ref) on the event clock (float signal)."""

    __slots__ = ("first_ts", "last_ts", "tau_ns", "value")

    def __init__(self, halflife_s: float) -> None:
        self.tau_ns = halflife_s * 1e9 / math.log(2.0)
        self.value: float | None = None
        self.last_ts = 0
        self.first_ts = 0

    def update(self, ts: int, log_ratio: float) -> None:
        if self.value is None:
            self.value, self.first_ts = log_ratio, ts
        else:
            w = 1.0 - math.exp(-(ts - self.last_ts) / self.tau_ns) if ts > self.last_ts else 0.0
            self.value += w * (log_ratio - self.value)
        self.last_ts = ts


class CrossExchangeArbitrage(Strategy[CrossExchangeArbitrageConfig]):
    """``xarb``: two-legged IOC arbitrage across venues, with leg-risk handling."""

    config_type = CrossExchangeArbitrageConfig

    def __init__(self, strategy_id: str, config: CrossExchangeArbitrageConfig, ctx: StrategyContext) -> None:
        super().__init__(strategy_id, config, ctx)
        ids = [ctx.resolve_instrument(iid) for iid in self.instrument_ids] or sorted(ctx.instruments)
        self.instrument_ids = ids
        if len(ids) < 2:
            raise ConfigError("xarb needs at least two instruments (the same asset on different venues)")
        if len({i.venue for i in ids}) != len(ids):
            raise ConfigError("xarb: every instrument must be on a different venue")
        self._inst: dict[InstrumentId, Instrument] = {i: ctx.instrument(i) for i in ids}
        first = self._inst[ids[0]]
        for inst in self._inst.values():
            if (inst.base, inst.quote, inst.contract_size) != (first.base, first.quote, first.contract_size):
                raise ConfigError(f"xarb: {inst.id} does not trade the same asset as {first.id}")
        try:
            self._qty = fixed.parse(config.order_qty)
            self._max_inv = fixed.parse(config.max_inventory)
            self._margin = fixed.parse(config.perp_margin)
            self._min_edge = arb_math.bps_to_rate(config.min_edge_bps)
            self._fixed_basis = {i: 0 for i in ids}
            for key, text in config.basis_bps.items():
                known = [i for i in ids if str(i).lower() == key.lower()]
                if not known:
                    raise ConfigError(f"basis_bps names {key}, which is not one of the instruments")
                iid = known[0]
                self._fixed_basis[iid] = arb_math.bps_to_rate(text)
            self._fees = {i: fee_rates(ctx, config.fees, i) for i in ids}
        except ValueError as exc:  # FixedPointError included
            raise ConfigError(f"xarb: {exc}") from None
        if self._qty <= 0 or self._max_inv < 0 or config.depth_levels <= 0 or config.cooldown_ms < 0:
            raise ConfigError("xarb: order_qty and depth_levels must be positive, max_inventory and cooldown >= 0")
        if config.basis_halflife_s <= 0 or config.record_interval_ms <= 0:
            raise ConfigError("xarb: basis_halflife_s and record_interval_ms must be positive")
        self.legs = LegExecutor(ctx, config.legs, on_done=self._on_group_done)
        self._watched = set(ids)
        self._reference: dict[InstrumentId, int] = {}
        self._basis = {i: _Basis(config.basis_halflife_s) for i in ids[1:]}
        self._cooldown_until = 0
        self._next_record = 0
        self.taken = TakenLiquidity()
        self.groups = 0
        """Leg groups sent."""
        self.leg_risk_groups = 0
        """Groups that needed retries, hedges or unwinds."""
        self.expected_net = 0
        """Sum of the expected results (after fees) of the groups sent, quote nanos."""

    # -- hooks --------------------------------------------------------------------------------

    def on_start(self) -> None:
        self._reference = {iid: self.ctx.position(iid) for iid in self.instrument_ids}

    def on_order(self, event: OrderEvent) -> None:
        self.legs.on_order(event)

    def on_fill(self, fill: OrderFilled) -> None:
        if fill.liquidity is LiquiditySide.TAKER:
            iid = fill.instrument_id
            self.taken.add(self.ctx.book(iid), iid, fill.side is Side.SELL, fill.last_price, fill.last_qty)

    def on_book(self, book: OrderBook) -> None:
        if book.instrument_id not in self._watched:
            return
        now = self.ctx.now_ns()
        self._update_basis(now)
        if now >= self._next_record:
            self._record(now)
        if self.legs.busy() or now < self._cooldown_until or not self._basis_ready(now):
            return
        best: tuple[int, InstrumentId, InstrumentId, arb_math.ArbPlan] | None = None
        for buy in self.instrument_ids:
            for sell in self.instrument_ids:
                if buy == sell:
                    continue
                plan = self.plan(buy, sell)
                if plan is not None and (best is None or plan.net > best[0]):
                    best = (plan.net, buy, sell, plan)
        if best is None:
            return
        _, buy, sell, plan = best
        self.groups += 1
        self.expected_net += plan.net
        self.legs.execute(
            [
                Leg(buy, Side.BUY, plan.qty, plan.buy_limit),
                Leg(sell, Side.SELL, plan.qty, plan.sell_limit),
            ]
        )

    def on_stop(self) -> None:
        self.ctx.cancel_all()

    # -- sizing -------------------------------------------------------------------------------

    def inventory(self, iid: InstrumentId) -> int:
        """Position change since the start, base units."""
        return self.ctx.position(iid) - self._reference.get(iid, 0)

    def basis(self, iid: InstrumentId) -> int:
        """Expected premium of ``iid`` as a nano fraction (0 for the reference instrument)."""
        if self.config.basis_mode == "fixed":
            return self._fixed_basis[iid]
        est = self._basis.get(iid)
        if est is None or est.value is None:
            return 0
        return fixed.from_float_for_signal(math.expm1(est.value), 1)

    def plan(self, buy: InstrumentId, sell: InstrumentId) -> arb_math.ArbPlan | None:
        """The arbitrage buying on ``buy`` and selling on ``sell`` right now, or ``None``."""
        buy_book, sell_book = self.ctx.book(buy), self.ctx.book(sell)
        if buy_book is None or sell_book is None:
            return None
        asks = self.taken.levels(buy_book, False, self.config.depth_levels)
        bids = self.taken.levels(sell_book, True, self.config.depth_levels)
        if not asks or not bids:
            return None
        best_ask, best_bid = asks[0][0], bids[0][0]
        kw = {
            "buy_fee": self._fees[buy][1],
            "sell_fee": self._fees[sell][1],
            "min_edge": self._min_edge,
            "buy_basis": self.basis(buy),
            "sell_basis": self.basis(sell),
        }
        if not arb_math.has_edge(best_ask, best_bid, **kw):
            return None
        bi, si = self._inst[buy], self._inst[sell]
        step = arb_math.common_step(bi.lot_size, si.lot_size)
        cap = min(self._qty, self._max_inv - self.inventory(buy), self._max_inv + self.inventory(sell))
        min_qty = max(bi.min_qty, si.min_qty)
        plan = arb_math.plan_arbitrage(asks, bids, max_qty=cap, step=step, min_qty=min_qty, **kw)
        if plan is None:
            return None
        afford = min(
            self._capacity(bi, Side.BUY, plan.buy_limit, step), self._capacity(si, Side.SELL, plan.sell_limit, step)
        )
        if afford < plan.qty:
            plan = arb_math.plan_arbitrage(asks, bids, max_qty=min(cap, afford), step=step, min_qty=min_qty, **kw)
            if plan is None:
                return None
        if (
            fixed.mul(plan.buy_limit, plan.qty) < bi.min_notional
            or fixed.mul(plan.sell_limit, plan.qty) < si.min_notional
        ):
            return None
        return plan

    def _capacity(self, inst: Instrument, side: Side, price: int, step: int) -> int:
        fee_reserve = max(*self._fees[inst.id], 0)
        return account_capacity(self.ctx, inst, side, price, step, fee_reserve, self._margin)

    # -- basis and display --------------------------------------------------------------------

    def _mid(self, iid: InstrumentId) -> float | None:
        book = self.ctx.book(iid)
        mid_x2 = book.mid_x2() if book is not None else None
        return mid_x2 / 2 if mid_x2 else None

    def _update_basis(self, now: int) -> None:
        if self.config.basis_mode != "ema":
            return
        ref = self._mid(self.instrument_ids[0])
        if ref is None:
            return
        for iid, est in self._basis.items():
            mid = self._mid(iid)
            if mid is not None:
                est.update(now, math.log(mid / ref))

    def _basis_ready(self, now: int) -> bool:
        if self.config.basis_mode != "ema":
            return True
        warmup = int(self.config.basis_warmup_s * 1e9)
        return all(e.value is not None and now - e.first_ts >= warmup for e in self._basis.values())

    def _record(self, now: int) -> None:
        self._next_record = now + self.config.record_interval_ms * 1_000_000
        ids = self.instrument_ids
        self.ctx.record("edge_bps/min edge", arb_math.rate_to_bps(self._min_edge))
        ref = self._mid(ids[0])
        for iid in ids[1:]:
            mid = self._mid(iid)
            if ref is not None and mid is not None:
                self.ctx.record(f"basis_bps/{iid.venue} vs {ids[0].venue}", (mid / ref - 1.0) * 10_000)
            if self.config.basis_mode == "ema":
                self.ctx.record(f"basis_bps/expected {iid.venue}", arb_math.rate_to_bps(self.basis(iid)))
        for buy in ids:
            for sell in ids:
                if buy == sell:
                    continue
                edge = self._touch_edge(buy, sell)
                if edge is not None:
                    self.ctx.record(f"edge_bps/{buy.venue}->{sell.venue}", edge)

    def _touch_edge(self, buy: InstrumentId, sell: InstrumentId) -> float | None:
        """Edge after fees at the two touches, relative to the expected basis (display)."""
        buy_book, sell_book = self.ctx.book(buy), self.ctx.book(sell)
        ask = buy_book.best_ask() if buy_book is not None else None
        bid = sell_book.best_bid() if sell_book is not None else None
        if ask is None or bid is None:
            return None
        return arb_math.edge_bps(
            ask,
            bid,
            buy_fee=self._fees[buy][1],
            sell_fee=self._fees[sell][1],
            buy_basis=self.basis(buy),
            sell_basis=self.basis(sell),
        )

    def _on_group_done(self, result: LegGroupResult) -> None:
        if result.hedged or not result.clean:
            self.leg_risk_groups += 1
        self._cooldown_until = self.ctx.now_ns() + self.config.cooldown_ms * 1_000_000
