"""Bybit private stream -> engine events: the recorded ``order``/``execution``/``wallet`` fixtures, and the
ordering problems of three unordered topics (fills after the terminal update, duplicates, amends)."""

from __future__ import annotations

import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import InstrumentKind, LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.private import OrderTracker, PrivateFrameError, classify, decode_private
from tradeloop.venues.bybit.schemas import ExecutionTopic, OrderRow, OrderTopic, WalletTopic

P = fixed.parse
LINEAR_BTC = Instrument(
    id=InstrumentId(spec.VENUE_LINEAR, "BTCUSDT"),
    base="BTC",
    quote="USDT",
    kind=InstrumentKind.LINEAR_PERP,
    tick_size=P("0.1"),
    lot_size=P("0.001"),
)
SPOT_BTC = Instrument(
    id=InstrumentId(spec.VENUE_SPOT, "BTCUSDT"), base="BTC", quote="USDT", tick_size=P("0.01"), lot_size=P("0.000001")
)
SPOT_APEX = Instrument(
    id=InstrumentId(spec.VENUE_SPOT, "APEXUSDT"), base="APEX", quote="USDT", tick_size=P("0.001"), lot_size=P("0.1")
)


def _tracker(*insts: Instrument) -> OrderTracker:
    return OrderTracker(insts[0].id.venue, {i.id.symbol: i for i in insts})


def _track(t: OrderTracker, inst: Instrument, cid: str, qty: str, side: Side = Side.BUY, **kw: object) -> None:
    t.track(SubmitOrder(ts=0, strategy_id="s", instrument_id=inst.id, side=side, qty=P(qty), client_order_id=cid, **kw))  # type: ignore[arg-type]


def _fixture(name: str) -> bytes:
    return sample_path(f"bybit/ws_private/{name}").read_bytes()


def _feed(t: OrderTracker, payload: bytes, ts: int = 5) -> list[Event]:
    msg = decode_private(payload)
    out: list[Event] = []
    if isinstance(msg, OrderTopic):
        for row in msg.data:
            out += t.on_order(row, ts)
    elif isinstance(msg, ExecutionTopic):
        for e in msg.data:
            out += t.on_execution(e, ts)
    elif isinstance(msg, WalletTopic):
        out.append(t.on_wallet(msg, ts))
    return out


def test_recorded_cancel_and_fill_of_a_linear_order() -> None:
    t = _tracker(LINEAR_BTC)
    _track(t, LINEAR_BTC, "client-1", "0.010", price=P("30000"))
    events = _feed(t, _fixture("ws_account_order.json"))
    assert [type(e) for e in events] == [OrderAccepted, OrderCanceled]
    assert events[0].venue_order_id == "abcdef123456" and events[1].reason == "CancelByUser"  # type: ignore[union-attr]
    assert _feed(t, _fixture("ws_account_order.json")) == []  # the order is over: a repeat says nothing

    t = _tracker(LINEAR_BTC)
    _track(
        t,
        LINEAR_BTC,
        "test-order-link-001",
        "0.5",
        Side.SELL,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
    )
    fills = _feed(t, _fixture("ws_account_execution.json"))
    assert [type(e) for e in fills] == [OrderAccepted, OrderFilled]
    fill = fills[1]
    assert isinstance(fill, OrderFilled)
    assert (fill.trade_id, fill.side, fill.last_qty, fill.last_price) == (
        "0ab1bdf7-4219-438b-b30a-32ec863018f7",
        Side.SELL,
        P("0.5"),
        P("95900.1"),
    )
    assert (fill.fee, fill.fee_currency, fill.liquidity) == (P("26.3725275"), "USDT", LiquiditySide.TAKER)
    assert _feed(t, _fixture("ws_account_execution.json")) == [] and t.duplicate_fills == 1
    assert t.orders["test-order-link-001"].done


def test_a_fill_seen_twice_is_booked_once() -> None:
    t = _tracker(LINEAR_BTC)
    _track(t, LINEAR_BTC, "test-order-link-001", "1.5", Side.SELL)
    first = _feed(t, _fixture("ws_account_execution.json"))
    again = _feed(t, _fixture("ws_account_execution.json"))
    assert [type(e) for e in first] == [OrderAccepted, OrderFilled] and again == [] and t.duplicate_fills == 1
    assert t.orders["test-order-link-001"].filled == P("0.5")


def test_filled_status_waits_for_executions_and_a_terminal_update_waits_for_its_fills() -> None:
    t = _tracker(LINEAR_BTC)
    _track(t, LINEAR_BTC, "test-client-order-001", "0.100", price=P("30000.5"))
    assert [type(e) for e in _feed(t, _fixture("ws_account_order_filled.json"))] == [OrderAccepted]

    # spot: Rejected after 50 of 100 filled, before the execution arrived (topics are not ordered)
    t = _tracker(SPOT_APEX)
    cid = "O-20251001-164609-APEX-000-49"
    _track(t, SPOT_APEX, cid, "100", price=P("1.5"))
    early = _feed(t, _fixture("ws_account_order_partially_filled_rejected.json"))
    assert [type(e) for e in early] == [OrderAccepted] and t.orders[cid].held is not None
    execution = (
        b'{"topic":"execution","data":[{"category":"spot","symbol":"APEXUSDT","orderId":"x","orderLinkId":"'
        + cid.encode()
        + b'","side":"Buy","execId":"e1","execPrice":"1.5","execQty":"50","execFee":"0.05","feeCurrency":"APEX",'
        b'"execType":"Trade","isMaker":true,"execTime":"1"}]}'
    )
    late = _feed(t, execution)
    assert [type(e) for e in late] == [OrderFilled, OrderCanceled]
    fill = late[0]
    assert isinstance(fill, OrderFilled)
    assert (fill.fee, fill.fee_currency) == (P("0.075"), "USDT")  # 0.05 APEX charged on a buy, at 1.5
    assert t.orders[cid].done and t.release_held(cid) == []


