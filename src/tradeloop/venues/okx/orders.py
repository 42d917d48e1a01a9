"""OKX v5 order requests and replies, as pure functions (no I/O).

Request builders are functions of (credentials, clock reading in ms, parameters) -> :class:`SignedRequest`:

* place: ``POST /api/v5/trade/batch-orders`` with a one-element list (what ccxt sends for a plain
  order; same per-item ``sCode`` reply as ``/trade/order``, which ``batch=False`` uses instead).
  ``ordType`` carries the order type: ``limit``, ``market``, ``post_only``, ``ioc``, ``fok``. Spot
  orders trade ``tdMode=cash``, swaps ``cross`` (one-way position mode: no ``posSide``); spot buys
  send ``tgtCcy=base_ccy`` so a market buy's ``sz`` is base units like every engine size.
* cancel: ``POST /api/v5/trade/cancel-order`` by ``clOrdId`` (or ``ordId``); cancel-all is
  ``orders-pending`` + ``cancel-batch-orders`` by ``ordId`` in chunks of 20 (OKX has no
  cancel-all for spot and swaps).
* amend: ``POST /api/v5/trade/amend-order`` (``newSz`` is the new total size, filled part included).
* query by client id ``GET /api/v5/trade/order``; open orders ``GET /api/v5/trade/orders-pending``;
  an order's fills ``GET /api/v5/trade/fills``; balances ``GET /api/v5/account/balance``.
* the same place / amend / cancel as WebSocket order ops: :mod:`tradeloop.venues.okx.ws_wire`.

Reply mappers turn OKX JSON into engine values: :func:`read_acks` (envelope ``code`` plus per-item
``sCode``: code "1" means every item failed, "2" some did), :func:`status_report`, :func:`fill_event`,
:func:`account_snapshot`. Error codes map through :func:`~tradeloop.venues.okx.spec.error_reason`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple
from urllib.parse import urlencode

import msgspec

from tradeloop.core import fixed
from tradeloop.core.ids import is_valid_client_order_id
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    Event,
    OrderAmendRejected,
    OrderCancelRejected,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import SignedRequest
from tradeloop.venues.okx.auth import rest_headers
from tradeloop.venues.okx.instruments import OkxInstrument, nanos_rounded
from tradeloop.venues.okx.schemas import AckReply, BalanceData, FillData, OrderAck, OrderData, TimeReply
from tradeloop.venues.okx.spec import (
    BATCH_MAX,
    BOOK_DEPTH,
    CANCEL_FOK,
    CANCEL_IOC,
    ORDER_STATES,
    PATHS,
    RATE_LIMIT_CODES,
    VENUE,
)

_TIME = msgspec.json.Decoder(TimeReply)

__all__ = [
    "AckOutcome",
    "OkxRequestError",
    "account_snapshot",
    "ack_outcome",
    "amend_order",
    "api_keys",
    "balance",
    "book_snapshot",
    "cancel_batch",
    "cancel_order",
    "check_client_id",
    "fee_in_quote",
    "fill_event",
    "ord_type",
    "order_args",
    "order_fills",
    "pending_orders",
    "place_order",
    "price_or_none",
    "push_fill",
    "query_order",
    "read_acks",
    "refusal",
    "rest_fill",
    "server_time_ns",
    "status_report",
]

MAX_CL_ORD_ID: Final = 32


class OkxRequestError(ValueError):
    """A command that cannot be sent to OKX as asked (its message says why); nothing was sent."""


def api_keys(creds: Credentials) -> tuple[str, str, str]:
    passphrase = creds.passphrase
    if passphrase is None:
        raise OkxRequestError(f"{creds.venue}/{creds.name}: OKX API keys need their passphrase")
    return creds.api_key.reveal(), creds.secret.reveal(), passphrase.reveal()


def _signed(
    creds: Credentials,
    now_ms: int,
    method: str,
    path: str,
    *,
    query: str = "",
    body: str | None = None,
    idempotent: bool = False,
) -> SignedRequest:
    key, secret, passphrase = api_keys(creds)
    request_path = path + (f"?{query}" if query else "")
    headers = rest_headers(key, secret, passphrase, now_ms * 1_000_000, method, request_path, body or "")
    return SignedRequest(method=method, path=path, query=query, headers=headers, body=body, idempotent=idempotent)


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def check_client_id(cid: str) -> None:
    """Raise :class:`OkxRequestError` unless ``cid`` is a valid OKX ``clOrdId``."""
    if not (cid and len(cid) <= MAX_CL_ORD_ID and cid.isascii() and cid.isalnum()):
        raise OkxRequestError(f"client order id {cid!r} is not 1-32 ASCII letters and digits (OKX clOrdId)")


def ord_type(cmd: SubmitOrder) -> str:
    """OKX ``ordType`` of a command: ``market``, ``limit``, ``post_only``, ``ioc`` or ``fok``."""
    if cmd.order_type is OrderType.MARKET:
        if cmd.post_only:
            raise OkxRequestError("a market order cannot be post-only")
        if cmd.time_in_force is TimeInForce.FOK:
            raise OkxRequestError("OKX has no fill-or-kill market order; send a FOK limit order")
        return "market"
    if cmd.post_only:
        if cmd.time_in_force is not TimeInForce.GTC:
            raise OkxRequestError(f"a post-only order rests on the book: time in force {cmd.time_in_force} refused")
        return "post_only"
    if cmd.time_in_force is TimeInForce.IOC:
        return "ioc"
    if cmd.time_in_force is TimeInForce.FOK:
        return "fok"
    return "limit"


def order_args(cmd: SubmitOrder, spec: OkxInstrument, *, td_mode: str | None = None) -> dict[str, object]:
    """The order object of a place request (key order as ccxt writes it)."""
    if cmd.instrument_id.symbol != spec.inst_id:
        raise OkxRequestError(f"command for {cmd.instrument_id} given the spec of {spec.inst_id}")
    check_client_id(cmd.client_order_id)
    kind = ord_type(cmd)
    args: dict[str, object] = {
        "instId": spec.inst_id,
        "side": "buy" if cmd.side is Side.BUY else "sell",
        "ordType": kind,
        "sz": spec.sz_text(cmd.qty),
        "tdMode": td_mode or ("cross" if spec.is_swap else "cash"),
    }
    if not spec.is_swap and cmd.side is Side.BUY:
        args["tgtCcy"] = "base_ccy"
    if kind != "market":
        if cmd.price is None:
            raise OkxRequestError(f"a {kind} order needs a price")
        args["px"] = spec.px_text(cmd.price)
    args["clOrdId"] = cmd.client_order_id
    if cmd.reduce_only:
        if not spec.is_swap:
            raise OkxRequestError("reduce-only applies to swaps, not spot")
        args["reduceOnly"] = True
    return args


def place_order(
    creds: Credentials,
    now_ms: int,
    cmd: SubmitOrder,
    spec: OkxInstrument,
    *,
    td_mode: str | None = None,
    batch: bool = True,
) -> SignedRequest:
    """Place one order (``batch-orders`` with one item, or ``/trade/order`` with ``batch=False``)."""
    args = order_args(cmd, spec, td_mode=td_mode)
    path = PATHS["batch_place"] if batch else PATHS["place"]
    return _signed(creds, now_ms, "POST", path, body=_json([args] if batch else args))


def _order_ref(client_order_id: str | None, venue_order_id: str | None) -> tuple[str, str]:
    if venue_order_id:
        return "ordId", venue_order_id
    if client_order_id:
        check_client_id(client_order_id)
        return "clOrdId", client_order_id
    raise OkxRequestError("an order is named by its client order id or its venue order id")


def cancel_order(
    creds: Credentials,
    now_ms: int,
    inst_id: str,
    *,
    client_order_id: str | None = None,
    venue_order_id: str | None = None,
) -> SignedRequest:
    """Cancel one order by ``clOrdId`` (or ``ordId`` when given). Safe to re-send."""
    field, value = _order_ref(client_order_id, venue_order_id)
    return _signed(
        creds, now_ms, "POST", PATHS["cancel"], body=_json({"instId": inst_id, field: value}), idempotent=True
    )


def cancel_batch(creds: Credentials, now_ms: int, orders: Sequence[tuple[str, str]]) -> SignedRequest:
    """Cancel up to 20 orders given as ``(instId, ordId)``."""
    if not 1 <= len(orders) <= BATCH_MAX:
        raise OkxRequestError(f"a batch cancel takes 1 to {BATCH_MAX} orders, got {len(orders)}")
    body = _json([{"ordId": ord_id, "instId": inst_id} for inst_id, ord_id in orders])
    return _signed(creds, now_ms, "POST", PATHS["batch_cancel"], body=body, idempotent=True)


def amend_order(
    creds: Credentials,
    now_ms: int,
    cmd: AmendOrder,
    spec: OkxInstrument,
    *,
    venue_order_id: str | None = None,
) -> SignedRequest:
    """Amend price and/or total size of an open order (by ``clOrdId``, or ``ordId`` when given)."""
    if cmd.price is None and cmd.qty is None:
        raise OkxRequestError("an amend changes the price, the size or both")
    field, value = _order_ref(None if venue_order_id else cmd.client_order_id, venue_order_id)
    args: dict[str, object] = {"instId": spec.inst_id, field: value}
    if cmd.qty is not None:
        args["newSz"] = spec.sz_text(cmd.qty)
    if cmd.price is not None:
        args["newPx"] = spec.px_text(cmd.price)
    return _signed(creds, now_ms, "POST", PATHS["amend"], body=_json(args))


def query_order(
    creds: Credentials,
    now_ms: int,
    inst_id: str,
    *,
    client_order_id: str | None = None,
    venue_order_id: str | None = None,
) -> SignedRequest:
    """One order's state, by ``clOrdId`` (or ``ordId``)."""
    field, value = _order_ref(client_order_id, venue_order_id)
    query = urlencode([("instId", inst_id), (field, value)])
    return _signed(creds, now_ms, "GET", PATHS["order"], query=query, idempotent=True)


