"""Exact arithmetic of cross-venue arbitrage and cross-venue quoting (pure functions, int nanos).

Rates (fees, edges, basis) are nano fractions like :class:`~tradeloop.venues.sim.config.SimVenueConfig`
fees: ``0.0004`` is ``400_000``, one basis point is :data:`BPS` (``100_000``).

**Edge.** Buying one unit at ``buy`` on one venue and selling it at ``sell`` on another, paying
taker fees ``fb`` and ``fs``, gives proceeds ``sell x (1 - fs)`` for a cost of ``buy x (1 + fb)``.
When the venues are expected to price the asset differently (a perpetual's premium, a stablecoin
quote), each price is first divided by ``1 + basis`` of its venue, so only the deviation from the
expected basis counts. The trade has an edge beyond the minimum ``m`` when

    sell x (1 - fs) x (1 + basis_buy)  >  buy x (1 + fb) x (1 + basis_sell) x (1 + m)

which :func:`has_edge` evaluates exactly on integers. :func:`plan_arbitrage` walks both books
level by level while that holds and sizes one IOC pair; :func:`maker_quote` prices a passive quote
so that hedging its fill at the other venue's touch keeps at least ``m``.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tradeloop.core import fixed
from tradeloop.model.data import Level
from tradeloop.model.enums import Side

S = fixed.SCALE
BPS = 100_000
"""One basis point as a nano fraction."""


def bps_to_rate(text: str) -> int:
    """A decimal string of basis points (``"0.5"``, ``"-3.6"``) as an exact nano fraction.

    Raises ``ValueError`` if it has more than five decimals (not representable in nanos).
    """
    value = fixed.parse(text)  # bps x 1e9
    rate, rest = divmod(value, 10_000)
    if rest:
        raise ValueError(f"{text!r} bps has more than 5 decimals")
    return rate


def rate_to_bps(rate: int) -> float:
    """Display only: a nano fraction in basis points."""
    return rate / BPS


def edge_terms(
    buy: int, sell: int, *, buy_fee: int, sell_fee: int, buy_basis: int = 0, sell_basis: int = 0
) -> tuple[int, int]:
    """(proceeds, cost) of buying at ``buy`` and selling at ``sell``, on one common integer scale.

    ``proceeds / cost - 1`` is the edge after both taker fees, relative to the expected basis.
    """
    proceeds = sell * (S - sell_fee) * (S + buy_basis)
    cost = buy * (S + buy_fee) * (S + sell_basis)
    return proceeds, cost


def has_edge(
    buy: int,
    sell: int,
    *,
    buy_fee: int,
    sell_fee: int,
    min_edge: int = 0,
    buy_basis: int = 0,
    sell_basis: int = 0,
) -> bool:
    """Whether buying at ``buy`` and selling at ``sell`` earns more than ``min_edge`` after both
    fees (exact): the edge left after fees and the minimum must be positive."""
    proceeds, cost = edge_terms(
        buy, sell, buy_fee=buy_fee, sell_fee=sell_fee, buy_basis=buy_basis, sell_basis=sell_basis
    )
    return proceeds * S > cost * (S + min_edge)


def edge_bps(buy: int, sell: int, *, buy_fee: int, sell_fee: int, buy_basis: int = 0, sell_basis: int = 0) -> float:
    """Display only: the edge after fees in basis points (negative when the trade loses)."""
    proceeds, cost = edge_terms(
        buy, sell, buy_fee=buy_fee, sell_fee=sell_fee, buy_basis=buy_basis, sell_basis=sell_basis
    )
    return (proceeds - cost) / cost * 10_000


def net_after_fees(buy_notional: int, sell_notional: int, buy_fee: int, sell_fee: int) -> int:
    """Quote-currency result of a matched buy and sell: proceeds minus cost minus both fees."""
    return sell_notional - sell_fee - buy_notional - buy_fee


def fee_on(notional: int, rate: int) -> int:
    """Fee of one fill as the simulated venue charges it: notional x rate, rounded up."""
    return fixed.mul(notional, rate, "ceil")


def fillable_qty(
    asks: Sequence[Level],
    bids: Sequence[Level],
    *,
    buy_fee: int,
    sell_fee: int,
    min_edge: int = 0,
    buy_basis: int = 0,
    sell_basis: int = 0,
) -> int:
    """Size that can be bought from ``asks`` (best first) and sold into ``bids`` (best first)
    with every unit still earning ``min_edge`` after fees (books walked level by level)."""
    i = j = 0
    ask_left = asks[0][1] if asks else 0
    bid_left = bids[0][1] if bids else 0
    total = 0
    while i < len(asks) and j < len(bids):
        if not has_edge(
            asks[i][0],
            bids[j][0],
            buy_fee=buy_fee,
            sell_fee=sell_fee,
            min_edge=min_edge,
            buy_basis=buy_basis,
            sell_basis=sell_basis,
        ):
            break
        take = min(ask_left, bid_left)
        total += take
        ask_left -= take
        bid_left -= take
        if ask_left == 0:
            i += 1
            ask_left = asks[i][1] if i < len(asks) else 0
        if bid_left == 0:
            j += 1
            bid_left = bids[j][1] if j < len(bids) else 0
    return total


def take_levels(levels: Sequence[Level], qty: int) -> list[Level] | None:
    """The (price, size) fills of taking ``qty`` from ``levels`` (best first); ``None`` if too thin."""
    out: list[Level] = []
    left = qty
    for price, size in levels:
        if left <= 0:
            break
        take = min(size, left)
        if take > 0:
            out.append((price, take))
            left -= take
    return out if left <= 0 and qty > 0 else None


class ArbPlan(msgspec.Struct, frozen=True, kw_only=True):
    """One IOC pair: buy ``qty`` up to ``buy_limit``, sell ``qty`` down to ``sell_limit``.

    Notionals and fees are what the fills would be if both books stay as they were (fees charged
    per level, rounded up, as the simulated venue does).
    """

    qty: int
    buy_limit: int
    sell_limit: int
    buy_notional: int
    sell_notional: int
    buy_fee: int
    sell_fee: int

    @property
    def net(self) -> int:
        """Expected quote-currency result after both fees."""
        return net_after_fees(self.buy_notional, self.sell_notional, self.buy_fee, self.sell_fee)


def plan_arbitrage(
    asks: Sequence[Level],
    bids: Sequence[Level],
    *,
    buy_fee: int,
    sell_fee: int,
    max_qty: int,
    step: int,
    min_qty: int = 0,
    min_edge: int = 0,
    buy_basis: int = 0,
    sell_basis: int = 0,
) -> ArbPlan | None:
    """Size and price one arbitrage: the most both books can fill with the edge intact, at most
    ``max_qty``, rounded down to ``step`` (the coarser lot of the two venues). ``None`` if that is
    below ``step`` or ``min_qty``."""
    if step <= 0:
        raise ValueError("step must be positive")
    qty = fillable_qty(
        asks,
        bids,
        buy_fee=buy_fee,
        sell_fee=sell_fee,
        min_edge=min_edge,
        buy_basis=buy_basis,
        sell_basis=sell_basis,
    )
    qty = min(qty, max_qty) // step * step
    if qty <= 0 or qty < min_qty:
        return None
    buys = take_levels(asks, qty)
    sells = take_levels(bids, qty)
    assert buys is not None and sells is not None  # qty <= what both books hold
    buy_notional = sell_notional = buy_fees = sell_fees = 0
    for price, size in buys:
        notional = fixed.mul(price, size)
        buy_notional += notional
        buy_fees += fee_on(notional, buy_fee)
    for price, size in sells:
        notional = fixed.mul(price, size)
        sell_notional += notional
        sell_fees += fee_on(notional, sell_fee)
    return ArbPlan(
        qty=qty,
        buy_limit=buys[-1][0],
        sell_limit=sells[-1][0],
        buy_notional=buy_notional,
        sell_notional=sell_notional,
        buy_fee=buy_fees,
        sell_fee=sell_fees,
    )


def maker_quote(
    side: Side,
    hedge_touch: int,
    *,
    hedge_fee: int,
    maker_fee: int,
    min_edge: int,
    tick: int,
    maker_basis: int = 0,
    hedge_basis: int = 0,
) -> int:
    """Passive price on the maker venue whose fill, hedged at ``hedge_touch`` (the hedge venue's
    best bid when we buy, best ask when we sell) with taker fee ``hedge_fee``, keeps ``min_edge``
    after the maker fee. Rounded away from the touch onto ``tick`` so the edge is never less.

    A bid ``b`` hedged by selling at ``h``: ``h (1 - ft)(1 + bm) >= b (1 + fm)(1 + bh)(1 + m)``;
    an ask ``a`` hedged by buying at ``h``: ``a (1 - fm)(1 + bh) >= h (1 + ft)(1 + bm)(1 + m)``.
    """
    if side is Side.BUY:
        num = hedge_touch * (S - hedge_fee) * (S + maker_basis) * S
        den = (S + maker_fee) * (S + hedge_basis) * (S + min_edge)
        return fixed.div_round(num, den * tick, "floor") * tick
    num = hedge_touch * (S + hedge_fee) * (S + maker_basis) * (S + min_edge)
    den = (S - maker_fee) * (S + hedge_basis) * S
    return fixed.div_round(num, den * tick, "ceil") * tick


def spot_buy_capacity(free_quote: int, price: int, fee_reserve: int, step: int) -> int:
    """Largest multiple of ``step`` a spot buy at limit ``price`` can lock from ``free_quote``
    (notional plus the venue's fee reserve, rounded up)."""
    if price <= 0 or free_quote <= 0:
        return 0
    qty = fixed.div_round(free_quote * S * S, price * (S + fee_reserve), "floor") // step * step
    while qty > 0:
        notional = fixed.mul(price, qty)
        if notional + fee_on(notional, fee_reserve) <= free_quote:
            return qty
        qty -= step
    return 0


def perp_capacity(free_margin: int, price: int, margin_rate: int, fee_reserve: int, step: int) -> int:
    """Largest multiple of ``step`` a linear-perp order at ``price`` can lock from ``free_margin``
    (initial margin plus fee reserve, each rounded up)."""
    if price <= 0 or free_margin <= 0 or margin_rate + fee_reserve <= 0:
        return 0
    qty = fixed.div_round(free_margin * S * S, price * (margin_rate + fee_reserve), "floor") // step * step
    while qty > 0:
        notional = fixed.mul(price, qty)
        if fixed.mul(notional, margin_rate, "ceil") + fee_on(notional, fee_reserve) <= free_margin:
            return qty
        qty -= step
    return 0


def common_step(a: int, b: int) -> int:
    """Smallest size that is a whole number of lots on both venues (least common multiple)."""
    x, y = a, b
    while y:
        x, y = y, x % y
    return a // x * b