def test_refusals_on_the_stream_and_ioc_leftovers() -> None:
    t = _tracker(SPOT_BTC)

    def row(cid: str, status: str, **kw: str) -> OrderRow:
        fields = {"cumExecQty": "0", "cancelType": "UNKNOWN", "rejectReason": "EC_NoError"} | kw
        return OrderRow(symbol="BTCUSDT", orderId="9", orderStatus=status, orderLinkId=cid, category="spot", **fields)

    _track(t, SPOT_BTC, "po1", "0.01", price=P("100"), post_only=True)
    (rejected,) = t.on_order(row("po1", "Cancelled", rejectReason="EC_PostOnlyWillTakeLiquidity"), 1)
    assert isinstance(rejected, OrderRejected) and rejected.reason is RejectReason.POST_ONLY_WOULD_CROSS

    _track(t, SPOT_BTC, "fok1", "0.01", price=P("100"), time_in_force=TimeInForce.FOK)
    (fok,) = t.on_order(row("fok1", "Cancelled", timeInForce="FOK", rejectReason="EC_NoEnoughQtyToFill"), 1)
    assert isinstance(fok, OrderRejected) and fok.reason is RejectReason.FOK_NOT_FILLABLE

    _track(t, SPOT_BTC, "ioc1", "0.01", price=P("100"), time_in_force=TimeInForce.IOC)
    events = t.on_order(row("ioc1", "Cancelled", timeInForce="IOC"), 1)
    assert [type(e) for e in events] == [OrderAccepted, OrderExpired]

    _track(t, SPOT_BTC, "gtc1", "0.01", price=P("100"))
    t.on_order(row("gtc1", "New", timeInForce="GTC", price="100", qty="0.01"), 1)
    t.amend_sent("gtc1", P("99.5"), None)
    assert t.on_order(row("gtc1", "New", price="100", qty="0.01"), 2) == []  # not the amended terms yet
    (amended,) = t.on_order(row("gtc1", "New", price="99.5", qty="0.01"), 3)
    assert isinstance(amended, OrderAmended) and (amended.price, amended.qty) == (P("99.5"), P("0.01"))
    (canceled,) = t.on_order(row("gtc1", "Cancelled", cancelType="CancelByUser"), 4)
    assert isinstance(canceled, OrderCanceled)

    assert t.on_order(row("placed-elsewhere", "New"), 1) == [] and t.ignored == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("New", OrderStatus.ACCEPTED),
        ("PartiallyFilled", OrderStatus.PARTIALLY_FILLED),
        ("Filled", OrderStatus.FILLED),
        ("Cancelled", OrderStatus.CANCELED),
        ("PartiallyFilledCanceled", OrderStatus.CANCELED),
        ("Rejected", OrderStatus.REJECTED),
        ("Untriggered", OrderStatus.ACCEPTED),
        ("Deactivated", OrderStatus.CANCELED),
    ],
)
def test_status_table(status: str, expected: OrderStatus) -> None:
    row = OrderRow(symbol="BTCUSDT", orderId="1", orderStatus=status, timeInForce="GTC", cancelType="CancelByUser")
    assert classify(row)[0] is expected
    with pytest.raises(ValueError, match="orderStatus"):
        classify(OrderRow(symbol="BTCUSDT", orderId="1", orderStatus="Exploded"))


def test_wallet_updates_become_account_snapshots() -> None:
    t = _tracker(LINEAR_BTC)
    (snapshot,) = _feed(t, _fixture("ws_account_wallet.json"), ts=9)
    assert isinstance(snapshot, AccountSnapshot) and snapshot.venue == "bybit_linear" and snapshot.ts == 9
    assert snapshot.balances == [
        Balance("BTC", P("0.00102964"), P("0.00010000")),
        Balance("USDT", P("9647.75537647"), 0),
    ]
    (capped,) = _feed(t, _fixture("ws_account_wallet_locked_exceeds_total.json"))
    assert isinstance(capped, AccountSnapshot) and capped.balances == [Balance("USDT", P("100"), P("80"))]


@pytest.mark.parametrize(
    "frame",
    [b'{"topic":"order","data":[{"symbol":1}]}', b'{"topic":"execution","data":{}}', b"{not json", b"[]"],
)
def test_malformed_private_frames_raise_a_parse_error(frame: bytes) -> None:
    with pytest.raises(PrivateFrameError):
        decode_private(frame)


def test_acks_and_pongs_are_plain_objects() -> None:
    assert decode_private(_fixture("ws_auth_success.json")) == {
        "op": "auth",
        "success": True,
        "retCode": 0,
        "retMsg": "",
        "connId": "cejreaspqfm9se7usbrg-2xh",
    }
    assert isinstance(decode_private(b'{"req_id":"1","op":"pong","args":["1675418560633"]}'), dict)
