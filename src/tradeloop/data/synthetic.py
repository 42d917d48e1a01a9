"""Seeded synthetic market: L2 book deltas and trades from a stochastic order-flow model.

Demos and tests run without data files, and benchmarks can make loads of any size. The same
config and seed give the same stream, item for item. The model (also in ``docs/synthetic_market.md``):

**Fair value.** Each asset (a ``base``/``quote`` pair) has a latent fair value ``F`` that follows a
jump-diffusion in log space, ``d log F = -sigma^2/2 dt + sigma dW + J dN``: ``sigma`` is the annualized
``volatility``, ``N`` a Poisson process of ``jump_rate_per_hour`` and ``J ~ Normal(0, jump_std_bps)``.
Every venue listing the asset sees the same ``F``, so prices on different venues stay close and
cross-venue arbitrage exists but is bounded.

**Venue view.** Each listing sees ``F x exp(basis + X)`` where ``X`` is an Ornstein-Uhlenbeck noise
with stationary deviation ``noise_bps`` and half-life ``noise_halflife_s``, and ``basis_bps`` a
constant offset (e.g. a perp premium).

**Order flow** (zero-intelligence, per listing, independent Poisson clocks):

* *Limit orders* arrive at ``limit_rate`` per second, buy or sell with equal odds, at ``k`` ticks from
  the venue's view of ``F`` (bid ``floor(F) - k``, ask ``floor(F) + 1 + k``, in ticks). ``k`` is
  power-law (Lomax): ``k = floor(depth_scale_ticks x (U^(-1/depth_tail) - 1))``, capped at
  ``max_depth_ticks``: dense at the touch, a long thin tail. Sizes are lognormal in lots (median
  ``limit_size_lots``, log-sd ``size_sigma``, at least one lot). An order priced through the
  opposite best is marketable: it trades level by level up to its limit and rests the remainder,
  which is how the book follows ``F``.
* *Market orders* arrive at ``market_rate`` per second. The side leans toward the fair value:
  ``P(buy) = 1 / (1 + exp(-(F - mid) / side_bias_ticks))``. They walk the book from the touch
  (lognormal size, median ``market_size_lots``), making one trade per level touched.
* *Cancellations* arrive at ``cancel_rate`` per resting level per second. The level is chosen
  uniformly and loses a uniform 1..size lots, so the cancelled volume is proportional to the
  level's size and stale far levels decay.

Every rate is multiplied by the listing's ``activity``. At the start each book is seeded with
``initial_orders`` limit orders around the start price.

**Output.** Per listing: a snapshot first, then one ``BookDeltas`` per event that changed the book
(absolute sizes, 0 deletes; contiguous ``first_seq..last_seq`` under ``SequenceRule.RANGE``, one
sequence number per level changed) and the ``Trade`` s of that event just before it (so a trade
is at or through the touch of the book as a consumer sees it). Items are stamped
``ts_event`` (the event's time) and ``ts_recv = ts_event + latency_us + Exp(jitter_us)`` (kept
monotonic per listing), and the stream is ordered by ``ts_recv`` (ties: creation order). Books are
never crossed or locked, and every price and size is an exact multiple of the tick and lot.

The model uses floats for its stochastic math only; everything it emits is integer ticks and lots
times the instrument's fixed-point tick and lot size.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import insort
from collections.abc import Iterator
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.data import BookDeltas, Level, Trade
from tradeloop.model.enums import InstrumentKind, Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument

__all__ = ["FlowConfig", "SyntheticConfig", "SyntheticInstrument", "SyntheticMarket"]

_SECONDS_PER_YEAR: Final = 365.0 * 86400.0
_BPS: Final = 1e-4


class SyntheticInstrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One listing: an instrument on a venue, its asset's dynamics and the venue's feed.

    Listings with the same ``base``/``quote`` share one fair value, so they must agree on
    ``start_price``, ``volatility`` and the jump parameters. Decimal values are strings.
    """

    venue: str = "simA"
    symbol: str = "BTCUSDT"
    base: str = "BTC"
    quote: str = "USDT"
    kind: InstrumentKind = InstrumentKind.SPOT
    tick: str = "0.1"
    lot: str = "0.001"
    min_notional: str = "5"
    start_price: str = "60000"
    volatility: float = 0.5
    """Annualized standard deviation of log fair value (0.5 = 50%)."""
    jump_rate_per_hour: float = 4.0
    jump_std_bps: float = 10.0
    activity: float = 1.0
    """Multiplies every order-flow rate of this listing."""
    latency_us: int = 1000
    """Feed latency from the venue's event to local receipt."""
    jitter_us: int = 200
    """Mean of an exponential extra latency."""
    noise_bps: float = 0.5
    """Stationary deviation of the venue's view of fair value."""
    noise_halflife_s: float = 10.0
    basis_bps: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tick", "lot", "start_price"):
            try:
                value = fixed.parse(getattr(self, name))
            except fixed.FixedPointError as exc:
                raise ValueError(f"{self.venue}:{self.symbol}: {name}: {exc}") from None
            if value <= 0:
                raise ValueError(f"{self.venue}:{self.symbol}: {name} must be positive")
        if fixed.parse(self.min_notional) < 0:
            raise ValueError(f"{self.venue}:{self.symbol}: min_notional must not be negative")
        if min(self.volatility, self.jump_rate_per_hour, self.jump_std_bps, self.activity, self.noise_bps) < 0:
            raise ValueError(f"{self.venue}:{self.symbol}: rates and deviations must not be negative")
        if self.latency_us < 0 or self.jitter_us < 0 or self.noise_halflife_s <= 0:
            raise ValueError(f"{self.venue}:{self.symbol}: latencies must be >= 0 and the half-life > 0")

    @property
    def instrument_id(self) -> InstrumentId:
        return InstrumentId(self.venue, self.symbol)


class FlowConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Order-flow parameters shared by every listing (see the module docstring)."""

    limit_rate: float = 80.0
    """Limit orders per second."""
    market_rate: float = 6.0
    """Market orders per second."""
    cancel_rate: float = 0.05
    """Cancellations per resting level per second."""
    depth_scale_ticks: float = 4.0
    depth_tail: float = 1.4
    max_depth_ticks: int = 3000
    limit_size_lots: float = 40.0
    market_size_lots: float = 30.0
    size_sigma: float = 1.0
    side_bias_ticks: float = 5.0
    initial_orders: int = 400
    """Limit orders seeding each book before the first snapshot."""

    def __post_init__(self) -> None:
        if min(self.limit_rate, self.market_rate, self.cancel_rate, self.size_sigma) < 0:
            raise ValueError("flow rates and size_sigma must not be negative")
        if self.limit_rate + self.market_rate <= 0:
            raise ValueError("flow: limit_rate + market_rate must be positive")
        if self.depth_scale_ticks <= 0 or self.depth_tail <= 0 or self.side_bias_ticks <= 0:
            raise ValueError("flow: depth_scale_ticks, depth_tail and side_bias_ticks must be positive")
        if self.max_depth_ticks < 0 or self.initial_orders < 0:
            raise ValueError("flow: max_depth_ticks and initial_orders must not be negative")
        if self.limit_size_lots < 1 or self.market_size_lots < 1:
            raise ValueError("flow: median sizes must be at least one lot")


def _default_instruments() -> list[SyntheticInstrument]:
    return [
        SyntheticInstrument(venue="simA", latency_us=800, jitter_us=150),
        SyntheticInstrument(venue="simB", latency_us=2500, jitter_us=600, activity=0.7),
    ]


class SyntheticConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What to generate. Defaults: BTCUSDT listed on ``simA`` and ``simB`` for 5 minutes."""

    seed: int = 7
    duration_s: float = 300.0
    start_ns: int = 1_704_067_200_000_000_000
    """2024-01-01T00:00:00Z; the stream never reads the wall clock."""
    instruments: list[SyntheticInstrument] = msgspec.field(default_factory=_default_instruments)
    flow: FlowConfig = msgspec.field(default_factory=FlowConfig)

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")
        if not self.instruments:
            raise ValueError("at least one instrument is needed")
        seen: set[InstrumentId] = set()
        assets: dict[tuple[str, str], SyntheticInstrument] = {}
        for inst in self.instruments:
            if inst.instrument_id in seen:
                raise ValueError(f"instrument {inst.instrument_id} listed twice")
            seen.add(inst.instrument_id)
            first = assets.setdefault((inst.base, inst.quote), inst)
            if (fixed.parse(first.start_price), first.volatility, first.jump_rate_per_hour, first.jump_std_bps) != (
                fixed.parse(inst.start_price),
                inst.volatility,
                inst.jump_rate_per_hour,
                inst.jump_std_bps,
            ):
                raise ValueError(
                    f"{inst.instrument_id} and {first.instrument_id} share the asset {inst.base}/{inst.quote} "
                    "but not its start_price, volatility, jump_rate_per_hour and jump_std_bps"
                )


