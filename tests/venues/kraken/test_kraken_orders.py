"""Kraken REST order requests (against ccxt's static request fixtures) and reply mapping (nautilus fixtures).

ccxt fixture coverage (``kraken/ccxt_static/ccxt_static_request_kraken.json``), nonce handled as the
fixture's ``skipKeys`` says (we sign with the fixture's own nonce, so the whole body compares):

* createOrder "Spot market buy": byte for byte.
* createOrder "Spot market sell": byte for byte plus our ``oflags=fciq`` (fee in quote; see orders.py).
* createOrder "order with multiple oflags combined" (post-only limit buy): same fields; ccxt's extra
  user flag ``fcib`` is not something the engine sends.
* cancelOrder (by ``txid``), cancelAllOrders (spot), fetchOpenOrders: byte for byte.
* fetchBalance: same URL (``BalanceEx``); ccxt also forwards its own ``type=spot`` parameter.

Out of scope: stop-loss / take-profit / trailing / margin createOrder cases and
createMarketBuyOrderWithCost (order types and quote-sized orders the engine does not have),
cancelAllOrdersAfter (no dead-man switch yet), the swap cases (spot only), and the market-data /
history calls (fetchMyTrades, fetchClosedOrders, fetchPositions, fetchLedger, fetchDeposits,
fetchOHLCV, fetchTime, fetchTrades, fetchOrderBook, fetchTicker(s)). The file has no fetchOrder or
editOrder case; QueryOrders and AmendOrder are checked against Kraken's documented parameters below.
"""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.core.fixed import FixedPointError
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import OrderAccepted, OrderAmended, OrderAmendRejected, OrderRejected
from tradeloop.model.identifiers import InstrumentId
from tradeloop.security.credentials import Credentials
from tradeloop.venues.kraken import orders, spec
from tradeloop.venues.kraken.auth import NonceSource, nonce_source, sign

SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
CREDS = Credentials("kraken", "test", "test-api-key-kraken", SECRET)
BASE = "https://api.kraken.com"
INSTRUMENTS = {i.id: i for i in spec.instruments()}
LTC_USDT = INSTRUMENTS[InstrumentId("kraken", "LTC/USDT")]
BTC_USD = INSTRUMENTS[InstrumentId("kraken", "BTC/USD")]


def _fixture(method: str, description: str) -> dict[str, Any]:
    data = json.loads(sample_path("kraken/ccxt_static/ccxt_static_request_kraken.json").read_text())
    assert data["skipKeys"] == ["nonce"]
    for case in data["methods"][method]:
        if case["description"] == description:
            return dict(case)
    raise AssertionError(f"no {method} case {description!r}")


def _nonce_of(body: str) -> int:
    return int(dict(parse_qsl(body))["nonce"])


def _submit(inst_id: InstrumentId, side: Side, qty: str, price: str | None = None, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        ts=0,
        strategy_id="s",
        instrument_id=inst_id,
        side=side,
        qty=fixed.parse(qty),
        price=fixed.parse(price) if price else None,
        order_type=OrderType.LIMIT if price else OrderType.MARKET,
        **kw,
    )


def _check_signed(req: Any) -> None:
    assert req.method == "POST" and req.headers["API-Key"] == "test-api-key-kraken"
    assert req.headers["API-Sign"] == sign(SECRET, req.path, _nonce_of(req.body), req.body)


def test_ccxt_market_buy_matches_byte_for_byte() -> None:
    case = _fixture("createOrder", "Spot market buy")
    cmd = _submit(LTC_USDT.id, Side.BUY, "0.1")
    req = orders.place_request(CREDS, _nonce_of(case["output"]), cmd, LTC_USDT)
    assert req.url(BASE) == case["url"]
    assert req.body == case["output"]
    assert not req.idempotent
    _check_signed(req)


def test_ccxt_market_sell_matches_plus_fee_in_quote_flag() -> None:
    case = _fixture("createOrder", "Spot market sell")
    req = orders.place_request(CREDS, _nonce_of(case["output"]), _submit(LTC_USDT.id, Side.SELL, "0.1"), LTC_USDT)
    assert req.url(BASE) == case["url"]
    assert req.body == case["output"] + "&oflags=fciq"