def pending_orders(
    creds: Credentials, now_ms: int, inst_id: str | None = None, *, after: str | None = None
) -> SignedRequest:
    """Open orders, newest first, 100 a page; ``after`` (an ``ordId``) asks for the older ones."""
    params = [("instId", inst_id)] if inst_id else []
    if after:
        params.append(("after", after))
    return _signed(creds, now_ms, "GET", PATHS["pending"], query=urlencode(params), idempotent=True)


def order_fills(creds: Credentials, now_ms: int, inst_id: str, ord_id: str) -> SignedRequest:
    """The fills of one order (last 3 days)."""
    query = urlencode([("instId", inst_id), ("ordId", ord_id)])
    return _signed(creds, now_ms, "GET", PATHS["fills"], query=query, idempotent=True)


def balance(creds: Credentials, now_ms: int, ccy: str | None = None) -> SignedRequest:
    """Trading-account balances (all currencies, or ``ccy``)."""
    query = urlencode([("ccy", ccy)]) if ccy else ""
    return _signed(creds, now_ms, "GET", PATHS["balance"], query=query, idempotent=True)


def book_snapshot(inst_id: str, depth: int = BOOK_DEPTH, *, source: str | None = "0") -> SignedRequest:
    """The public REST book with its ``seqId`` (the snapshot of the 2026 procedure, which OKX documents
    with ``source=0``). Unsigned."""
    params = [("instId", inst_id), ("sz", str(depth))]
    if source is not None:
        params.append(("source", source))
    query = urlencode(params)
    return SignedRequest(method="GET", path=PATHS["books"], query=query, idempotent=True)