class _Asset:
    __slots__ = ("drift", "jump_p_per_ns", "jump_std", "log_price", "sigma", "t")

    def __init__(self, spec: SyntheticInstrument, start_ns: int) -> None:
        self.log_price = math.log(fixed.parse(spec.start_price) / fixed.SCALE)
        self.sigma = spec.volatility / math.sqrt(_SECONDS_PER_YEAR)
        self.drift = -0.5 * self.sigma * self.sigma
        self.jump_p_per_ns = spec.jump_rate_per_hour / 3600e9
        self.jump_std = spec.jump_std_bps * _BPS
        self.t = start_ns


class _Listing:
    """Book and feed state of one synthetic instrument (prices in ticks, sizes in lots)."""

    __slots__ = (
        "ask_keys",
        "asks",
        "asset",
        "basis",
        "bid_px",
        "bids",
        "cancel_rate",
        "iid",
        "jitter_ns",
        "last_recv",
        "latency_ns",
        "limit_rate",
        "lot",
        "market_rate",
        "noise",
        "noise_sd",
        "noise_t",
        "noise_theta",
        "seq",
        "tick",
        "trade_no",
    )

    def __init__(self, spec: SyntheticInstrument, flow: FlowConfig, asset: _Asset, start_ns: int) -> None:
        self.iid = spec.instrument_id
        self.asset = asset
        self.tick = fixed.parse(spec.tick)
        self.lot = fixed.parse(spec.lot)
        self.limit_rate = flow.limit_rate * spec.activity
        self.market_rate = flow.market_rate * spec.activity
        self.cancel_rate = flow.cancel_rate * spec.activity
        self.latency_ns = spec.latency_us * 1000
        self.jitter_ns = spec.jitter_us * 1000.0
        self.noise_sd = spec.noise_bps * _BPS
        self.noise_theta = math.log(2.0) / spec.noise_halflife_s / 1e9
        self.basis = spec.basis_bps * _BPS
        self.noise = 0.0
        self.noise_t = start_ns
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.bid_px: list[int] = []  # ascending, best bid last
        self.ask_keys: list[int] = []  # negated prices ascending, best ask last
        self.seq = 0
        self.trade_no = 0
        self.last_recv = 0