def test_ccxt_post_only_limit_matches_but_for_ccxt_user_flag() -> None:
    case = _fixture("createOrder", "order with multiple oflags combined")
    cmd = _submit(LTC_USDT.id, Side.BUY, "0.1", "50", post_only=True)
    req = orders.place_request(CREDS, _nonce_of(case["output"]), cmd, LTC_USDT)
    ours = dict(parse_qsl(req.body or ""))
    theirs = dict(parse_qsl(case["output"]))
    assert set(theirs.pop("oflags").split(",")) - {"fcib"} == set(ours.pop("oflags").split(","))
    assert ours == theirs
    assert list(dict(parse_qsl(req.body or ""))) == list(dict(parse_qsl(case["output"])))  # same field order


@pytest.mark.parametrize(
    ("method", "description", "build"),
    [
        ("cancelOrder", "cancel open trailing percent order",
         lambda n: orders.cancel_request(CREDS, n, txid="OF7S76-H2IMS-N2ML4U")),
        ("cancelAllOrders", "Cancel spot orders", lambda n: orders.cancel_all_request(CREDS, n)),
        ("fetchOpenOrders", "Spot open orders", lambda n: orders.open_orders_request(CREDS, n)),
    ],
)  # fmt: skip
def test_ccxt_cancel_cancel_all_and_open_orders_match(method: str, description: str, build: Any) -> None:
    case = _fixture(method, description)
    req = build(_nonce_of(case["output"]))
    assert req.url(BASE) == case["url"]
    assert req.body == case["output"]
    assert req.idempotent
    _check_signed(req)


def test_ccxt_fetch_balance_same_endpoint() -> None:
    case = _fixture("fetchBalance", "Fetch spot Balance")
    req = orders.balance_request(CREDS, _nonce_of(case["output"]))
    assert req.url(BASE) == case["url"]
    theirs = dict(parse_qsl(case["output"]))
    assert theirs.pop("type") == "spot"  # ccxt's own parameter, passed through
    assert dict(parse_qsl(req.body or "")) == theirs


def test_place_ioc_fok_and_client_ids() -> None:
    cmd = _submit(BTC_USD.id, Side.SELL, "0.0012", "65000.5", time_in_force=TimeInForce.IOC, client_order_id="ab1")
    body = dict(parse_qsl(orders.place_request(CREDS, 7, cmd, BTC_USD).body or ""))
    assert body == {
        "nonce": "7",
        "pair": "XXBTZUSD",
        "type": "sell",
        "ordertype": "limit",
        "volume": "0.0012",
        "price": "65000.5",
        "oflags": "fciq",
        "timeinforce": "IOC",
        "cl_ord_id": "ab1",
    }
    fok = _submit(BTC_USD.id, Side.BUY, "1", "65000", time_in_force=TimeInForce.FOK, post_only=False)
    assert dict(parse_qsl(orders.place_request(CREDS, 8, fok, BTC_USD).body or ""))["timeinforce"] == "FOK"
    long_id = "t1" + "0" * 18  # 20 characters: over Kraken's 18 for free text
    cmd = _submit(BTC_USD.id, Side.BUY, "1", "65000", client_order_id=long_id)
    sent = dict(parse_qsl(orders.place_request(CREDS, 9, cmd, BTC_USD).body or ""))["cl_ord_id"]
    assert len(sent) == 32 and spec.from_cl_ord_id(sent) == long_id


def test_off_grid_amounts_are_refused_not_rounded() -> None:
    with pytest.raises(FixedPointError):
        orders.place_request(CREDS, 1, _submit(BTC_USD.id, Side.BUY, "1", "65000.05"), BTC_USD)
    with pytest.raises(FixedPointError):
        orders.place_request(CREDS, 1, _submit(BTC_USD.id, Side.BUY, "0.000000001", "65000"), BTC_USD)
    with pytest.raises(ValueError, match="built with the instrument"):
        orders.place_request(CREDS, 1, _submit(LTC_USDT.id, Side.BUY, "1", "65000"), BTC_USD)


