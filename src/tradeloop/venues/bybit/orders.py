"""Bybit v5 signed REST requests and reply mappers: pure functions, no I/O.

Builders are ``(credentials, now_ms, parameters) -> SignedRequest``: POST bodies are compact JSON
in the key order ccxt sends (so our requests match its static fixtures byte for byte), GET queries
are sent exactly as signed. Prices and sizes are written on the instrument's grid
(``Instrument.price_to_str``/``qty_to_str``, never a float) without trailing zeros. The engine's
client order id is Bybit's ``orderLinkId`` as is (at most 36 of ``[A-Za-z0-9_-]``).

A reply with ``retCode`` 0 only says Bybit accepted the request: the order, execution and wallet
streams (:mod:`.private`) say what happened. Error replies map to ``RejectReason`` through
:data:`~.spec.ERROR_CODES`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

import msgspec

from tradeloop.core import fixed
from tradeloop.core.fastparse import parse_fixed
from tradeloop.model.commands import AmendOrder, SubmitOrder
from tradeloop.model.enums import OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import AccountSnapshot, Balance
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import SignedRequest
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.auth import rest_headers
from tradeloop.venues.bybit.schemas import ExecutionList, OrderList, OrderRow, Reply, WalletList, WalletRow

__all__ = [
    "ReplyError",
    "amend_body",
    "amend_order",
    "balances_snapshot",
    "cancel_all_orders",
    "cancel_body",
    "cancel_order",
    "decode_reply",
    "executions",
    "executions_of",
    "open_orders",
    "order_rows",
    "place_body",
    "place_order",
    "query_order",
    "reject_reason",
    "server_time",
    "server_time_ns",
    "wallet_balance",
    "wallet_balances",
]

_LINK_ID: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{spec.ORDER_LINK_ID_MAX}}}")
_SIDES: Final = {Side.BUY: "Buy", Side.SELL: "Sell"}
_REPLY: Final = msgspec.json.Decoder(Reply)
_ORDERS: Final = msgspec.json.Decoder(OrderList)
_EXECUTIONS: Final = msgspec.json.Decoder(ExecutionList)
_WALLET: Final = msgspec.json.Decoder(WalletList)
_ENCODE: Final = msgspec.json.Encoder()


class ReplyError(ValueError):
    """A reply body that is not a Bybit v5 reply (or whose ``result`` has the wrong shape)."""


def _category(venue: str) -> str:
    try:
        return spec.CATEGORY_OF_VENUE[venue]
    except KeyError:
        raise ValueError(f"not a Bybit venue: {venue!r}") from None


def _num(text: str) -> str:
    """``"50.00"`` -> ``"50"``, ``"0.1000"`` -> ``"0.1"``: the grid-checked value, shortest form."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _price(inst: Instrument, price: int) -> str:
    if price <= 0:
        raise ValueError(f"{inst.id}: price must be positive, got {price}")
    try:
        return _num(inst.price_to_str(price))
    except fixed.FixedPointError:
        raise ValueError(f"{inst.id}: price {fixed.to_str(price)} is not on the tick {inst.tick_size}") from None


def _qty(inst: Instrument, qty: int) -> str:
    if qty <= 0:
        raise ValueError(f"{inst.id}: quantity must be positive, got {qty}")
    try:
        return _num(inst.qty_to_str(qty))
    except fixed.FixedPointError:
        raise ValueError(f"{inst.id}: quantity {fixed.to_str(qty)} is not on the lot {inst.lot_size}") from None


def _link_id(client_order_id: str) -> str:
    if not _LINK_ID.fullmatch(client_order_id):
        raise ValueError(f"client order id {client_order_id!r} is not a valid Bybit orderLinkId")
    return client_order_id


def _post(
    creds: Credentials, now_ms: int, path: str, body: Mapping[str, object], recv_window_ms: int, *, idempotent: bool
) -> SignedRequest:
    text = _ENCODE.encode(body).decode()
    headers = rest_headers(creds.api_key.reveal(), creds.secret.reveal(), now_ms, recv_window_ms, text)
    return SignedRequest(method="POST", path=path, headers=headers, body=text, idempotent=idempotent)


def _get(
    creds: Credentials, now_ms: int, path: str, params: list[tuple[str, str]], recv_window_ms: int
) -> SignedRequest:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    headers = rest_headers(creds.api_key.reveal(), creds.secret.reveal(), now_ms, recv_window_ms, query)
    headers.pop("Content-Type", None)
    return SignedRequest(method="GET", path=path, query=query, headers=headers, idempotent=True)


# ---- request builders -------------------------------------------------------------------------------


def place_order(
    creds: Credentials,
    now_ms: int,
    cmd: SubmitOrder,
    inst: Instrument,
    *,
    recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS,
) -> SignedRequest:
    """``POST /v5/order/create`` with :func:`place_body`."""
    return _post(creds, now_ms, spec.CREATE, place_body(cmd, inst), recv_window_ms, idempotent=False)