class SyntheticMarket:
    """Iterable of ``(ts_recv, BookDeltas | Trade)`` from the model in the module docstring.

    Each iteration starts over from the seed, so iterating twice gives the same items.
    """

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config if config is not None else SyntheticConfig()
        self.events = 0
        """Order-flow events simulated by the last iteration (limit, market, cancel)."""

    @property
    def start_ns(self) -> int:
        return self.config.start_ns

    @property
    def end_ns(self) -> int:
        return self.config.start_ns + int(self.config.duration_s * 1e9)

    def instruments(self) -> list[Instrument]:
        """The instrument specs of every listing, in config order."""
        return [
            Instrument(
                id=spec.instrument_id,
                base=spec.base,
                quote=spec.quote,
                kind=spec.kind,
                tick_size=fixed.parse(spec.tick),
                lot_size=fixed.parse(spec.lot),
                min_qty=fixed.parse(spec.lot),
                min_notional=fixed.parse(spec.min_notional),
            )
            for spec in self.config.instruments
        ]

    def sequence_rules(self) -> dict[str, SequenceRule]:
        """Every synthetic venue follows ``SequenceRule.RANGE``."""
        return {spec.venue: SequenceRule.RANGE for spec in self.config.instruments}

    def __iter__(self) -> Iterator[tuple[int, BookDeltas | Trade]]:
        return self._generate()

    # -- the model --------------------------------------------------------------------------

    def _generate(self) -> Iterator[tuple[int, BookDeltas | Trade]]:
        cfg = self.config
        flow = cfg.flow
        rng = random.Random(cfg.seed)
        rand = rng.random
        gauss = rng.gauss
        exp = math.exp
        log = math.log
        start, end = self.start_ns, self.end_ns
        assets: dict[tuple[str, str], _Asset] = {}
        listings = []
        for spec in cfg.instruments:
            key = (spec.base, spec.quote)
            asset = assets.get(key)
            if asset is None:
                asset = assets[key] = _Asset(spec, start)
            listings.append(_Listing(spec, flow, asset, start))

        depth_scale = flow.depth_scale_ticks
        depth_exp = -1.0 / flow.depth_tail
        max_depth = flow.max_depth_ticks
        size_sigma = flow.size_sigma
        limit_mu = log(flow.limit_size_lots)
        market_mu = log(flow.market_size_lots)
        bias = flow.side_bias_ticks

        out: list[tuple[int, int, BookDeltas | Trade]] = []
        push = heapq.heappush
        pop = heapq.heappop
        order = 0

        def stamp(st: _Listing, ts_event: int) -> int:
            jitter = int(-st.jitter_ns * log(1.0 - rand())) if st.jitter_ns else 0
            recv = ts_event + st.latency_ns + jitter
            if recv < st.last_recv:
                recv = st.last_recv
            st.last_recv = recv
            return recv

        def view_ticks(st: _Listing, t: int) -> float:
            """The listing's view of fair value at ``t``, in ticks (advances asset and noise)."""
            a = st.asset
            dt = t - a.t
            if dt > 0:
                a.log_price += a.drift * dt * 1e-9 + a.sigma * math.sqrt(dt * 1e-9) * gauss(0.0, 1.0)
                if a.jump_p_per_ns and rand() < a.jump_p_per_ns * dt:
                    a.log_price += a.jump_std * gauss(0.0, 1.0)
                a.t = t
            dt = t - st.noise_t
            if dt > 0 and st.noise_sd:
                decay = exp(-st.noise_theta * dt)
                st.noise = st.noise * decay + st.noise_sd * math.sqrt(1.0 - decay * decay) * gauss(0.0, 1.0)
                st.noise_t = t
            return exp(a.log_price + st.basis + st.noise) * fixed.SCALE / st.tick

        def distance() -> int:
            k = int(depth_scale * ((1.0 - rand()) ** depth_exp - 1.0))
            return k if k < max_depth else max_depth

        # Seed each book, then publish its snapshot.
        for st in listings:
            fair = view_ticks(st, start)
            for _ in range(flow.initial_orders):
                k = distance()
                lots = max(1, int(exp(limit_mu + size_sigma * gauss(0.0, 1.0)) + 0.5))
                if rand() < 0.5:
                    px = int(fair) - k
                    if px > 0:
                        if px not in st.bids:
                            insort(st.bid_px, px)
                        st.bids[px] = st.bids.get(px, 0) + lots
                else:
                    px = int(fair) + 1 + k
                    if px not in st.asks:
                        insort(st.ask_keys, -px)
                    st.asks[px] = st.asks.get(px, 0) + lots
            tick, lot = st.tick, st.lot
            recv = stamp(st, start)
            snap = BookDeltas(
                st.iid,
                start,
                recv,
                0,
                0,
                [(p * tick, st.bids[p] * lot) for p in reversed(st.bid_px)],
                [(-k * tick, st.asks[-k] * lot) for k in reversed(st.ask_keys)],
                True,
            )
            push(out, (recv, order, snap))
            order += 1

        def next_time(st: _Listing, t: int) -> int:
            rate = st.limit_rate + st.market_rate + st.cancel_rate * (len(st.bids) + len(st.asks))
            return t + 1 + int(-log(1.0 - rand()) / rate * 1e9)

        clocks = [(next_time(st, start), i) for i, st in enumerate(listings)]
        heapq.heapify(clocks)
        events = 0
        while clocks:
            t, i = clocks[0]
            if t >= end:
                break
            while out and out[0][0] <= t:
                item = pop(out)
                yield item[0], item[2]
            st = listings[i]
            events += 1
            tick, lot = st.tick, st.lot
            bids, asks, bid_px, ask_keys = st.bids, st.asks, st.bid_px, st.ask_keys
            bid_changes: list[Level] = []
            ask_changes: list[Level] = []
            trades: list[tuple[int, int, Side]] = []
            n_levels = len(bids) + len(asks)
            u = rand() * (st.limit_rate + st.market_rate + st.cancel_rate * n_levels)
            if u < st.limit_rate + st.market_rate:
                fair = view_ticks(st, t)
                if u < st.limit_rate:
                    is_buy = rand() < 0.5
                    limit = int(fair) - distance() if is_buy else int(fair) + 1 + distance()
                    lots = max(1, int(exp(limit_mu + size_sigma * gauss(0.0, 1.0)) + 0.5)) if limit > 0 else 0
                else:
                    limit = -1  # market order: no limit
                    if bid_px and ask_keys:
                        lean = (fair - (bid_px[-1] - ask_keys[-1]) * 0.5) / bias
                        is_buy = rand() * (1.0 + exp(-lean if lean > -50.0 else 50.0)) < 1.0
                    else:
                        is_buy = not ask_keys if bid_px or ask_keys else rand() < 0.5
                    lots = max(1, int(exp(market_mu + size_sigma * gauss(0.0, 1.0)) + 0.5))
                if is_buy:
                    while lots and ask_keys and (limit < 0 or -ask_keys[-1] <= limit):
                        px = -ask_keys[-1]
                        avail = asks[px]
                        fill = lots if lots < avail else avail
                        trades.append((px, fill, Side.BUY))
                        lots -= fill
                        if fill == avail:
                            del asks[px]
                            ask_keys.pop()
                            ask_changes.append((px * tick, 0))
                        else:
                            asks[px] = avail - fill
                            ask_changes.append((px * tick, (avail - fill) * lot))
                    if lots and limit > 0:
                        if limit not in bids:
                            insort(bid_px, limit)
                        size = bids[limit] = bids.get(limit, 0) + lots
                        bid_changes.append((limit * tick, size * lot))
                else:
                    while lots and bid_px and bid_px[-1] >= limit:
                        px = bid_px[-1]
                        avail = bids[px]
                        fill = lots if lots < avail else avail
                        trades.append((px, fill, Side.SELL))
                        lots -= fill
                        if fill == avail:
                            del bids[px]
                            bid_px.pop()
                            bid_changes.append((px * tick, 0))
                        else:
                            bids[px] = avail - fill
                            bid_changes.append((px * tick, (avail - fill) * lot))
                    if lots and limit > 0:
                        if limit not in asks:
                            insort(ask_keys, -limit)
                        size = asks[limit] = asks.get(limit, 0) + lots
                        ask_changes.append((limit * tick, size * lot))
            elif n_levels:
                # Cancel part of a uniformly chosen level.
                j = int(rand() * n_levels)
                if j < len(bid_px):
                    px = bid_px[j]
                    left = bids[px] - 1 - int(rand() * bids[px])
                    if left > 0:
                        bids[px] = left
                    else:
                        del bids[px]
                        del bid_px[j]
                    bid_changes.append((px * tick, left * lot if left > 0 else 0))
                else:
                    j -= len(bid_px)
                    px = -ask_keys[j]
                    left = asks[px] - 1 - int(rand() * asks[px])
                    if left > 0:
                        asks[px] = left
                    else:
                        del asks[px]
                        del ask_keys[j]
                    ask_changes.append((px * tick, left * lot if left > 0 else 0))
            iid = st.iid
            for px, fill, side in trades:
                st.trade_no += 1
                recv = stamp(st, t)
                push(out, (recv, order, Trade(iid, t, recv, px * tick, fill * lot, side, str(st.trade_no))))
                order += 1
            n = len(bid_changes) + len(ask_changes)
            if n:
                recv = stamp(st, t)
                first = st.seq + 1
                st.seq += n
                push(out, (recv, order, BookDeltas(iid, t, recv, first, st.seq, bid_changes, ask_changes)))
                order += 1
            heapq.heapreplace(clocks, (next_time(st, t), i))
        self.events = events
        while out:
            item = pop(out)
            yield item[0], item[2]
