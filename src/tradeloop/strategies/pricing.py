"""Pricing math of the market maker: pure functions, no engine, no state.

Two models set where the quotes go (float signal math):

* **Order-book imbalance** (the design's own): ``fair = mid + skew x I`` with the normalized
  imbalance ``I = (B - A) / (B + A)`` of the bid volume ``B`` and ask volume ``A`` over the top N
  levels, so ``skew`` is the price offset at a fully one-sided book. Quotes sit a half spread either
  side of fair, shifted against inventory.
* **Avellaneda-Stoikov** (2008): reservation price ``r = s - q*gamma*sigma^2*(T-t)`` and optimal
  spread ``delta = gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/kappa)``; quotes at ``r -/+ delta/2``.
  Units: ``s`` and the quotes in quote currency, ``sigma`` in quote currency per sqrt(second),
  ``T-t`` in seconds, ``kappa`` per unit of quote currency, ``q`` the inventory in order-size units.

:func:`bid_ladder` and :func:`ask_ladder` turn a float quote into exact prices on the tick grid
(bids rounded down, asks up, through :func:`tradeloop.core.fixed.from_float_for_signal`), keep them
off the opposite touch (a post-only quote must never cross) and space further levels out.
"""

from __future__ import annotations

import math
from typing import Literal

from tradeloop.core import fixed

BPS = 1e-4

HorizonMode = Literal["rolling", "finite"]


# -- order-book imbalance ----------------------------------------------------------------------


def book_imbalance(bid_volume: float, ask_volume: float) -> float:
    """``(B - A) / (B + A)`` in [-1, 1]; 0 when both sides are empty."""
    total = bid_volume + ask_volume
    return (bid_volume - ask_volume) / total if total > 0 else 0.0


def imbalance_fair_price(mid: float, bid_volume: float, ask_volume: float, skew_bps: float) -> float:
    """``mid + skew x imbalance`` with ``skew = skew_bps`` of the mid (the offset at a one-sided book)."""
    return mid + mid * skew_bps * BPS * book_imbalance(bid_volume, ask_volume)


def imbalance_quotes(
    fair: float, inventory_ratio: float, inventory_skew_bps: float, half_spread_bps: float
) -> tuple[float, float]:
    """Bid and ask around ``fair``.

    The centre moves ``inventory_skew_bps`` of fair against the inventory per unit of
    ``inventory_ratio`` (inventory / max inventory, so a full long book lowers both quotes by that
    much), and the quotes sit ``half_spread_bps`` of the centre either side of it.
    """
    center = fair * (1.0 - inventory_skew_bps * BPS * inventory_ratio)
    half = center * half_spread_bps * BPS
    return center - half, center + half


# -- Avellaneda-Stoikov ------------------------------------------------------------------------


def reservation_price(mid: float, inventory: float, gamma: float, sigma: float, time_left_s: float) -> float:
    """Avellaneda-Stoikov ``r = s - q*gamma*sigma^2*(T-t)``: the mid shifted against the inventory."""
    return mid - inventory * gamma * sigma * sigma * time_left_s


def optimal_spread(gamma: float, sigma: float, time_left_s: float, kappa: float) -> float:
    """Avellaneda-Stoikov total spread ``gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/kappa)``.

    The first term pays for the inventory risk over the rest of the horizon, the second for the
    order-arrival decay ``kappa``: as ``gamma`` goes to 0 it tends to ``2/kappa``.
    """
    if gamma <= 0 or kappa <= 0:
        raise ValueError("gamma and kappa must be positive")
    return gamma * sigma * sigma * time_left_s + (2.0 / gamma) * math.log1p(gamma / kappa)


def avellaneda_stoikov_quotes(
    mid: float, inventory: float, gamma: float, sigma: float, time_left_s: float, kappa: float
) -> tuple[float, float, float, float]:
    """``(bid, ask, reservation price, spread)``: quotes at ``r -/+ spread/2``."""
    r = reservation_price(mid, inventory, gamma, sigma, time_left_s)
    spread = optimal_spread(gamma, sigma, time_left_s, kappa)
    return r - spread / 2, r + spread / 2, r, spread


def time_left_s(mode: HorizonMode, horizon_s: float, start_ns: int, now_ns: int) -> float:
    """``T - t`` in seconds.

    ``rolling``: always ``horizon_s`` (the horizon moves with the clock). ``finite``: counts down
    from ``horizon_s`` to 0 over each session of ``horizon_s`` seconds from ``start_ns``, then the
    next session starts (``horizon_s = 86400`` gives daily sessions).
    """
    if horizon_s <= 0:
        raise ValueError("horizon_s must be positive")
    if mode == "rolling":
        return horizon_s
    horizon_ns = round(horizon_s * 1e9)
    elapsed_ns = max(now_ns - start_ns, 0) % horizon_ns
    return (horizon_ns - elapsed_ns) / 1e9


# -- quotes on the tick grid -------------------------------------------------------------------


def bid_ladder(
    price: float,
    tick: int,
    levels: int,
    spacing_ticks: int,
    best_bid: int | None,
    best_ask: int | None,
    max_improve_ticks: int | None = 0,
) -> list[int]:
    """Exact bid prices (nanos), best first: ``price`` rounded down to the tick, then ``levels - 1``
    more ``spacing_ticks`` apart.

    The first level stays at least one tick under ``best_ask`` (never crosses or locks) and at most
    ``max_improve_ticks`` above ``best_bid`` (``0`` joins the touch at most; ``None`` allows any
    improvement short of the ask). Non-positive prices are dropped.
    """
    top = fixed.from_float_for_signal(price, tick, "floor")
    if best_ask is not None:
        top = min(top, best_ask - tick)
    if best_bid is not None and max_improve_ticks is not None:
        top = min(top, best_bid + max_improve_ticks * tick)
    return [p for p in (top - k * spacing_ticks * tick for k in range(levels)) if p > 0]


def ask_ladder(
    price: float,
    tick: int,
    levels: int,
    spacing_ticks: int,
    best_bid: int | None,
    best_ask: int | None,
    max_improve_ticks: int | None = 0,
) -> list[int]:
    """Exact ask prices (nanos), best first; the mirror of :func:`bid_ladder` (rounded up)."""
    top = fixed.from_float_for_signal(price, tick, "ceil")
    if best_bid is not None:
        top = max(top, best_bid + tick)
    if best_ask is not None and max_improve_ticks is not None:
        top = max(top, best_ask - max_improve_ticks * tick)
    return [top + k * spacing_ticks * tick for k in range(levels)]


def levels_within_limit(inventory: int, max_inventory: int, order_qty: int, levels: int, is_bid: bool) -> int:
    """How many quote levels of ``order_qty`` fit before the inventory limit on one side.

    A bid may only be out while ``inventory + bids <= max_inventory``; an ask while
    ``inventory - asks >= -max_inventory``. At ``+max`` no bid fits, at ``-max`` no ask.
    """
    if order_qty <= 0:
        raise ValueError("order_qty must be positive")
    room = max_inventory - inventory if is_bid else max_inventory + inventory
    return max(0, min(levels, room // order_qty))
