"""Conformance, market data: every registered venue's connector keeps its books in sync with the
venue's local simulator and recovers from what the simulator throws at it (section 4 of the contract)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from tradeloop.model.book import SequenceRule
from tradeloop.model.data import BookDeltas
from tradeloop.venues.registry import VENUES, market_data_adapter

from .harness import Session, venue_params, venue_session, wait_until

pytestmark = pytest.mark.parametrize("venue", venue_params())

RUN_TIMEOUT_S = 30.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, RUN_TIMEOUT_S))


async def settle_and_compare(s: Session, what: str) -> None:
    """Stop the market and wait until the engine's book equals the simulator's."""
    await s.stop_feed()
    await wait_until(s.books_equal, 3.0, lambda: f"{s.venue}: books equal {what} ({s.describe_books()})")


async def recovered(s: Session, since: int, what: str, timeout: float = 8.0) -> None:
    """After status index ``since``: the book went invalid, then valid again (and stayed in sync)."""

    def invalid_seen() -> bool:
        return any(not st.valid for st in s.statuses[since:])

    await wait_until(invalid_seen, 3.0, f"{s.venue}: the book marked invalid after {what}")
    first_invalid = next(i for i in range(since, len(s.statuses)) if not s.statuses[i].valid)

    def valid_again() -> bool:
        return s.book_valid() and any(st.valid for st in s.statuses[first_invalid:])

    await wait_until(
        valid_again, timeout, lambda: f"{s.venue}: the book valid again after {what} ({s.statuses[since:]})"
    )
    assert s.statuses[-1].valid and s.statuses[-1].reason == "resynced", s.statuses[since:]


def test_books_sync_and_equal_the_simulators_book(venue: str) -> None:
    async def main() -> None:
        async with venue_session(venue, feed="synthetic", trading=False) as s:
            moved = s.core.market_items
            await wait_until(lambda: s.core.market_items > moved + 100, 5.0, "the synthetic market to move")
            await settle_and_compare(s, "after a stream of updates")
            assert s.md.counters.items > 0 and s.md.counters.malformed == 0
            assert [st for st in s.statuses if not st.valid] == [], "a clean feed never invalidates the book"
            assert s.resyncs == 0
            # The same book rules as the registry (replay, record); depth may follow the subscription.
            if venue in VENUES:
                adapter = market_data_adapter(venue)
                md: Any = s.md
                assert md.sequence_rule == adapter.sequence_rule
                assert (md.checksum_fn is None) == (adapter.checksum_fn is None)

    run(main())


def test_disconnect_invalidates_then_reconnects_and_resubscribes(venue: str) -> None:
    async def main() -> None:
        async with venue_session(venue, feed="synthetic", trading=False) as s:
            reconnects = s.md.counters.reconnects
            since = len(s.statuses)
            dropped = s.sim.connections_dropped
            s.sim.faults.drop_connections()
            await recovered(s, since, "a server-side disconnect")
            assert s.sim.connections_dropped > dropped
            assert s.md.counters.reconnects > reconnects
            assert s.sim.connection_count >= 1, "resubscribed on a new connection"
            await settle_and_compare(s, "after the reconnect")

    run(main())


def touch_top(s: Session, is_bid: bool) -> None:
    """One book update at the touch (the best level grows by one lot): inside every venue's depth and
    checksum, so a venue that checks only checksums sees it missing too."""
    book = s.core.book(s.iid)
    level = book.best_bid_level() if is_bid else book.best_ask_level()
    assert level is not None
    changed = [(level[0], level[1] + s.inst.lot_size)]
    ts = s.clock.now_ns()
    s.core.apply_market(BookDeltas(s.iid, ts, ts, 0, 0, changed if is_bid else [], [] if is_bid else changed))


def test_skipped_sequence_is_detected_and_resynced(venue: str) -> None:
    async def main() -> None:
        async with venue_session(venue, feed="synthetic", trading=False) as s:
            md: Any = s.md
            declared = (
                md.sequence_rule is not SequenceRule.NONE
                or md.checksum_fn is not None
                or bool((s.connector.extras or {}).get("connection_sequence"))
            )
            await settle_and_compare(s, "before the skipped update")
            since = len(s.statuses)
            s.sim.faults.skip_sequence(1)
            touch_top(s, is_bid=True)  # not sent
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 1.0
            while not s.sim.faults.consumed["skip_sequence"] and loop.time() < deadline:
                await asyncio.sleep(0.01)
            if not s.sim.faults.consumed["skip_sequence"]:
                assert not declared, f"{venue}: the dialect never applied skip_sequence, yet its books can show a gap"
                pytest.skip(f"{venue}: no sequence ids or checksums, and the dialect does not implement skip_sequence")
            touch_top(s, is_bid=False)  # sent: the gap (or the checksum of the book without the bid) shows
            s.start_trickle()  # a live stream for venues whose resync waits for the next update
            await recovered(s, since, "a skipped book update")
            await settle_and_compare(s, "after the resync")

    run(main())


def test_corrupted_checksum_is_detected_and_resynced(venue: str) -> None:
    async def main() -> None:
        async with venue_session(venue, feed="synthetic", trading=False) as s:
            if s.md.checksum_fn is None:  # type: ignore[attr-defined]
                pytest.skip(f"{venue}: the venue sends no book checksum (checksum_fn is None)")
            since = len(s.statuses)
            s.sim.faults.corrupt_checksum(1)
            await recovered(s, since, "a corrupted checksum")
            assert s.sim.faults.consumed["corrupt_checksum"] == 1, "the dialect did not apply corrupt_checksum"
            await settle_and_compare(s, "after the resync")

    run(main())


def test_malformed_frames_are_counted_and_the_feed_goes_on(venue: str) -> None:
    async def main() -> None:
        async with venue_session(venue, feed="synthetic", trading=False) as s:
            reconnects = s.md.counters.reconnects
            s.sim.faults.send_malformed(b'{"truncated": [1, 2')
            s.sim.faults.send_malformed(b"this is not a venue frame")
            await wait_until(
                lambda: s.md.counters.malformed >= 2,
                3.0,
                lambda: f"{venue}: 2 malformed frames counted (counted {s.md.counters.malformed})",
            )
            assert s.sim.faults.consumed["send_malformed"] == 2
            items = s.md.counters.items
            await wait_until(lambda: s.md.counters.items > items + 20, 3.0, f"{venue}: items after the bad frames")
            assert s.md.counters.reconnects == reconnects, "a malformed frame must not cost the connection"
            assert s.book_valid()
            await settle_and_compare(s, "after the malformed frames")

    run(main())