def place_body(cmd: SubmitOrder, inst: Instrument) -> dict[str, object]:
    """The body of an order create (REST, and the trade socket's ``args``): limit (GTC, IOC, FOK, post-only)
    or market; ``ValueError`` for an order Bybit cannot take as given (off-grid price or size, bad client id,
    market post-only)."""
    category = _category(inst.id.venue)
    body: dict[str, object] = {
        "symbol": inst.id.symbol,
        "side": _SIDES[cmd.side],
        "orderType": "Market" if cmd.order_type is OrderType.MARKET else "Limit",
        "category": category,
    }
    if cmd.order_type is OrderType.MARKET:
        if cmd.post_only:
            raise ValueError(f"{inst.id}: a market order cannot be post-only")
        if category == "spot":
            body["marketUnit"] = "baseCoin"  # engine sizes are base; Bybit's spot market buy defaults to quote
        body["qty"] = _qty(inst, cmd.qty)
    else:
        if cmd.price is None:
            raise ValueError(f"{inst.id}: a limit order needs a price")
        body["qty"] = _qty(inst, cmd.qty)
        body["price"] = _price(inst, cmd.price)
        if cmd.post_only:
            if cmd.time_in_force is not TimeInForce.GTC:
                raise ValueError(f"{inst.id}: post-only orders are GTC on Bybit, not {cmd.time_in_force.value}")
            body["timeInForce"] = "PostOnly"
        elif cmd.time_in_force is not TimeInForce.GTC:
            body["timeInForce"] = cmd.time_in_force.value  # "IOC" | "FOK"; GTC is Bybit's default
    if cmd.reduce_only and category == "linear":
        body["reduceOnly"] = True
    body["orderLinkId"] = _link_id(cmd.client_order_id)
    return body


def _order_ref(client_order_id: str | None, venue_order_id: str | None) -> tuple[str, str]:
    if venue_order_id:
        return "orderId", venue_order_id
    if client_order_id:
        return "orderLinkId", _link_id(client_order_id)
    raise ValueError("give a client order id or a venue order id")


def cancel_order(
    creds: Credentials,
    now_ms: int,
    inst: Instrument,
    *,
    client_order_id: str | None = None,
    venue_order_id: str | None = None,
    recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS,
) -> SignedRequest:
    """``POST /v5/order/cancel`` with :func:`cancel_body`; re-sending it is safe."""
    body = cancel_body(inst, client_order_id=client_order_id, venue_order_id=venue_order_id)
    return _post(creds, now_ms, spec.CANCEL, body, recv_window_ms, idempotent=True)


def cancel_body(
    inst: Instrument, *, client_order_id: str | None = None, venue_order_id: str | None = None
) -> dict[str, object]:
    """The body of an order cancel by ``orderLinkId`` (or ``orderId``), REST and trade socket."""
    category = _category(inst.id.venue)
    body: dict[str, object] = {"symbol": inst.id.symbol}
    if category == "spot":
        body["orderFilter"] = "Order"
    key, value = _order_ref(client_order_id, venue_order_id)
    body[key] = value
    body["category"] = category
    return body


def cancel_all_orders(
    creds: Credentials,
    now_ms: int,
    venue: str,
    *,
    symbol: str | None = None,
    settle_coin: str | None = None,
    recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS,
) -> SignedRequest:
    """``POST /v5/order/cancel-all`` of one symbol, or of the whole category (spot) / settle coin (linear)."""
    category = _category(venue)
    body: dict[str, object] = {}
    if symbol:
        body["symbol"] = symbol
    body["category"] = category
    if not symbol and category == "linear":
        if not settle_coin:
            raise ValueError("a linear cancel-all needs a symbol or a settle coin")
        body["settleCoin"] = settle_coin
    return _post(creds, now_ms, spec.CANCEL_ALL, body, recv_window_ms, idempotent=True)


def amend_order(
    creds: Credentials,
    now_ms: int,
    cmd: AmendOrder,
    inst: Instrument,
    *,
    recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS,
) -> SignedRequest:
    """``POST /v5/order/amend`` with :func:`amend_body`."""
    return _post(creds, now_ms, spec.AMEND, amend_body(cmd, inst), recv_window_ms, idempotent=False)


def amend_body(cmd: AmendOrder, inst: Instrument) -> dict[str, object]:
    """The body of an amend by ``orderLinkId`` (REST and trade socket): new total ``qty`` and/or ``price``."""
    if cmd.price is None and cmd.qty is None:
        raise ValueError(f"{inst.id}: an amend needs a new price or size")
    body: dict[str, object] = {
        "symbol": inst.id.symbol,
        "category": _category(inst.id.venue),
        "orderLinkId": _link_id(cmd.client_order_id),
    }
    if cmd.qty is not None:
        body["qty"] = _qty(inst, cmd.qty)
    if cmd.price is not None:
        body["price"] = _price(inst, cmd.price)
    return body


