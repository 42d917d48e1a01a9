"""Binance user data (nautilus_trader fixtures in shared/data/binance/ws_private), the report filter
between REST replies and the stream, and the diff-book continuity check."""

from __future__ import annotations

import json

import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.model.book import SequenceRule
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import InstrumentKind, LiquiditySide, OrderStatus, Side
from tradeloop.model.events import (
    AccountSnapshot,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.binance.market_data import DepthSync
from tradeloop.venues.binance.private import UserFrameError, decode_user_frame, user_events
from tradeloop.venues.binance.tracker import OrderTracker

P = fixed.parse
ETHUSDT = Instrument(
    id=InstrumentId("binance", "ETHUSDT"), base="ETH", quote="USDT", tick_size=P("0.01"), lot_size=P("0.0001")
)
USDM_BTC = Instrument(
    id=InstrumentId("binance_usdm", "BTCUSDT"),
    base="BTC",
    quote="USDT",
    kind=InstrumentKind.LINEAR_PERP,
    tick_size=P("0.1"),
    lot_size=P("0.001"),
)
SPOT = {"ETHUSDT": ETHUSDT}.get


def frame(name: str) -> bytes:
    return sample_path(f"binance/ws_private/{name}.json").read_bytes()


# -- user data events ---------------------------------------------------------------------------


def test_trade_report_is_a_fill_with_the_fee_in_quote() -> None:
    events, report = user_events(decode_user_frame(frame("spot_execution_report_trade")), SPOT, "binance", 5)
    assert report is not None and report.i == 12345678
    (fill,) = events
    assert isinstance(fill, OrderFilled)
    assert (fill.client_order_id, fill.venue_order_id, fill.trade_id) == (
        "x-TD67BGP9-T0000000000000",
        "12345678",
        "98765432",
    )
    assert (fill.side, fill.last_qty, fill.last_price) == (Side.BUY, P("1"), P("2500"))
    assert fill.liquidity is LiquiditySide.MAKER
    assert (fill.fee, fill.fee_currency) == (P("2.5"), "USDT")  # 0.001 ETH at 2500
    assert fill.ts == 5


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("spot_execution_report_new", OrderAccepted),
        ("spot_execution_report_canceled", OrderCanceled),
        ("spot_execution_report_expired", OrderExpired),
    ],
)
def test_report_types(name: str, kind: type) -> None:
    events, _ = user_events(decode_user_frame(frame(name)), SPOT, "binance", 1)
    assert [type(e) for e in events] == [kind]
    assert events[0].client_order_id == json.loads(frame(name))["c"]  # type: ignore[union-attr]


def test_cancel_report_names_the_original_client_id() -> None:
    raw = json.loads(frame("spot_execution_report_canceled"))
    raw.update(c="cancelReq1", C="myOrder7")
    (event,), _ = user_events(decode_user_frame(json.dumps(raw)), SPOT, "binance", 1)
    assert isinstance(event, OrderCanceled) and event.client_order_id == "myOrder7"


def test_replaced_report_is_an_amend() -> None:
    raw = json.loads(frame("spot_execution_report_new"))
    raw.update(x="REPLACED", q="0.5")
    (event,), _ = user_events(decode_user_frame(json.dumps(raw)), SPOT, "binance", 1)
    assert event == OrderAmended(
        ts=1, instrument_id=ETHUSDT.id, client_order_id=raw["c"], price=P("2500"), qty=P("0.5")
    )


def test_wrapped_events_and_unknown_symbols() -> None:
    decoded = decode_user_frame(frame("spot_execution_report_wrapped"))
    assert decoded.event_type == "executionReport"
    events, report = user_events(decoded, SPOT, "binance", 1)  # ETHBTC is not traded here
    assert events == [] and report is not None and report.s == "ETHBTC"
    other, _ = user_events(decode_user_frame(frame("spot_balance_update_wrapped")), SPOT, "binance", 1)
    assert other == []


@pytest.mark.parametrize("name", ["spot_account_position", "spot_account_position_wrapped"])
def test_account_position_is_a_snapshot(name: str) -> None:
    (snap,), _ = user_events(decode_user_frame(frame(name)), SPOT, "binance", 3)
    assert isinstance(snap, AccountSnapshot) and snap.venue == "binance"
    raw = json.loads(frame(name))
    rows = (raw.get("event") or raw)["B"]
    expected = sorted((r["a"], P(r["f"]) + P(r["l"]), P(r["l"])) for r in rows)
    assert [(b.currency, b.total, b.locked) for b in snap.balances] == expected


def test_usdm_order_trade_update_is_a_fill() -> None:
    (fill,), _ = user_events(
        decode_user_frame(frame("futures_order_update_trade")), {"BTCUSDT": USDM_BTC}.get, "binance_usdm", 1
    )
    assert isinstance(fill, OrderFilled)
    assert (fill.last_qty, fill.last_price, fill.fee, fill.trade_id) == (P("0.001"), P("7100.5"), P("0.01"), "12345678")


def test_ws_api_replies_and_malformed_frames() -> None:
    ok = decode_user_frame('{"id":"tl1","status":200,"result":{"subscriptionId":0}}')
    assert (ok.reply_id, ok.status) == ("tl1", 200)
    refused = decode_user_frame('{"id":"tl2","status":400,"error":{"code":-1022,"msg":"Signature bad."}}')
    assert (refused.error_code, refused.error_msg) == (-1022, "Signature bad.")
    with pytest.raises(UserFrameError):
        decode_user_frame('{"subscriptionId":0,"event":{"e":"executionReport"')
    bad = decode_user_frame('{"subscriptionId":0,"event":{"e":"executionReport","s":"ETHUSDT","i":"x"}}')
    with pytest.raises(UserFrameError):
        user_events(bad, SPOT, "binance", 1)