# -- replies ------------------------------------------------------------------------------------


class AckOutcome(NamedTuple):
    """One item's result of an order request (or the envelope's, when the reply has no items)."""

    ok: bool
    code: str
    message: str
    ord_id: str = ""
    cl_ord_id: str = ""

    @property
    def rate_limited(self) -> bool:
        return self.code in RATE_LIMIT_CODES


_ACKS = msgspec.json.Decoder(AckReply)


def read_acks(status: int, body: bytes) -> list[AckOutcome]:
    """Every item's outcome of a place / cancel / amend reply, in request order.

    A reply without items (auth errors, rate limits, 5xx text) gives one outcome from its envelope.
    """
    try:
        reply = _ACKS.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        code = "50011" if status == 429 else ""
        return [AckOutcome(False, code, f"HTTP {status}: unreadable reply")]
    if not reply.data:
        code = reply.code if reply.code != "0" else ("50011" if status == 429 else "")
        return [AckOutcome(reply.code == "0" and status == 200, code, reply.msg or f"HTTP {status}")]
    return [ack_outcome(item) for item in reply.data]


def ack_outcome(item: OrderAck) -> AckOutcome:
    """One reply item as an :class:`AckOutcome`."""
    ok = item.sCode == "0"
    return AckOutcome(ok, item.sCode, item.sMsg, item.ordId, item.clOrdId)


