"""L2 order book: snapshot + absolute deltas, sequence tracking, crossed-book and checksum checks.

Each side is a dict ``price -> size`` plus a sorted list of its prices, kept so that the best
price is always the last element (bids ascending; asks stored negated, ascending). Best bid/ask
is then O(1), the top N levels a slice, and inserting or removing a level near the top moves few
pointers. With the C accelerator (``tradeloop.core.fastparse``) the sorted keys live in a
``PriceLadder`` (an int64 array that reads like a list) and levels are applied in C; a key beyond
int64 turns that side back into a plain list.

Sequence rules differ by venue; :class:`SequenceRule` names the ones in use and the venue's
parser or book manager picks one. A book that fails a rule, a checksum or the crossed-book check
is marked invalid and stays invalid (deltas are refused) until a snapshot rebuilds it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from enum import IntEnum
from operator import neg
from typing import Final, cast

from tradeloop.core.fastparse import PriceKeys, book_apply_side, new_price_keys
from tradeloop.model.data import BookDeltas, Level
from tradeloop.model.identifiers import InstrumentId


class SequenceRule(IntEnum):
    """How consecutive batches must link.

    NONE: no check. RANGE: each batch covers ``first_seq..last_seq`` and the next batch starts at
    ``last_seq + 1``; the first batch after a snapshot must contain ``snapshot_seq + 1`` (Binance
    spot, KuCoin). PREV_LINK: each batch names the previous batch's ``last_seq`` in ``prev_seq``;
    the first after a snapshot must contain ``snapshot_seq`` (Binance USD-M). INCREMENT: every
    batch's ``first_seq`` is the previous ``last_seq + 1`` (Bybit, Coinbase).
    """

    NONE = 0
    RANGE = 1
    PREV_LINK = 2
    INCREMENT = 3


class ApplyResult(IntEnum):
    APPLIED = 0
    STALE = 1
    """Batch entirely older than the book; ignored (normal right after a snapshot)."""
    INVALID = 2
    """The batch broke the book (gap, checksum, cross) or the book was already invalid."""


ChecksumFn = Callable[["OrderBook"], int]

# Members as module constants for the hot path: attribute access on an Enum class costs ~100 ns on 3.11.
_APPLIED: Final = ApplyResult.APPLIED
_STALE: Final = ApplyResult.STALE
_INVALID: Final = ApplyResult.INVALID
_RANGE: Final = SequenceRule.RANGE
_PREV_LINK: Final = SequenceRule.PREV_LINK


def _apply_side_py(levels: list[Level], side: dict[int, int], prices: list[int], sign: int) -> None:
    """Apply absolute levels to one side (size <= 0 deletes). The reference for the C version.

    ``side`` maps price -> size; ``prices`` holds ``sign * price`` for every key, ascending, so the
    best level is last for both bids (sign 1) and asks (sign -1).
    """
    for price, qty in levels:
        if qty > 0:
            if price not in side:
                insort(prices, sign * price)
            side[price] = qty
        elif side.pop(price, None) is not None:
            key = sign * price
            if prices[-1] == key:
                prices.pop()
            else:
                del prices[bisect_left(prices, key)]


_ApplySide = Callable[[list[Level], dict[int, int], PriceKeys, int], None]
# Without the accelerator every side's keys are a list (new_price_keys returns its argument).
_apply_side_impl = cast(_ApplySide, _apply_side_py) if book_apply_side is None else book_apply_side


class OrderBook:
    """An L2 book for one instrument. Prices and sizes are fixed-point nanos."""

    __slots__ = (
        "_ask_px",
        "_bid_px",
        "_first_after_snapshot",
        "asks",
        "bids",
        "check_crossed",
        "checksum_fn",
        "checksums_verified",
        "depth_limit",
        "instrument_id",
        "invalid_reason",
        "last_seq",
        "sequence_rule",
        "ts_event",
        "ts_recv",
        "update_count",
        "valid",
    )

    def __init__(
        self,
        instrument_id: InstrumentId,
        sequence_rule: SequenceRule = SequenceRule.NONE,
        checksum_fn: ChecksumFn | None = None,
        check_crossed: bool = True,
        depth_limit: int = 0,
    ) -> None:
        self.instrument_id = instrument_id
        self.depth_limit = depth_limit
        """Levels kept per side (0: all). Venues that send no delete for levels pushed out of the
        subscribed depth (Kraken) need the book cut after every update, before the checksum."""
        self.sequence_rule = sequence_rule
        self.checksum_fn = checksum_fn
        self.check_crossed = check_crossed
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._bid_px: PriceKeys = new_price_keys([])  # ascending; best bid last
        self._ask_px: PriceKeys = new_price_keys([])  # negated prices ascending; best ask last
        self.last_seq = -1
        self.valid = False
        self.invalid_reason = "no snapshot yet"
        self._first_after_snapshot = False
        self.ts_event = 0
        self.ts_recv = 0
        self.update_count = 0
        self.checksums_verified = 0
        """Venue checksums that matched the book (snapshots and deltas)."""

    # -- building -----------------------------------------------------------------------------

    def apply_snapshot(self, snapshot: BookDeltas) -> ApplyResult:
        """Replace the whole book; makes an invalid book valid again (unless it is crossed)."""
        self.bids = {p: q for p, q in snapshot.bids if q > 0}
        self.asks = {p: q for p, q in snapshot.asks if q > 0}
        self._bid_px = new_price_keys(sorted(self.bids))
        self._ask_px = new_price_keys(sorted(-p for p in self.asks))
        self.last_seq = snapshot.last_seq
        self._first_after_snapshot = True
        self.ts_event = snapshot.ts_event
        self.ts_recv = snapshot.ts_recv
        self.update_count += 1
        self.valid = True
        self.invalid_reason = ""
        if self.depth_limit:
            self._truncate(self.depth_limit)
        return self._check_after(snapshot)

    def apply_deltas(self, deltas: BookDeltas) -> ApplyResult:
        """Apply one batch of absolute level updates (size 0 deletes), checking its sequence.

        A snapshot batch is routed to :meth:`apply_snapshot`. Returns what happened; on INVALID
        the book keeps its levels for inspection but refuses deltas until the next snapshot.
        """
        if deltas.snapshot:
            return self.apply_snapshot(deltas)
        if not self.valid:
            return _INVALID
        rule = self.sequence_rule
        if rule:
            verdict = self._check_sequence(deltas)
            if verdict is not _APPLIED:
                return verdict
        try:
            _apply_side_impl(deltas.bids, self.bids, self._bid_px, 1)
            _apply_side_impl(deltas.asks, self.asks, self._ask_px, -1)
        except (OverflowError, TypeError):
            # A PriceLadder cannot hold this key: continue on plain lists. Levels are absolute, so
            # applying the whole batch again on top of the part already applied gives the same book.
            if isinstance(self._bid_px, list) and isinstance(self._ask_px, list):
                raise
            self._bid_px = self._bid_px[:]
            self._ask_px = self._ask_px[:]
            _apply_side_impl(deltas.bids, self.bids, self._bid_px, 1)
            _apply_side_impl(deltas.asks, self.asks, self._ask_px, -1)
        if self.depth_limit:
            self._truncate(self.depth_limit)
        if deltas.last_seq >= 0:
            self.last_seq = deltas.last_seq
        self._first_after_snapshot = False
        self.ts_event = deltas.ts_event
        self.ts_recv = deltas.ts_recv
        self.update_count += 1
        return self._check_after(deltas)

    _apply_side = staticmethod(_apply_side_impl)
    """``tradeloop.core._fastparse.apply_side`` when the accelerator is built, else ``_apply_side_py``."""

    def _check_sequence(self, d: BookDeltas) -> ApplyResult:
        last = self.last_seq
        rule = self.sequence_rule
        if rule is _RANGE:
            if d.last_seq <= last:
                return _STALE
            ok = d.first_seq <= last + 1 if self._first_after_snapshot else d.first_seq == last + 1
        elif rule is _PREV_LINK:
            if d.last_seq < last:
                return _STALE
            if self._first_after_snapshot:
                ok = d.first_seq <= last <= d.last_seq
            else:
                ok = d.prev_seq == last
        else:  # INCREMENT
            if d.last_seq <= last:
                return _STALE
            ok = d.first_seq == last + 1
        if ok:
            return _APPLIED
        self.invalidate(f"sequence gap: book at {last}, batch {d.first_seq}..{d.last_seq} prev {d.prev_seq}")
        return _INVALID

    def _check_after(self, d: BookDeltas) -> ApplyResult:
        bid_px = self._bid_px
        ask_px = self._ask_px
        if self.check_crossed and bid_px and ask_px and bid_px[-1] >= -ask_px[-1]:
            self.invalidate(f"crossed book: bid {bid_px[-1]} >= ask {-ask_px[-1]}")
            return _INVALID
        if d.checksum is not None and self.checksum_fn is not None:
            local = self.checksum_fn(self)
            if local != d.checksum:
                self.invalidate(f"checksum mismatch: venue {d.checksum}, local {local}")
                return _INVALID
            self.checksums_verified += 1
        return _APPLIED

    def _truncate(self, depth: int) -> None:
        excess = len(self._bid_px) - depth
        if excess > 0:
            _apply_side_impl([(p, 0) for p in self._bid_px[:excess]], self.bids, self._bid_px, 1)
        excess = len(self._ask_px) - depth
        if excess > 0:
            _apply_side_impl([(-k, 0) for k in self._ask_px[:excess]], self.asks, self._ask_px, -1)

    def invalidate(self, reason: str) -> None:
        """Mark the book unusable until the next snapshot."""
        self.valid = False
        self.invalid_reason = reason

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bid_px.clear()
        self._ask_px.clear()
        self.last_seq = -1
        self.invalidate("cleared")

    # -- reading ------------------------------------------------------------------------------

    def best_bid(self) -> int | None:
        prices = self._bid_px
        return prices[-1] if prices else None

    def best_ask(self) -> int | None:
        prices = self._ask_px
        return -prices[-1] if prices else None

    def best_bid_level(self) -> Level | None:
        prices = self._bid_px
        if not prices:
            return None
        p = prices[-1]
        return p, self.bids[p]

    def best_ask_level(self) -> Level | None:
        prices = self._ask_px
        if not prices:
            return None
        p = -prices[-1]
        return p, self.asks[p]

    def mid_x2(self) -> int | None:
        """Twice the mid price (exact integer); ``None`` if a side is empty."""
        if not self._bid_px or not self._ask_px:
            return None
        return self._bid_px[-1] - self._ask_px[-1]

    def spread(self) -> int | None:
        if not self._bid_px or not self._ask_px:
            return None
        return -self._ask_px[-1] - self._bid_px[-1]

    def top_bids(self, n: int) -> list[Level]:
        """Best ``n`` bid levels, best first."""
        bids = self.bids
        return [(p, bids[p]) for p in reversed(self._bid_px[-n:])] if n > 0 else []

    def top_asks(self, n: int) -> list[Level]:
        """Best ``n`` ask levels, best first."""
        asks = self.asks
        return [(-k, asks[-k]) for k in reversed(self._ask_px[-n:])] if n > 0 else []

    def sorted_sides(self) -> tuple[PriceKeys, dict[int, int], PriceKeys, dict[int, int]]:
        """The book's own structures, for fast readers (the C checksum writers of
        :mod:`tradeloop.core.fastparse`): bid price keys ascending (best last), bid sizes by price,
        ask keys (negated prices) ascending (best last), ask sizes by price. Read them, never change them."""
        return self._bid_px, self.bids, self._ask_px, self.asks

    def volume(self, side_is_bid: bool, n_levels: int) -> int:
        """Total size over the best ``n_levels`` of one side."""
        if n_levels <= 0:
            return 0
        if side_is_bid:
            return sum(map(self.bids.__getitem__, self._bid_px[-n_levels:]))
        return sum(map(self.asks.__getitem__, map(neg, self._ask_px[-n_levels:])))

    def qty_at(self, price: int, side_is_bid: bool) -> int:
        return (self.bids if side_is_bid else self.asks).get(price, 0)

    def depth(self) -> tuple[int, int]:
        """Number of (bid, ask) levels."""
        return len(self.bids), len(self.asks)

    def __repr__(self) -> str:
        state = "valid" if self.valid else f"invalid ({self.invalid_reason})"
        return (
            f"OrderBook({self.instrument_id}, bid={self.best_bid()}, ask={self.best_ask()}, "
            f"levels={self.depth()}, seq={self.last_seq}, {state})"
        )
