"""Kraken WebSocket v2 order methods on ``ws-auth``, as pure functions (no I/O).

A request is ``{"method":"add_order"|"amend_order"|"cancel_order","params":{...,"token":".."},
"req_id":N}``: no login step, the session token from ``GetWebSocketsToken`` rides in every request's
params. The reply is ``{"method","req_id","success","result":{"order_id","cl_ord_id",...},"error",
"time_in","time_out"}``; ``error`` is one of the REST ``error[]`` strings
(:func:`tradeloop.venues.kraken.spec.reject_reason`). Params say what the REST requests of
:mod:`tradeloop.venues.kraken.orders` say, in v2's names: amounts are JSON numbers written from the
same exact decimals (``wire_amount``), ``post_only`` is a boolean (REST ``oflags=post``), a sell's
``fee_preference`` is ``quote`` (REST ``oflags=fciq``), ``time_in_force`` is lower case and sent for
limit orders other than GTC, and the client order id is :func:`~tradeloop.venues.kraken.spec.to_cl_ord_id`.

* :func:`place_params`, :func:`amend_params`, :func:`cancel_params` and :func:`ws_request`: the
  reference builders (dicts, then ``msgspec`` JSON);
* :class:`WsFrames`: the same frames, pre-built per instrument for the send path (equal byte for byte):
  an op's *tail* is prepared at submit time, :func:`ws_frame` adds the token and the request id;
* :func:`read_reply` and the reply mappers (:func:`place_event`, :func:`amend_event`,
  :func:`cancel_refusal`), mapping refusals like the REST replies;
* :class:`KrakenOpWire`: the Kraken dialect for
  :class:`~tradeloop.venues.transport.order_entry.WsOrderEntry`.
"""

from __future__ import annotations

from typing import Final

import msgspec

from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.enums import OrderType, Side, TimeInForce
from tradeloop.model.events import OrderAccepted, OrderAmended, OrderAmendRejected, OrderCancelRejected, OrderRejected
from tradeloop.model.instrument import Instrument
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.orders import wire_amount
from tradeloop.venues.transport.order_entry import OpVerdict, WsOp

__all__ = [
    "KrakenOpWire",
    "WsFrames",
    "WsOrderReply",
    "amend_event",
    "amend_params",
    "cancel_params",
    "cancel_refusal",
    "place_event",
    "place_params",
    "read_reply",
    "ws_frame",
    "ws_request",
]


def _number(text: str) -> msgspec.Raw:
    """An exact decimal as a JSON number (``0.1``, ``50``), never through a float."""
    return msgspec.Raw(wire_amount(text).encode())


def place_params(cmd: SubmitOrder, instrument: Instrument) -> dict[str, object]:
    """``add_order`` params (without the token): what ``AddOrder`` sends, in v2's names."""
    if cmd.instrument_id != instrument.id:
        raise ValueError(f"order for {cmd.instrument_id} built with the instrument of {instrument.id}")
    params: dict[str, object] = {
        "order_type": "market" if cmd.order_type is OrderType.MARKET else "limit",
        "side": "buy" if cmd.side is Side.BUY else "sell",
        "order_qty": _number(instrument.qty_to_str(cmd.qty)),
        "symbol": instrument.id.symbol,
    }
    if cmd.order_type is OrderType.LIMIT:
        if cmd.price is None:
            raise ValueError(f"limit order {cmd.client_order_id} has no price")
        params["limit_price"] = _number(instrument.price_to_str(cmd.price))
        if cmd.time_in_force is not TimeInForce.GTC:
            params["time_in_force"] = cmd.time_in_force.value.lower()
    if cmd.post_only:
        params["post_only"] = True
    if cmd.side is Side.SELL:
        params["fee_preference"] = "quote"
    if cmd.client_order_id:
        params["cl_ord_id"] = spec.to_cl_ord_id(cmd.client_order_id)
    return params