def order_status(data: OrderData) -> OrderStatus | None:
    """Engine status of an OKX order (``None`` for a state tradeloop does not know)."""
    status = ORDER_STATES.get(data.state)
    if status is OrderStatus.CANCELED and data.cancelSource in (CANCEL_FOK, CANCEL_IOC):
        return OrderStatus.EXPIRED
    return status


def price_or_none(text: str) -> int | None:
    """An order's ``px`` (``None`` for market orders, which OKX writes as "" or "-1")."""
    if not text or text in ("0", "-1"):
        return None
    return fixed.parse(text)


def status_report(ts: int, data: OrderData, spec: OkxInstrument, venue: str = VENUE) -> OrderStatusReport:
    """``GET /trade/order`` (or a push) as the engine's status report. Raises ``ValueError`` when malformed."""
    return OrderStatusReport(
        ts=ts,
        instrument_id=InstrumentId(venue, data.instId),
        client_order_id=data.clOrdId,
        venue_order_id=data.ordId or None,
        status=order_status(data),
        filled_qty=spec.parse_sz(data.accFillSz) if data.accFillSz else 0,
        price=price_or_none(data.px),
        qty=spec.parse_sz(data.sz) if data.sz else None,
    )


def fee_in_quote(fee: str, fee_ccy: str, price: int, spec: OkxInstrument) -> int | None:
    """What a fill cost in the quote currency (positive = paid; OKX writes charges as negative numbers).

    A fee in the base currency (spot buys) is valued at the fill price, rounded half-even to nanos.
    ``None`` for a fee in any other currency (it cannot be valued here).
    """
    if not fee:
        return 0
    paid = -nanos_rounded(fee)
    if fee_ccy in ("", spec.quote):
        return paid
    if fee_ccy == spec.base:
        return fixed.mul(paid, price)
    return None


