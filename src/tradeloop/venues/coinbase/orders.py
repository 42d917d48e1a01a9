"""Coinbase Advanced Trade order requests and replies, as pure functions.

Builders turn (key, clock reading, nonce, parameters) into a :class:`SignedRequest` whose
``Authorization: Bearer`` JWT carries the ``uri`` claim of exactly that request; nothing here does
I/O or reads a clock. Mappers turn the venue's JSON replies into engine events.

Order types: ``limit_limit_gtc`` (``post_only`` true/false), ``sor_limit_ioc`` (limit IOC),
``limit_limit_fok`` (limit FOK) and ``market_market_ioc`` sized in base. Cancel is
``batch_cancel`` by venue order id (there is no single cancel); cancel-all is "list OPEN orders +
batch_cancel in chunks". Amend is the native ``orders/edit`` (GTC limits, price and size both sent).
The API has no lookup by client order id: a query by client id uses the venue order id learned
from the create reply or the user channel, or else searches recent orders (``historical/batch``)
for it.

Prices and sizes are written on the instrument's grid without trailing zeros (``"0.2"``,
``"4"``), as the venue and ccxt write them; a value off the grid is refused before sending.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, TypeVar
from urllib.parse import quote, urlencode

import msgspec

from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import OrderStatus, OrderType, RejectReason, TimeInForce
from tradeloop.model.events import AccountSnapshot, Balance, OrderStatusReport
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import SignedRequest
from tradeloop.venues.coinbase.auth import PrivateKey, build_jwt, load_private_key, rest_uri
from tradeloop.venues.coinbase.schemas import (
    AccountsPage,
    BatchCancelReply,
    CreateOrderReply,
    EditReply,
    OrderRecord,
    OrderReply,
    OrdersPage,
)
from tradeloop.venues.coinbase.spec import (
    ACCOUNTS_PAGE,
    ERRORS,
    ORDER_STATUS,
    PATHS,
    URLS,
    VENUE,
)

__all__ = [
    "CoinbaseKey",
    "OrderRequestError",
    "Rejection",
    "ReplyError",
    "account_snapshot",
    "accounts_cursor",
    "accounts_request",
    "batch_cancel_request",
    "cancel_results",
    "classify",
    "create_order_body",
    "create_order_request",
    "create_reply",
    "decimal_amount",
    "decimal_str",
    "edit_order_request",
    "edit_reply",
    "engine_status",
    "get_order_request",
    "http_rejection",
    "list_orders_request",
    "order_reply",
    "orders_page",
    "status_report",
]

_JSON: Final = {"Content-Type": "application/json"}
_T = TypeVar("_T")


class OrderRequestError(ValueError):
    """A command that cannot be expressed as a valid Coinbase request (the engine gets INVALID_ORDER)."""


class ReplyError(ValueError):
    """A venue reply that does not decode (the message names the endpoint, never the body)."""


class CoinbaseKey:
    """A CDP API key: its name (``organizations/{org}/apiKeys/{id}``) and private key. Never shown."""

    __slots__ = ("_private", "name")

    def __init__(self, name: str, private_key: PrivateKey) -> None:
        if not name:
            raise ValueError("a Coinbase key needs its key name")
        self.name = name
        self._private = private_key

    @classmethod
    def from_credentials(cls, credentials: Credentials) -> CoinbaseKey:
        """``api_key`` is the key name; the private key is the PEM entry, or the secret (EC PEM or Ed25519 base64)."""
        pem = credentials.private_key_pem
        text = pem.reveal() if pem is not None else credentials.secret.reveal()
        return cls(credentials.api_key.reveal(), load_private_key(text))

    def jwt(self, now_ns: int, nonce: str, uri: str | None = None) -> str:
        """A JWT valid from ``now_ns`` (whole seconds) for 120 s; REST requests give their ``uri``."""
        return build_jwt(self.name, self._private, now_ns // 1_000_000_000, nonce, uri)

    def __repr__(self) -> str:
        return "CoinbaseKey(<hidden>)"


def _signed(
    key: CoinbaseKey,
    now_ns: int,
    nonce: str,
    method: str,
    path: str,
    *,
    query: str = "",
    body: str | None = None,
    idempotent: bool,
    host: str | None,
) -> SignedRequest:
    token = key.jwt(now_ns, nonce, rest_uri(method, path, host or URLS.rest_host))
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers.update(_JSON)
    return SignedRequest(method=method, path=path, query=query, headers=headers, body=body, idempotent=idempotent)


def decimal_str(value: int, step: int, what: str) -> str:
    """``value`` (nanos) on the grid of ``step``, written without trailing zeros; refuses off-grid values."""
    if value <= 0:
        raise OrderRequestError(f"{what} must be positive, got {fixed.to_str(value)}")
    if value % step:
        raise OrderRequestError(f"{what} {fixed.to_str(value)} is not a multiple of {fixed.to_str(step)}")
    return fixed.to_str(value)


def _configuration(cmd: SubmitOrder, inst: Instrument) -> dict[str, dict[str, str | bool]]:
    size = decimal_str(cmd.qty, inst.lot_size, "size")
    if cmd.order_type is OrderType.MARKET:
        if cmd.post_only or cmd.time_in_force is TimeInForce.FOK:
            raise OrderRequestError("a Coinbase market order is immediate-or-cancel and cannot be post-only or FOK")
        return {"market_market_ioc": {"base_size": size}}
    if cmd.price is None:
        raise OrderRequestError("a limit order needs a price")
    price = decimal_str(cmd.price, inst.tick_size, "price")
    tif = cmd.time_in_force
    if tif is TimeInForce.GTC:
        return {"limit_limit_gtc": {"base_size": size, "limit_price": price, "post_only": cmd.post_only}}
    if cmd.post_only:
        raise OrderRequestError(f"post-only needs a GTC limit order, not {tif.value}")
    if tif is TimeInForce.IOC:
        return {"sor_limit_ioc": {"base_size": size, "limit_price": price}}
    return {"limit_limit_fok": {"base_size": size, "limit_price": price}}


def create_order_body(cmd: SubmitOrder, inst: Instrument) -> str:
    """The JSON body of ``POST /orders`` (keys in the order the venue documents)."""
    if cmd.instrument_id != inst.id:
        raise OrderRequestError(f"order for {cmd.instrument_id} built with the spec of {inst.id}")
    if not cmd.client_order_id:
        raise OrderRequestError("an order needs its client order id")
    body = {
        "client_order_id": cmd.client_order_id,
        "product_id": inst.id.symbol,
        "side": cmd.side.value,
        "order_configuration": _configuration(cmd, inst),
    }
    return msgspec.json.encode(body).decode()


def create_order_request(
    key: CoinbaseKey, now_ns: int, nonce: str, cmd: SubmitOrder, inst: Instrument, *, host: str | None = None
) -> SignedRequest:
    """``POST /api/v3/brokerage/orders``. Re-sending the same client order id returns the first order
    rather than a second one (the venue treats the id as an idempotency key)."""
    body = create_order_body(cmd, inst)
    return _signed(key, now_ns, nonce, "POST", PATHS.orders, body=body, idempotent=False, host=host)


def batch_cancel_request(
    key: CoinbaseKey, now_ns: int, nonce: str, order_ids: Sequence[str], *, host: str | None = None
) -> SignedRequest:
    """``POST /orders/batch_cancel`` for venue order ids (cancelling twice is harmless: idempotent)."""
    if not order_ids:
        raise OrderRequestError("batch_cancel needs at least one order id")
    body = msgspec.json.encode({"order_ids": list(order_ids)}).decode()
    return _signed(key, now_ns, nonce, "POST", PATHS.batch_cancel, body=body, idempotent=True, host=host)


def edit_order_request(
    key: CoinbaseKey,
    now_ns: int,
    nonce: str,
    order_id: str,
    price: int,
    qty: int,
    inst: Instrument,
    *,
    host: str | None = None,
) -> SignedRequest:
    """``POST /orders/edit``: the new limit price and total size (both always sent)."""
    body = msgspec.json.encode(
        {
            "order_id": order_id,
            "size": decimal_str(qty, inst.lot_size, "size"),
            "price": decimal_str(price, inst.tick_size, "price"),
        }
    ).decode()
    return _signed(key, now_ns, nonce, "POST", PATHS.edit, body=body, idempotent=False, host=host)


def get_order_request(
    key: CoinbaseKey, now_ns: int, nonce: str, order_id: str, *, host: str | None = None
) -> SignedRequest:
    """``GET /orders/historical/{order_id}``."""
    path = PATHS.historical.format(order_id=quote(order_id, safe=""))
    return _signed(key, now_ns, nonce, "GET", path, idempotent=True, host=host)


def list_orders_request(
    key: CoinbaseKey,
    now_ns: int,
    nonce: str,
    *,
    status: str | None = "OPEN",
    product_ids: Sequence[str] = (),
    limit: int = 100,
    cursor: str = "",
    host: str | None = None,
) -> SignedRequest:
    """``GET /orders/historical/batch`` (``order_status=OPEN`` lists working orders; ``None`` lists all)."""
    params: list[tuple[str, str]] = []
    if status is not None:
        params.append(("order_status", status))
    params.extend(("product_ids", p) for p in product_ids)
    params.append(("limit", str(limit)))
    if cursor:
        params.append(("cursor", cursor))
    return _signed(
        key, now_ns, nonce, "GET", PATHS.historical_batch, query=urlencode(params), idempotent=True, host=host
    )


def accounts_request(
    key: CoinbaseKey, now_ns: int, nonce: str, *, limit: int = ACCOUNTS_PAGE, cursor: str = "", host: str | None = None
) -> SignedRequest:
    """``GET /accounts`` (balances)."""
    params = [("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
    return _signed(key, now_ns, nonce, "GET", PATHS.accounts, query=urlencode(params), idempotent=True, host=host)


# ---- replies -------------------------------------------------------------------------------------


class Rejection(msgspec.Struct, frozen=True):
    """A refusal: the engine's reason and the venue's own words."""

    reason: RejectReason
    message: str


def classify(codes: Iterable[str]) -> RejectReason:
    """The engine reason of the first known failure code (``PREVIEW_`` prefixes dropped), else ``OTHER``."""
    for code in codes:
        if not code:
            continue
        reason = ERRORS.get(code) or ERRORS.get(code.removeprefix("PREVIEW_"))
        if reason is not None:
            return reason
    return RejectReason.OTHER


def _decode(decoder_type: type[_T], body: bytes, what: str) -> _T:
    try:
        return msgspec.json.decode(body, type=decoder_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplyError(f"coinbase {what} reply does not decode: {exc}") from None


def http_rejection(status: int, body: bytes) -> Rejection:
    """A non-200 reply: 429 rate limited, 401 expired JWT (or other auth failure), 400 invalid, 404 unknown."""
    text = body[:300].decode("utf-8", "replace")
    codes: list[str] = []
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raw = None
    if isinstance(raw, dict):
        for item in raw.get("errors") or []:
            if isinstance(item, dict):
                codes.append(str(item.get("id", "")))
        codes.extend(str(raw.get(k, "")) for k in ("error", "preview_failure_reason", "new_order_failure_reason"))
    if status == 429:
        return Rejection(RejectReason.RATE_LIMITED, text or "HTTP 429")
    if status == 401:
        lowered = text.lower()
        if "expired" in lowered or "timestamp" in lowered or "not yet valid" in lowered:
            return Rejection(RejectReason.TIMESTAMP_OUTSIDE_WINDOW, text)
        return Rejection(RejectReason.OTHER, f"HTTP 401 unauthorized: {text}")
    reason = classify(codes)
    if reason is RejectReason.OTHER:
        if status == 404:
            reason = RejectReason.UNKNOWN_ORDER
        elif status == 400:
            reason = RejectReason.INVALID_ORDER
    return Rejection(reason, f"HTTP {status}: {text}")


def create_reply(body: bytes) -> str | Rejection:
    """The venue order id of an accepted order, or why it was refused (HTTP 200 with ``success`` false)."""
    reply = _decode(CreateOrderReply, body, "create order")
    if reply.success:
        order_id = (reply.success_response.order_id if reply.success_response else "") or reply.order_id
        if not order_id:
            raise ReplyError("coinbase create order reply: success without an order id")
        return order_id
    err = reply.error_response
    codes = [reply.failure_reason]
    message = reply.failure_reason
    if err is not None:
        codes = [err.error, err.new_order_failure_reason, err.preview_failure_reason, reply.failure_reason]
        message = " ".join(x for x in (err.error, err.message, err.preview_failure_reason) if x) or message
    return Rejection(classify(codes), message or "order refused")


def cancel_results(body: bytes) -> dict[str, Rejection | None]:
    """Venue order id -> ``None`` (cancel accepted) or why the cancel was refused."""
    reply = _decode(BatchCancelReply, body, "batch_cancel")
    return {
        r.order_id: None if r.success else Rejection(classify([r.failure_reason]), r.failure_reason or "refused")
        for r in reply.results
    }


def edit_reply(body: bytes) -> Rejection | None:
    """``None`` if the edit was applied, else why not."""
    reply = _decode(EditReply, body, "edit")
    if reply.success:
        return None
    codes = [c for e in reply.errors for c in (e.edit_failure_reason, e.preview_failure_reason)]
    return Rejection(classify(codes), " ".join(c for c in codes if c) or "edit refused")


def order_reply(body: bytes) -> OrderRecord:
    return _decode(OrderReply, body, "order").order


def orders_page(body: bytes) -> OrdersPage:
    return _decode(OrdersPage, body, "list orders")


def engine_status(status: str, filled_qty: int) -> OrderStatus | None:
    """The venue status as an engine status (``OPEN`` with a fill is partially filled); ``None``: unknown."""
    mapped = ORDER_STATUS.get(status)
    if mapped is OrderStatus.ACCEPTED and filled_qty > 0:
        return OrderStatus.PARTIALLY_FILLED
    return mapped


def _parse(text: str, what: str) -> int:
    try:
        return fixed.parse(text) if text else 0
    except fixed.FixedPointError as exc:
        raise ReplyError(f"coinbase order {what}: {exc}") from None


def decimal_amount(text: str) -> int:
    """A decimal string of a reply in nanos ("" is 0); :class:`ReplyError` if it is not one."""
    return _parse(text, "amount")


def status_report(record: OrderRecord, instrument_id: InstrumentId, client_order_id: str, ts: int) -> OrderStatusReport:
    """An ``OrderStatusReport`` from a historical order record."""
    filled = _parse(record.filled_size, "filled_size")
    cfg = record.order_configuration.limit() if record.order_configuration is not None else None
    price = _parse(cfg.limit_price, "limit_price") if cfg is not None and cfg.limit_price else None
    qty = _parse(cfg.base_size, "base_size") if cfg is not None and cfg.base_size else None
    return OrderStatusReport(
        ts=ts,
        instrument_id=instrument_id,
        client_order_id=client_order_id,
        venue_order_id=record.order_id,
        status=engine_status(record.status, filled),
        filled_qty=filled,
        price=price or None,
        qty=qty or None,
    )


def account_snapshot(pages: Sequence[bytes], ts: int) -> AccountSnapshot:
    """Balances from ``GET /accounts`` pages: total = available + hold, locked = hold (per currency)."""
    totals: dict[str, list[int]] = {}
    for body in pages:
        for acct in _decode(AccountsPage, body, "accounts").accounts:
            available = _parse(acct.available_balance.value, "available_balance")
            hold = _parse(acct.hold.value, "hold")
            entry = totals.setdefault(acct.currency, [0, 0])
            entry[0] += available + hold
            entry[1] += hold
    balances = [Balance(ccy, total, locked) for ccy, (total, locked) in sorted(totals.items())]
    return AccountSnapshot(ts=ts, venue=VENUE, balances=balances)


def accounts_cursor(body: bytes) -> str:
    """The next page's cursor ("" when this was the last page)."""
    page = _decode(AccountsPage, body, "accounts")
    return page.cursor if page.has_next else ""