def amend_params(cmd: AmendOrder, instrument: Instrument, *, post_only: bool = False) -> dict[str, object]:
    """``amend_order`` params by ``cl_ord_id`` (in place; ``post_only`` refuses a new price that would take)."""
    if cmd.price is None and cmd.qty is None:
        raise ValueError(f"amend of {cmd.client_order_id} changes nothing")
    params: dict[str, object] = {"cl_ord_id": spec.to_cl_ord_id(cmd.client_order_id)}
    if cmd.qty is not None:
        params["order_qty"] = _number(instrument.qty_to_str(cmd.qty))
    if cmd.price is not None:
        params["limit_price"] = _number(instrument.price_to_str(cmd.price))
        if post_only:
            params["post_only"] = True
    return params


def cancel_params(cmd: CancelOrder) -> dict[str, object]:
    """``cancel_order`` params: the one ``cl_ord_id`` (the method takes a list)."""
    return {"cl_ord_id": [spec.to_cl_ord_id(cmd.client_order_id)]}


def ws_request(method: str, params: dict[str, object], token: str, req_id: int) -> bytes:
    """The frame of one order method (compact JSON, the token last in ``params``)."""
    return msgspec.json.encode({"method": method, "params": {**params, "token": token}, "req_id": req_id})


_TEXT_CACHE_MAX: Final = 4096


class WsFrames:
    """One instrument's order frames, pre-built as far as they do not depend on the order (pure).

    :meth:`place`, :meth:`amend` and :meth:`cancel` return a frame's *tail* (its method and params up
    to the token), so that :func:`ws_frame` ``(tail, token, req_id)`` is byte for byte
    :func:`ws_request` of the matching ``*_params`` builder. Client order ids are letters and digits
    (:func:`~tradeloop.venues.kraken.spec.to_cl_ord_id` checks), so nothing needs escaping; price and
    size texts are cached, since a market maker requotes at a few prices over and over.
    """

    __slots__ = ("_px", "_qty", "instrument")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._px: dict[int, bytes] = {}
        self._qty: dict[int, bytes] = {}

    def place(self, cmd: SubmitOrder) -> bytes:
        """The tail of an ``add_order`` (raises ``ValueError`` like :func:`place_params`)."""
        params = msgspec.json.encode(place_params(cmd, self.instrument))
        return b'add_order","params":' + params[:-1]

    def amend(self, cmd: AmendOrder, *, post_only: bool = False) -> bytes:
        """The tail of an ``amend_order`` by ``cl_ord_id``."""
        qty, price = cmd.qty, cmd.price
        if qty is None and price is None:
            raise ValueError(f"amend of {cmd.client_order_id} changes nothing")
        out = b'amend_order","params":{"cl_ord_id":"' + spec.to_cl_ord_id(cmd.client_order_id).encode() + b'"'
        if qty is not None:
            out += b',"order_qty":' + self.qty(qty)
        if price is not None:
            out += b',"limit_price":' + self.px(price)
            if post_only:
                out += b',"post_only":true'
        return out

    def cancel(self, cmd: CancelOrder) -> bytes:
        """The tail of a ``cancel_order`` by ``cl_ord_id``."""
        return b'cancel_order","params":{"cl_ord_id":["' + spec.to_cl_ord_id(cmd.client_order_id).encode() + b'"]'

    def px(self, price: int) -> bytes:
        """A price as its JSON number (checked against the tick grid), cached."""
        text = self._px.get(price)
        if text is None:
            if len(self._px) >= _TEXT_CACHE_MAX:
                self._px.clear()
            text = self._px[price] = wire_amount(self.instrument.price_to_str(price)).encode()
        return text

    def qty(self, qty: int) -> bytes:
        """A base quantity as its JSON number (checked against the lot grid), cached."""
        text = self._qty.get(qty)
        if text is None:
            if len(self._qty) >= _TEXT_CACHE_MAX:
                self._qty.clear()
            text = self._qty[qty] = wire_amount(self.instrument.qty_to_str(qty)).encode()
        return text


def ws_frame(tail: bytes, token: bytes, req_id: int) -> bytes:
    """An order frame from a :class:`WsFrames` tail, the session token (JSON-safe text) and the request id."""
    return b'{"method":"%b,"token":"%b"},"req_id":%d}' % (tail, token, req_id)