def fill_event(
    ts: int,
    spec: OkxInstrument,
    *,
    client_order_id: str,
    ord_id: str,
    trade_id: str,
    side: str,
    fill_px: str,
    fill_sz: str,
    fee: str,
    fee_ccy: str,
    exec_type: str,
    venue: str = VENUE,
) -> tuple[OrderFilled, bool] | None:
    """One fill as ``OrderFilled`` (and whether its fee could be valued in quote), ``None`` if no fill.

    Sizes are converted from contracts for swaps; an unknown fee currency gives fee 0 and ``False``.
    """
    if not trade_id or not fill_sz:
        return None
    qty = spec.parse_sz(fill_sz)
    if qty <= 0:
        return None
    if side not in ("buy", "sell"):
        raise ValueError(f"fill side {side!r}")
    price = fixed.parse(fill_px)
    quote_fee = fee_in_quote(fee, fee_ccy, price, spec)
    return (
        OrderFilled(
            ts=ts,
            instrument_id=InstrumentId(venue, spec.inst_id),
            client_order_id=client_order_id,
            venue_order_id=ord_id,
            trade_id=trade_id,
            side=Side.BUY if side == "buy" else Side.SELL,
            last_qty=qty,
            last_price=price,
            fee=quote_fee if quote_fee is not None else 0,
            fee_currency=spec.quote,
            liquidity=LiquiditySide.MAKER if exec_type == "M" else LiquiditySide.TAKER,
        ),
        quote_fee is not None,
    )


def push_fill(ts: int, data: OrderData, spec: OkxInstrument, venue: str = VENUE) -> tuple[OrderFilled, bool] | None:
    """The fill an ``orders`` push carries (``tradeId`` + ``fillSz``), if any."""
    return fill_event(
        ts,
        spec,
        client_order_id=data.clOrdId,
        ord_id=data.ordId,
        trade_id=data.tradeId,
        side=data.side,
        fill_px=data.fillPx,
        fill_sz=data.fillSz,
        fee=data.fillFee,
        fee_ccy=data.fillFeeCcy,
        exec_type=data.execType,
        venue=venue,
    )


def rest_fill(
    ts: int, fill: FillData, spec: OkxInstrument, client_order_id: str, venue: str = VENUE
) -> tuple[OrderFilled, bool] | None:
    """One ``GET /trade/fills`` row as a fill of ``client_order_id``."""
    return fill_event(
        ts,
        spec,
        client_order_id=fill.clOrdId or client_order_id,
        ord_id=fill.ordId,
        trade_id=fill.tradeId,
        side=fill.side,
        fill_px=fill.fillPx,
        fill_sz=fill.fillSz,
        fee=fill.fee,
        fee_ccy=fill.feeCcy,
        exec_type=fill.execType,
        venue=venue,
    )


def account_snapshot(ts: int, data: Sequence[BalanceData], venue: str = VENUE) -> AccountSnapshot:
    """Balances of the trading account: total = ``cashBal`` (or ``eq``), locked = ``frozenBal``.

    OKX writes balances with up to 18 decimals; they are rounded down to nanos.
    """
    balances: dict[str, Balance] = {}
    for item in data:
        for d in item.details:
            total = d.cashBal or d.eq or "0"
            balances[d.ccy] = Balance(
                currency=d.ccy,
                total=nanos_rounded(total, "floor"),
                locked=nanos_rounded(d.frozenBal, "floor") if d.frozenBal else 0,
            )
    return AccountSnapshot(ts=ts, venue=venue, balances=[balances[c] for c in sorted(balances)])


def is_client_order_id(text: str) -> bool:
    """An id the engine may have assigned (the OMS's ids are ASCII letters and digits, at most 20)."""
    return is_valid_client_order_id(text)


def refusal(ts: int, cmd: SubmitOrder | AmendOrder | CancelOrder, message: str) -> Event:
    """A command OKX cannot take as asked (nothing was sent): its rejection, as ``INVALID_ORDER``."""
    reason, iid, cid = RejectReason.INVALID_ORDER, cmd.instrument_id, cmd.client_order_id
    if isinstance(cmd, SubmitOrder):
        return OrderRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)
    if isinstance(cmd, AmendOrder):
        return OrderAmendRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)
    return OrderCancelRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)


def server_time_ns(body: bytes) -> int:
    """Nanoseconds of a ``/api/v5/public/time`` reply."""
    reply = _TIME.decode(body)
    if reply.code != "0" or not reply.data:
        raise ValueError(f"okx time reply: {reply.code} {reply.msg}")
    return int(reply.data[0].ts) * 1_000_000
