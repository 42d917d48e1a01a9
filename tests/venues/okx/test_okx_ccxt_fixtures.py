"""Our OKX requests against ccxt's static request fixtures (``okx/ccxt_static``): same URL, query and body.

Covered (the calls tradeloop makes): createOrder for plain spot limit / market / client-id orders
(exact), and two swap orders (market, post-only) whose fixture also carries hedge-mode ``posSide`` or
attached TP/SL (``attachAlgoOrds``), compared without those keys since tradeloop trades one-way mode
without attached orders; cancelOrder and cancelOrders by ``ordId``; fetchOrder by ``ordId``;
fetchOpenOrders (all, spot, swap); editOrder of price and size; fetchBalance of the trading account;
fetchOrderBook. Out of scope, by case description: algo / trigger / conditional / trailing orders and
their cancels and edits, attached TP/SL edits, inverse (``BTC/USD:BTC``) and margin orders, quote-sized
market buys (``tgtCcy=quote_ccy``), hedged reduce-only orders, the funding account balance and the
``books-full`` endpoint.

ccxt sends numbers as the shortest decimal ("0.1"); so do we (after the grid check), so bodies match
as text once ``skipKeys`` (``clOrdId``, ``tag``: random per ccxt call) are removed from both sides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sample_path
from tradeloop.core import fixed
from tradeloop.model.commands import AmendOrder, SubmitOrder
from tradeloop.model.enums import OrderType, Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import SignedRequest
from tradeloop.venues.okx import orders
from tradeloop.venues.okx.instruments import OkxInstrument, instruments_by_symbol

FIXTURE = "okx/ccxt_static/ccxt_static_request_okx.json"
CREDS = Credentials("okx", "test", "key-ccxt", "secret-ccxt", "pass-ccxt")
NOW_MS = 1_700_000_000_000


def _spec(inst_id: str, tick: str, lot: str, ct_val: str | None = None) -> OkxInstrument:
    parts = inst_id.split("-")
    return OkxInstrument(
        inst_id=inst_id,
        inst_type="SWAP" if ct_val else "SPOT",
        base=parts[0],
        quote=parts[1],
        tick_sz=fixed.parse(tick),
        lot_sz=fixed.parse(lot),
        min_sz=fixed.parse(lot),
        ct_val=fixed.parse(ct_val) if ct_val else fixed.SCALE,
    )


# ccxt's test markets (values as OKX lists them); BTC pairs from tradeloop's own table.
SPECS = dict(instruments_by_symbol())
SPECS["LTC-USDT"] = _spec("LTC-USDT", "0.01", "0.000001")
SPECS["LTC-USDT-SWAP"] = _spec("LTC-USDT-SWAP", "0.01", "1", "1")


def _cases() -> dict[str, list[dict[str, Any]]]:
    data = json.loads(Path(sample_path(FIXTURE)).read_text())
    assert data["exchange"] == "okx" and data["skipKeys"] == ["clOrdId", "tag"]
    methods: dict[str, list[dict[str, Any]]] = data["methods"]
    return methods


def _case(method: str, description: str) -> dict[str, Any]:
    matches = [c for c in _cases()[method] if c["description"] == description]
    assert matches, f"{method}: no fixture case {description!r}"
    return matches[0]


def _strip(value: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(value, list):
        return [_strip(v, keys) for v in value]
    if isinstance(value, dict):
        return {k: _strip(v, keys) for k, v in value.items() if k not in keys}
    return value


def _assert_same(req: SignedRequest, case: dict[str, Any], ignore: tuple[str, ...] = ()) -> None:
    skip = ("clOrdId", "tag", *ignore)
    assert req.url("https://www.okx.com") == case["url"]
    if case.get("output") is None:
        assert req.body is None
        return
    assert req.body is not None
    ours, theirs = json.loads(req.body), json.loads(case["output"])
    assert _strip(ours, skip) == _strip(theirs, skip)
    if not ignore:  # same keys in the same order: the text matches once skipKeys are gone
        assert json.dumps(_strip(ours, skip)) == json.dumps(_strip(theirs, skip))


def _submit(symbol: str, side: Side, qty: str, price: str | None, **kw: Any) -> SubmitOrder:
    return SubmitOrder(
        ts=0,
        strategy_id="s",
        instrument_id=InstrumentId("okx", symbol),
        side=side,
        qty=fixed.parse(qty),
        price=fixed.parse(price) if price else None,
        client_order_id=kw.pop("client_order_id", "tl1abc"),
        **kw,
    )


PLACE: list[tuple[str, Callable[[], SubmitOrder], tuple[str, ...]]] = [
    ("Spot limit buy order", lambda: _submit("LTC-USDT", Side.BUY, "2", "50"), ()),
    ("Spot market buy order", lambda: _submit("LTC-USDT", Side.BUY, "0.1", None, order_type=OrderType.MARKET), ()),
    (
        "spot order with clientOrderid",
        lambda: _submit("LTC-USDT", Side.BUY, "0.5", "50", client_order_id="mycustomid"),
        (),
    ),
    # 1 contract of LTC-USDT-SWAP is 1 LTC; hedge-mode posSide is not sent in one-way mode.
    (
        "Swap market buy with posSide = long",
        lambda: _submit("LTC-USDT-SWAP", Side.BUY, "1", None, order_type=OrderType.MARKET),
        ("posSide",),
    ),
    # 1 contract of BTC-USDT-SWAP is 0.01 BTC; attached TP/SL and posSide are not tradeloop's.
    (
        "Create a swap postOnly limit order with tp + sl attached (type 3)",
        lambda: _submit("BTC-USDT-SWAP", Side.BUY, "0.01", "25000", post_only=True),
        ("posSide", "attachAlgoOrds"),
    ),
]


@pytest.mark.parametrize(("description", "make", "ignore"), PLACE, ids=[p[0] for p in PLACE])
def test_create_order(description: str, make: Callable[[], SubmitOrder], ignore: tuple[str, ...]) -> None:
    cmd = make()
    req = orders.place_order(CREDS, NOW_MS, cmd, SPECS[cmd.instrument_id.symbol])
    _assert_same(req, _case("createOrder", description), ignore)
    assert req.method == "POST" and not req.idempotent


def test_client_order_id_is_sent_as_given() -> None:
    req = orders.place_order(CREDS, NOW_MS, PLACE[2][1](), SPECS["LTC-USDT"])
    assert req.body is not None and json.loads(req.body)[0]["clOrdId"] == "mycustomid"
    assert json.loads(_case("createOrder", "spot order with clientOrderid")["output"])[0]["clOrdId"] == "mycustomid"


@pytest.mark.parametrize(
    ("description", "inst_id", "ord_id"),
    [
        ("Spot cancel order", "LTC-USDT", "635561007938625536"),
        ("Swap cancel order", "BTC-USDT-SWAP", "642666885133189120"),
    ],
)
def test_cancel_order(description: str, inst_id: str, ord_id: str) -> None:
    req = orders.cancel_order(CREDS, NOW_MS, inst_id, venue_order_id=ord_id)
    _assert_same(req, _case("cancelOrder", description))


@pytest.mark.parametrize(
    ("description", "inst_id"),
    [("Cancel multiple spot orders", "LTC-USDT"), ("Cancel multiple swap orders", "LTC-USDT-SWAP")],
)
def test_cancel_orders(description: str, inst_id: str) -> None:
    case = _case("cancelOrders", description)
    ids = case["input"][0]
    req = orders.cancel_batch(CREDS, NOW_MS, [(inst_id, i) for i in ids])
    _assert_same(req, case)


@pytest.mark.parametrize(
    ("description", "inst_id"),
    [("Spot fetch order", "LTC-USDT"), ("Swap fetch order", "ADA-USDT-SWAP")],
)
def test_fetch_order(description: str, inst_id: str) -> None:
    case = _case("fetchOrder", description)
    req = orders.query_order(CREDS, NOW_MS, inst_id, venue_order_id=case["input"][0])
    _assert_same(req, case)
    assert req.method == "GET" and req.idempotent


@pytest.mark.parametrize(
    ("description", "inst_id"),
    [
        ("Fetch open orders with no arguments", None),
        ("Spot fetch open orders", "LTC-USDT"),
        ("Swap fetch open orders", "ADA-USDT-SWAP"),
    ],
)
def test_fetch_open_orders(description: str, inst_id: str | None) -> None:
    _assert_same(orders.pending_orders(CREDS, NOW_MS, inst_id), _case("fetchOpenOrders", description))


def test_edit_order() -> None:
    case = _case("editOrder", "Spot edit an orders price and amount")
    cmd = AmendOrder(
        ts=0,
        strategy_id="s",
        instrument_id=InstrumentId("okx", "BTC-USDT"),
        client_order_id="tl1abc",
        price=fixed.parse("55"),
        qty=fixed.parse("0.05"),
    )
    req = orders.amend_order(CREDS, NOW_MS, cmd, SPECS["BTC-USDT"], venue_order_id=case["input"][0])
    _assert_same(req, case)


@pytest.mark.parametrize("index", [2, 3])
def test_fetch_balance_of_the_trading_account(index: int) -> None:
    case = _cases()["fetchBalance"][index]
    assert case["description"] == "spot balance"
    _assert_same(orders.balance(CREDS, NOW_MS), case)


@pytest.mark.parametrize(
    ("description", "inst_id"), [("spot orderbook", "BTC-USDT"), ("Swap orderbook", "BTC-USDT-SWAP")]
)
def test_fetch_order_book(description: str, inst_id: str) -> None:
    _assert_same(orders.book_snapshot(inst_id, 5, source=None), _case("fetchOrderBook", description))


def test_every_in_scope_case_is_named_here() -> None:
    """The fixture's plain order cases are all covered above (a new one would show up here)."""
    plain = [
        c["description"]
        for c in _cases()["createOrder"]
        if c["url"].endswith("/batch-orders")
        and "attachAlgoOrds" not in (c["output"] or "")
        and "posSide" not in (c["output"] or "")
        and '"tdMode":"cash"' in (c["output"] or "")
        and "quote_ccy" not in (c["output"] or "")
    ]
    assert sorted(plain) == sorted(d for d, _, ignore in PLACE if not ignore)
