"""Lockstep stepping: the venue's matching takes an item first, its public feed only after the node settled
on the fills; every item waits for the node; a node that does not settle is a clear error."""

from __future__ import annotations

import asyncio

import pytest

from tradeloop.deploy.lockstep import Expectation, LockstepMarket, LockstepTimeout, SteppedCore, stepped_simulator
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import Side
from tradeloop.venues.connectors import get_connector

CONNECTOR = get_connector("okx")
INST = CONNECTOR.instruments()[0]
IID = INST.id
TICK = INST.tick_size


def book(seq: int, bid: int, ask: int, snapshot: bool = False) -> BookDeltas:
    return BookDeltas(IID, seq, seq, seq, seq, [(bid, 1_000_000_000)], [(ask, 1_000_000_000)], snapshot=snapshot)


class Recorder:
    """A node that is settled at once and notes what the venue had done each time it was asked."""

    def __init__(self, core: SteppedCore, heard: list[str]) -> None:
        self.core = core
        self.heard = heard
        self.calls: list[tuple[int, int, int]] = []

    async def settled(self, expect: Expectation) -> str | None:
        self.calls.append((sum(expect.deltas.values()), sum(expect.trades.values()), expect.fills))
        return None


def test_fills_settle_before_the_public_feed_hears_of_the_item() -> None:
    sim = stepped_simulator(CONNECTOR, instruments=[INST])
    core = sim.core
    assert isinstance(core, SteppedCore)
    heard: list[str] = []
    core.add_market_listener(lambda item: heard.append(type(item).__name__))
    mid = 60_000 * 1_000_000_000
    core.apply_market(book(1, mid - TICK, mid + TICK, snapshot=True))
    assert heard == []  # held back
    core.publish_market(book(1, mid - TICK, mid + TICK, snapshot=True))
    assert heard == ["BookDeltas"]
    # A resting bid at the touch; a sell trade through it fills it.
    core.submit(
        SubmitOrder(
            ts=1,
            strategy_id="s",
            instrument_id=IID,
            side=Side.BUY,
            qty=INST.min_qty,
            price=mid - TICK,
            client_order_id="B1",
        )
    )
    node = Recorder(core, heard)
    items: list[BookDeltas | Trade] = [
        book(2, mid - 2 * TICK, mid + TICK),
        Trade(IID, 3, 3, mid - 2 * TICK, 10 * INST.min_qty, Side.SELL, "t1"),
    ]
    lockstep = LockstepMarket(core, items, node)
    assert lockstep.expect.books == {str(IID)}  # a node must hold the book before the first step
    asyncio.run(lockstep.run())
    # Start; item 1 (no fill: one wait); item 2 fills: a wait with the fill counted, before the feed
    # hears of the trade, then one after.
    assert node.calls == [(0, 0, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1)]
    assert [f.client_order_id for f in lockstep.fills] == ["B1"]
    assert heard == ["BookDeltas", "BookDeltas", "Trade"]


def test_a_node_that_never_settles_is_an_error_naming_the_item() -> None:
    sim = stepped_simulator(CONNECTOR, instruments=[INST])
    core = sim.core
    assert isinstance(core, SteppedCore)

    class Stuck:
        async def settled(self, expect: Expectation) -> str | None:
            return "node: 1 order(s) in flight" if sum(expect.deltas.values()) else None

    mid = 60_000 * 1_000_000_000
    core.apply_market(book(1, mid - TICK, mid + TICK, snapshot=True))
    lockstep = LockstepMarket(core, [book(2, mid - TICK, mid + 2 * TICK)], Stuck(), timeout_s=0.2)
    with pytest.raises(LockstepTimeout, match=r"item 1 of 1: not settled after 0.2s: node: 1 order\(s\) in flight"):
        asyncio.run(lockstep.run())
