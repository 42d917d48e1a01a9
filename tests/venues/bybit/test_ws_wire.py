"""Bybit trade-socket frames (``/v5/trade``) without sockets: the op frames carry the REST bodies byte for
byte, the header is stamped by the wire's (offset-corrected) clock, ``auth`` is signed like the private
socket's (checked against a hand-computed HMAC and the venue notes' vector), and replies get their
verdicts (a real ``order.create`` reply and real ``auth`` answers read in place from the shared data).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.venues.ws_order_entry_support import Commands
from tradeloop.core import fixed
from tradeloop.model.enums import OrderType, Side, TimeInForce
from tradeloop.venues.bybit import orders, spec
from tradeloop.venues.bybit.connector import CONNECTOR
from tradeloop.venues.bybit.ws_wire import (
    BybitOpWire,
    WsTails,
    auth_frame,
    read_auth_reply,
    read_trade_reply,
    ws_frame,
    ws_request,
)
from tradeloop.venues.transport.order_entry import OpVerdict, WsOp

P = fixed.parse
BTC = spec.INSTRUMENTS[spec.VENUE_SPOT][0]
LINEAR = spec.INSTRUMENTS[spec.VENUE_LINEAR][0]
CREDS = CONNECTOR.test_credentials()
DATA = Path("/work/shared/data/bybit/ws_private")
CMDS = Commands(BTC)
submit_cmd, amend_cmd, cancel_cmd = CMDS.submit, CMDS.amend, CMDS.cancel


def test_frames_carry_the_rest_bodies_byte_for_byte() -> None:
    for inst in (BTC, LINEAR):
        tails = WsTails(inst)
        price, qty = ("60000.1", "0.002") if inst is BTC else ("60000.5", "0.01")
        commands: list[tuple[str, Any, bytes, str]] = []
        for n, kw in enumerate([{"post_only": True}, {"time_in_force": TimeInForce.IOC}, {}]):
            place = submit_cmd(f"p{n}", Side.SELL, qty, price, inst=inst, **kw)
            rest = orders.place_order(CREDS, 1, place, inst).body
            commands.append((spec.WS_CREATE, orders.place_body(place, inst), tails.place(place), rest))
        market = submit_cmd("m1", Side.BUY, qty, None, inst=inst, order_type=OrderType.MARKET, reduce_only=True)
        commands.append(
            (
                spec.WS_CREATE,
                orders.place_body(market, inst),
                tails.place(market),
                orders.place_order(CREDS, 1, market, inst).body,
            )
        )
        for amend in (amend_cmd("a1", price=price, inst=inst), amend_cmd("a2", qty=qty, price=price, inst=inst)):
            rest = orders.amend_order(CREDS, 1, amend, inst).body
            commands.append((spec.WS_AMEND, orders.amend_body(amend, inst), tails.amend(amend), rest))
        rest = orders.cancel_order(CREDS, 1, inst, client_order_id="c-1_x").body
        commands.append(
            (spec.WS_CANCEL, orders.cancel_body(inst, client_order_id="c-1_x"), tails.cancel("c-1_x"), rest)
        )
        for n, (op, body, tail, rest_body) in enumerate(commands):
            frame = ws_frame(n, 1_700_000_000_123, 5000, tail)
            assert frame == ws_request(str(n), op, body, 1_700_000_000_123, 5000)
            assert rest_body is not None and b'"args":[' + rest_body.encode() + b"]}" in frame
    # Written out by hand: a spot post-only place.
    frame = ws_frame(
        7, 1_700_000_000_123, 5000, WsTails(BTC).place(submit_cmd("q1", Side.BUY, "0.01", "59990.5", post_only=True))
    )
    assert msgspec.json.decode(frame) == {
        "reqId": "7",
        "header": {"X-BAPI-TIMESTAMP": "1700000000123", "X-BAPI-RECV-WINDOW": "5000"},
        "op": "order.create",
        "args": [
            {
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Limit",
                "category": "spot",
                "qty": "0.01",
                "price": "59990.5",
                "timeInForce": "PostOnly",
                "orderLinkId": "q1",
            }
        ],
    }


def test_frames_refuse_what_bybit_cannot_take() -> None:
    tails = WsTails(BTC)
    with pytest.raises(ValueError, match="orderLinkId"):
        tails.cancel('x"y')  # a quote would break the concatenated JSON
    with pytest.raises(ValueError, match="new price or size"):
        tails.amend(amend_cmd("ok1"))
    with pytest.raises(ValueError, match="not on the tick"):
        tails.place(submit_cmd("ok2", Side.BUY, "0.01", "60000.005"))
    with pytest.raises(ValueError, match="post-only"):
        tails.place(submit_cmd("ok3", Side.BUY, "0.01", None, order_type=OrderType.MARKET, post_only=True))


def test_the_header_is_stamped_by_the_clock_the_wire_holds() -> None:
    readings = iter([1_000, 2_000])
    wire = BybitOpWire(lambda: next(readings), recv_window_ms=3000)
    op = WsOp(spec.WS_CANCEL, cancel_cmd("c1"), WsTails(BTC).cancel("c1"))
    first, second = (msgspec.json.decode(wire.frame(n, op)) for n in (1, 2))
    assert (first["reqId"], first["header"]) == ("1", {"X-BAPI-TIMESTAMP": "1000", "X-BAPI-RECV-WINDOW": "3000"})
    assert (second["reqId"], second["header"]["X-BAPI-TIMESTAMP"]) == ("2", "2000")


def test_auth_is_signed_like_the_private_socket() -> None:
    # The vector of the venue notes (secret borrowed from a public example).
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    frame = msgspec.json.decode(auth_frame("key-1", secret, 1662350400000))
    by_hand = hmac.new(secret.encode(), b"GET/realtime1662350400000", hashlib.sha256).hexdigest()
    assert by_hand == "71c1259a8a4ca01b8289c40aaa5716fa9d400089f9d1cf54fc742a3bc1885fbf"
    assert frame == {"op": "auth", "args": ["key-1", 1662350400000, by_hand]}


def test_replies_and_verdicts() -> None:
    wire = BybitOpWire(lambda: 0)
    real = (DATA / "ws_order_response.json").read_bytes()  # a real order.create reply
    got = wire.read_reply(real)
    assert got is not None
    rid, reply = got
    assert (rid, reply.retCode, reply.op) == ("order-req-001", 0, "order.create")
    assert reply.data is not None and (reply.data.orderId, reply.data.orderLinkId) == (
        "1726025498520715008",
        "client-order-1",
    )
    assert wire.verdict(reply) is OpVerdict.DONE

    def verdict(code: int) -> OpVerdict:
        frame = b'{"reqId":"3","retCode":%d,"retMsg":"x","op":"order.amend","data":{},"connId":"c"}' % code
        answered = read_trade_reply(frame)
        assert answered is not None and answered.reqId == "3"
        return wire.verdict(answered)

    assert [verdict(c) for c in (10006, 10429, 20003, 10019)] == [OpVerdict.RATE_LIMITED] * 4
    assert [verdict(c) for c in (10000, 10016)] == [OpVerdict.UNKNOWN] * 2
    assert [verdict(c) for c in (110001, 170131, 10001)] == [OpVerdict.DONE] * 3
    assert wire.read_reply(b'{"retCode":0,"retMsg":"OK","op":"pong","data":["1"],"connId":"c"}') is None
    assert wire.read_reply(b'{"retCode":0,"retMsg":"OK","op":"auth","connId":"c"}') is None
    assert read_trade_reply(b"not json") is None
    # Auth answers: the trade socket's retCode shape, and the real private-socket ones (success flag).
    assert read_auth_reply(b'{"retCode":0,"retMsg":"OK","op":"auth","connId":"c"}') == (True, "")
    assert read_auth_reply(b'{"retCode":10004,"retMsg":"Invalid sign","op":"auth","connId":"c"}') == (
        False,
        "10004 Invalid sign",
    )
    assert read_auth_reply((DATA / "ws_auth_success.json").read_bytes()) == (True, "")
    refused = read_auth_reply((DATA / "ws_auth_failure.json").read_bytes())
    assert refused is not None and not refused.accepted and "10003" in refused.detail
    assert read_auth_reply(real) is None
