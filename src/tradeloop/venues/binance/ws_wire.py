"""Binance spot WebSocket API order requests and replies, as pure functions (no I/O).

A request is ``{"id":<int>,"method":"order.place"|"order.cancel"|"order.cancelReplace"|
"order.amend.keepPriority","params":{...,"apiKey","timestamp","signature"}}``: the parameters of the
REST request of the same name (:mod:`tradeloop.venues.binance.orders` builds both), ``recvWindow``
included, signed per request over every parameter but ``signature`` sorted by name
(:func:`~tradeloop.venues.binance.auth.ws_api_params_for`). There is no login step.

A reply is ``{"id","status","result"|"error":{"code","msg"[,"data"]},"rateLimits":[...]}``: ``result``
is the REST reply's body, ``error`` the REST error body (a half-done cancel/replace answers status 409
with the same ``data`` as REST), so one mapping serves both paths.

* :func:`ws_place_params`, :func:`ws_cancel_params`, :func:`ws_keep_priority_params`,
  :func:`ws_cancel_replace_params`: an op's parameters (the REST query's, unsigned);
* :func:`op_tail` (what :class:`~tradeloop.venues.transport.order_entry.WsOp` carries: the method, the
  signature payload sorted around the timestamp's place, and the parameters' JSON, so a send only
  inserts the timestamp and signs) and :func:`signed_frame` (the reference frame, byte for byte what
  a send writes);
* :func:`ws_reply`: a reply's request id, status, REST-shaped body and rate-limit usage;
* :class:`BinanceOpWire`: the Binance dialect for the venue-neutral
  :class:`~tradeloop.venues.transport.order_entry.WsOrderEntry`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Final

import msgspec

from tradeloop.model.commands import CancelOrder, SubmitOrder
from tradeloop.model.enums import Side, TimeInForce
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.binance import orders
from tradeloop.venues.binance.auth import sign_payload, ws_api_params_for
from tradeloop.venues.binance.spec import (
    OUTCOME_UNKNOWN_CODES,
    RATE_LIMITED_CODES,
    RATE_LIMITED_STATUS,
    RECV_WINDOW_MS,
    WS_API_METHODS,
    WS_API_RATE_WINDOWS,
)
from tradeloop.venues.transport.order_entry import OpVerdict, WsOp

__all__ = [
    "BinanceOpWire",
    "WsApiReply",
    "op_tail",
    "read_tail",
    "signed_frame",
    "ws_cancel_params",
    "ws_cancel_replace_params",
    "ws_keep_priority_params",
    "ws_place_params",
    "ws_reply",
    "ws_verdict",
]

_RECV_WINDOW: Final = {"recvWindow": str(RECV_WINDOW_MS)}


def ws_place_params(cmd: SubmitOrder, inst: Instrument) -> dict[str, str]:
    """``order.place``: the spot ``POST /api/v3/order`` parameters (``FULL`` reply), ``recvWindow`` included."""
    return orders.place_params(cmd, inst) | _RECV_WINDOW


def ws_cancel_params(cmd: CancelOrder) -> dict[str, str]:
    """``order.cancel`` by ``origClientOrderId``."""
    return orders.cancel_params(cmd) | _RECV_WINDOW


def ws_keep_priority_params(inst: Instrument, client_order_id: str, new_qty: int) -> dict[str, str]:
    """``order.amend.keepPriority``: a smaller size at the same price, queue priority kept."""
    return orders.keep_priority_params(inst, client_order_id, new_qty) | _RECV_WINDOW


def ws_cancel_replace_params(
    inst: Instrument,
    client_order_id: str,
    side: Side,
    time_in_force: TimeInForce,
    post_only: bool,
    qty: int,
    price: int,
) -> dict[str, str]:
    """``order.cancelReplace`` (``STOP_ON_FAILURE``, same client id; ``qty`` is what is left to fill)."""
    params = orders.cancel_replace_params(inst, client_order_id, side, time_in_force, post_only, qty, price)
    return params | _RECV_WINDOW


_SEP: Final = b"\x00"


def op_tail(kind: str, params: Mapping[str, str], api_key: str) -> bytes:
    """What a :class:`WsOp` of ``kind`` (a ``WS_API_METHODS`` key) carries, prepared so that a send only
    adds the timestamp and the signature: the method, the signature payload (every parameter with
    ``apiKey`` and ``timestamp``, sorted by name) cut where the timestamp's value goes, and the
    parameters' JSON with ``apiKey`` (``timestamp`` and ``signature`` follow it in the frame)."""
    fields = {**params, "apiKey": api_key}
    names = sorted([*fields, "timestamp"])
    at = names.index("timestamp")
    head = "".join(f"{k}={fields[k]}&" for k in names[:at]) + "timestamp="
    rest = "".join(f"&{k}={fields[k]}" for k in names[at + 1 :])
    body = msgspec.json.encode(fields)[1:-1]
    return _SEP.join((WS_API_METHODS[kind].encode(), head.encode(), rest.encode(), body))