# -- the filter between replies and the stream --------------------------------------------------


def cmd(cid: str = "c1", qty: str = "1") -> SubmitOrder:
    return SubmitOrder(
        ts=0, strategy_id="s", instrument_id=ETHUSDT.id, side=Side.BUY, qty=P(qty), price=P("2500"), client_order_id=cid
    )


def accepted(venue_id: str, cid: str = "c1") -> OrderAccepted:
    return OrderAccepted(ts=0, instrument_id=ETHUSDT.id, client_order_id=cid, venue_order_id=venue_id)


def fill(trade: str, qty: str, venue_id: str = "10") -> OrderFilled:
    return OrderFilled(
        ts=0, instrument_id=ETHUSDT.id, client_order_id="c1", venue_order_id=venue_id, trade_id=trade,
        side=Side.BUY, last_qty=P(qty), last_price=P("2500"), fee=0, fee_currency="USDT",
        liquidity=LiquiditySide.TAKER,
    )  # fmt: skip


def canceled() -> OrderCanceled:
    return OrderCanceled(ts=0, instrument_id=ETHUSDT.id, client_order_id="c1")


def test_each_fact_passes_once() -> None:
    t = OrderTracker()
    t.register(cmd(), ETHUSDT)
    assert t.admit(accepted("10"), "10") and not t.admit(accepted("10"), "10")
    assert t.admit(fill("T1", "0.4"), "10") and not t.admit(fill("T1", "0.4"), "10")
    assert t.admit(canceled(), "10") and not t.admit(canceled(), "10")
    assert t.dropped == 3
    assert t.admit(accepted("99", cid="not-ours"))  # other sessions' orders go to the OMS as they are


def test_a_fill_before_the_acceptance_makes_the_acceptance_old_news() -> None:
    t = OrderTracker()
    t.register(cmd(), ETHUSDT)
    assert t.admit(fill("T1", "1"), "10")
    assert not t.admit(accepted("10"), "10")
    assert t.get("c1").ended  # type: ignore[union-attr]


def test_cancel_replace_is_one_amend() -> None:
    t = OrderTracker()
    order = t.register(cmd(qty="1"), ETHUSDT)
    t.admit(accepted("10"), "10")
    t.admit(fill("T1", "0.25"), "10")
    t.start_amend(order, replace=True)
    assert not t.admit(canceled(), "10")  # the cancel half, from the stream
    assert not t.admit(accepted("11"), "11")  # the replacement's NEW
    amended = OrderAmended(ts=0, instrument_id=ETHUSDT.id, client_order_id="c1", price=P("2400"), qty=P("1"))
    assert t.admit(amended, "11")
    t.replaced(order, "11", P("1"), P("2400"))
    assert not t.admit(canceled(), "10")  # a late cancel of the old order id
    assert t.admit(fill("T2", "0.75", "11"), "11") and order.filled == P("1")
    # The replacement's own size excludes what the old order filled: reports add it back.
    report = OrderStatusReport(
        ts=0, instrument_id=ETHUSDT.id, client_order_id="c1", venue_order_id="11",
        status=OrderStatus.FILLED, filled_qty=P("0.75"), price=P("2400"), qty=P("0.75"),
    )  # fmt: skip
    adjusted = t.adjust_report(report)
    assert (adjusted.filled_qty, adjusted.qty) == (P("1"), P("1"))


def test_an_amend_is_answered_once_from_the_reply_or_the_stream() -> None:
    t = OrderTracker()
    order = t.register(cmd(), ETHUSDT)
    t.admit(accepted("10"), "10")
    t.start_amend(order, replace=False)
    amended = OrderAmended(ts=0, instrument_id=ETHUSDT.id, client_order_id="c1", price=P("2500"), qty=P("0.5"))
    assert t.admit(amended, "10") and not t.admit(amended, "10")
    assert order.qty == P("0.5")


# -- diff-book continuity -----------------------------------------------------------------------


def test_spot_diffs_must_chain_and_the_snapshot_must_reach_the_first() -> None:
    s = DepthSync(SequenceRule.RANGE)
    assert s.on_diff(101, 105, -1) is None
    assert s.on_diff(106, 110, -1) is None
    assert s.on_snapshot(99) is False  # 99 + 1 < 101: too old, fetch again
    assert s.on_snapshot(100) is True  # U == lastUpdateId + 1 links
    assert s.on_snapshot(107) is True
    assert s.on_diff(112, 115, -1) == "sequence gap: last u 110, next U 112 pu -1"


def test_a_snapshot_before_any_diff_waits_for_the_first() -> None:
    s = DepthSync(SequenceRule.RANGE)
    assert s.on_snapshot(200) is True
    assert s.on_diff(150, 180, -1) is None  # older than the snapshot: stale, still pending
    assert s.on_diff(181, 201, -1) is None  # reaches 201 = lastUpdateId + 1
    s.reset()
    assert s.on_snapshot(200) is True
    assert s.on_diff(205, 210, -1) is not None  # 201..204 are missing


def test_usdm_diffs_chain_by_pu() -> None:
    s = DepthSync(SequenceRule.PREV_LINK)
    assert s.on_diff(100, 120, 95) is None
    assert s.on_diff(121, 130, 120) is None
    assert s.on_snapshot(100) is True and s.on_snapshot(99) is False  # USD-M: U <= lastUpdateId
    assert s.on_diff(140, 150, 135) is not None