def test_amend_query_and_cancel_by_client_id_bodies() -> None:
    amend = AmendOrder(
        ts=0, strategy_id="s", instrument_id=BTC_USD.id, client_order_id="c1", price=fixed.parse("64000")
    )
    req = orders.amend_request(CREDS, 11, amend, BTC_USD, post_only=True)
    assert req.path == "/0/private/AmendOrder" and not req.idempotent
    assert req.body == "nonce=11&cl_ord_id=c1&limit_price=64000&post_only=true"
    amend_qty = AmendOrder(
        ts=0, strategy_id="s", instrument_id=BTC_USD.id, client_order_id="c1", qty=fixed.parse("0.5")
    )
    assert orders.amend_request(CREDS, 12, amend_qty, BTC_USD).body == "nonce=12&cl_ord_id=c1&order_qty=0.5"
    with pytest.raises(ValueError):
        orders.amend_request(
            CREDS, 13, AmendOrder(ts=0, strategy_id="s", instrument_id=BTC_USD.id, client_order_id="c1"), BTC_USD
        )
    assert orders.query_request(CREDS, 14, "c1").body == "nonce=14&trades=true&cl_ord_id=c1"
    assert orders.cancel_request(CREDS, 15, client_order_id="c1").body == "nonce=15&cl_ord_id=c1"
    assert orders.query_trades_request(CREDS, 16, ["T1", "T2"]).body == "nonce=16&txid=T1%2CT2"
    assert orders.ws_token_request(CREDS, 17).path == "/0/private/GetWebSocketsToken"
    with pytest.raises(ValueError):
        orders.cancel_request(CREDS, 18)


def test_client_order_id_mapping_round_trips() -> None:
    rng = random.Random(7)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    seen: dict[str, str] = {}
    samples = ["0", "0" * 20, "z" * 20, "Z" * 19, "a" * 18] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))) for _ in range(2000)
    ]
    for cid in samples:
        wire = spec.to_cl_ord_id(cid)
        if len(cid) <= 18:
            assert wire == cid
        else:
            assert len(wire) == 32 and int(wire, 16) < 2**128 and wire == wire.lower()
        assert spec.from_cl_ord_id(wire) == cid
        assert seen.setdefault(wire, cid) == cid  # injective
    for foreign in ["6d1b345e-2821-40e2-ad83-4ecb18a06876", "da8e4ad59b78481c93e589746b0cf91f", "free text"]:
        assert spec.from_cl_ord_id(foreign) == foreign
    for bad in ["", "has space", "x" * 21, "ü"]:
        with pytest.raises(ValueError):
            spec.to_cl_ord_id(bad)


def test_symbol_and_asset_mapping_two_way() -> None:
    for pair in spec.PAIRS:
        assert spec.symbol_of_rest_pair(spec.rest_pair(pair.symbol)) == pair.symbol
        assert spec.symbol_of_rest_pair(pair.altname) == pair.symbol
        assert spec.symbol_of_rest_pair(spec.to_v1_pair(pair.symbol)) == pair.symbol
        inst = INSTRUMENTS[InstrumentId("kraken", pair.symbol)]
        assert (inst.price_decimals, inst.qty_decimals) == (pair.price_decimals, pair.qty_decimals)
        assert inst.base == pair.base and inst.quote == pair.quote
    assert spec.rest_pair("BTC/USD") == "XXBTZUSD" and spec.rest_pair("LTC/USDT") == "LTCUSDT"
    assert BTC_USD.tick_size == fixed.parse("0.1") and BTC_USD.lot_size == fixed.parse("0.00000001")
    with pytest.raises(spec.SymbolError):
        spec.rest_pair("BTC/JPY")
    with pytest.raises(spec.SymbolError):
        spec.symbol_of_rest_pair("NOPE")
    for code, asset in [("XXBT", "BTC"), ("ZUSD", "USD"), ("XETH", "ETH"), ("USDT", "USDT"), ("XXDG", "DOGE")]:
        assert spec.asset_of_rest_code(code) == asset
        assert spec.rest_code_of_asset(asset) == code
    assert spec.asset_of_rest_code("XXBT.F") == "BTC.F"


def test_nonces_strictly_increase_per_key() -> None:
    frozen = NonceSource(lambda: 1_700_000_000_000_000_000)
    values = [frozen.next() for _ in range(5)]
    assert values == [1_700_000_000_000_000 + i for i in range(5)]
    a = nonce_source("fp-test-1", lambda: 5_000_000)
    assert nonce_source("fp-test-1", lambda: 0) is a and nonce_source("fp-test-2", lambda: 0) is not a