# -- replies ----------------------------------------------------------------------------------


class WsOrderResult(msgspec.Struct, frozen=True):
    order_id: str = ""
    cl_ord_id: str = ""
    amend_id: str = ""


class WsOrderReply(msgspec.Struct, frozen=True):
    """The answer to one order method."""

    method: str = ""
    req_id: int | None = None
    success: bool = False
    result: WsOrderResult | None = None
    error: str = ""
    time_in: str = ""
    time_out: str = ""


_REPLY: Final = msgspec.json.Decoder(WsOrderReply)
_METHODS: Final = frozenset(spec.WS_ORDER_METHODS)


def read_reply(payload: bytes) -> WsOrderReply | None:
    """A frame as the reply to an order method, or ``None`` (channel messages, pongs, other acks)."""
    if b'"req_id"' not in payload or b'_order"' not in payload:
        return None
    try:
        reply = _REPLY.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if reply.method not in _METHODS or reply.req_id is None:
        return None
    return reply


def _refusal(reply: WsOrderReply) -> str:
    return reply.error or f"{reply.method} refused"


def place_event(reply: WsOrderReply, cmd: SubmitOrder, ts: int) -> OrderAccepted | OrderRejected | None:
    """``add_order``'s reply: accepted with Kraken's order id, rejected with the mapped reason, or
    ``None`` when a success names no order (the outcome is then unknown)."""
    iid, cid = cmd.instrument_id, cmd.client_order_id
    if not reply.success:
        error = _refusal(reply)
        return OrderRejected(
            ts=ts, instrument_id=iid, client_order_id=cid, reason=spec.reject_reason(error), message=error
        )
    if reply.result is None or not reply.result.order_id:
        return None
    return OrderAccepted(ts=ts, instrument_id=iid, client_order_id=cid, venue_order_id=reply.result.order_id)


def amend_event(
    reply: WsOrderReply, cmd: AmendOrder, ts: int, price: int | None, qty: int
) -> OrderAmended | OrderAmendRejected:
    """``amend_order``'s reply; ``price``/``qty`` are the order's terms after the amend."""
    iid, cid = cmd.instrument_id, cmd.client_order_id
    if not reply.success:
        error = _refusal(reply)
        reason = spec.reject_reason(error)
        return OrderAmendRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=error)
    return OrderAmended(ts=ts, instrument_id=iid, client_order_id=cid, price=price, qty=qty)


def cancel_refusal(reply: WsOrderReply, cmd: CancelOrder, ts: int) -> OrderCancelRejected | None:
    """``cancel_order``'s reply: ``None`` when done (the ``executions`` stream reports the cancel)."""
    if reply.success:
        return None
    error = _refusal(reply)
    return OrderCancelRejected(
        ts=ts,
        instrument_id=cmd.instrument_id,
        client_order_id=cmd.client_order_id,
        reason=spec.reject_reason(error),
        message=error,
    )


class KrakenOpWire:
    """Kraken's order methods for :class:`~tradeloop.venues.transport.order_entry.WsOrderEntry`: an op's
    tail (:class:`WsFrames`) with the session token it holds (:attr:`token`, replaced when the private
    stream fetches a new one) and the request id; replies by ``req_id``."""

    __slots__ = ("token",)

    def __init__(self, token: str = "") -> None:
        self.token = token.encode()

    def frame(self, request_id: int, op: WsOp) -> bytes:
        return ws_frame(op.tail, self.token, request_id)

    def read_reply(self, payload: bytes) -> tuple[str, WsOrderReply] | None:
        reply = read_reply(payload)
        return None if reply is None else (str(reply.req_id), reply)

    def verdict(self, reply: WsOrderReply) -> OpVerdict:
        if reply.success:
            return OpVerdict.DONE
        if spec.is_rate_limited(reply.error):
            return OpVerdict.RATE_LIMITED
        if spec.is_outcome_unknown(reply.error):
            return OpVerdict.UNKNOWN
        return OpVerdict.DONE
