"""Binance request builders (official signing vectors, documented parameter order) and reply mappers
(nautilus_trader / Binance docs fixtures in shared/data/binance)."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl

import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.model.commands import CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import (
    InstrumentKind,
    LiquiditySide,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from tradeloop.model.events import (
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.binance import orders
from tradeloop.venues.binance.spec import BinanceMarket, error_for, reject_reason

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
CREDS = Credentials("binance", "docs", KEY, SECRET)
NOW = 1499827319559


def inst(symbol: str, base: str, quote: str, tick: str, lot: str, venue: str = "binance") -> Instrument:
    kind = InstrumentKind.SPOT if venue == "binance" else InstrumentKind.LINEAR_PERP
    return Instrument(
        id=InstrumentId(venue, symbol),
        base=base,
        quote=quote,
        kind=kind,
        tick_size=fixed.parse(tick),
        lot_size=fixed.parse(lot),
    )


LTCBTC = inst("LTCBTC", "LTC", "BTC", "0.1", "1")
BTCUSDT = inst("BTCUSDT", "BTC", "USDT", "0.01", "0.00001")
ETHUSDT = inst("ETHUSDT", "ETH", "USDT", "0.01", "0.0001")
BNBBTC = inst("BNBBTC", "BNB", "BTC", "0.0000001", "0.001")
USDM_BTC = inst("BTCUSDT", "BTC", "USDT", "0.1", "0.001", "binance_usdm")


def submit(i: Instrument, **kw: object) -> SubmitOrder:
    fields: dict[str, object] = {
        "ts": 0,
        "strategy_id": "s",
        "instrument_id": i.id,
        "side": Side.BUY,
        "qty": fixed.parse("1"),
        "price": fixed.parse("0.1"),
    }
    fields.update(kw)
    return SubmitOrder(**fields)  # type: ignore[arg-type]


def params(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def check_signature(query: str) -> None:
    """The signature is the HMAC of everything before it, computed here independently."""
    payload, _, signature = query.rpartition("&signature=")
    assert signature == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


# -- builders -----------------------------------------------------------------------------------


def test_place_limit_reproduces_the_official_signing_example() -> None:
    req = orders.place_request(CREDS, NOW, submit(LTCBTC), LTCBTC, resp_type=None)
    assert req.method == "POST" and req.path == "/api/v3/order" and not req.idempotent
    assert req.query == (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
        "&timestamp=1499827319559&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )
    assert req.headers == {"X-MBX-APIKEY": KEY}
    assert req.body is None
    assert req.url("https://api.binance.com").startswith("https://api.binance.com/api/v3/order?symbol=LTCBTC&")


def test_place_variants_follow_the_documented_parameter_order() -> None:
    price, qty = fixed.parse("65000.1"), fixed.parse("0.0015")
    ioc = orders.place_request(
        CREDS,
        NOW,
        submit(BTCUSDT, price=price, qty=qty, time_in_force=TimeInForce.IOC, client_order_id="ab12"),
        BTCUSDT,
    )
    assert [k for k, _ in params(ioc.query)] == [
        "symbol", "side", "type", "timeInForce", "quantity", "price", "newClientOrderId", "newOrderRespType",
        "recvWindow", "timestamp", "signature",
    ]  # fmt: skip
    assert dict(params(ioc.query))["price"] == "65000.10"
    assert dict(params(ioc.query))["quantity"] == "0.00150"
    assert dict(params(ioc.query))["newOrderRespType"] == "FULL"
    check_signature(ioc.query)

    maker = dict(params(orders.place_request(CREDS, NOW, submit(BTCUSDT, price=price, post_only=True), BTCUSDT).query))
    assert maker["type"] == "LIMIT_MAKER" and "timeInForce" not in maker

    fok = dict(params(orders.place_request(CREDS, NOW, submit(BTCUSDT, time_in_force=TimeInForce.FOK), BTCUSDT).query))
    assert fok["type"] == "LIMIT" and fok["timeInForce"] == "FOK"

    market = dict(
        params(
            orders.place_request(CREDS, NOW, submit(BTCUSDT, order_type=OrderType.MARKET, price=None), BTCUSDT).query
        )
    )
    assert market["type"] == "MARKET" and "price" not in market and "timeInForce" not in market


def test_usdm_post_only_is_gtx_and_reduce_only_is_sent() -> None:
    cmd = submit(USDM_BTC, post_only=True, reduce_only=True, price=fixed.parse("60000"), qty=fixed.parse("0.002"))
    req = orders.place_request(CREDS, NOW, cmd, USDM_BTC, market=BinanceMarket.USDM)
    p = dict(params(req.query))
    assert req.path == "/fapi/v1/order"
    assert (p["type"], p["timeInForce"], p["price"], p["quantity"]) == ("LIMIT", "GTX", "60000.0", "0.002")
    assert p["reduceOnly"] == "true" and p["newOrderRespType"] == "RESULT"
    check_signature(req.query)


def test_invalid_commands_are_refused_before_signing() -> None:
    with pytest.raises(orders.OrderRequestError, match="client order id"):
        orders.place_request(CREDS, NOW, submit(BTCUSDT, client_order_id="has space"), BTCUSDT)
    with pytest.raises(orders.OrderRequestError, match="price"):
        orders.place_request(CREDS, NOW, submit(BTCUSDT, price=None), BTCUSDT)
    with pytest.raises(orders.OrderRequestError, match="size"):
        orders.place_request(CREDS, NOW, submit(BTCUSDT, qty=0), BTCUSDT)


def test_cancel_query_cancel_all_and_lists() -> None:
    cancel = orders.cancel_request(
        CREDS, NOW, CancelOrder(ts=0, strategy_id="s", instrument_id=BTCUSDT.id, client_order_id="c1")
    )
    assert (cancel.method, cancel.path, cancel.idempotent) == ("DELETE", "/api/v3/order", True)
    assert [k for k, _ in params(cancel.query)][:2] == ["symbol", "origClientOrderId"]
    check_signature(cancel.query)

    query = orders.query_request(CREDS, NOW, QueryOrder(ts=0, instrument_id=BTCUSDT.id, client_order_id="c1"))
    assert (query.method, query.path) == ("GET", "/api/v3/order")
    assert dict(params(query.query))["origClientOrderId"] == "c1"

    all_spot = orders.cancel_all_request(CREDS, NOW, "BTCUSDT")
    assert (all_spot.method, all_spot.path) == ("DELETE", "/api/v3/openOrders")
    all_usdm = orders.cancel_all_request(CREDS, NOW, "BTCUSDT", market=BinanceMarket.USDM)
    assert all_usdm.path == "/fapi/v1/allOpenOrders"

    assert "symbol" not in dict(params(orders.open_orders_request(CREDS, NOW).query))
    assert dict(params(orders.account_request(CREDS, NOW).query))["omitZeroBalances"] == "true"
    trades = orders.my_trades_request(CREDS, NOW, "BTCUSDT", "42")
    assert dict(params(trades.query))["orderId"] == "42" and trades.path == "/api/v3/myTrades"


def test_amend_requests() -> None:
    keep = orders.amend_keep_priority_request(CREDS, NOW, BTCUSDT, "c1", fixed.parse("0.5"))
    assert (keep.method, keep.path) == ("PUT", "/api/v3/order/amend/keepPriority")
    p = dict(params(keep.query))
    assert (p["origClientOrderId"], p["newClientOrderId"], p["newQty"]) == ("c1", "c1", "0.50000")

    cr = orders.cancel_replace_request(
        CREDS, NOW, BTCUSDT, "c1", Side.SELL, TimeInForce.GTC, True, fixed.parse("0.25"), fixed.parse("70000")
    )
    assert (cr.method, cr.path, cr.idempotent) == ("POST", "/api/v3/order/cancelReplace", False)
    assert [k for k, _ in params(cr.query)][:8] == [
        "symbol", "side", "type", "cancelReplaceMode", "quantity", "price",
        "cancelOrigClientOrderId", "newClientOrderId",
    ]  # fmt: skip
    p = dict(params(cr.query))
    assert (p["type"], p["cancelReplaceMode"], p["price"]) == ("LIMIT_MAKER", "STOP_ON_FAILURE", "70000.00")
    check_signature(cr.query)

    modify = orders.modify_request(CREDS, NOW, USDM_BTC, "c1", Side.BUY, fixed.parse("0.003"), fixed.parse("61000.5"))
    assert (modify.method, modify.path) == ("PUT", "/fapi/v1/order")
    assert dict(params(modify.query))["price"] == "61000.5"


def test_ed25519_key_signs_base64_and_percent_encoded() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    creds = Credentials("binance", "ed", "edkey123456", private_key_pem=pem)
    req = orders.place_request(creds, NOW, submit(LTCBTC), LTCBTC, resp_type=None)
    payload, _, sig = req.query.rpartition("&signature=")
    from base64 import b64decode
    from urllib.parse import unquote

    key.public_key().verify(b64decode(unquote(sig)), payload.encode())  # raises if wrong


# -- error table --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "msg", "reason"),
    [
        (-1003, "Too much request weight used", RejectReason.RATE_LIMITED),
        (-1015, "Too many new orders.", RejectReason.RATE_LIMITED),
        (-1021, "Timestamp for this request is outside of the recvWindow.", RejectReason.TIMESTAMP_OUTSIDE_WINDOW),
        (-2010, "Duplicate order sent.", RejectReason.DUPLICATE_CLIENT_ID),
        (-2010, "Account has insufficient balance for requested action.", RejectReason.INSUFFICIENT_BALANCE),
        (-2010, "Order would immediately match and take.", RejectReason.POST_ONLY_WOULD_CROSS),
        (-2010, "Market is closed.", RejectReason.OTHER),
        (-2011, "Unknown order sent.", RejectReason.UNKNOWN_ORDER),
        (-2013, "Order does not exist.", RejectReason.UNKNOWN_ORDER),
        (-1013, "Filter failure: LOT_SIZE", RejectReason.INVALID_ORDER),
        (-5022, "Post Only order will be rejected", RejectReason.POST_ONLY_WOULD_CROSS),
        (-9999, "something new", RejectReason.OTHER),
    ],
)
def test_error_codes_map_to_reasons(code: int, msg: str, reason: RejectReason) -> None:
    assert reject_reason(code, msg) is reason


def test_error_for_reads_codes_and_messages() -> None:
    assert error_for("-1021") == (-1021, "Timestamp for this request is outside of the recvWindow.")
    assert error_for("-2010: Duplicate order sent.") == (-2010, "Duplicate order sent.")
    assert error_for("Account has insufficient balance for requested action.")[0] == -2010


# -- reply mappers ------------------------------------------------------------------------------


def test_full_place_reply_gives_accept_and_taker_fills() -> None:
    body = sample_path("binance/rest/spot_new_order_full_response.json").read_bytes()
    events = orders.order_reply_events(orders.decode_order(body), BTCUSDT, "cid1", 7)
    assert isinstance(events[0], OrderAccepted) and events[0].venue_order_id == "28"
    fills = [e for e in events if isinstance(e, OrderFilled)]
    expected = json.loads(body)["fills"]
    assert [f.trade_id for f in fills] == [str(f["tradeId"]) for f in expected]
    assert sum(f.last_qty for f in fills) == fixed.parse("10")
    assert [f.fee for f in fills] == [fixed.parse(f["commission"]) for f in expected]
    assert all(f.side is Side.SELL and f.liquidity is LiquiditySide.TAKER and f.fee_currency == "USDT" for f in fills)
    assert len(events) == 1 + len(expected)


def test_expired_ioc_reply_ends_the_order() -> None:
    reply = orders.decode_order(
        b'{"symbol":"BTCUSDT","orderId":5,"clientOrderId":"c","status":"EXPIRED","side":"BUY","fills":[]}'
    )
    events = orders.order_reply_events(reply, BTCUSDT, "c", 1)
    assert [type(e) for e in events] == [OrderAccepted, OrderExpired]


def test_query_reply_is_a_status_report() -> None:
    body = sample_path("binance/rest/spot_order_response.json").read_bytes()
    report = orders.status_report(orders.decode_order(body), LTCBTC, "myOrder1", 3)
    assert report.status is OrderStatus.ACCEPTED and report.venue_order_id == "1"
    assert (report.price, report.qty, report.filled_qty) == (fixed.parse("0.1"), fixed.parse("1"), 0)


def test_open_orders_and_cancel_replies() -> None:
    listed = orders.decode_orders(sample_path("binance/rest/spot_open_orders_response.json").read_bytes())
    assert [o.clientOrderId for o in listed] == ["myOrder1"]
    canceled = orders.decode_order(sample_path("binance/rest/spot_cancel_order_response.json").read_bytes())
    events = orders.cancel_reply_events(canceled, LTCBTC, canceled.origClientOrderId, 1)
    assert [type(e) for e in events] == [OrderCanceled] and events[0].client_order_id == "myOrder1"


def test_account_reply_is_a_snapshot() -> None:
    body = sample_path("binance/rest/spot_account_response.json").read_bytes()
    snap = orders.account_snapshot(body, "binance", 9)
    assert [(b.currency, b.total, b.locked) for b in snap.balances] == [
        ("BTC", fixed.parse("4723846.89208129"), 0),
        ("LTC", fixed.parse("4763368.68006011"), 0),
    ]
    futures = orders.account_snapshot(
        sample_path("binance/rest/futures_balance.json").read_bytes(), "binance_usdm", 9, market=BinanceMarket.USDM
    )
    raw = json.loads(sample_path("binance/rest/futures_balance.json").read_text())
    assert [b.currency for b in futures.balances] == sorted(r["asset"] for r in raw)


def test_my_trades_convert_a_base_asset_commission_to_quote() -> None:
    trades = orders.decode_trades(sample_path("binance/rest/spot_account_trades_response.json").read_bytes())
    (fill,) = orders.trade_fills(trades, BNBBTC, "cid", 1)
    # 10.1 BNB commission at 4.000001 BTC per BNB
    assert fill.fee == fixed.parse("40.4000101") and fill.fee_currency == "BTC"
    assert fill.side is Side.BUY and fill.liquidity is LiquiditySide.TAKER and fill.trade_id == "28457"


def test_fee_in_a_third_asset_is_not_guessed() -> None:
    assert orders.fee_in_quote(fixed.parse("0.01"), "BNB", fixed.parse("60000"), BTCUSDT) == (0, False)
    assert orders.fee_in_quote(fixed.parse("0.5"), "USDT", fixed.parse("60000"), BTCUSDT) == (fixed.parse("0.5"), True)


def _order_json(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"symbol": "BTCUSDT", "orderId": 2, "clientOrderId": "c1", "status": "NEW", "side": "BUY"}
    base.update(kw)
    return base


def test_cancel_replace_outcomes() -> None:
    price, total = fixed.parse("64000"), fixed.parse("0.5")
    ok = json.dumps(
        {
            "cancelResult": "SUCCESS",
            "newOrderResult": "SUCCESS",
            "cancelResponse": _order_json(orderId=1, status="CANCELED"),
            "newOrderResponse": _order_json(orderId=3),
        }
    ).encode()
    events, new_id = orders.cancel_replace_events(200, ok, BTCUSDT, "c1", price, total, 1)
    assert new_id == "3"
    assert events == [OrderAmended(ts=1, instrument_id=BTCUSDT.id, client_order_id="c1", price=price, qty=total)]

    half = json.dumps(
        {
            "code": -2021,
            "msg": "Order cancel-replace partially failed.",
            "data": {
                "cancelResult": "SUCCESS",
                "newOrderResult": "FAILURE",
                "cancelResponse": _order_json(orderId=1, status="CANCELED"),
                "newOrderResponse": {"code": -2010, "msg": "Order would immediately match and take."},
            },
        }
    ).encode()
    events, new_id = orders.cancel_replace_events(409, half, BTCUSDT, "c1", price, total, 1)
    assert new_id is None and len(events) == 1 and isinstance(events[0], OrderCanceled)
    assert "-2010" in events[0].reason

    failed = json.dumps(
        {
            "code": -2022,
            "msg": "Order cancel-replace failed.",
            "data": {
                "cancelResult": "FAILURE",
                "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                "newOrderResponse": None,
            },
        }
    ).encode()
    events, _ = orders.cancel_replace_events(400, failed, BTCUSDT, "c1", price, total, 1)
    assert len(events) == 1 and isinstance(events[0], OrderAmendRejected)
    assert events[0].reason is RejectReason.UNKNOWN_ORDER


def test_keep_priority_reply_is_an_amend() -> None:
    body = json.dumps(
        {"transactTime": 1, "executionId": 9, "amendedOrder": _order_json(price="63000.00", origQty="0.2")}
    )
    (event,) = orders.amend_reply_events(orders.decode_amend(body.encode()), BTCUSDT, "c1", 4)
    assert event == OrderAmended(
        ts=4, instrument_id=BTCUSDT.id, client_order_id="c1", price=fixed.parse("63000"), qty=fixed.parse("0.2")
    )


def test_rejection_carries_the_mapped_reason_and_message() -> None:
    ev = orders.rejection("place", BTCUSDT, "c1", -2010, "Account has insufficient balance for requested action.", 5)
    assert isinstance(ev, OrderRejected) and ev.reason is RejectReason.INSUFFICIENT_BALANCE
    assert ev.message.startswith("-2010")
    assert orders.decode_error(b'{"code":-1021,"msg":"late"}') == (-1021, "late")
    assert orders.decode_error(b"<html>")[0] == 0