# -- replies ----------------------------------------------------------------------------------


def _reply(payload: Any) -> orders.KrakenReply:
    return orders.decode_reply(json.dumps(payload).encode())


def _rest(name: str) -> orders.KrakenReply:
    return orders.decode_reply(sample_path(f"kraken/rest/{name}").read_bytes())


def test_add_order_reply_fixture_is_an_acceptance() -> None:
    cmd = _submit(BTC_USD.id, Side.BUY, "0.01", "50000", client_order_id="c1")
    event = orders.place_outcome(_rest("http_add_order_spot.json"), cmd, 5)
    assert event == OrderAccepted(
        ts=5, instrument_id=BTC_USD.id, client_order_id="c1", venue_order_id="OUF4EM-FRGI2-MQMWZD"
    )
    cancel = CancelOrder(ts=0, strategy_id="s", instrument_id=BTC_USD.id, client_order_id="c1")
    assert orders.cancel_outcome(_rest("http_cancel_order_spot.json"), cancel, 6) is None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("EOrder:Insufficient funds", RejectReason.INSUFFICIENT_BALANCE),
        ("EOrder:Post only order", RejectReason.POST_ONLY_WOULD_CROSS),
        ("EAPI:Invalid nonce", RejectReason.TIMESTAMP_OUTSIDE_WINDOW),
        ("EOrder:Rate limit exceeded", RejectReason.RATE_LIMITED),
        ("EOrder:Unknown order", RejectReason.UNKNOWN_ORDER),
        ("EOrder:Duplicate order", RejectReason.DUPLICATE_CLIENT_ID),
        ("EOrder:Order minimum not met", RejectReason.INVALID_ORDER),
        ("EGeneral:Permission denied", RejectReason.OTHER),
    ],
)
def test_error_replies_become_rejections(error: str, reason: RejectReason) -> None:
    cmd = _submit(BTC_USD.id, Side.BUY, "0.01", "50000", client_order_id="c1")
    event = orders.place_outcome(_reply({"error": [error]}), cmd, 1)
    assert isinstance(event, OrderRejected) and event.reason is reason and event.message == error
    amend = AmendOrder(ts=0, strategy_id="s", instrument_id=BTC_USD.id, client_order_id="c1", qty=1)
    rejected = orders.amend_outcome(_reply({"error": [error]}), amend, 1, None, 1)
    assert isinstance(rejected, OrderAmendRejected) and rejected.reason is reason


def test_ws_failure_fixture_error_maps() -> None:
    frame = json.loads(sample_path("kraken/ws_private/ws_add_order_response_failure.json").read_text())
    assert spec.reject_reason(frame["error"]) is RejectReason.INSUFFICIENT_BALANCE


def test_amend_success_reports_the_new_terms() -> None:
    amend = AmendOrder(ts=0, strategy_id="s", instrument_id=BTC_USD.id, client_order_id="c1", qty=7)
    event = orders.amend_outcome(_reply({"error": [], "result": {"amend_id": "TEZA4R-DSDGT-IJBOJK"}}), amend, 3, 9, 7)
    assert event == OrderAmended(ts=3, instrument_id=BTC_USD.id, client_order_id="c1", price=9, qty=7)


def test_open_orders_fixture_reports() -> None:
    reports = orders.open_order_reports(_rest("http_open_orders.json"), 9)
    by_id = {r.venue_order_id: r for r in reports}
    limit = by_id["O26VBY-ISGAE-JP5TLU"]
    assert limit.instrument_id == InstrumentId("kraken", "BTC/USDT") and limit.status is OrderStatus.ACCEPTED
    assert (limit.price, limit.qty, limit.filled_qty) == (fixed.parse("29500"), fixed.parse("0.5"), 0)
    assert limit.client_order_id == "O26VBY-ISGAE-JP5TLU"  # placed without cl_ord_id
    stop = by_id["OYEQF4-FDE4C-NMUYUI"]
    assert stop.instrument_id.symbol == "ETH/USDT" and stop.price is None


