"""SimulatorCore: requests return what the venue decided; later events and balance changes reach the
private listeners; market items move the venue's book before market listeners see them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tradeloop.core import fixed
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import InstrumentKind, LiquiditySide, OrderStatus, RejectReason, Side
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderCancelRejected,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.simulator.core import SimulatorCore

P = fixed.parse
IID = InstrumentId("toy", "BTCUSDT")


def instrument(iid: InstrumentId = IID) -> Instrument:
    return Instrument(
        id=iid,
        base="BTC",
        quote="USDT",
        kind=InstrumentKind.SPOT,
        tick_size=P("0.01"),
        lot_size=P("0.00001"),
        min_qty=P("0.00001"),
        min_notional=P("0.5"),
    )


def make_core() -> SimulatorCore:
    core = SimulatorCore("toy", [instrument()], balances={"USDT": P("1000"), "BTC": P("2")})
    core.apply_market(
        BookDeltas(IID, 1, 1, 1, 1, [(P("100.00"), P("5")), (P("99.99"), P("5"))], [(P("100.10"), P("5"))], True)
    )
    return core


def buy(cid: str, price: str, qty: str, post_only: bool = False) -> SubmitOrder:
    return SubmitOrder(
        ts=1,
        strategy_id="s",
        instrument_id=IID,
        side=Side.BUY,
        qty=P(qty),
        price=P(price),
        client_order_id=cid,
        post_only=post_only,
    )


def balances_of(snapshot: AccountSnapshot) -> dict[str, tuple[int, int]]:
    return {b.currency: (b.total, b.locked) for b in snapshot.balances}


def test_resting_order_fills_later_and_only_the_private_listeners_hear_it() -> None:
    core = make_core()
    private: list[Event] = []
    core.add_private_listener(private.append)
    reply = core.submit(buy("c1", "100.00", "0.01"))
    assert [type(e) for e in reply] == [OrderAccepted]
    assert isinstance(reply[0], OrderAccepted)
    venue_id = reply[0].venue_order_id
    assert core.client_order_id(venue_id) == "c1"
    # The request's events, then the account (1.00 USDT notional + 0.0004 taker-rate fee reserve locked).
    assert private[0] == reply[0]
    assert isinstance(private[1], AccountSnapshot)
    assert balances_of(private[1])["USDT"] == (P("1000"), P("1.0004"))
    private.clear()

    # 5 BTC are ahead of us at 100.00; a 6 BTC sell takes them and 0.01 of ours (we are maker).
    core.apply_market(Trade(IID, 2, 2, P("100.00"), P("6"), Side.SELL, "t1"))
    fills = [e for e in private if isinstance(e, OrderFilled)]
    assert len(fills) == 1
    fill = fills[0]
    assert (fill.client_order_id, fill.last_qty, fill.last_price) == ("c1", P("0.01"), P("100.00"))
    assert fill.liquidity is LiquiditySide.MAKER
    assert fill.fee == P("0.0002")  # 1.00 USDT x 0.0002 maker fee
    assert isinstance(private[-1], AccountSnapshot)
    assert balances_of(private[-1]) == {"BTC": (P("2.01"), 0), "USDT": (P("998.9998"), 0)}
    assert core.open_orders() == []

    # A query changes nothing: it answers, but the private stream stays quiet.
    private.clear()
    answer = core.query(QueryOrder(ts=3, instrument_id=IID, client_order_id="c1"))
    assert answer[0] == fill
    assert isinstance(answer[-1], OrderStatusReport)
    assert answer[-1].status is OrderStatus.FILLED and answer[-1].filled_qty == P("0.01")
    assert private == []


def test_crossing_order_returns_its_immediate_fill_with_the_reply() -> None:
    core = make_core()
    reply = core.submit(buy("c2", "100.10", "0.02"))
    assert [type(e) for e in reply] == [OrderAccepted, OrderFilled]
    fill = reply[1]
    assert isinstance(fill, OrderFilled)
    assert fill.liquidity is LiquiditySide.TAKER and fill.last_price == P("100.10")
    assert fill.fee == fixed.mul(P("2.002"), P("0.0004"))  # 0.02 x 100.10 notional x taker fee
    assert core.balances().balances == [
        Balance("BTC", P("2.02"), 0),
        Balance("USDT", P("1000") - P("2.002") - fill.fee, 0),
    ]


def test_cancel_amend_cancel_all_and_refusals() -> None:
    core = make_core()
    core.submit(buy("a1", "99.00", "0.01"))
    core.submit(buy("a2", "98.00", "0.01"))
    amended = core.amend(AmendOrder(ts=2, strategy_id="s", instrument_id=IID, client_order_id="a1", price=P("99.50")))
    assert [type(e) for e in amended] == [OrderAmended]
    assert core.order("a1") is not None and core.order("a1").price == P("99.50")  # type: ignore[union-attr]
    canceled = core.cancel(CancelOrder(ts=3, strategy_id="s", instrument_id=IID, client_order_id="a1"))
    assert [type(e) for e in canceled] == [OrderCanceled]
    again = core.cancel(CancelOrder(ts=4, strategy_id="s", instrument_id=IID, client_order_id="a1"))
    assert isinstance(again[0], OrderCancelRejected) and again[0].reason is RejectReason.UNKNOWN_ORDER
    core.submit(buy("a3", "97.00", "0.01"))
    all_canceled = core.cancel_all(CancelAllOrders(ts=5, strategy_id="s", instrument_id=IID))
    assert [e.client_order_id for e in all_canceled if isinstance(e, OrderCanceled)] == ["a2", "a3"]
    assert core.open_orders() == []
    assert balances_of(core.balances())["USDT"] == (P("1000"), 0)
    too_big = core.submit(buy("a4", "100.00", "20"))
    assert isinstance(too_big[0], OrderRejected) and too_big[0].reason is RejectReason.INSUFFICIENT_BALANCE
    post_only = core.submit(buy("a5", "100.10", "0.01", post_only=True))
    assert isinstance(post_only[0], OrderRejected) and post_only[0].reason is RejectReason.POST_ONLY_WOULD_CROSS


def test_market_listeners_see_the_book_after_the_venue_applied_the_item() -> None:
    core = make_core()
    seen: list[tuple[int | None, int]] = []

    def listener(item: BookDeltas | Trade) -> None:
        book = core.book(IID)
        seen.append((book.best_bid(), book.qty_at(P("100.00"), True)))

    core.add_market_listener(listener)
    core.apply_market(BookDeltas(IID, 3, 3, 2, 2, [(P("100.05"), P("1")), (P("100.00"), P("3"))], []))
    core.apply_market(BookDeltas(InstrumentId("other", "X"), 3, 3, 1, 1, [(P("1"), P("1"))], []))  # not listed
    assert seen == [(P("100.05"), P("3"))]
    assert core.market_items == 2  # the snapshot and the delta
    core.remove_market_listener(listener)
    core.apply_market(BookDeltas(IID, 4, 4, 3, 3, [(P("100.05"), 0)], []))
    assert len(seen) == 1
    with pytest.raises(KeyError, match="does not list other:X"):
        core.book(InstrumentId("other", "X"))


def test_a_failing_listener_does_not_stop_the_others() -> None:
    core = make_core()
    got: list[Event] = []

    def broken(_: Event) -> None:
        raise RuntimeError("boom")

    core.add_private_listener(broken)
    core.add_private_listener(got.append)
    core.submit(buy("b1", "99.00", "0.01"))
    assert [type(e) for e in got] == [OrderAccepted, AccountSnapshot]


def test_bad_setup_is_refused() -> None:
    with pytest.raises(ValueError, match="no instruments"):
        SimulatorCore("toy", [], balances={})
    with pytest.raises(ValueError, match="listed twice"):
        SimulatorCore("toy", [instrument(), instrument()], balances={})
    with pytest.raises(ValueError, match="negative starting balance of USDT"):
        SimulatorCore("toy", [instrument()], balances={"USDT": -1})


def test_run_recording_applies_an_async_stream() -> None:
    core = make_core()

    async def items() -> AsyncIterator[BookDeltas | Trade]:
        for seq, size in ((2, "1"), (3, "2")):
            yield BookDeltas(IID, seq, seq, seq, seq, [(P("99.98"), P(size))], [])

    asyncio.run(core.run_recording(items()))
    assert core.book(IID).qty_at(P("99.98"), True) == P("2")
