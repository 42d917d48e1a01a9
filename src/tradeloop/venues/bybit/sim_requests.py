"""The Bybit simulator's request side: signature and timestamp checks, and order parameters -> commands.

Pure: :func:`verify` checks a signed request the way Bybit does (``X-BAPI-API-KEY`` known,
``X-BAPI-SIGN`` = HMAC of ``timestamp + key + recvWindow + payload``, ``server - recvWindow <=
timestamp < server + 1000``) and returns its parameters; :func:`parse_order` turns a create body
into a :class:`SubmitOrder`. Failures raise :class:`RequestError` with Bybit's ``retCode``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec

from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import OrderType, Side, TimeInForce
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.bybit.auth import sign

__all__ = ["RequestError", "auth_ok", "body_params", "check_timestamp", "decode_op", "parse_order", "verify"]

_SIDES: Final = {"Buy": Side.BUY, "Sell": Side.SELL}
_TIFS: Final = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PostOnly": TimeInForce.GTC}


class RequestError(Exception):
    """A request Bybit refuses: ``code`` is the ``retCode``, the message its ``retMsg``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def verify(
    headers: Mapping[str, str], method: str, payload: str, creds: Credentials, now_ms: int, category: str
) -> dict[str, str]:
    """The parameters of a correctly signed, timely request (query or JSON body, values as text)."""
    key = headers.get("X-BAPI-API-KEY", "")
    ts = headers.get("X-BAPI-TIMESTAMP", "")
    window = headers.get("X-BAPI-RECV-WINDOW", "5000")
    signature = headers.get("X-BAPI-SIGN", "")
    if not key or not ts or not signature:
        raise RequestError(10003, "missing authentication headers")
    if key != creds.api_key.reveal():
        raise RequestError(10003, "API key is invalid.")
    if not ts.isdigit() or not window.isdigit():
        raise RequestError(10001, "timestamp and recv_window must be integers")
    expected = sign(creds.secret.reveal(), ts + key + window + payload)
    if not hmac.compare_digest(expected, signature):
        raise RequestError(10004, "error sign!")
    check_timestamp(ts, window, now_ms)
    if method == "GET":
        params = dict(parse_qsl(payload, keep_blank_values=True))
    else:
        try:
            body = msgspec.json.decode(payload or "{}")
        except msgspec.DecodeError:
            raise RequestError(10001, "request body is not JSON") from None
        return body_params(body, category)
    if "category" in params and params["category"] != category:
        raise RequestError(10001, f"category only support {category}")
    return params


def check_timestamp(ts: str, window: str, now_ms: int) -> None:
    """``server - recvWindow <= timestamp < server + 1000``, as Bybit checks it (REST and trade socket)."""
    if not ts.isdigit() or not window.isdigit():
        raise RequestError(10001, "timestamp and recv_window must be integers")
    if not now_ms - int(window) <= int(ts) < now_ms + 1000:
        raise RequestError(10002, f"invalid request, server time {now_ms}, request time {ts}, recv_window {window}")


def body_params(body: object, category: str) -> dict[str, str]:
    """The parameters of a JSON body (a REST POST, or a trade-socket op's ``args`` item), values as text."""
    if not isinstance(body, dict):
        raise RequestError(10001, "request body is not a JSON object")
    params = {str(k): _text(v) for k, v in body.items() if v is not None}
    if "category" in params and params["category"] != category:
        raise RequestError(10001, f"category only support {category}")
    return params


def decode_op(text: str) -> dict[str, Any]:
    """A socket frame as a JSON object (``ValueError`` otherwise)."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def auth_ok(args: object, creds: Credentials, now_ms: int) -> bool:
    """Whether socket ``auth`` args ``[apiKey, expires_ms, signature]`` are valid (the private and trade sockets)."""
    if not isinstance(args, list) or len(args) != 3:
        return False
    key, expires, signature = args
    if key != creds.api_key.reveal() or not isinstance(expires, int) or expires <= now_ms:
        return False
    return hmac.compare_digest(str(signature), sign(creds.secret.reveal(), f"GET/realtime{expires}"))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_order(params: Mapping[str, str], inst: Instrument, category: str, now_ns: int) -> tuple[SubmitOrder, str]:
    """The command of a ``/v5/order/create`` body and its Bybit ``timeInForce``."""
    side = _SIDES.get(params.get("side", ""))
    kind = params.get("orderType", "")
    cid = params.get("orderLinkId", "")
    if side is None or kind not in ("Limit", "Market"):
        raise RequestError(10001, "side or orderType invalid")
    if not cid:
        raise RequestError(10001, "the simulator needs an orderLinkId")
    tif_text = params.get("timeInForce", "IOC" if kind == "Market" else "GTC")
    tif = _TIFS.get(tif_text)
    if tif is None:
        raise RequestError(10001, f"timeInForce invalid: {tif_text}")
    if (
        kind == "Market"
        and category == "spot"
        and params.get("marketUnit", "quoteCoin" if side is Side.BUY else "baseCoin") != "baseCoin"
    ):
        raise RequestError(10001, "the simulator takes spot market orders sized in the base coin only")
    try:
        qty = fixed.parse(params.get("qty", ""))
        price = fixed.parse(params["price"]) if kind == "Limit" and "price" in params else None
    except (ValueError, fixed.FixedPointError):
        raise RequestError(10001, "qty or price invalid") from None
    if kind == "Limit" and price is None:
        raise RequestError(10001, "a limit order needs a price")
    cmd = SubmitOrder(
        ts=now_ns,
        strategy_id="",
        instrument_id=inst.id,
        side=side,
        qty=qty,
        price=price,
        order_type=OrderType.LIMIT if kind == "Limit" else OrderType.MARKET,
        time_in_force=TimeInForce.IOC if kind == "Market" else tif,
        post_only=tif_text == "PostOnly",
        reduce_only=params.get("reduceOnly") == "true",
        client_order_id=cid,
    )
    return cmd, ("IOC" if kind == "Market" else tif_text)
