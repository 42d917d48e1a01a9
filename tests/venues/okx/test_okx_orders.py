"""OKX instruments, request builders and reply mappers (pure): exact contract conversion, ordType and
error mapping, signing of the exact bytes sent, REST fixtures parsed to the right values."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import msgspec
import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.model.commands import AmendOrder, SubmitOrder
from tradeloop.model.enums import InstrumentKind, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.identifiers import InstrumentId
from tradeloop.security.credentials import Credentials
from tradeloop.venues.okx import orders
from tradeloop.venues.okx.instruments import (
    INSTRUMENTS,
    SizeError,
    instruments_by_symbol,
    nanos_rounded,
    parse_instruments,
)
from tradeloop.venues.okx.orders import OkxRequestError
from tradeloop.venues.okx.schemas import BalanceReply, OrdersReply
from tradeloop.venues.okx.spec import ERROR_CODES, error_reason, from_unified, to_unified

P = fixed.parse
SPECS = instruments_by_symbol()
BTC, SWAP = SPECS["BTC-USDT"], SPECS["BTC-USDT-SWAP"]
CREDS = Credentials("okx", "unit", "unit-key", "unit-secret", "unit-pass")


def _cmd(symbol: str, qty: str, price: str | None = "60000", **kw: object) -> SubmitOrder:
    return SubmitOrder(
        ts=0,
        strategy_id="s",
        instrument_id=InstrumentId("okx", symbol),
        side=kw.pop("side", Side.BUY),  # type: ignore[arg-type]
        qty=P(qty),
        price=P(price) if price else None,
        client_order_id=kw.pop("cid", "tl1a2b3c"),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


# -- instruments ---------------------------------------------------------------------------------


def test_listed_instruments_round_trip_the_unified_names() -> None:
    names = {s.inst_id: to_unified(s.inst_id) for s in INSTRUMENTS}
    assert names == {
        "BTC-USDT": "BTC/USDT",
        "ETH-USDT": "ETH/USDT",
        "BTC-USDT-SWAP": "BTC/USDT:USDT",
        "ETH-USDT-SWAP": "ETH/USDT:USDT",
    }
    assert all(from_unified(u) == i for i, u in names.items())


def test_swap_instrument_is_in_base_units() -> None:
    inst = SWAP.instrument()
    assert inst.kind is InstrumentKind.LINEAR_PERP and inst.contract_size == fixed.SCALE
    # lotSz 0.01 contract x ctVal 0.01 BTC = 0.0001 BTC
    assert (inst.lot_size, inst.min_qty, inst.tick_size) == (P("0.0001"), P("0.0001"), P("0.1"))
    assert BTC.instrument().lot_size == P("0.00000001")


@pytest.mark.parametrize(
    ("qty", "contracts"), [("0.0001", "0.01"), ("0.01", "1"), ("1.2345", "123.45"), ("0.003", "0.3")]
)
def test_contract_conversion_is_exact_both_ways(qty: str, contracts: str) -> None:
    assert SWAP.sz_text(P(qty)) == contracts
    assert SWAP.parse_sz(contracts) == P(qty)


def test_sizes_off_the_contract_grid_are_refused_not_rounded() -> None:
    with pytest.raises(SizeError, match="lotSz"):
        SWAP.sz_text(P("0.00005"))  # half a lot
    with pytest.raises(SizeError, match="whole number"):
        SWAP.qty_from_sz(1)  # 1e-9 contract = 1e-11 BTC: below a nano
    with pytest.raises(SizeError, match="tickSz"):
        SWAP.px_text(P("60000.05"))


def test_parse_instruments_fixtures() -> None:
    swaps = parse_instruments(sample_path("okx/rest/http_get_instruments_swap.json").read_bytes())
    # BTC-USD-SWAP is inverse: skipped
    assert [(s.inst_id, fixed.to_str(s.ct_val), s.inst_id_code) for s in swaps] == [
        ("ETH-USDT-SWAP", "0.1", 10461),
        ("BTC-USDT-SWAP", "0.01", 10459),
    ]
    assert swaps[1] == SWAP  # our static table agrees with the listing
    spot = parse_instruments(sample_path("okx/rest/http_get_instruments_spot.json").read_bytes())
    assert [s.inst_id for s in spot] == ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "USDT-USD"]
    assert (spot[0].tick_sz, spot[0].lot_sz, spot[0].min_sz) == (P("0.1"), P("0.00000001"), P("0.00001"))
    with pytest.raises(ValueError, match="50011"):
        parse_instruments(b'{"code":"50011","msg":"Too Many Requests","data":[]}')


def test_nanos_rounded_handles_more_than_nine_decimals_without_float() -> None:
    assert nanos_rounded("-0.010000249968") == -10_000_250  # half-even at the 9th decimal
    assert nanos_rounded("0.0000000051", "floor") == 5
    assert nanos_rounded("94.42612990333333", "floor") == 94_426_129_903
    with pytest.raises(ValueError):
        nanos_rounded("abc")


# -- requests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, "limit"),
        ({"post_only": True}, "post_only"),
        ({"time_in_force": TimeInForce.IOC}, "ioc"),
        ({"time_in_force": TimeInForce.FOK}, "fok"),
        ({"order_type": OrderType.MARKET}, "market"),
        ({"order_type": OrderType.MARKET, "time_in_force": TimeInForce.IOC}, "market"),
    ],
)
def test_ord_type(kw: dict[str, Any], expected: str) -> None:
    assert orders.ord_type(_cmd("BTC-USDT", "0.01", **kw)) == expected


@pytest.mark.parametrize(
    "kw",
    [
        {"order_type": OrderType.MARKET, "post_only": True},
        {"order_type": OrderType.MARKET, "time_in_force": TimeInForce.FOK},
        {"post_only": True, "time_in_force": TimeInForce.IOC},
        {"cid": "has-dash"},
        {"cid": "x" * 33},
        {"reduce_only": True},  # spot
    ],
)
def test_commands_okx_cannot_take_are_refused_before_sending(kw: dict[str, Any]) -> None:
    with pytest.raises(OkxRequestError):
        orders.order_args(_cmd("BTC-USDT", "0.01", **kw), BTC)


def test_swap_order_body_in_contracts_with_cross_margin() -> None:
    cmd = _cmd("BTC-USDT-SWAP", "0.0123", "61234.5", side=Side.SELL, reduce_only=True, time_in_force=TimeInForce.IOC)
    assert orders.order_args(cmd, SWAP) == {
        "instId": "BTC-USDT-SWAP",
        "side": "sell",
        "ordType": "ioc",
        "sz": "1.23",
        "tdMode": "cross",
        "px": "61234.5",
        "clOrdId": "tl1a2b3c",
        "reduceOnly": True,
    }


def test_place_request_is_signed_over_the_exact_body() -> None:
    now_ms = 1_607_418_537_715
    r = orders.place_order(CREDS, now_ms, _cmd("BTC-USDT", "0.5", "60000.1"), BTC, batch=False)
    assert r.path == "/api/v5/trade/order" and r.body is not None
    assert json.loads(r.body) == {
        "instId": "BTC-USDT",
        "side": "buy",
        "ordType": "limit",
        "sz": "0.5",
        "tdMode": "cash",
        "tgtCcy": "base_ccy",
        "px": "60000.1",
        "clOrdId": "tl1a2b3c",
    }
    prehash = "2020-12-08T09:08:57.715Z" + "POST" + "/api/v5/trade/order" + r.body
    expected = base64.b64encode(hmac.new(b"unit-secret", prehash.encode(), hashlib.sha256).digest()).decode()
    assert r.headers["OK-ACCESS-SIGN"] == expected
    assert r.headers["OK-ACCESS-TIMESTAMP"] == "2020-12-08T09:08:57.715Z"


def test_get_requests_sign_the_query() -> None:
    r = orders.query_order(CREDS, 1_607_418_537_715, "BTC-USDT", client_order_id="abc1")
    assert r.url("https://www.okx.com") == "https://www.okx.com/api/v5/trade/order?instId=BTC-USDT&clOrdId=abc1"
    prehash = "2020-12-08T09:08:57.715ZGET/api/v5/trade/order?instId=BTC-USDT&clOrdId=abc1"
    expected = base64.b64encode(hmac.new(b"unit-secret", prehash.encode(), hashlib.sha256).digest()).decode()
    assert r.headers["OK-ACCESS-SIGN"] == expected and r.body is None


def test_keys_without_passphrase_are_refused() -> None:
    with pytest.raises(OkxRequestError, match="passphrase"):
        orders.balance(Credentials("okx", "x", "k", "s"), 0)


def test_cancel_batch_is_limited_to_twenty() -> None:
    assert orders.cancel_batch(CREDS, 0, [("BTC-USDT", str(i)) for i in range(20)]).body is not None
    with pytest.raises(OkxRequestError):
        orders.cancel_batch(CREDS, 0, [("BTC-USDT", str(i)) for i in range(21)])


def test_amend_by_client_id_in_contracts() -> None:
    cmd = AmendOrder(
        ts=0, strategy_id="s", instrument_id=SWAP.instrument_id, client_order_id="c1", qty=P("0.02"), price=None
    )
    r = orders.amend_order(CREDS, 0, cmd, SWAP)
    assert r.body == '{"instId":"BTC-USDT-SWAP","clOrdId":"c1","newSz":"2"}'
    with pytest.raises(OkxRequestError):
        orders.amend_order(CREDS, 0, msgspec.structs.replace(cmd, qty=None), SWAP)


# -- replies ------------------------------------------------------------------------------------


def test_read_acks() -> None:
    body = (
        b'{"code":"2","msg":"","data":[{"ordId":"1","clOrdId":"a","sCode":"0","sMsg":""},'
        b'{"ordId":"","clOrdId":"b","sCode":"51008_1001","sMsg":"Insufficient margin"}]}'
    )
    a, b = orders.read_acks(200, body)
    assert a.ok and a.ord_id == "1" and not b.ok and b.code == "51008_1001"
    assert error_reason(b.code) is RejectReason.INSUFFICIENT_BALANCE
    (limited,) = orders.read_acks(429, b'{"code":"50011","msg":"Too Many Requests","data":[]}')
    assert limited.rate_limited and not limited.ok
    (garbage,) = orders.read_acks(429, b"<html>")
    assert garbage.rate_limited
    (auth,) = orders.read_acks(401, b'{"code":"50113","msg":"Invalid Sign","data":[]}')
    assert not auth.ok and error_reason(auth.code) is RejectReason.OTHER
    place = json.loads(sample_path("okx/rest/http_place_order_response.json").read_text())
    (item,) = orders.read_acks(200, json.dumps({"code": "0", "msg": "", "data": [place]}).encode())
    assert item.ok and item.ord_id == "12345678901234567890" and item.cl_ord_id == "client_order_123"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("50011", RejectReason.RATE_LIMITED),
        ("50102", RejectReason.TIMESTAMP_OUTSIDE_WINDOW),
        ("51016", RejectReason.DUPLICATE_CLIENT_ID),
        ("51008", RejectReason.INSUFFICIENT_BALANCE),
        ("51400", RejectReason.UNKNOWN_ORDER),
        ("51603", RejectReason.UNKNOWN_ORDER),
        ("51503", RejectReason.UNKNOWN_ORDER),
        ("59999", RejectReason.OTHER),
    ],
)
def test_error_codes(code: str, reason: RejectReason) -> None:
    assert error_reason(code) is reason
    assert set(ERROR_CODES.values()) >= {
        RejectReason.RATE_LIMITED,
        RejectReason.TIMESTAMP_OUTSIDE_WINDOW,
        RejectReason.DUPLICATE_CLIENT_ID,
        RejectReason.INSUFFICIENT_BALANCE,
        RejectReason.POST_ONLY_WOULD_CROSS,
        RejectReason.UNKNOWN_ORDER,
    }


def test_status_report_from_orders_pending_fixture_converts_contracts() -> None:
    reply = msgspec.json.decode(sample_path("okx/rest/http_get_orders_pending.json").read_bytes(), type=OrdersReply)
    report = orders.status_report(7, reply.data[0], SWAP)
    assert report.status is OrderStatus.ACCEPTED
    assert (report.qty, report.filled_qty, report.price) == (P("0.001"), 0, P("103500"))  # 0.10 contracts
    assert (report.client_order_id, report.venue_order_id) == ("client-order-1", "1234567890123456789")


@pytest.mark.parametrize(
    ("state", "source", "status"),
    [
        ("live", "", OrderStatus.ACCEPTED),
        ("partially_filled", "", OrderStatus.PARTIALLY_FILLED),
        ("filled", "", OrderStatus.FILLED),
        ("canceled", "1", OrderStatus.CANCELED),
        ("canceled", "14", OrderStatus.EXPIRED),
        ("canceled", "13", OrderStatus.EXPIRED),
        ("mmp_canceled", "", OrderStatus.CANCELED),
        ("weird", "", None),
    ],
)
def test_order_status_table(state: str, source: str, status: OrderStatus | None) -> None:
    from tradeloop.venues.okx.schemas import OrderData

    assert orders.order_status(OrderData(instId="BTC-USDT", state=state, cancelSource=source)) is status


def test_fees_in_quote() -> None:
    assert orders.fee_in_quote("-0.1002", "USDT", P("50100.5"), BTC) == P("0.1002")
    assert orders.fee_in_quote("0.05", "USDT", P("1"), BTC) == -P("0.05")  # rebate
    # a spot buy pays its fee in BTC: valued at the fill price
    assert orders.fee_in_quote("-0.000001", "BTC", P("60000.5"), BTC) == P("0.0600005")
    assert orders.fee_in_quote("-1", "OKB", P("60000"), BTC) is None


def test_account_snapshot_from_balance_fixture_rounds_down() -> None:
    reply = msgspec.json.decode(sample_path("okx/rest/http_get_account_balance.json").read_bytes(), type=BalanceReply)
    snap = orders.account_snapshot(5, reply.data)
    (usdt,) = snap.balances
    assert (usdt.currency, usdt.total, usdt.locked) == ("USDT", P("94.426129903"), P("5.468566666"))
    assert snap.venue == "okx" and snap.ts == 5