def query_order(
    creds: Credentials,
    now_ms: int,
    inst: Instrument,
    *,
    client_order_id: str | None = None,
    venue_order_id: str | None = None,
    history: bool = False,
    recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS,
) -> SignedRequest:
    """``GET /v5/order/realtime`` (open and the last 500 closed orders) or ``/v5/order/history`` of one order."""
    params = [("symbol", inst.id.symbol), ("category", _category(inst.id.venue))]
    params.append(_order_ref(client_order_id, venue_order_id))
    return _get(creds, now_ms, spec.HISTORY if history else spec.REALTIME, params, recv_window_ms)


def open_orders(
    creds: Credentials,
    now_ms: int,
    venue: str,
    *,
    symbol: str | None = None,
    settle_coin: str | None = None,
    cursor: str = "",
    recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS,
) -> SignedRequest:
    """``GET /v5/order/realtime`` open orders of one symbol, the spot category or a linear settle coin."""
    category = _category(venue)
    params = [("symbol", symbol)] if symbol else []
    params.append(("category", category))
    if not symbol and category == "linear":
        if not settle_coin:
            raise ValueError("linear open orders need a symbol or a settle coin")
        params.append(("settleCoin", settle_coin))
    if cursor:
        params += [("limit", "50"), ("cursor", cursor)]
    return _get(creds, now_ms, spec.REALTIME, params, recv_window_ms)


def executions(
    creds: Credentials,
    now_ms: int,
    inst: Instrument,
    client_order_id: str,
    *,
    recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS,
) -> SignedRequest:
    """``GET /v5/execution/list`` of one order (its fills, to recover ones the stream did not deliver)."""
    params = [
        ("symbol", inst.id.symbol),
        ("category", _category(inst.id.venue)),
        ("orderLinkId", _link_id(client_order_id)),
        ("limit", "100"),
    ]
    return _get(creds, now_ms, spec.EXECUTIONS, params, recv_window_ms)


def wallet_balance(
    creds: Credentials, now_ms: int, *, account_type: str = "UNIFIED", recv_window_ms: int = spec.DEFAULT_RECV_WINDOW_MS
) -> SignedRequest:
    """``GET /v5/account/wallet-balance`` of the unified account."""
    return _get(creds, now_ms, spec.WALLET, [("accountType", account_type)], recv_window_ms)


def server_time() -> SignedRequest:
    """``GET /v5/market/time`` (public): the server clock, for the signing offset."""
    return SignedRequest(method="GET", path=spec.SERVER_TIME, idempotent=True)


# ---- reply mappers ----------------------------------------------------------------------------------


def decode_reply(body: bytes) -> Reply:
    """The ``retCode``/``retMsg``/``result`` envelope; :class:`ReplyError` if it is not one."""
    try:
        return _REPLY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplyError(f"not a Bybit reply: {exc}") from None


def reject_reason(ret_code: int) -> RejectReason:
    """The engine's reason for a refused request."""
    return spec.ERROR_CODES.get(ret_code, RejectReason.OTHER)


def server_time_ns(body: bytes) -> int:
    """Server nanoseconds from a ``/v5/market/time`` reply (``timeNano``, else ``timeSecond``, else ``time``)."""
    reply = decode_reply(body)
    try:
        result = msgspec.json.decode(reply.result, type=dict[str, str])
    except (msgspec.DecodeError, msgspec.ValidationError):
        result = {}
    if result.get("timeNano", "").isdigit():
        return int(result["timeNano"])
    if result.get("timeSecond", "").isdigit():
        return int(result["timeSecond"]) * 1_000_000_000
    if reply.time:
        return reply.time * 1_000_000
    raise ReplyError("server time reply without a time")


def order_rows(reply: Reply) -> tuple[list[OrderRow], str]:
    """Orders in a ``/v5/order/realtime|history`` reply and the next page cursor (``""`` at the end)."""
    try:
        page = _ORDERS.decode(reply.result)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplyError(f"order list: {exc}") from None
    return page.rows, page.nextPageCursor or ""


def executions_of(reply: Reply) -> ExecutionList:
    try:
        return _EXECUTIONS.decode(reply.result)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplyError(f"execution list: {exc}") from None


def balances_snapshot(reply: Reply, venue: str, ts: int) -> AccountSnapshot:
    """Wallet balances per coin: ``total`` = ``walletBalance``, ``locked`` = spot order locks + derivatives
    order margin (capped at the total); sorted by coin."""
    try:
        page = _WALLET.decode(reply.result)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplyError(f"wallet balance: {exc}") from None
    return AccountSnapshot(ts=ts, venue=venue, balances=wallet_balances(page.rows))


def _amount(text: str) -> int:
    return parse_fixed(text) if text else 0


def wallet_balances(rows: list[WalletRow]) -> list[Balance]:
    """Balances of the coins of wallet rows (REST ``wallet-balance`` or the ``wallet`` stream)."""
    out: dict[str, Balance] = {}
    for row in rows:
        for c in row.coin:
            total = _amount(c.walletBalance)
            locked = min(_amount(c.locked) + _amount(c.totalOrderIM), max(total, 0))
            out[c.coin] = Balance(c.coin, total, max(locked, 0))
    return [out[k] for k in sorted(out)]
