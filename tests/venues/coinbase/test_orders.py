"""Coinbase order requests and replies: the ccxt static request fixtures, JWTs verified with the public
key, failure-code tables, and the REST reply fixtures turned into engine events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.conftest import sample_path
from tests.secret_scan import register_test_secret
from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import Balance
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.base import SignedRequest
from tradeloop.venues.coinbase import orders as req
from tradeloop.venues.coinbase.connector import local_credentials
from tradeloop.venues.coinbase.spec import ERRORS, INSTRUMENTS, ORDER_STATUS

BASE = "https://api.coinbase.com"
NOW_NS = 1_700_000_000_123_456_789


def _inst(product: str, tick: str, lot: str) -> Instrument:
    base, quote = product.split("-")
    return Instrument(
        id=InstrumentId("coinbase", product),
        base=base,
        quote=quote,
        tick_size=fixed.parse(tick),
        lot_size=fixed.parse(lot),
    )


ADA = _inst("ADA-USDT", "0.0001", "0.00000001")
DOGE = _inst("DOGE-USDT", "0.00001", "0.1")
BTC = next(i for i in INSTRUMENTS if i.id.symbol == "BTC-USD")


@pytest.fixture(scope="module")
def key() -> req.CoinbaseKey:
    creds = local_credentials()
    pem = creds.private_key_pem
    assert pem is not None
    register_test_secret(pem.reveal())
    return req.CoinbaseKey.from_credentials(creds)


def _order(inst: Instrument, side: Side, qty: str, price: str | None, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        ts=0,
        strategy_id="s",
        instrument_id=inst.id,
        side=side,
        qty=fixed.parse(qty),
        price=fixed.parse(price) if price is not None else None,
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        client_order_id="tl0abc1",
        **kw,
    )


def _ccxt_cases() -> dict[str, dict[str, Any]]:
    data = json.loads(sample_path("coinbase/ccxt_static/ccxt_static_request_coinbase.json").read_text())
    assert data["skipKeys"] == ["client_order_id", "start", "end"]
    return {f"{m}/{c['description']}": c for m, cases in data["methods"].items() for c in cases}


def _strip(body: Any, skip: tuple[str, ...] = ("client_order_id", "start", "end")) -> Any:
    if isinstance(body, dict):
        return {k: _strip(v) for k, v in body.items() if k not in skip}
    return body


# ccxt case -> the request tradeloop sends for the same call (cases ccxt maps elsewhere are listed in
# test_out_of_scope_ccxt_cases_are_named).
OUR_CALLS: dict[str, Any] = {
    "createOrder/spot limit buy": lambda k: req.create_order_request(
        k, NOW_NS, "n1", _order(ADA, Side.BUY, "4", "0.2"), ADA
    ),
    "createOrder/Spot market sell": lambda k: req.create_order_request(
        k, NOW_NS, "n1", _order(ADA, Side.SELL, "10", None, time_in_force=TimeInForce.IOC), ADA
    ),
    "createOrder/Spot limit buy with postOnly": lambda k: req.create_order_request(
        k, NOW_NS, "n1", _order(ADA, Side.BUY, "10", "0.25", post_only=True), ADA
    ),
    "createOrder/create limit IOC order": lambda k: req.create_order_request(
        k, NOW_NS, "n1", _order(DOGE, Side.BUY, "10", "0.05", time_in_force=TimeInForce.IOC), DOGE
    ),
    "cancelOrder/cancel order": lambda k: req.batch_cancel_request(
        k, NOW_NS, "n1", ["9fd0cadc-2ccc-45e8-b254-ea511c34e5b2"]
    ),
    "cancelOrder/cancel stop order": lambda k: req.batch_cancel_request(
        k, NOW_NS, "n1", ["d4f841a7-2de6-4190-a581-9ae23a5ff3de"]
    ),
    "cancelOrders/cancel orders": lambda k: req.batch_cancel_request(
        k, NOW_NS, "n1", ["9fd0cadc-2ccc-45e8-b254-ea511c34e5b2"]
    ),
    "fetchOrder/fetch order": lambda k: req.get_order_request(k, NOW_NS, "n1", "9fd0cadc-2ccc-45e8-b254-ea511c34e5b2"),
    "fetchOpenOrders/Fetch open orders": lambda k: req.list_orders_request(k, NOW_NS, "n1", status="OPEN", limit=100),
    "editOrder/edit order": lambda k: req.edit_order_request(
        k, NOW_NS, "n1", "9fd0cadc-2ccc-45e8-b254-ea511c34e5b2", fixed.parse("0.08"), fixed.parse("20"), DOGE
    ),
    "fetchBalance/fetch spot balance v3": lambda k: req.accounts_request(k, NOW_NS, "n1"),
}

OUT_OF_SCOPE = {
    "createOrder/Spot market buy": "ccxt sizes a market buy by cost (quote_size); tradeloop sizes in base",
    "createOrder/Spot limit buy with triggerPrice": "stop-limit orders are not an engine order type",
    "createOrder/Spot market buy with createMarketBuyOrderRequiresPrice set to false": "quote-sized market buy",
    "createOrder/Spot market buy using the cost param": "quote-sized market buy",
    "createOrder/create preview/test order": "orders/preview (dry run) is not used",
    "createOrder/swap market buy": "INTX perpetuals are not listed (spot only)",
    "createOrder/swap market sell": "INTX perpetuals are not listed",
    "createOrder/swap limit buy": "INTX perpetuals are not listed",
    "createOrder/swap preview order": "INTX perpetuals, preview",
    "cancelOrder/cancel swap order": "INTX perpetuals are not listed",
    "fetchOrder/swap order": "INTX perpetuals are not listed",
    "editOrder/Fill this with a description of the method call": "orders/edit_preview is not used",
    "fetchBalance/Fetch spot Balance": "the v2 wallet API (/v2/accounts); tradeloop reads /api/v3/brokerage/accounts",
    "fetchBalance/Fetch swap Balance": "the v2 wallet API; no perpetuals",
}
TRADING_METHODS = ("createOrder", "cancelOrder", "cancelOrders", "fetchOrder", "fetchOpenOrders", "editOrder")


@pytest.mark.parametrize("case", sorted(OUR_CALLS))
def test_requests_match_ccxt_static_fixtures(case: str, key: req.CoinbaseKey) -> None:
    expected = _ccxt_cases()[case]
    ours: SignedRequest = OUR_CALLS[case](key)
    assert ours.url(BASE) == expected["url"]
    assert ours.method == ("GET" if "output" not in expected else "POST")
    if "output" in expected:
        assert ours.body is not None
        assert _strip(json.loads(ours.body)) == _strip(json.loads(expected["output"]))
        # same keys in the same order as the venue documents them (ccxt writes them that way too)
        assert [k for k in json.loads(ours.body) if k != "client_order_id"] == [
            k for k in json.loads(expected["output"]) if k != "client_order_id"
        ]
        assert json.loads(ours.body).get("client_order_id", "tl0abc1") == "tl0abc1"


def test_out_of_scope_ccxt_cases_are_named() -> None:
    cases = _ccxt_cases()
    relevant = {c for c in cases if c.split("/")[0] in (*TRADING_METHODS, "fetchBalance")}
    assert relevant == set(OUR_CALLS) | set(OUT_OF_SCOPE)


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, claims, sig = token.split(".")
    public = local_credentials().load_private_key().public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    raw = base64.urlsafe_b64decode(sig + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(base64.urlsafe_b64decode(head + "==")), json.loads(base64.urlsafe_b64decode(claims + "=="))


def test_every_request_carries_a_fresh_jwt_for_its_own_uri(key: req.CoinbaseKey) -> None:
    listing = req.list_orders_request(key, NOW_NS, "a1b2", status="OPEN", product_ids=["BTC-USD"], host="127.0.0.1:80")
    assert listing.query == "order_status=OPEN&product_ids=BTC-USD&limit=100"
    head, claims = _claims(listing.headers["Authorization"].removeprefix("Bearer "))
    assert head["nonce"] == "a1b2" and head["kid"] == key.name and head["alg"] == "ES256"
    assert claims["uri"] == "GET 127.0.0.1:80/api/v3/brokerage/orders/historical/batch"  # no query in the claim
    assert claims["nbf"] == NOW_NS // 10**9 and claims["exp"] == claims["nbf"] + 120
    create = req.create_order_request(key, NOW_NS, "c3", _order(BTC, Side.BUY, "0.001", "50000.5"), BTC)
    assert _claims(create.headers["Authorization"][7:])[1]["uri"] == "POST api.coinbase.com/api/v3/brokerage/orders"
    assert create.headers["Content-Type"] == "application/json" and not create.idempotent
    assert req.batch_cancel_request(key, NOW_NS, "n", ["x"]).idempotent
    assert "hidden" in repr(key)


def test_order_configurations_and_refusals() -> None:
    body = json.loads(
        req.create_order_body(_order(BTC, Side.SELL, "0.12345678", "64000.01", time_in_force=TimeInForce.FOK), BTC)
    )
    assert body["order_configuration"] == {"limit_limit_fok": {"base_size": "0.12345678", "limit_price": "64000.01"}}
    for bad, message in [
        (_order(BTC, Side.BUY, "0.000000001", "1"), "not a multiple"),
        (_order(BTC, Side.BUY, "1", "1.001"), "not a multiple"),
        (_order(BTC, Side.BUY, "1", "1", time_in_force=TimeInForce.IOC, post_only=True), "post-only"),
        (_order(BTC, Side.BUY, "1", None, time_in_force=TimeInForce.FOK), "market"),
        (_order(ADA, Side.BUY, "1", "1"), "spec of"),
    ]:
        with pytest.raises(req.OrderRequestError, match=message):
            req.create_order_body(bad, BTC)


def test_failure_codes_map_to_engine_reasons() -> None:
    assert ERRORS["INSUFFICIENT_FUND"] is RejectReason.INSUFFICIENT_BALANCE
    assert req.classify(["", "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"]) is RejectReason.POST_ONLY_WOULD_CROSS
    assert req.classify(["UNKNOWN_FAILURE_REASON", "INSUFFICIENT_FUND"]) is RejectReason.INSUFFICIENT_BALANCE
    assert req.classify(["something new"]) is RejectReason.OTHER
    needed = {
        RejectReason.RATE_LIMITED,
        RejectReason.TIMESTAMP_OUTSIDE_WINDOW,
        RejectReason.DUPLICATE_CLIENT_ID,
        RejectReason.INSUFFICIENT_BALANCE,
        RejectReason.POST_ONLY_WOULD_CROSS,
        RejectReason.UNKNOWN_ORDER,
    }
    assert needed <= set(ERRORS.values())
    assert ORDER_STATUS["CANCELLED"] is OrderStatus.CANCELED and ORDER_STATUS["UNKNOWN_ORDER_STATUS"] is None
    assert req.engine_status("OPEN", 1) is OrderStatus.PARTIALLY_FILLED
    assert req.engine_status("OPEN", 0) is OrderStatus.ACCEPTED


def test_http_errors() -> None:
    limited = req.http_rejection(429, b'{"errors":[{"id":"rate_limit_exceeded","message":"Too many requests"}]}')
    assert limited.reason is RejectReason.RATE_LIMITED
    assert req.http_rejection(401, b'{"message":"request timestamp expired"}').reason is (
        RejectReason.TIMESTAMP_OUTSIDE_WINDOW
    )
    assert req.http_rejection(401, b"Unauthorized\n").reason is RejectReason.OTHER
    assert req.http_rejection(400, b'{"error":"INVALID_ARGUMENT","message":"bad"}').reason is RejectReason.INVALID_ORDER
    assert req.http_rejection(404, b'{"error":"NOT_FOUND"}').reason is RejectReason.UNKNOWN_ORDER


def test_create_cancel_edit_replies() -> None:
    ok = b'{"success":true,"success_response":{"order_id":"o-1","product_id":"BTC-USD","side":"BUY"}}'
    assert req.create_reply(ok) == "o-1"
    refused = req.create_reply(
        b'{"success":false,"failure_reason":"UNKNOWN_FAILURE_REASON","order_id":"","error_response":'
        b'{"error":"INSUFFICIENT_FUND","message":"Insufficient balance in source account",'
        b'"preview_failure_reason":"PREVIEW_INSUFFICIENT_FUND","new_order_failure_reason":"UNKNOWN_FAILURE_REASON"}}'
    )
    assert isinstance(refused, req.Rejection) and refused.reason is RejectReason.INSUFFICIENT_BALANCE
    assert "Insufficient balance" in refused.message
    with pytest.raises(req.ReplyError):
        req.create_reply(b'{"success":true}')
    with pytest.raises(req.ReplyError):
        req.create_reply(b"<html>")
    results = req.cancel_results(
        b'{"results":[{"success":true,"failure_reason":"UNKNOWN_CANCEL_FAILURE_REASON","order_id":"a"},'
        b'{"success":false,"failure_reason":"UNKNOWN_CANCEL_ORDER","order_id":"b"}]}'
    )
    assert results["a"] is None
    assert results["b"] is not None and results["b"].reason is RejectReason.UNKNOWN_ORDER
    assert req.edit_reply(b'{"success":true,"errors":[]}') is None
    edit = req.edit_reply(b'{"success":false,"errors":[{"edit_failure_reason":"ONLY_OPEN_ORDERS_CAN_BE_EDITED"}]}')
    assert edit is not None and edit.reason is RejectReason.UNKNOWN_ORDER


def test_order_records_from_rest_fixtures() -> None:
    record = req.order_reply(sample_path("coinbase/rest/http_order.json").read_bytes())
    report = req.status_report(record, BTC.id, record.client_order_id, 5)
    assert report.status is OrderStatus.PARTIALLY_FILLED  # OPEN with 0.001 filled
    assert report.venue_order_id == "0000-000000-000000"
    assert (report.filled_qty, report.price, report.qty) == (1_000_000, 10_000 * fixed.SCALE, 1_000_000)
    page = req.orders_page(sample_path("coinbase/rest/http_orders_list.json").read_bytes())
    statuses = [req.engine_status(r.status, req.decimal_amount(r.filled_size)) for r in page.orders]
    assert statuses == [OrderStatus.ACCEPTED, OrderStatus.FILLED] and not page.has_next


def test_balances_from_accounts_fixture() -> None:
    body = sample_path("coinbase/rest/http_accounts.json").read_bytes()
    snap = req.account_snapshot([body], 9)
    # total = available + hold: BTC 1.23456789 + 0.005, USD 10000.50 + 450.00
    assert snap.balances == [
        Balance("BTC", fixed.parse("1.23956789"), fixed.parse("0.005")),
        Balance("USD", fixed.parse("10450.5"), fixed.parse("450")),
    ]
    assert req.accounts_cursor(body) == ""
