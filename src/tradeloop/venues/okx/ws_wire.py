"""OKX WebSocket order ops on the private socket, as pure functions (no I/O).

An op is ``{"id":"<1-32 alnum>","op":"order"|"amend-order"|"cancel-order"|...,"args":[{...}]}``,
unsigned (the connection is logged in); the reply is ``{"id","op","code","msg","data":[{"ordId",
"clOrdId","sCode","sMsg",...}],"inTime","outTime"}`` with the same per-item ``sCode`` as REST. Args
name the instrument by ``instIdCode`` when the instrument listing gave one (OKX ignores ``instId`` in
WebSocket order ops since 2026), else by ``instId``; the other fields are those of the REST bodies
(:mod:`tradeloop.venues.okx.orders`).

* :func:`ws_place_args`, :func:`ws_amend_args`, :func:`ws_cancel_args` and :func:`ws_request`: the
  reference builders (dicts, then ``msgspec`` JSON);
* :class:`WsFrames`: the same frames, pre-built per instrument for the send path (equal byte for byte);
* :func:`ws_reply`: a reply's request id and per-item :class:`~tradeloop.venues.okx.orders.AckOutcome`;
* :class:`OkxOpWire` and :func:`read_login_reply`: the OKX dialect for the venue-neutral
  :class:`~tradeloop.venues.transport.order_entry.WsOrderEntry` and
  :class:`~tradeloop.venues.transport.order_socket.OrderSocket`.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import msgspec

from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.venues.okx.instruments import OkxInstrument
from tradeloop.venues.okx.orders import (
    MAX_CL_ORD_ID,
    AckOutcome,
    OkxRequestError,
    ack_outcome,
    check_client_id,
    order_args,
)
from tradeloop.venues.okx.schemas import EventReply, OrderAck
from tradeloop.venues.okx.spec import OUTCOME_UNKNOWN_CODES
from tradeloop.venues.transport.order_entry import OpVerdict, WsOp
from tradeloop.venues.transport.order_socket import LoginReply

__all__ = [
    "OkxOpWire",
    "WsFrames",
    "WsReply",
    "read_login_reply",
    "ws_amend_args",
    "ws_cancel_args",
    "ws_frame",
    "ws_place_args",
    "ws_reply",
    "ws_request",
]


def _inst_ref(spec: OkxInstrument) -> dict[str, object]:
    """How a WebSocket order op names the instrument: ``instIdCode`` when known, else ``instId``."""
    return {"instIdCode": spec.inst_id_code} if spec.inst_id_code is not None else {"instId": spec.inst_id}


def ws_place_args(cmd: SubmitOrder, spec: OkxInstrument, *, td_mode: str | None = None) -> dict[str, object]:
    """The args item of an ``order`` op: :func:`order_args` with the instrument named by :func:`_inst_ref`."""
    args = order_args(cmd, spec, td_mode=td_mode)
    del args["instId"]
    return {**_inst_ref(spec), **args}


def ws_amend_args(cmd: AmendOrder, spec: OkxInstrument) -> dict[str, object]:
    """The args item of an ``amend-order`` op (by ``clOrdId``; ``newSz`` is the new total size)."""
    if cmd.instrument_id.symbol != spec.inst_id:
        raise OkxRequestError(f"command for {cmd.instrument_id} given the spec of {spec.inst_id}")
    if cmd.price is None and cmd.qty is None:
        raise OkxRequestError("an amend changes the price, the size or both")
    check_client_id(cmd.client_order_id)
    args = _inst_ref(spec)
    args["clOrdId"] = cmd.client_order_id
    if cmd.qty is not None:
        args["newSz"] = spec.sz_text(cmd.qty)
    if cmd.price is not None:
        args["newPx"] = spec.px_text(cmd.price)
    return args


def ws_cancel_args(cmd: CancelOrder, spec: OkxInstrument) -> dict[str, object]:
    """The args item of a ``cancel-order`` op (by ``clOrdId``)."""
    if cmd.instrument_id.symbol != spec.inst_id:
        raise OkxRequestError(f"command for {cmd.instrument_id} given the spec of {spec.inst_id}")
    check_client_id(cmd.client_order_id)
    args = _inst_ref(spec)
    args["clOrdId"] = cmd.client_order_id
    return args


def ws_request(request_id: str, op: str, args: dict[str, object]) -> bytes:
    """The frame of one WebSocket order op: ``{"id":..,"op":..,"args":[args]}`` (compact JSON)."""
    if not (request_id and len(request_id) <= MAX_CL_ORD_ID and request_id.isascii() and request_id.isalnum()):
        raise OkxRequestError(f"request id {request_id!r} is not 1-32 ASCII letters and digits")
    return msgspec.json.encode({"id": request_id, "op": op, "args": [args]})


_TEXT_CACHE_MAX: Final = 4096


class WsFrames:
    """One instrument's order-op frames, pre-built as far as they do not depend on the order (pure).

    :meth:`place`, :meth:`amend` and :meth:`cancel` return a frame's *tail*: everything after the
    request id, so that :func:`ws_frame` ``(request_id, tail)`` is byte for byte
    ``ws_request(str(request_id), op, args)`` of the matching ``ws_*_args`` builder (same keys, same
    order, compact JSON). The instrument reference is formatted once; amend and cancel frames are
    concatenated from it (client order ids are checked to be ASCII letters and digits, so nothing
    needs escaping) and price and size texts are cached, since a market maker requotes at a few
    prices over and over.
    """

    __slots__ = ("_amend", "_cancel", "_px", "_sz", "spec")

    def __init__(self, spec: OkxInstrument) -> None:
        self.spec = spec
        ref = msgspec.json.encode(_inst_ref(spec))[1:-1]
        self._amend = b'","op":"amend-order","args":[{' + ref + b',"clOrdId":"'
        self._cancel = b'","op":"cancel-order","args":[{' + ref + b',"clOrdId":"'
        self._px: dict[int, bytes] = {}
        self._sz: dict[int, bytes] = {}

    def place(self, cmd: SubmitOrder) -> bytes:
        """The tail of an ``order`` op (raises :class:`OkxRequestError` / ``SizeError`` like :func:`order_args`)."""
        args = msgspec.json.encode([ws_place_args(cmd, self.spec)])
        return b'","op":"order","args":' + args + b"}"

    def amend(self, cmd: AmendOrder) -> bytes:
        """The tail of an ``amend-order`` op by ``clOrdId``."""
        cid = cmd.client_order_id
        check_client_id(cid)
        qty, price = cmd.qty, cmd.price
        if qty is None:
            if price is None:
                raise OkxRequestError("an amend changes the price, the size or both")
            return b'%b%b","newPx":"%b"}]}' % (self._amend, cid.encode(), self.px(price))
        if price is None:
            return b'%b%b","newSz":"%b"}]}' % (self._amend, cid.encode(), self.sz(qty))
        return b'%b%b","newSz":"%b","newPx":"%b"}]}' % (self._amend, cid.encode(), self.sz(qty), self.px(price))

    def cancel(self, cmd: CancelOrder) -> bytes:
        """The tail of a ``cancel-order`` op by ``clOrdId``."""
        cid = cmd.client_order_id
        check_client_id(cid)
        return b'%b%b"}]}' % (self._cancel, cid.encode())

    def px(self, price: int) -> bytes:
        """``px`` text of a price (checked against the tick grid), cached."""
        text = self._px.get(price)
        if text is None:
            if len(self._px) >= _TEXT_CACHE_MAX:
                self._px.clear()
            text = self._px[price] = self.spec.px_text(price).encode()
        return text

    def sz(self, qty: int) -> bytes:
        """``sz`` text of a base quantity (contracts for swaps, checked against the lot grid), cached."""
        text = self._sz.get(qty)
        if text is None:
            if len(self._sz) >= _TEXT_CACHE_MAX:
                self._sz.clear()
            text = self._sz[qty] = self.spec.sz_text(qty).encode()
        return text


def ws_frame(request_id: int, tail: bytes) -> bytes:
    """An order-op frame from its request id (a non-negative integer, written as digits) and a
    :class:`WsFrames` tail."""
    return b'{"id":"%d%b' % (request_id, tail)


class _WsReply(msgspec.Struct, frozen=True):
    id: str = ""
    op: str = ""
    code: str = ""
    msg: str = ""
    data: list[OrderAck] = []


_WS_REPLY = msgspec.json.Decoder(_WsReply)


class WsReply(NamedTuple):
    """The answer to one WebSocket order op: its request id, op and every item's outcome."""

    request_id: str
    op: str
    acks: list[AckOutcome]