def test_query_reply_statuses_and_trades() -> None:
    info = {"status": "open", "vol": "1.0", "vol_exec": "0.25", "descr": {"pair": "XBTUSD", "ordertype": "limit",
            "price": "65000.0"}, "cl_ord_id": "c1", "trades": ["T1", "T2"]}  # fmt: skip
    got = orders.status_report(_reply({"error": [], "result": {"OABC": info}}), BTC_USD.id, "c1", 4)
    assert got is not None
    report, trades = got
    assert report.status is OrderStatus.PARTIALLY_FILLED and report.filled_qty == fixed.parse("0.25")
    assert report.venue_order_id == "OABC" and trades == ["T1", "T2"]
    for status, expected in [("closed", OrderStatus.FILLED), ("canceled", OrderStatus.CANCELED),
                             ("expired", OrderStatus.EXPIRED), ("pending", OrderStatus.ACCEPTED)]:  # fmt: skip
        one = {**info, "status": status, "vol_exec": "0"}
        got = orders.status_report(_reply({"error": [], "result": {"O": one}}), BTC_USD.id, "c1", 4)
        assert got is not None and got[0].status is expected
    unknown = orders.status_report(_reply({"error": [], "result": {}}), BTC_USD.id, "c1", 4)
    assert unknown is not None and unknown[0].status is None and unknown[0].venue_order_id is None
    invalid = orders.status_report(_reply({"error": ["EOrder:Invalid order"]}), BTC_USD.id, "c1", 4)
    assert invalid is not None and invalid[0].status is None
    assert orders.status_report(_reply({"error": ["EService:Unavailable"]}), BTC_USD.id, "c1", 4) is None


def test_trades_fixture_become_fills_in_quote() -> None:
    raw = json.loads(sample_path("kraken/rest/http_trades_history.json").read_text())
    reply = _reply({"error": [], "result": raw["result"]["trades"]})
    btc_usdt = INSTRUMENTS[InstrumentId("kraken", "BTC/USDT")]
    fills = orders.fills_of_trades(reply, btc_usdt, "c1", 3)
    first = next(f for f in fills if f.trade_id == "TCCCTY-WJ6EO-4FP4VZ")
    assert first.side is Side.BUY and first.liquidity is LiquiditySide.MAKER
    assert (first.last_qty, first.last_price, first.fee) == (
        fixed.parse("0.5"), fixed.parse("29500.50"), fixed.parse("23.60"),
    )  # fmt: skip
    assert first.fee_currency == "USDT" and first.venue_order_id == "O26VBY-ISGAE-JP5TLU"


def test_balance_fixtures() -> None:
    snap = orders.account_snapshot(_rest("http_spot_balance.json"), 1)
    assert [(b.currency, b.total, b.locked) for b in snap.balances] == [
        ("BTC", fixed.parse("0.5"), 0), ("ETH", fixed.parse("2"), 0), ("USD", fixed.parse("200000"), 0),
    ]  # fmt: skip
    ex = _reply({"error": [], "result": {"XXBT": {"balance": "1.5", "hold_trade": "0.25"}, "ZUSD": {"balance": "10"}}})
    assert [(b.currency, b.total, b.locked) for b in orders.account_snapshot(ex, 1).balances] == [
        ("BTC", fixed.parse("1.5"), fixed.parse("0.25")), ("USD", fixed.parse("10"), 0),
    ]  # fmt: skip


def test_malformed_replies_and_throttle_waits() -> None:
    with pytest.raises(orders.ReplyError):
        orders.decode_reply(b"<html>502</html>")
    with pytest.raises(orders.ReplyError):
        orders.place_outcome(
            _reply({"error": [], "result": {"txid": "not a list"}}), _submit(BTC_USD.id, Side.BUY, "1"), 1
        )
    assert orders.throttled_for_s("EService: Throttled: 1700000010", 1_700_000_000.0) == 10.0
    assert orders.throttled_for_s("EAPI:Rate limit exceeded", 0.0) is None
    assert spec.is_rate_limited("EService: Throttled: 1") and not spec.is_rate_limited("EOrder:Insufficient funds")
    assert msgspec.json.decode(b'{"error":[]}', type=orders.KrakenReply).first_error == ""
