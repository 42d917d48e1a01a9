"""The user channel: fills derived from cumulative quantities (exact, de-duplicated), order events
emitted once, liquidity inferred; and the market-data client's gap handling, without sockets."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.core.clock import SimClock
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, Trade
from tradeloop.model.enums import LiquiditySide, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.venues.base import MarketItem
from tradeloop.venues.coinbase.connector import local_urls
from tradeloop.venues.coinbase.market_data import CoinbaseMarketData
from tradeloop.venues.coinbase.parse import ParseError
from tradeloop.venues.coinbase.private import (
    FillTracker,
    UserChannelParser,
    UserUpdate,
    decimal_fraction,
    rounded_nanos,
)
from tradeloop.venues.coinbase.schemas import OrderRecord
from tradeloop.venues.coinbase.spec import INSTRUMENTS
from tradeloop.venues.coinbase.tracking import OrderTracker, TrackedOrder

BTC = next(i for i in INSTRUMENTS if i.id.symbol == "BTC-USD")
P = fixed.parse
TICK = BTC.tick_size


def test_fills_follow_cumulative_quantity_exactly() -> None:
    # Three executions, priced independently; the venue reports only running totals and its rounded avg_price.
    executions = [("0.3", "100.00"), ("0.2", "101.00"), ("0.00000001", "99.99")]
    tracker = FillTracker()
    assert tracker.observe("o1", 0, "0", 0, TICK, working=True) is None  # accepted, resting
    cum = Decimal(0)
    value = Decimal(0)
    for n, (qty, price) in enumerate(executions, start=1):
        cum += Decimal(qty)
        value += Decimal(qty) * Decimal(price)
        with localcontext() as ctx:
            ctx.prec = 50
            avg = str((value / cum).quantize(Decimal("1e-9"), rounding=ROUND_HALF_EVEN))  # 9 decimals written
        fees = P("0.01") * n
        fill = tracker.observe("o1", P(str(cum)), avg, fees, TICK, working=True)
        assert fill is not None
        assert fill.qty == P(qty) and fill.fee == P("0.01") and fill.rested
        if n < 3:
            assert fill.price == P(price) and fill.exact  # the one tick price the rounded totals allow
        else:
            # 1e-8 BTC after 0.5 BTC: avg_price to 9 decimals leaves +-0.05 USD of doubt (more than a
            # tick), so the fill gets the nano-rounded estimate and is flagged inexact.
            doubt = (Decimal("0.5e-9") * (cum + Decimal("0.5"))) / Decimal(qty)
            assert not fill.exact and abs(fill.price - P(price)) <= P(str(doubt.quantize(Decimal("1e-9"))))
        assert fill.trade_id == f"o1-{P(str(cum))}"
    assert tracker.observe("o1", P(str(cum)), "0", 0, TICK, working=False) is None  # replay: nothing new
    assert tracker.filled("o1") == P("0.50000001")


def test_an_increase_over_several_prices_gets_its_average() -> None:
    tracker = FillTracker()
    # 0.1 @ 100.00 and 0.2 @ 100.01 in one update: average 100.006666..., written with 15 decimals.
    fill = tracker.observe("o", P("0.3"), "100.006666666666667", P("0.05"), TICK, working=False)
    assert fill is not None and not fill.exact
    assert fill.price == P("100.006666667")  # nano-rounded average; qty x price = 30.002 within 1e-9
    with pytest.raises(ParseError):
        tracker.observe("p", P("1"), "1/3", 0, TICK, working=False)
    assert rounded_nanos("0.0000000015") == 2 and rounded_nanos("2.5e-9") == 2
    assert decimal_fraction("1.50")[1] == Decimal("0.005")


def test_first_fill_without_a_resting_update_is_not_rested() -> None:
    tracker = FillTracker(capacity=2)
    fill = tracker.observe("x", P("1"), "50", P("0.02"), TICK, working=False)
    assert fill is not None and not fill.rested and fill.price == P("50")
    tracker.observe("y", 0, "0", 0, TICK, working=True)
    tracker.observe("z", 0, "0", 0, TICK, working=True)
    assert tracker.filled("x") == 0  # forgotten: capacity 2


def _tracked(
    tif: TimeInForce = TimeInForce.GTC, post_only: bool = False, order_type: OrderType = OrderType.LIMIT
) -> tuple[OrderTracker, list[Event]]:
    events: list[Event] = []
    tracker = OrderTracker(SimClock(7), events.append)
    cmd = SubmitOrder(
        ts=0,
        strategy_id="s",
        instrument_id=BTC.id,
        side=Side.BUY,
        qty=P("0.002"),
        price=P("60000") if order_type is OrderType.LIMIT else None,
        order_type=order_type,
        time_in_force=tif,
        post_only=post_only,
        client_order_id="c1",
    )
    tracker.remember(TrackedOrder(cmd, BTC))
    return tracker, events


def _update(status: str, cum: str, avg: str = "60000", fees: str = "0", **kw: Any) -> UserUpdate:
    return UserUpdate(
        order_id="v1",
        client_order_id="c1",
        product_id="BTC-USD",
        status=status,
        cumulative_qty=P(cum),
        leaves_qty=0,
        avg_price=avg,
        total_fees=P(fees),
        **kw,
    )


def test_resting_gtc_order_fills_as_maker_and_events_are_emitted_once() -> None:
    tracker, events = _tracked()
    tracker.on_update(_update("OPEN", "0"))
    tracker.on_update(_update("OPEN", "0.001", fees="0.012"))
    tracker.on_update(_update("OPEN", "0.001", fees="0.012"))  # replay after a reconnect
    tracker.on_update(_update("FILLED", "0.002", fees="0.024"))
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled, OrderFilled]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.last_qty, f.last_price, f.fee, f.liquidity) for f in fills] == [
        (P("0.001"), P("60000"), P("0.012"), LiquiditySide.MAKER),
        (P("0.001"), P("60000"), P("0.012"), LiquiditySide.MAKER),
    ]
    assert fills[0].fee_currency == "USD" and fills[0].ts == 7 and fills[0].venue_order_id == "v1"


def test_crossing_gtc_is_taker_and_ioc_leftover_expires() -> None:
    tracker, events = _tracked()
    tracker.on_update(_update("OPEN", "0.001"))
    assert isinstance(events[1], OrderFilled) and events[1].liquidity is LiquiditySide.TAKER
    tracker, events = _tracked(TimeInForce.IOC)
    tracker.on_update(_update("CANCELLED", "0.0015", fees="0.1"))
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled, OrderExpired]
    tracker.on_update(_update("CANCELLED", "0.0015", fees="0.1"))
    assert len(events) == 3


def test_gtc_cancelled_by_venue_and_failed_order() -> None:
    tracker, events = _tracked(post_only=True)
    tracker.on_update(_update("CANCELLED", "0", reason="User requested cancel"))
    assert isinstance(events[-1], OrderCanceled) and events[-1].reason == "User requested cancel"
    tracker, events = _tracked()
    tracker.on_update(_update("FAILED", "0", reason="REJECT_REASON_HOLD_FAILURE"))
    assert len(events) == 1 and isinstance(events[0], OrderRejected) and events[0].reason is RejectReason.OTHER


def test_rest_record_and_stream_report_each_fill_once() -> None:
    tracker, events = _tracked()
    order = tracker.get("c1")
    assert order is not None
    record = OrderRecord(
        order_id="v1",
        product_id="BTC-USD",
        side="BUY",
        status="OPEN",
        client_order_id="c1",
        filled_size="0.001",
        average_filled_price="60000",
        total_fees="0.01",
    )
    tracker.apply_record(order, record)
    tracker.on_update(_update("OPEN", "0.001", fees="0.01"))
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    assert tracker.working() == [order]


def test_user_channel_fixture() -> None:
    parser = UserChannelParser()
    messages = parser.parse(sample_path("coinbase/ws_private/ws_user.json").read_bytes())
    assert len(messages) == 1 and messages[0].snapshot
    (u,) = messages[0].updates
    assert (u.client_order_id, u.status, u.cumulative_qty, u.leaves_qty) == (
        "11111-000000-000001",
        "OPEN",
        0,
        P("0.001"),
    )
    assert parser.parse(sample_path("coinbase/ws_other/ws_heartbeats.json").read_bytes()) == []
    for bad in (b'{"channel":"user","sequence_num":2,"events":[{"type":"update","orders":[{"order_id":1}]}]}', b"{"):
        with pytest.raises(ParseError):
            parser.parse(bad)


def _frame(seq: int, channel: str, events: list[Any]) -> bytes:
    return json.dumps(
        {"channel": channel, "sequence_num": seq, "timestamp": "2026-01-01T00:00:00Z", "events": events}
    ).encode()


def _l2(kind: str, product: str, *levels: tuple[str, str, str]) -> dict[str, Any]:
    ups = [{"side": s, "price_level": p, "new_quantity": q} for s, p, q in levels]
    return {"type": kind, "product_id": product, "updates": ups}


def test_market_data_gap_invalidates_and_drops_updates_until_the_new_snapshot() -> None:
    items: list[MarketItem] = []
    md = CoinbaseMarketData([BTC.id], items.append, SimClock(3), local_urls("http://127.0.0.1:9"))
    assert md.checksum_fn is None and md.sequence_rule == 0
    md._on_frame(_frame(0, "l2_data", [_l2("update", "BTC-USD", ("bid", "1", "1"))]), 1)  # before the snapshot
    md._on_frame(_frame(1, "l2_data", [_l2("snapshot", "BTC-USD", ("bid", "100", "1"), ("offer", "101", "2"))]), 2)
    md._on_frame(_frame(2, "l2_data", [_l2("update", "BTC-USD", ("offer", "101", "0"))]), 3)
    trade = {
        "trade_id": "9",
        "product_id": "BTC-USD",
        "price": "100",
        "size": "0.5",
        "side": "SELL",
        "time": "2026-01-01T00:00:00Z",
    }
    md._on_frame(_frame(3, "market_trades", [{"type": "update", "trades": [trade]}]), 4)
    assert [type(i) for i in items] == [BookDeltas, BookDeltas, Trade]
    md._on_frame(_frame(5, "l2_data", [_l2("update", "BTC-USD", ("bid", "99", "1"))]), 5)  # 4 was lost
    assert isinstance(items[-1], BookStatus) and not items[-1].valid and "gap" in items[-1].reason
    assert md.sequence_gaps == 1 and len(items) == 4  # the update after the gap is dropped
    md._on_frame(_frame(6, "l2_data", [_l2("snapshot", "BTC-USD", ("bid", "99", "1"))]), 6)
    md._on_frame(_frame(7, "l2_data", [_l2("update", "BTC-USD", ("bid", "98", "1"))]), 7)
    assert [i.snapshot for i in items[4:] if isinstance(i, BookDeltas)] == [True, False]
    for bad in (b'{"channel":"l2_data","sequence_num":8,"events":[{"type":"update"}]}', b"[1,", b"\xff"):
        md._on_frame(bad, 8)
    md._on_frame(_frame(9, "l2_data", [_l2("update", "ETH-USD", ("bid", "1", "1"))]), 9)  # not subscribed
    assert md.counters.malformed == 4 and md.counters.frames == 11
    md._on_close("closed by server")
    assert isinstance(items[-1], BookStatus) and items[-1].reason.startswith("feed lost")