def read_tail(tail: bytes) -> tuple[str, dict[str, str]]:
    """``(method, unsigned parameters)`` of an :func:`op_tail` (``apiKey`` left out)."""
    method, _, _, body = tail.split(_SEP, 3)
    params: dict[str, str] = msgspec.json.decode(b"{" + body + b"}", type=dict[str, str])
    params.pop("apiKey", None)
    return method.decode(), params


def signed_frame(
    credentials: Credentials, request_id: int, method: str, params: Mapping[str, str], now_ms: int
) -> bytes:
    """The request frame: ``params`` with ``apiKey``, ``timestamp`` (``now_ms``) and ``signature`` added."""
    return msgspec.json.encode(
        {"id": request_id, "method": method, "params": ws_api_params_for(credentials, params, now_ms)}
    )


class _RateLimit(msgspec.Struct, frozen=True):
    rateLimitType: str = ""
    interval: str = ""
    intervalNum: int = 0
    count: int = -1


class _Envelope(msgspec.Struct, frozen=True):
    id: int | str | None = None
    status: int = 0
    result: msgspec.Raw = msgspec.Raw(b"")
    error: msgspec.Raw = msgspec.Raw(b"")
    rateLimits: list[_RateLimit] = []


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)


class WsApiReply(msgspec.Struct, frozen=True):
    """The answer to one WebSocket API request."""

    request_id: str
    status: int
    """HTTP-like status: 200 done, 400 refused, 409 cancel/replace half done, 429/418 rate limited."""
    body: bytes
    """``result`` when done, else ``error``: what the REST reply's body would be."""
    code: int = 0
    """Binance's error code (0 when done)."""
    msg: str = ""
    usage: tuple[tuple[str, int], ...] = ()
    """``rateLimits``: (budget window, count used), for the windows the client budgets."""


def ws_reply(payload: bytes) -> WsApiReply | None:
    """A WebSocket API frame as the reply to a request, or ``None`` when it is not one."""
    try:
        env = _ENVELOPE.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if env.id is None or not env.status:
        return None
    usage = tuple(
        (window, r.count)
        for r in env.rateLimits
        if r.count >= 0 and (window := WS_API_RATE_WINDOWS.get((r.rateLimitType, r.interval, r.intervalNum)))
    )
    if env.status == 200:
        return WsApiReply(str(env.id), 200, bytes(env.result), usage=usage)
    body = bytes(env.error)
    code, msg = orders.decode_error(body)
    return WsApiReply(str(env.id), env.status, body, code, msg, usage)


class BinanceOpWire:
    """Binance's order requests for :class:`~tradeloop.venues.transport.order_entry.WsOrderEntry`: each send
    signed with ``now_ms()`` (the client's clock corrected by its offset to Binance's); replies by ``id``.
    ``on_usage(reply)``, when given, sees every reply's rate-limit usage (also those retried)."""

    def __init__(
        self,
        credentials: Credentials,
        now_ms: Callable[[], int],
        on_usage: Callable[[WsApiReply], None] | None = None,
    ) -> None:
        self._credentials = credentials
        self._now_ms = now_ms
        self._on_usage = on_usage
        self._api_key = credentials.api_key.reveal()
        self._mac = (
            hmac.new(credentials.secret.reveal().encode(), digestmod=hashlib.sha256)
            if credentials.private_key_pem is None
            else None
        )
        """The HMAC keyed once; each send signs on a copy (Ed25519 / RSA keys sign the payload whole)."""

    def __repr__(self) -> str:
        return f"BinanceOpWire({self._credentials!r})"

    def tail(self, kind: str, params: Mapping[str, str]) -> bytes:
        """:func:`op_tail` with this key."""
        return op_tail(kind, params, self._api_key)

    def frame(self, request_id: int, op: WsOp) -> bytes:
        method, head, rest, body = op.tail.split(_SEP, 3)
        ts = b"%d" % self._now_ms()
        payload = head + ts + rest
        if self._mac is not None:
            mac = self._mac.copy()
            mac.update(payload)
            signature = mac.hexdigest().encode()
        else:
            signature = sign_payload(self._credentials, payload.decode()).encode()
        return b'{"id":%d,"method":"%b","params":{%b,"timestamp":"%b","signature":"%b"}}' % (
            request_id,
            method,
            body,
            ts,
            signature,
        )

    def read_reply(self, payload: bytes) -> tuple[str, WsApiReply] | None:
        reply = ws_reply(payload)
        if reply is None:
            return None
        if self._on_usage is not None and reply.usage:
            self._on_usage(reply)
        return reply.request_id, reply

    def verdict(self, reply: WsApiReply) -> OpVerdict:
        return ws_verdict(reply)


def ws_verdict(reply: WsApiReply) -> OpVerdict:
    """200 done; -1006/-1007 or a 5xx outcome unknown; -1003/-1015 or 429/418 rate limited; other
    refusals done (mapped like the REST refusal)."""
    if reply.status == 200:
        return OpVerdict.DONE
    if reply.code in OUTCOME_UNKNOWN_CODES or reply.status >= 500:
        return OpVerdict.UNKNOWN
    if reply.status in RATE_LIMITED_STATUS or reply.code in RATE_LIMITED_CODES:
        return OpVerdict.RATE_LIMITED
    return OpVerdict.DONE
