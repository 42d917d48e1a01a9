"""Per-instrument matching of our orders against a replayed L2 order book.

The replayed book is the real market *without* our orders. Our orders never enter it; instead:

* An order that crosses on arrival (or after an amend) takes liquidity level by level at book
  prices (taker). What it takes is remembered per level until the feed next updates that level,
  so two orders cannot eat the same size.
* An order that rests keeps ``ahead``: the book volume in front of it at its price, initially the
  level's size when it arrived. Public trades at that price (aggressor on the other side) consume
  ``ahead`` first and only the excess fills our orders, in time priority. Book-size decreases at
  the price that trades do not explain move the order forward per the configured queue model.
* A trade through our price, or an opposite book side that moves through it, fills the order at
  its own price (maker), limited by the volume that crossed.

Our own orders never match each other. Everything is integer arithmetic and ordered containers,
so the same inputs always give the same fills.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator

from tradeloop.core import fixed
from tradeloop.model.book import OrderBook, SequenceRule
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.data import BookDeltas, Level, Quote, Trade
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.sim.orders import SimIds, SimOrder

OrderSink = Callable[[SimOrder, OrderEvent], None]
"""Receives every event the engine produces for an order, right after the order was updated."""

Problem = tuple[RejectReason, str]


def crosses(side: Side, price: int, opposite_price: int) -> bool:
    """Would an order on ``side`` at ``price`` trade with opposite liquidity at ``opposite_price``?"""
    return opposite_price <= price if side is Side.BUY else opposite_price >= price


_MAX_EARLY = 10_000
"""Deltas held while waiting for the first snapshot."""


class _OwnSide:
    """Our resting orders on one side: price -> orders in time priority; prices kept best first."""

    __slots__ = ("_keys", "is_bid", "levels")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, list[SimOrder]] = {}
        self._keys: list[int] = []  # -price for bids, price for asks; ascending = best first

    def _key(self, price: int) -> int:
        return -price if self.is_bid else price

    def add(self, order: SimOrder, price: int) -> None:
        level = self.levels.get(price)
        if level is None:
            self.levels[price] = [order]
            insort(self._keys, self._key(price))
        else:
            level.append(order)

    def remove(self, order: SimOrder, price: int) -> None:
        level = self.levels[price]
        level.remove(order)
        if not level:
            del self.levels[price]
            del self._keys[bisect_left(self._keys, self._key(price))]

    def prices(self) -> list[int]:
        """Prices holding our orders, best first (a copy: safe to change the side while iterating)."""
        return [-k for k in self._keys] if self.is_bid else list(self._keys)


class MatchingEngine:
    """Matches our orders for one instrument against its replayed book at venue time.

    The engine owns fill and queue state of the orders it is given; account checks (balances,
    locks) belong to the venue, which receives every event through ``sink`` before it is emitted.
    """

    def __init__(
        self,
        instrument: Instrument,
        config: SimVenueConfig,
        ids: SimIds,
        now: Callable[[], int],
        sink: OrderSink,
    ) -> None:
        self.instrument = instrument
        self._config = config
        self._ids = ids
        self._now = now
        self._sink = sink
        self.book = OrderBook(instrument.id, SequenceRule.NONE, check_crossed=False)
        self._early: list[BookDeltas] = []
        self._synced = False
        # Start valid and empty so a replay may begin with deltas; a snapshot replaces it.
        self.book.apply_snapshot(BookDeltas(instrument.id, 0, 0, -1, -1, [], [], snapshot=True))
        self._own: dict[Side, _OwnSide] = {Side.BUY: _OwnSide(True), Side.SELL: _OwnSide(False)}
        # Keyed by "is the book side the bid side": liquidity we took / public volume traded per
        # price since the feed last updated that level.
        self._consumed: dict[bool, dict[int, int]] = {True: {}, False: {}}
        self._traded: dict[bool, dict[int, int]] = {True: {}, False: {}}
        self._has_depth = False

    # -- market data --------------------------------------------------------------------------

    def on_book(self, deltas: BookDeltas) -> None:
        """Apply a batch (or snapshot) from the feed, move queues, then fill orders the book crossed.

        Deltas that arrive before the first snapshot are held and, once it comes, those not entirely
        older than it are applied (a capture's snapshot is often fetched after the stream started).
        """
        self._has_depth = True
        if not self._synced and not deltas.snapshot:
            if len(self._early) < _MAX_EARLY:
                self._early.append(deltas)
            return
        self._apply(deltas)
        if deltas.snapshot:
            self._synced = True
        if deltas.snapshot and self._early:
            early, self._early = self._early, []
            for held in early:
                if held.last_seq > deltas.last_seq:
                    self._apply(held)

    def on_quote(self, quote: Quote) -> None:
        """Use best bid/ask as a one-level book, but only for instruments without depth data."""
        if self._has_depth:
            return
        bids: list[Level] = [(quote.bid, quote.bid_qty)] if quote.bid_qty > 0 else []
        asks: list[Level] = [(quote.ask, quote.ask_qty)] if quote.ask_qty > 0 else []
        self._apply(
            BookDeltas(quote.instrument_id, quote.ts_event, quote.ts_recv, quote.seq, quote.seq, bids, asks, True)
        )

    def on_trade(self, trade: Trade) -> None:
        """A public trade: consume queue ahead of our orders at its price, fill the excess; fill
        our orders at better prices (the trade went through them)."""
        if trade.qty <= 0:
            return
        passive_is_bid = trade.aggressor is Side.SELL
        traded = self._traded[passive_is_bid]
        traded[trade.price] = traded.get(trade.price, 0) + trade.qty
        side = Side.BUY if passive_is_bid else Side.SELL
        own = self._own[side]
        remaining = trade.qty
        for price in own.prices():
            if not crosses(side, price, trade.price):
                break
            through = price != trade.price
            consumed_ahead = 0  # volume of others this trade took in front of earlier orders here
            for order in list(own.levels.get(price, ())):
                if through:
                    order.ahead = 0
                else:
                    order.ahead = max(order.ahead - consumed_ahead, 0)
                    take = min(remaining, order.ahead)
                    order.ahead -= take
                    remaining -= take
                    consumed_ahead += take
                if order.ahead == 0 and remaining > 0:
                    qty = min(remaining, order.leaves)
                    remaining -= qty
                    self._fill(order, qty, price, LiquiditySide.MAKER)

    def _apply(self, deltas: BookDeltas) -> None:
        touched = {is_bid: self._touched_levels(is_bid, deltas) for is_bid in (True, False)}
        self.book.apply_deltas(deltas)
        for is_bid in (True, False):
            traded = self._traded[is_bid]
            consumed = self._consumed[is_bid]
            for price, old in touched[is_bid]:
                new = self.book.qty_at(price, is_bid)
                self._move_queue(Side.BUY if is_bid else Side.SELL, price, old, new, traded.get(price, 0))
            if deltas.snapshot:
                traded.clear()
                consumed.clear()
            elif traded or consumed:
                for price, _ in deltas.bids if is_bid else deltas.asks:
                    traded.pop(price, None)
                    consumed.pop(price, None)
        self._match_crossed()

    def _touched_levels(self, is_bid: bool, deltas: BookDeltas) -> list[Level]:
        """(price, size before the batch) of each level holding our orders that the batch updates."""
        own = self._own[Side.BUY if is_bid else Side.SELL]
        if not own.levels:
            return []
        if deltas.snapshot:
            prices = own.prices()
        else:
            prices = []
            for price, _ in deltas.bids if is_bid else deltas.asks:
                if price in own.levels and price not in prices:
                    prices.append(price)
        return [(p, self.book.qty_at(p, is_bid)) for p in prices]

    def _move_queue(self, side: Side, price: int, old: int, new: int, traded: int) -> None:
        decrease = old - new
        unexplained = decrease - min(decrease, traded) if decrease > 0 else 0
        model = self._config.queue_model
        for order in self._own[side].levels[price]:
            if unexplained and order.ahead:
                if model == "proportional":
                    order.ahead -= fixed.div_round(unexplained * order.ahead, old, "floor")
                elif model == "optimistic":
                    order.ahead -= unexplained
            # Volume ahead of us can never exceed what is at the level.
            order.ahead = max(0, min(order.ahead, new))

    def _match_crossed(self) -> None:
        """Fill resting orders whose price the opposite side of the book has moved through."""
        for side in (Side.BUY, Side.SELL):
            own = self._own[side]
            for price in own.prices():
                best = self._best_available(side is Side.SELL)
                if best is None or not crosses(side, price, best):
                    break
                for order in list(own.levels.get(price, ())):
                    order.ahead = 0
                    self._sweep(order, price, maker_price=price)

    # -- book reading -------------------------------------------------------------------------

    def _available_levels(self, is_bid: bool) -> Iterator[Level]:
        """(price, size not yet taken by our orders) of one book side, best first."""
        consumed = self._consumed[is_bid]
        book = self.book
        n, start = 32, 0
        while True:
            levels = book.top_bids(n) if is_bid else book.top_asks(n)
            for price, size in levels[start:]:
                available = size - consumed.get(price, 0)
                if available > 0:
                    yield price, available
            if len(levels) < n:
                return
            start, n = n, n * 4

    def _best_available(self, is_bid: bool) -> int | None:
        if not self._consumed[is_bid]:  # common case: nothing taken, the book's best is available
            return self.book.best_bid() if is_bid else self.book.best_ask()
        level = next(self._available_levels(is_bid), None)
        return None if level is None else level[0]

    def would_cross(self, side: Side, price: int) -> bool:
        """Would a limit order at ``price`` take liquidity now?"""
        best = self._best_available(side is Side.SELL)
        return best is not None and crosses(side, price, best)

    def estimate_take(self, side: Side, qty: int, limit: int | None) -> tuple[int, int]:
        """(size, quote notional) an aggressive order of ``qty`` would fill now, up to ``limit``."""
        filled = notional = 0
        for price, available in self._available_levels(side is Side.SELL):
            if filled >= qty or (limit is not None and not crosses(side, limit, price)):
                break
            take = min(available, qty - filled)
            filled += take
            notional += self.instrument.notional(price, take)
        return filled, notional

    def queue_ahead(self, side: Side, price: int) -> int:
        """Book volume an order arriving now at ``price`` on ``side`` would find in front of it."""
        is_bid = side is Side.BUY
        return max(self.book.qty_at(price, is_bid) - self._consumed[is_bid].get(price, 0), 0)

    # -- checks -------------------------------------------------------------------------------

    def check_new(self, cmd: SubmitOrder) -> Problem | None:
        """Why the venue would refuse this order now (rules, liquidity, post-only, FOK), or ``None``."""
        inst = self.instrument
        if not inst.is_valid_qty(cmd.qty):
            return RejectReason.INVALID_ORDER, f"invalid qty {cmd.qty} (lot {inst.lot_size}, min {inst.min_qty})"
        limit: int | None
        if cmd.order_type is OrderType.MARKET:
            if cmd.post_only:
                return RejectReason.INVALID_ORDER, "a market order cannot be post-only"
            best = self._best_available(cmd.side is Side.SELL)
            if best is None:
                return RejectReason.NO_LIQUIDITY, "no liquidity on the opposite side"
            if inst.notional(best, cmd.qty) < inst.min_notional:
                return RejectReason.INVALID_ORDER, f"notional below min_notional {inst.min_notional}"
            limit = None
        else:
            price = cmd.price
            problem = self._check_price_qty(price, cmd.qty)
            if problem is not None:
                return problem
            assert price is not None
            if cmd.post_only and self.would_cross(cmd.side, price):
                return RejectReason.POST_ONLY_WOULD_CROSS, f"post-only order at {price} would take liquidity"
            limit = price
        if cmd.time_in_force is TimeInForce.FOK:
            filled, _ = self.estimate_take(cmd.side, cmd.qty, limit)
            if filled < cmd.qty:
                return RejectReason.FOK_NOT_FILLABLE, f"only {filled} of {cmd.qty} fillable now"
        return None

    def check_amend(self, order: SimOrder, price: int, qty: int) -> Problem | None:
        """Why an amend of a resting order to (``price``, ``qty``) would be refused, or ``None``."""
        problem = self._check_price_qty(price, qty)
        if problem is not None:
            return problem
        if order.post_only and self.would_cross(order.side, price):
            return RejectReason.POST_ONLY_WOULD_CROSS, f"post-only order at {price} would take liquidity"
        return None

    def _check_price_qty(self, price: int | None, qty: int) -> Problem | None:
        inst = self.instrument
        if price is None or not inst.is_valid_price(price):
            return RejectReason.INVALID_ORDER, f"invalid price {price} (tick {inst.tick_size})"
        if not inst.is_valid_qty(qty):
            return RejectReason.INVALID_ORDER, f"invalid qty {qty} (lot {inst.lot_size}, min {inst.min_qty})"
        if inst.notional(price, qty) < inst.min_notional:
            return RejectReason.INVALID_ORDER, f"notional below min_notional {inst.min_notional}"
        return None

    # -- order actions ------------------------------------------------------------------------

    def submit(self, order: SimOrder) -> None:
        """Accept an order that passed :meth:`check_new`: take liquidity, then rest or expire."""
        order.status = OrderStatus.ACCEPTED
        self._sink(
            order,
            OrderAccepted(
                ts=self._now(),
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                venue_order_id=order.venue_order_id,
            ),
        )
        limit = order.price
        if limit is None or self.would_cross(order.side, limit):
            self._sweep(order, limit, maker_price=None)
        if order.leaves == 0:
            return
        if limit is None or order.time_in_force is not TimeInForce.GTC:
            reason = "FOK_NOT_FILLABLE" if order.time_in_force is TimeInForce.FOK else "IOC: unfilled rest expired"
            order.status = OrderStatus.EXPIRED
            self._sink(
                order,
                OrderExpired(
                    ts=self._now(),
                    instrument_id=order.instrument_id,
                    client_order_id=order.client_order_id,
                    reason=reason,
                ),
            )
            return
        self._rest(order, limit)

    def cancel(self, order: SimOrder, reason: str = "") -> None:
        """Cancel an open order."""
        if order.resting:
            self._unrest(order)
        order.status = OrderStatus.CANCELED
        self._sink(
            order,
            OrderCanceled(
                ts=self._now(), instrument_id=order.instrument_id, client_order_id=order.client_order_id, reason=reason
            ),
        )

    def amend(self, order: SimOrder, price: int, qty: int) -> None:
        """Change a resting order that passed :meth:`check_amend` (``qty`` above its filled size).

        Same price and no size increase keeps its queue position; otherwise it goes to the back
        of the queue at the new price (taking liquidity first if the new price crosses).
        """
        keep = price == order.price and qty <= order.qty
        if not keep and order.resting:
            self._unrest(order)
        order.price = price
        order.qty = qty
        self._sink(
            order,
            OrderAmended(
                ts=self._now(),
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                price=price,
                qty=qty,
            ),
        )
        if keep:
            return
        if self.would_cross(order.side, price):
            self._sweep(order, price, maker_price=None)
        if order.leaves > 0:
            self._rest(order, price)

    # -- internals ----------------------------------------------------------------------------

    def _sweep(self, order: SimOrder, limit: int | None, maker_price: int | None) -> None:
        """Take opposite liquidity best first up to ``limit``: as taker at book prices, or (when
        the book crossed a resting order) as maker at ``maker_price``."""
        opposite_is_bid = order.side is Side.SELL
        consumed = self._consumed[opposite_is_bid]
        for price, available in self._available_levels(opposite_is_bid):
            if order.leaves == 0 or (limit is not None and not crosses(order.side, limit, price)):
                break
            qty = min(available, order.leaves)
            consumed[price] = consumed.get(price, 0) + qty
            if maker_price is None:
                self._fill(order, qty, price, LiquiditySide.TAKER)
            else:
                self._fill(order, qty, maker_price, LiquiditySide.MAKER)

    def _rest(self, order: SimOrder, price: int) -> None:
        order.ahead = self.queue_ahead(order.side, price)
        order.resting = True
        self._own[order.side].add(order, price)

    def _unrest(self, order: SimOrder) -> None:
        assert order.price is not None
        self._own[order.side].remove(order, order.price)
        order.resting = False
        order.ahead = 0

    def _fill(self, order: SimOrder, qty: int, price: int, liquidity: LiquiditySide) -> None:
        inst = self.instrument
        rate = self._config.maker_fee if liquidity is LiquiditySide.MAKER else self._config.taker_fee
        fee = fixed.mul(inst.notional(price, qty), rate, "ceil")
        order.filled += qty
        if order.leaves == 0:
            order.status = OrderStatus.FILLED
            if order.resting:
                self._unrest(order)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        event = OrderFilled(
            ts=self._now(),
            instrument_id=order.instrument_id,
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            trade_id=self._ids.next_trade_id(),
            side=order.side,
            last_qty=qty,
            last_price=price,
            fee=fee,
            fee_currency=inst.settle,
            liquidity=liquidity,
        )
        order.fills.append(event)
        self._sink(order, event)