def ws_reply(payload: bytes) -> WsReply | None:
    """A private-socket frame as the reply to an order op, or ``None`` when it is not one (pushes, events).

    A reply without items (a refused op: not logged in, invalid args, rate limited) gives one outcome
    from its envelope ``code``; with items, each item's ``sCode`` decides (envelope "1"/"2" only says
    that all or some failed).
    """
    try:
        reply = _WS_REPLY.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not reply.id or not reply.op:
        return None
    if not reply.data:
        ok = reply.code == "0"
        return WsReply(reply.id, reply.op, [AckOutcome(ok, "" if ok else reply.code, reply.msg or "refused")])
    return WsReply(reply.id, reply.op, [ack_outcome(item) for item in reply.data])


class OkxOpWire:
    """OKX's order ops for :class:`~tradeloop.venues.transport.order_entry.WsOrderEntry`: an op's tail
    (:class:`WsFrames`) behind its request id; replies by ``id``; ``sCode`` 50004 is an unknown outcome."""

    def frame(self, request_id: int, op: WsOp) -> bytes:
        return ws_frame(request_id, op.tail)

    def read_reply(self, payload: bytes) -> tuple[str, WsReply] | None:
        if b'"op"' not in payload:
            return None
        reply = ws_reply(payload)
        return None if reply is None else (reply.request_id, reply)

    def verdict(self, reply: WsReply) -> OpVerdict:
        ack = reply.acks[0]
        if ack.code in OUTCOME_UNKNOWN_CODES:
            return OpVerdict.UNKNOWN
        if ack.rate_limited:
            return OpVerdict.RATE_LIMITED
        return OpVerdict.DONE


_EVENT = msgspec.json.Decoder(EventReply)


def read_login_reply(payload: bytes) -> LoginReply | None:
    """The answer to ``op: login`` (``event`` ``login`` with code 0, or ``error``); ``None`` for other frames."""
    try:
        event = _EVENT.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if event.event not in ("login", "error"):
        return None
    accepted = event.event == "login" and event.code in ("", "0")
    return LoginReply(accepted, "" if accepted else f"{event.code} {event.msg}")
