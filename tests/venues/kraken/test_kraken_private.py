"""Kraken private stream: ``executions`` / ``balances`` frames and REST replies merged into one event stream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderType, RejectReason, Side
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.private import BalanceBook, OrderTracker, PrivateParseError, decode_private
from tradeloop.venues.kraken.schemas import BalancesMessage, ExecutionsMessage

BTC = InstrumentId("kraken", "BTC/USD")
INSTRUMENTS = {i.id: i for i in spec.instruments()}
LONG_ID = "abcd0123456789xyzAB"  # 19 characters: sent as a 32-hex-digit cl_ord_id


def _frame(kind: str, *data: dict[str, Any]) -> ExecutionsMessage:
    msg = decode_private(json.dumps({"channel": "executions", "type": kind, "data": list(data)}))
    assert isinstance(msg, ExecutionsMessage)
    return msg


def _exec(exec_type: str, cid: str = "c1", **fields: Any) -> dict[str, Any]:
    return {"exec_type": exec_type, "order_id": "OAAAAA-BBBBB-CCCCCC", "cl_ord_id": spec.to_cl_ord_id(cid),
            "symbol": "BTC/USD", "timestamp": "2024-01-01T00:00:00.000000Z", **fields}  # fmt: skip


def _tracker(cid: str = "c1", post_only: bool = False) -> OrderTracker:
    tracker = OrderTracker(INSTRUMENTS)
    tracker.track(
        SubmitOrder(
            ts=0, strategy_id="s", instrument_id=BTC, side=Side.BUY, qty=fixed.parse("1"),
            price=fixed.parse("60000"), order_type=OrderType.LIMIT, post_only=post_only, client_order_id=cid,
        )
    )  # fmt: skip
    return tracker


def _accepted(cid: str = "c1") -> OrderAccepted:
    return OrderAccepted(ts=1, instrument_id=BTC, client_order_id=cid, venue_order_id="OAAAAA-BBBBB-CCCCCC")


TRADE = {"exec_id": "TX1", "trade_id": 42, "last_qty": 0.4, "last_price": 60000.0, "liquidity_ind": "m",
         "fees": [{"asset": "USD", "qty": 0.0384}], "order_status": "partially_filled", "cum_qty": 0.4}  # fmt: skip


def test_acceptance_reported_once_whichever_comes_first() -> None:
    tracker = _tracker()
    assert tracker.on_executions(_frame("update", _exec("pending_new")), 1) == []
    events = tracker.on_executions(_frame("update", _exec("new", order_status="new")), 2)
    assert [type(e) for e in events] == [OrderAccepted] and events[0].venue_order_id == "OAAAAA-BBBBB-CCCCCC"
    assert tracker.on_place_reply(_accepted()) == []  # the REST reply came second
    other = _tracker()
    assert other.on_place_reply(_accepted()) == [_accepted()]
    assert other.on_executions(_frame("update", _exec("new")), 3) == []


def test_fills_once_by_exec_id_with_fee_in_quote() -> None:
    tracker = _tracker(LONG_ID)
    frame = _frame("update", _exec("trade", LONG_ID, **TRADE))
    (fill,) = tracker.on_executions(frame, 5)
    assert fill == OrderFilled(
        ts=5, instrument_id=BTC, client_order_id=LONG_ID, venue_order_id="OAAAAA-BBBBB-CCCCCC", trade_id="TX1",
        side=Side.BUY, last_qty=fixed.parse("0.4"), last_price=fixed.parse("60000"), fee=fixed.parse("0.0384"),
        fee_currency="USD", liquidity=LiquiditySide.MAKER,
    )  # fmt: skip
    assert tracker.on_executions(frame, 6) == []  # resent: dropped
    assert tracker.on_place_reply(_accepted(LONG_ID)) == []  # already partially filled: no acceptance after
    in_base = {**TRADE, "exec_id": "TX2", "liquidity_ind": "t", "fees": [{"asset": "BTC", "qty": 0.0001}]}
    (second,) = tracker.on_executions(_frame("update", _exec("trade", LONG_ID, **in_base)), 7)
    assert second.fee == fixed.parse("6") and second.liquidity is LiquiditySide.TAKER  # 0.0001 BTC at 60000
    assert tracker.on_fills([second]) == []  # the same trade recovered by a query


def test_terminal_events_once_and_post_only_refusal() -> None:
    tracker = _tracker()
    tracker.on_place_reply(_accepted())
    (canceled,) = tracker.on_executions(_frame("update", _exec("canceled", reason="User requested")), 3)
    assert canceled == OrderCanceled(ts=3, instrument_id=BTC, client_order_id="c1", reason="User requested")
    assert tracker.on_executions(_frame("update", _exec("canceled")), 4) == []
    assert tracker.on_cancel_confirmed("c1", 5) == []
    crossing = _tracker(post_only=True)
    (refused,) = crossing.on_executions(_frame("update", _exec("canceled", reason="Post only order")), 3)
    assert isinstance(refused, OrderRejected) and refused.reason is RejectReason.POST_ONLY_WOULD_CROSS
    ioc = _tracker()
    ioc.on_place_reply(_accepted())
    (expired,) = ioc.on_executions(_frame("update", _exec("expired", reason="IOC")), 3)
    assert isinstance(expired, OrderExpired)


def test_rejection_after_acceptance_is_ignored_and_rejection_finishes() -> None:
    tracker = _tracker()
    reject = OrderRejected(ts=1, instrument_id=BTC, client_order_id="c1", reason=RejectReason.INSUFFICIENT_BALANCE)
    assert tracker.on_place_reply(reject) == [reject]
    assert tracker.on_executions(_frame("update", _exec("new")), 2) == []


@pytest.mark.parametrize("rest_first", [True, False])
def test_amend_reported_once_from_either_source(rest_first: bool) -> None:
    tracker = _tracker()
    tracker.on_place_reply(_accepted())
    rest = OrderAmended(ts=2, instrument_id=BTC, client_order_id="c1", price=fixed.parse("61000"), qty=fixed.parse("1"))
    stream = _frame("update", _exec("amended", order_qty=1.0, limit_price=61000.0))
    if rest_first:
        assert tracker.on_amend_reply(rest) == [rest]
        assert tracker.on_executions(stream, 3) == []
    else:
        (event,) = tracker.on_executions(stream, 3)
        assert event == OrderAmended(ts=3, instrument_id=BTC, client_order_id="c1", price=rest.price, qty=rest.qty)
        assert tracker.on_amend_reply(rest) == []
    # a second amend gets its own event
    again = OrderAmended(ts=4, instrument_id=BTC, client_order_id="c1", price=fixed.parse("62000"), qty=rest.qty)
    assert tracker.on_amend_reply(again) == [again]


def test_snapshot_accepts_known_orders_and_skips_old_fills_of_others() -> None:
    tracker = _tracker()
    old_fill = _exec("trade", "zz9", side="sell", order_qty=2.0, **{**TRADE, "exec_id": "TOLD"})
    events = tracker.on_executions(_frame("snapshot", _exec("new", order_status="new"), old_fill), 1)
    assert [type(e) for e in events] == [OrderAccepted]
    assert tracker.get("zz9") is not None  # followed from now on
    (fill,) = tracker.on_executions(_frame("update", _exec("trade", "zz9", **{**TRADE, "exec_id": "TNEW"})), 2)
    assert fill.client_order_id == "zz9" and fill.side is Side.SELL


def test_balances_snapshot_then_update() -> None:
    book = BalanceBook()
    snap = decode_private(b'{"channel":"balances","type":"snapshot","data":[{"asset":"USD","balance":100.5},'
                          b'{"asset":"BTC","balance":0.25}]}')  # fmt: skip
    assert isinstance(snap, BalancesMessage)
    assert book.on_balances(snap, 1) == AccountSnapshot(
        ts=1, venue="kraken", balances=[Balance("BTC", fixed.parse("0.25")), Balance("USD", fixed.parse("100.5"))]
    )
    update = decode_private(b'{"channel":"balances","type":"update","data":[{"asset":"USD","amount":-10,'
                            b'"balance":90.5,"ledger_id":"L1","type":"trade"}]}')  # fmt: skip
    assert isinstance(update, BalancesMessage)
    assert [b.total for b in book.on_balances(update, 2).balances] == [fixed.parse("0.25"), fixed.parse("90.5")]


def test_private_frames_that_are_not_data_or_are_broken() -> None:
    assert decode_private(b'{"method":"pong","req_id":1}') is None
    assert decode_private(b'{"channel":"heartbeat"}') is None
    with pytest.raises(PrivateParseError, match="executions"):
        decode_private(b'{"channel":"executions","type":"update","data":[{"exec_type":5}]}')
    with pytest.raises(PrivateParseError):
        decode_private(b'{"channel":"balances","type":"upd')
