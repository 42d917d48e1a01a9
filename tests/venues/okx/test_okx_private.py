"""The OKX order tracker: private ``orders``/``account`` pushes (fixtures) and replies -> engine events,
each exactly once, whatever order the REST reply and the pushes arrive in."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderStatus, RejectReason, Side
from tradeloop.model.events import (
    AccountSnapshot,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.okx.instruments import instruments_by_symbol
from tradeloop.venues.okx.orders import AckOutcome
from tradeloop.venues.okx.private import OkxOrderTracker, PrivateParseError
from tradeloop.venues.okx.schemas import FillData, OrderData

P = fixed.parse
BTC = InstrumentId("okx", "BTC-USDT")


def tracker() -> OkxOrderTracker:
    return OkxOrderTracker(instruments_by_symbol())


def push(**fields: str) -> bytes:
    data = {
        "instId": "BTC-USDT",
        "ordId": "9",
        "clOrdId": "c1",
        "side": "buy",
        "px": "60000",
        "sz": "0.01",
        "ordType": "limit",
        "state": "live",
        "accFillSz": "0",
    } | fields
    return json.dumps({"arg": {"channel": "orders", "instType": "ANY"}, "data": [data]}).encode()


def submit(cid: str = "c1", **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        ts=0,
        strategy_id="s",
        instrument_id=BTC,
        side=Side.BUY,
        qty=P("0.01"),
        price=P("60000"),
        client_order_id=cid,
        **kw,
    )


def kinds(events: Sequence[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_ioc_fixture_fill_and_fee() -> None:
    t = tracker()
    events = t.parse(11, sample_path("okx/ws_private/ws_orders_ioc.json").read_bytes())
    assert kinds(events) == ["OrderAccepted", "OrderFilled"]
    fill = events[1]
    assert isinstance(fill, OrderFilled)
    assert (fill.client_order_id, fill.venue_order_id, fill.trade_id) == (
        "IOC-TEST-001",
        "2497956918703120386",
        "1518905531",
    )
    assert (fill.side, fill.last_qty, fill.last_price) == (Side.SELL, P("0.02"), P("50100.5"))
    # no fillFee in this message: the cumulative fee (-0.1002 USDT) is the first fill's fee
    assert (fill.fee, fill.fee_currency, fill.liquidity) == (P("0.1002"), "USDT", LiquiditySide.TAKER)
    assert fill.ts == 11


def test_swap_fixture_fill_is_in_base_units() -> None:
    events = tracker().parse(1, sample_path("okx/ws_private/ws_orders.json").read_bytes())
    assert kinds(events) == ["OrderAccepted", "OrderFilled"]
    fill = events[1]
    assert isinstance(fill, OrderFilled)
    # 0.03 contracts of 0.01 BTC; fee 0.0003 x 103698.9 x 0.07% = 0.021776769 USDT
    assert (fill.last_qty, fill.last_price, fill.fee) == (P("0.0003"), P("103698.9"), P("0.021776769"))
    assert fill.liquidity is LiquiditySide.MAKER and fill.instrument_id == InstrumentId("okx", "BTC-USDT-SWAP")


def test_live_capture_lines_and_a_repeated_message() -> None:
    lines = sample_path("okx/ws_private/gct_wsOrders.json").read_bytes().splitlines()
    t = tracker()
    first = t.parse(1, lines[0])
    assert kinds(first) == ["OrderAccepted", "OrderFilled"]
    fill = first[1]
    assert isinstance(fill, OrderFilled) and fill.fee == P("0.02522168") and fill.trade_id == "242589207"
    assert t.parse(2, lines[0]) == []  # the same message again: nothing new
    # the market order without a client id (placed elsewhere) is skipped
    assert [t.parse(3, line) for line in lines[1:]] == [[], [], []]


def test_fill_push_before_the_place_reply_gives_one_acceptance() -> None:
    t = tracker()
    events = t.parse(
        1,
        push(
            state="partially_filled",
            accFillSz="0.004",
            tradeId="t1",
            fillSz="0.004",
            fillPx="59999.9",
            fillFee="-0.01",
            fillFeeCcy="USDT",
            execType="T",
        ),
    )
    assert kinds(events) == ["OrderAccepted", "OrderFilled"]
    assert t.on_place_reply(2, submit(), AckOutcome(True, "0", "", "9", "c1")) == []
    events = t.parse(
        3,
        push(
            state="filled",
            accFillSz="0.01",
            tradeId="t2",
            fillSz="0.006",
            fillPx="60000",
            fillFee="-0.012",
            fillFeeCcy="USDT",
            execType="T",
        ),
    )
    assert kinds(events) == ["OrderFilled"]
    assert t.parse(4, push(state="filled", accFillSz="0.01", tradeId="t2", fillSz="0.006", fillPx="60000")) == []


def test_place_reply_then_pushes() -> None:
    t = tracker()
    (accepted,) = t.on_place_reply(1, submit(), AckOutcome(True, "0", "", "9", "c1"))
    assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id == "9"
    assert t.parse(2, push()) == []  # the live push adds nothing
    (canceled,) = t.parse(3, push(state="canceled", cancelSource="1"))
    assert isinstance(canceled, OrderCanceled) and canceled.reason == "canceled by the user"
    assert t.parse(4, push(state="canceled", cancelSource="1")) == []


def test_error_reply_is_a_rejection_with_the_mapped_reason() -> None:
    t = tracker()
    (rejected,) = t.on_place_reply(1, submit(), AckOutcome(False, "51008", "Insufficient balance"))
    assert isinstance(rejected, OrderRejected) and rejected.reason is RejectReason.INSUFFICIENT_BALANCE
    assert "51008" in rejected.message


@pytest.mark.parametrize(
    ("source", "acc", "reason"),
    [("31", "0", RejectReason.POST_ONLY_WOULD_CROSS), ("13", "0", RejectReason.FOK_NOT_FILLABLE)],
)
def test_immediate_venue_cancel_of_an_unaccepted_order_is_a_rejection(
    source: str, acc: str, reason: RejectReason
) -> None:
    t = tracker()
    (rejected,) = t.parse(1, push(state="canceled", cancelSource=source, accFillSz=acc))
    assert isinstance(rejected, OrderRejected) and rejected.reason is reason
    assert t.on_place_reply(2, submit(), AckOutcome(True, "0", "", "9", "c1")) == []  # the late ack is ignored


def test_post_only_cancel_after_acceptance_is_a_cancel() -> None:
    t = tracker()
    t.on_place_reply(1, submit(post_only=True), AckOutcome(True, "0", "", "9", "c1"))
    (canceled,) = t.parse(2, push(state="canceled", cancelSource="31"))
    assert isinstance(canceled, OrderCanceled) and "post-only" in canceled.reason


def test_ioc_leftover_expires_after_its_fill() -> None:
    t = tracker()
    t.on_place_reply(1, submit(), AckOutcome(True, "0", "", "9", "c1"))
    events = t.parse(
        2,
        push(
            state="canceled",
            cancelSource="14",
            accFillSz="0.004",
            tradeId="t9",
            fillSz="0.004",
            fillPx="60000",
            fillFee="-0.001",
            fillFeeCcy="USDT",
            execType="T",
        ),
    )
    assert kinds(events) == ["OrderFilled", "OrderExpired"]
    assert isinstance(events[1], OrderExpired) and "IOC" in events[1].reason


def test_spot_buy_fee_in_base_is_valued_in_quote() -> None:
    t = tracker()
    (_, fill) = t.parse(
        1,
        push(
            state="filled",
            accFillSz="0.01",
            tradeId="t1",
            fillSz="0.01",
            fillPx="60000",
            fillFee="-0.00001",
            fillFeeCcy="BTC",
            execType="M",
        ),
    )
    assert isinstance(fill, OrderFilled) and fill.fee == P("0.6") and fill.fee_currency == "USDT"


def test_amend_results_and_replies() -> None:
    t = tracker()
    t.on_place_reply(1, submit(), AckOutcome(True, "0", "", "9", "c1"))
    t.amend_sent(BTC, "c1")
    assert t.on_amend_reply(2, BTC, "c1", AckOutcome(True, "0", "", "9", "c1")) == []
    (amended,) = t.parse(3, push(px="59990", sz="0.02", amendResult="0"))
    assert isinstance(amended, OrderAmended) and (amended.price, amended.qty) == (P("59990"), P("0.02"))
    assert t.parse(4, push(px="59990", sz="0.02", amendResult="0")) == []  # not pending any more
    t.amend_sent(BTC, "c1")
    (refused,) = t.on_amend_reply(5, BTC, "c1", AckOutcome(False, "51503", "gone"))
    assert isinstance(refused, OrderAmendRejected) and refused.reason is RejectReason.UNKNOWN_ORDER
    t.amend_sent(BTC, "c1")
    (failed,) = t.parse(6, push(amendResult="-1", code="51008", msg="no money"))
    assert isinstance(failed, OrderAmendRejected) and failed.reason is RejectReason.INSUFFICIENT_BALANCE


def test_cancel_reply_error_and_success() -> None:
    t = tracker()
    t.on_place_reply(1, submit(), AckOutcome(True, "0", "", "9", "c1"))
    assert t.on_cancel_reply(2, BTC, "c1", AckOutcome(True, "0", "", "9", "c1")) == []  # wait for the push
    (refused,) = t.on_cancel_reply(3, BTC, "c1", AckOutcome(False, "51400", "gone"))
    assert isinstance(refused, OrderCancelRejected) and refused.reason is RejectReason.UNKNOWN_ORDER


def test_query_answer_reports_missed_fills_then_status() -> None:
    t = tracker()
    data = OrderData(
        instId="BTC-USDT", ordId="9", clOrdId="c1", px="60000", sz="0.01", state="partially_filled", accFillSz="0.004"
    )
    fills = [
        FillData(
            instId="BTC-USDT",
            tradeId="t1",
            ordId="9",
            fillPx="60000",
            fillSz="0.004",
            side="buy",
            execType="M",
            fee="-0.0024",
            feeCcy="USDT",
        )
    ]
    events = t.on_query(5, BTC, "c1", data, fills)
    assert kinds(events) == ["OrderFilled", "OrderStatusReport"]
    report = events[1]
    assert isinstance(report, OrderStatusReport)
    assert (report.status, report.filled_qty, report.qty) == (OrderStatus.PARTIALLY_FILLED, P("0.004"), P("0.01"))
    assert t.on_query(6, BTC, "c1", data, fills)[:-1] == []  # the fill is known now
    (unknown,) = t.on_query(7, BTC, "zz", None, [])
    assert isinstance(unknown, OrderStatusReport) and unknown.status is None


def test_account_push_fixture() -> None:
    (snap,) = tracker().parse(1, sample_path("okx/ws_private/ws_account.json").read_bytes())
    assert isinstance(snap, AccountSnapshot)
    assert [(b.currency, b.total) for b in snap.balances] == [
        ("BTC", 5),  # 0.0000000051 rounded down to nanos
        ("ETH", 185),
        ("USDT", P("100.527685697")),
    ]


@pytest.mark.parametrize(
    "frame",
    [
        b'{"arg":{"channel":"orders"},"data":[{"instId":',
        b'{"arg":{"channel":"orders"},"data":[{"instId":"BTC-USDT","clOrdId":"c1","state":"live","tradeId":"1",'
        b'"fillSz":"x","fillPx":"1","side":"buy"}]}',
        b'{"arg":{"channel":"orders"},"data":"nope"}',
        b'{"arg":{"channel":"account"},"data":[{"details":[{"ccy":"BTC","cashBal":"abc"}]}]}',
    ],
)
def test_malformed_private_frames_raise_a_parse_error(frame: bytes) -> None:
    t = tracker()
    with pytest.raises(PrivateParseError):
        t.parse(1, frame)
    assert t.open_orders() == []  # nothing half-applied


def test_acks_pongs_and_other_channels_give_nothing() -> None:
    t = tracker()
    assert t.parse(1, b"pong") == []
    assert t.parse(1, b'{"event":"login","code":"0","msg":""}') == []
    assert t.parse(1, b'{"event":"error","code":"60011","msg":"Please log in"}') == []
    assert t.parse(1, b'{"arg":{"channel":"positions"},"data":[]}') == []
    assert msgspec.json.decode(push(), type=dict)["data"][0]["clOrdId"] == "c1"
