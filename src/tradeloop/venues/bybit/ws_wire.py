"""Bybit v5 order entry on the trade socket (``/v5/trade``), as pure functions (no I/O).

An op is ``{"reqId":"<id>","header":{"X-BAPI-TIMESTAMP":"<ms>","X-BAPI-RECV-WINDOW":"<ms>"},
"op":"order.create"|"order.amend"|"order.cancel","args":[{<the REST body>}]}``: the connection is
authenticated (``auth``, signed like the private socket's), each op carries only a timestamp that
must fall in ``server - recvWindow <= timestamp < server + 1000``. The reply is ``{"reqId","retCode",
"retMsg","op","data":{"orderId","orderLinkId"},"header":{X-Bapi-Limit...},"connId"}``; ``retCode`` 0
only says Bybit took the op (the private stream says what became of the order).

* :func:`ws_request`: the reference frame builder (a dict, then ``msgspec`` JSON);
* :class:`WsTails`: one instrument's op *tails* (everything after the header) from the REST body
  builders of :mod:`tradeloop.venues.bybit.orders`, so both paths send the same fields; :func:`ws_frame`
  puts the request id and header in front (equal byte for byte to :func:`ws_request`);
* :func:`read_trade_reply`, :class:`BybitOpWire`: replies and their verdict for the venue-neutral
  :class:`~tradeloop.venues.transport.order_entry.WsOrderEntry`;
* :func:`auth_frame`, :func:`read_auth_reply`: the login step of the
  :class:`~tradeloop.venues.transport.order_socket.OrderSocket`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from tradeloop.model.commands import AmendOrder, SubmitOrder
from tradeloop.model.instrument import Instrument
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.auth import ws_auth_args
from tradeloop.venues.bybit.orders import amend_body, cancel_body, place_body
from tradeloop.venues.transport.order_entry import OpVerdict, WsOp
from tradeloop.venues.transport.order_socket import LoginReply

__all__ = [
    "BybitOpWire",
    "TradeReply",
    "WsTails",
    "auth_frame",
    "read_auth_reply",
    "read_trade_reply",
    "ws_frame",
    "ws_request",
]

_ENC: Final = msgspec.json.Encoder()


def ws_request(request_id: str, op: str, args: dict[str, object], timestamp_ms: int, recv_window_ms: int) -> bytes:
    """The frame of one trade-socket op (compact JSON, keys in the order Bybit documents them)."""
    header = {"X-BAPI-TIMESTAMP": str(timestamp_ms), "X-BAPI-RECV-WINDOW": str(recv_window_ms)}
    return _ENC.encode({"reqId": request_id, "header": header, "op": op, "args": [args]})


def ws_frame(request_id: int, timestamp_ms: int, recv_window_ms: int, tail: bytes) -> bytes:
    """An op's frame from its request id (digits), the signing clock's reading and a :class:`WsTails` tail."""
    return b'{"reqId":"%d","header":{"X-BAPI-TIMESTAMP":"%d","X-BAPI-RECV-WINDOW":"%d"},%b' % (
        request_id,
        timestamp_ms,
        recv_window_ms,
        tail,
    )


def _head(op: str) -> bytes:
    return b'"op":"' + op.encode() + b'","args":['


_CREATE_HEAD: Final = _head(spec.WS_CREATE)
_AMEND_HEAD: Final = _head(spec.WS_AMEND)


class WsTails:
    """One instrument's op tails (``"op":..,"args":[..]}``): the REST bodies, encoded the same way.

    Place and amend encode :func:`~tradeloop.venues.bybit.orders.place_body` /
    :func:`~tradeloop.venues.bybit.orders.amend_body`; a cancel by client order id is concatenated from
    parts formatted once per instrument (an ``orderLinkId`` is checked to be ``[A-Za-z0-9_-]``, so nothing
    needs escaping). Each raises ``ValueError`` for what Bybit cannot take, like the body builders.
    """

    __slots__ = ("_cancel_head", "_cancel_tail", "inst")

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        before, after = _ENC.encode(cancel_body(inst, client_order_id="0")).split(b'"orderLinkId":"0"')
        self._cancel_head = _head(spec.WS_CANCEL) + before + b'"orderLinkId":"'
        self._cancel_tail = b'"' + after + b"]}"

    def place(self, cmd: SubmitOrder) -> bytes:
        """The tail of an ``order.create``."""
        return _CREATE_HEAD + _ENC.encode(place_body(cmd, self.inst)) + b"]}"

    def amend(self, cmd: AmendOrder) -> bytes:
        """The tail of an ``order.amend`` by ``orderLinkId``."""
        return _AMEND_HEAD + _ENC.encode(amend_body(cmd, self.inst)) + b"]}"

    def cancel(self, client_order_id: str) -> bytes:
        """The tail of an ``order.cancel`` by ``orderLinkId``."""
        cancel_body(self.inst, client_order_id=client_order_id)  # checks the id (cheap next to a send)
        return self._cancel_head + client_order_id.encode() + self._cancel_tail


class TradeOrderData(msgspec.Struct, frozen=True):
    orderId: str = ""
    orderLinkId: str = ""


class TradeReply(msgspec.Struct, frozen=True):
    """The answer to one trade-socket op."""

    retCode: int
    reqId: str = ""
    retMsg: str = ""
    op: str = ""
    data: TradeOrderData | None = None


_REPLY: Final = msgspec.json.Decoder(TradeReply)


def read_trade_reply(payload: bytes) -> TradeReply | None:
    """A trade-socket frame as the reply to an order op (it has a ``reqId`` and an ``order.*`` op), else ``None``."""
    try:
        reply = _REPLY.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not reply.reqId or not reply.op.startswith("order."):
        return None
    return reply


class BybitOpWire:
    """Bybit's order ops for :class:`~tradeloop.venues.transport.order_entry.WsOrderEntry`: each frame is
    stamped with ``now_ms()`` (the client's clock corrected by its measured offset, as REST signing) when
    it is written; replies by ``reqId``; verdicts from ``retCode`` (see :mod:`tradeloop.venues.bybit.spec`)."""

    __slots__ = ("_now_ms", "_recv_window_ms")

    def __init__(self, now_ms: Callable[[], int], recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS) -> None:
        self._now_ms = now_ms
        self._recv_window_ms = recv_window_ms

    def frame(self, request_id: int, op: WsOp) -> bytes:
        return ws_frame(request_id, self._now_ms(), self._recv_window_ms, op.tail)

    def read_reply(self, payload: bytes) -> tuple[str, TradeReply] | None:
        if b'"reqId"' not in payload:
            return None
        reply = read_trade_reply(payload)
        return None if reply is None else (reply.reqId, reply)

    def verdict(self, reply: TradeReply) -> OpVerdict:
        code = reply.retCode
        if code == 0:
            return OpVerdict.DONE
        if code in spec.WS_RETRY_CODES:
            return OpVerdict.RATE_LIMITED
        if code in spec.WS_OUTCOME_UNKNOWN_CODES:
            return OpVerdict.UNKNOWN
        return OpVerdict.DONE


def auth_frame(api_key: str, secret: str, expires_ms: int) -> bytes:
    """``{"op":"auth","args":[apiKey, expires_ms, signature]}``, signed like the private socket's auth."""
    return _ENC.encode({"op": "auth", "args": ws_auth_args(api_key, secret, expires_ms)})


class _AuthReply(msgspec.Struct, frozen=True):
    op: str = ""
    retCode: int | None = None
    success: bool | None = None
    retMsg: str = ""
    ret_msg: str = ""


_AUTH: Final = msgspec.json.Decoder(_AuthReply)


def read_auth_reply(payload: bytes) -> LoginReply | None:
    """The answer to ``op: auth`` (``retCode`` 0 on the trade socket, ``success`` on the private one);
    ``None`` for other frames."""
    try:
        reply = _AUTH.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if reply.op != "auth":
        return None
    accepted = reply.retCode == 0 if reply.retCode is not None else reply.success is True
    return LoginReply(accepted, "" if accepted else f"{reply.retCode} {reply.retMsg or reply.ret_msg}")
