"""Binance trading requests and replies, as pure functions (no I/O, no clock of their own).

Builders: ``(credentials, now_ms, parameters) -> SignedRequest``. Parameters go in the documented
order (``symbol, side, type, timeInForce, quantity, price, newClientOrderId, ...``), then
``recvWindow``, ``timestamp`` and the ``signature`` of that exact query (see ``auth.py``); the API key
travels in the ``X-MBX-APIKEY`` header. Everything is sent in the query string, body empty: Binance
signs "query string + body", so this is the same signature it verifies. Prices and sizes are written
with the instrument's decimals, never through a float.

Mappers: venue JSON -> engine events, stamped ``ts`` (the client's clock at receipt). Fees are
reported in the instrument's quote currency: a commission in the base asset is converted at the
fill price; a commission in a third asset (BNB discounts) cannot be converted exactly without that
asset's price and is reported as 0 (``fee_in_quote`` says so; the client logs it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.commands import CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import SignedRequest
from tradeloop.venues.binance.auth import signed_query_for
from tradeloop.venues.binance.schemas import (
    AccountReply,
    AccountTrade,
    AmendReply,
    CancelReplaceError,
    CancelReplaceReply,
    ErrorReply,
    FuturesBalance,
    OrderReply,
)
from tradeloop.venues.binance.spec import ORDER_STATUS, RECV_WINDOW_MS, TRADING, BinanceMarket, reject_reason

__all__ = [
    "OrderRequestError",
    "account_request",
    "account_snapshot",
    "amend_keep_priority_request",
    "amend_reply_events",
    "cancel_all_request",
    "cancel_params",
    "cancel_replace_events",
    "cancel_replace_params",
    "cancel_replace_request",
    "cancel_reply_events",
    "cancel_request",
    "decode_error",
    "fee_in_quote",
    "keep_priority_params",
    "listen_key_request",
    "modify_request",
    "my_trades_request",
    "open_orders_request",
    "order_reply_events",
    "place_params",
    "place_request",
    "query_request",
    "rejection",
    "status_report",
    "trade_fills",
    "unknown_order_report",
]

_ORDER_REPLY: Final = msgspec.json.Decoder(OrderReply)
_ORDER_LIST: Final = msgspec.json.Decoder(list[OrderReply])
_ERROR: Final = msgspec.json.Decoder(ErrorReply)
_CR_REPLY: Final = msgspec.json.Decoder(CancelReplaceReply)
_CR_ERROR: Final = msgspec.json.Decoder(CancelReplaceError)
_AMEND: Final = msgspec.json.Decoder(AmendReply)
_ACCOUNT: Final = msgspec.json.Decoder(AccountReply)
_FUTURES_BALANCES: Final = msgspec.json.Decoder(list[FuturesBalance])
_TRADES: Final = msgspec.json.Decoder(list[AccountTrade])

decode_order: Final = _ORDER_REPLY.decode
decode_orders: Final = _ORDER_LIST.decode
decode_amend: Final = _AMEND.decode
decode_trades: Final = _TRADES.decode


class OrderRequestError(ValueError):
    """A command that cannot become a valid Binance request (missing price, bad client id...)."""


# -- builders -----------------------------------------------------------------------------------


def _signed(
    credentials: Credentials,
    method: str,
    path: str,
    params: dict[str, str],
    now_ms: int,
    *,
    idempotent: bool,
    recv_window_ms: int | None = RECV_WINDOW_MS,
) -> SignedRequest:
    return SignedRequest(
        method=method,
        path=path,
        query=signed_query_for(credentials, params, now_ms, recv_window_ms),
        headers={"X-MBX-APIKEY": credentials.api_key.reveal()},
        idempotent=idempotent,
    )


def _check_client_id(client_order_id: str, market: BinanceMarket) -> str:
    if not re.fullmatch(TRADING[market].client_id_pattern, client_order_id):
        raise OrderRequestError(f"client order id {client_order_id!r} is not valid on Binance")
    return client_order_id


def _order_fields(
    market: BinanceMarket,
    inst: Instrument,
    side: Side,
    order_type: OrderType,
    tif: TimeInForce,
    post_only: bool,
    qty: int,
    price: int | None,
) -> dict[str, str]:
    """``side, type, timeInForce, quantity, price`` for a new order (post-only: spot ``LIMIT_MAKER``,
    USD-M ``timeInForce=GTX``)."""
    if qty <= 0:
        raise OrderRequestError(f"order size must be positive, got {qty}")
    fields = {"side": side.value}
    if order_type is OrderType.MARKET:
        fields["type"] = "MARKET"
        fields["quantity"] = inst.qty_to_str(qty)
        return fields
    if price is None or price <= 0:
        raise OrderRequestError("a limit order needs a positive price")
    if post_only and market is BinanceMarket.SPOT:
        fields["type"] = "LIMIT_MAKER"
    else:
        fields["type"] = "LIMIT"
        fields["timeInForce"] = "GTX" if post_only else tif.value
    fields["quantity"] = inst.qty_to_str(qty)
    fields["price"] = inst.price_to_str(price)
    return fields


def place_params(
    cmd: SubmitOrder, inst: Instrument, *, market: BinanceMarket = BinanceMarket.SPOT, resp_type: str | None = "FULL"
) -> dict[str, str]:
    """The parameters of a new order, unsigned (``place_request``; the WebSocket API's ``order.place``)."""
    params = {"symbol": inst.id.symbol}
    params.update(
        _order_fields(market, inst, cmd.side, cmd.order_type, cmd.time_in_force, cmd.post_only, cmd.qty, cmd.price)
    )
    if cmd.reduce_only and market is not BinanceMarket.SPOT:
        params["reduceOnly"] = "true"
    if cmd.client_order_id:
        params["newClientOrderId"] = _check_client_id(cmd.client_order_id, market)
    if resp_type:
        params["newOrderRespType"] = resp_type if market is BinanceMarket.SPOT else "RESULT"
    return params


def place_request(
    credentials: Credentials,
    now_ms: int,
    cmd: SubmitOrder,
    inst: Instrument,
    *,
    market: BinanceMarket = BinanceMarket.SPOT,
    recv_window_ms: int | None = RECV_WINDOW_MS,
    resp_type: str | None = "FULL",
) -> SignedRequest:
    """``POST /api/v3/order`` (``/fapi/v1/order``): limit, market, post-only, IOC, FOK, client order id.

    ``resp_type`` ``FULL`` (spot) returns the fills of an order that matched on arrival; USD-M takes
    ``RESULT`` (it has no ``FULL``). ``None`` leaves ``newOrderRespType`` out.
    """
    params = place_params(cmd, inst, market=market, resp_type=resp_type)
    return _signed(
        credentials, "POST", TRADING[market].order, params, now_ms, idempotent=False, recv_window_ms=recv_window_ms
    )


def cancel_params(cmd: CancelOrder) -> dict[str, str]:
    """The parameters of a cancel by client order id, unsigned (REST and ``order.cancel``)."""
    return {"symbol": cmd.instrument_id.symbol, "origClientOrderId": cmd.client_order_id}


def cancel_request(
    credentials: Credentials, now_ms: int, cmd: CancelOrder, *, market: BinanceMarket = BinanceMarket.SPOT
) -> SignedRequest:
    """``DELETE /api/v3/order`` by client order id (idempotent: a second cancel is just refused)."""
    return _signed(credentials, "DELETE", TRADING[market].order, cancel_params(cmd), now_ms, idempotent=True)


def cancel_all_request(
    credentials: Credentials, now_ms: int, symbol: str, *, market: BinanceMarket = BinanceMarket.SPOT
) -> SignedRequest:
    """Cancel every open order of one symbol: ``DELETE /api/v3/openOrders`` (``/fapi/v1/allOpenOrders``)."""
    return _signed(credentials, "DELETE", TRADING[market].cancel_all, {"symbol": symbol}, now_ms, idempotent=True)


def keep_priority_params(inst: Instrument, client_order_id: str, new_qty: int) -> dict[str, str]:
    """Reduce the size in place, keeping queue priority (REST and ``order.amend.keepPriority``).
    ``newClientOrderId`` repeats the current id (the docs allow reusing it), so the order keeps its id."""
    return {
        "symbol": inst.id.symbol,
        "origClientOrderId": client_order_id,
        "newClientOrderId": client_order_id,
        "newQty": inst.qty_to_str(new_qty),
    }


def amend_keep_priority_request(
    credentials: Credentials, now_ms: int, inst: Instrument, client_order_id: str, new_qty: int
) -> SignedRequest:
    """Spot ``PUT /api/v3/order/amend/keepPriority`` (:func:`keep_priority_params`)."""
    params = keep_priority_params(inst, client_order_id, new_qty)
    return _signed(
        credentials, "PUT", TRADING[BinanceMarket.SPOT].amend_keep_priority, params, now_ms, idempotent=False
    )


def cancel_replace_params(
    inst: Instrument,
    client_order_id: str,
    side: Side,
    time_in_force: TimeInForce,
    post_only: bool,
    qty: int,
    price: int,
) -> dict[str, str]:
    """Cancel the order and place its replacement under the same client id (``STOP_ON_FAILURE``), unsigned
    (REST and ``order.cancelReplace``). ``qty`` is the replacement's size (what is left to fill)."""
    params = {"symbol": inst.id.symbol}
    fields = _order_fields(BinanceMarket.SPOT, inst, side, OrderType.LIMIT, time_in_force, post_only, qty, price)
    params["side"] = fields.pop("side")
    params["type"] = fields.pop("type")
    params["cancelReplaceMode"] = "STOP_ON_FAILURE"
    params.update(fields)
    params["cancelOrigClientOrderId"] = client_order_id
    params["newClientOrderId"] = client_order_id
    params["newOrderRespType"] = "FULL"
    return params


def cancel_replace_request(
    credentials: Credentials,
    now_ms: int,
    inst: Instrument,
    client_order_id: str,
    side: Side,
    time_in_force: TimeInForce,
    post_only: bool,
    qty: int,
    price: int,
) -> SignedRequest:
    """Spot ``POST /api/v3/order/cancelReplace`` (:func:`cancel_replace_params`). This is a cancel/replace:
    the new order loses queue priority and gets a new ``orderId``."""
    params = cancel_replace_params(inst, client_order_id, side, time_in_force, post_only, qty, price)
    return _signed(credentials, "POST", TRADING[BinanceMarket.SPOT].cancel_replace, params, now_ms, idempotent=False)


def modify_request(
    credentials: Credentials, now_ms: int, inst: Instrument, client_order_id: str, side: Side, qty: int, price: int
) -> SignedRequest:
    """USD-M ``PUT /fapi/v1/order``: change price and size of a limit order in place (native amend)."""
    params = {
        "symbol": inst.id.symbol,
        "origClientOrderId": client_order_id,
        "side": side.value,
        "quantity": inst.qty_to_str(qty),
        "price": inst.price_to_str(price),
    }
    return _signed(credentials, "PUT", TRADING[BinanceMarket.USDM].modify, params, now_ms, idempotent=False)


def query_request(
    credentials: Credentials, now_ms: int, cmd: QueryOrder, *, market: BinanceMarket = BinanceMarket.SPOT
) -> SignedRequest:
    """``GET /api/v3/order`` by client order id."""
    params = {"symbol": cmd.instrument_id.symbol, "origClientOrderId": cmd.client_order_id}
    return _signed(credentials, "GET", TRADING[market].order, params, now_ms, idempotent=True)


def open_orders_request(
    credentials: Credentials, now_ms: int, symbol: str | None = None, *, market: BinanceMarket = BinanceMarket.SPOT
) -> SignedRequest:
    """``GET /api/v3/openOrders`` for one symbol, or all (much heavier)."""
    params = {"symbol": symbol} if symbol else {}
    return _signed(credentials, "GET", TRADING[market].open_orders, params, now_ms, idempotent=True)


def account_request(
    credentials: Credentials, now_ms: int, *, market: BinanceMarket = BinanceMarket.SPOT
) -> SignedRequest:
    """Balances: spot ``GET /api/v3/account?omitZeroBalances=true``, USD-M ``GET /fapi/v2/balance``."""
    params = {"omitZeroBalances": "true"} if market is BinanceMarket.SPOT else {}
    return _signed(credentials, "GET", TRADING[market].account, params, now_ms, idempotent=True)


def my_trades_request(
    credentials: Credentials, now_ms: int, symbol: str, order_id: str, *, market: BinanceMarket = BinanceMarket.SPOT
) -> SignedRequest:
    """The fills of one order: ``GET /api/v3/myTrades?symbol=..&orderId=..``."""
    params = {"symbol": symbol, "orderId": order_id}
    return _signed(credentials, "GET", TRADING[market].my_trades, params, now_ms, idempotent=True)


def listen_key_request(credentials: Credentials, method: str = "POST") -> SignedRequest:
    """USD-M listen key: ``POST`` creates (or returns the live one), ``PUT`` extends it by 60 minutes.
    Only the API key header is needed; the key in the reply must never be logged."""
    return SignedRequest(
        method=method,
        path=TRADING[BinanceMarket.USDM].listen_key,
        headers={"X-MBX-APIKEY": credentials.api_key.reveal()},
        idempotent=True,
    )


# -- mappers ------------------------------------------------------------------------------------


def decode_error(body: bytes) -> tuple[int, str]:
    """``(code, msg)`` of an error body; ``(0, <body start>)`` when it is not Binance's error JSON."""
    try:
        err = _ERROR.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0, body[:200].decode("utf-8", "replace")
    return err.code, err.msg


_REJECTIONS: Final[dict[str, type[OrderRejected | OrderCancelRejected | OrderAmendRejected]]] = {
    "place": OrderRejected,
    "cancel": OrderCancelRejected,
    "amend": OrderAmendRejected,
}


def rejection(
    request: str,
    inst: Instrument,
    client_order_id: str,
    code: int,
    msg: str,
    ts: int,
    reason: RejectReason | None = None,
) -> OrderRejected | OrderCancelRejected | OrderAmendRejected:
    """The refusal of a ``place``/``cancel``/``amend`` request, its reason from the error table."""
    return _REJECTIONS[request](
        ts=ts,
        instrument_id=inst.id,
        client_order_id=client_order_id,
        reason=reason if reason is not None else reject_reason(code, msg),
        message=f"{code}: {msg}" if code else msg,
    )


def fee_in_quote(commission: int, asset: str | None, price: int, inst: Instrument) -> tuple[int, bool]:
    """``(fee in the quote currency, exact)``: a base-asset fee is converted at the fill price; a fee
    in any other asset cannot be and gives ``(0, False)``."""
    if commission == 0 or not asset or asset == inst.quote:
        return commission, True
    if asset == inst.base:
        return fixed.mul(commission, price), True
    return 0, False


def _fill(
    inst: Instrument,
    client_order_id: str,
    venue_order_id: str,
    trade_id: str,
    side: Side,
    qty: int,
    price: int,
    commission: int,
    asset: str | None,
    maker: bool,
    ts: int,
) -> OrderFilled:
    fee, _ = fee_in_quote(commission, asset, price, inst)
    return OrderFilled(
        ts=ts,
        instrument_id=inst.id,
        client_order_id=client_order_id,
        venue_order_id=venue_order_id,
        trade_id=trade_id,
        side=side,
        last_qty=qty,
        last_price=price,
        fee=fee,
        fee_currency=inst.quote,
        liquidity=LiquiditySide.MAKER if maker else LiquiditySide.TAKER,
    )


def order_reply_events(reply: OrderReply, inst: Instrument, client_order_id: str, ts: int) -> list[OrderEvent]:
    """A place reply: accepted (it has an ``orderId``), then the fills it carries, then its end if it
    already ended (IOC/FOK remainder ``EXPIRED``, ``CANCELED``); ``REJECTED`` gives a rejection."""
    venue_id = str(reply.orderId)
    if reply.status == "REJECTED":
        return [rejection("place", inst, client_order_id, 0, "order rejected by the venue", ts, RejectReason.OTHER)]
    events: list[OrderEvent] = [
        OrderAccepted(ts=ts, instrument_id=inst.id, client_order_id=client_order_id, venue_order_id=venue_id)
    ]
    side = Side(reply.side) if reply.side else None
    for f in reply.fills:
        if side is None:
            break
        events.append(
            _fill(
                inst,
                client_order_id,
                venue_id,
                str(f.tradeId),
                side,
                fixed.parse(f.qty),
                fixed.parse(f.price),
                fixed.parse(f.commission),
                f.commissionAsset,
                False,
                ts,
            )
        )
    if reply.status in ("EXPIRED", "EXPIRED_IN_MATCH"):
        events.append(OrderExpired(ts=ts, instrument_id=inst.id, client_order_id=client_order_id, reason=reply.status))
    elif reply.status == "CANCELED":
        events.append(OrderCanceled(ts=ts, instrument_id=inst.id, client_order_id=client_order_id, reason="canceled"))
    return events


def cancel_reply_events(reply: OrderReply, inst: Instrument, client_order_id: str, ts: int) -> list[OrderEvent]:
    """A cancel reply (the order as it was canceled)."""
    if reply.status == "CANCELED":
        return [OrderCanceled(ts=ts, instrument_id=inst.id, client_order_id=client_order_id, reason="canceled")]
    return []


def amend_reply_events(reply: AmendReply, inst: Instrument, client_order_id: str, ts: int) -> list[OrderEvent]:
    """A keep-priority amend (or USD-M modify, same order shape): the order's new price and size."""
    order = reply.amendedOrder
    price = fixed.parse(order.price)
    return [
        OrderAmended(
            ts=ts,
            instrument_id=inst.id,
            client_order_id=client_order_id,
            price=price if price > 0 else None,
            qty=fixed.parse(order.origQty),
        )
    ]


def _present(raw: msgspec.Raw) -> bool:
    return bool(raw) and bytes(raw) != b"null"


def cancel_replace_events(
    status: int, body: bytes, inst: Instrument, client_order_id: str, price: int, total_qty: int, ts: int
) -> tuple[list[OrderEvent], str | None]:
    """A cancel-replace reply -> (events, the replacement's ``orderId`` when it was placed).

    200: both halves done -> ``OrderAmended`` (the order's new price and total size) plus any fills of
    the replacement. 409: the old order was canceled but the replacement refused -> ``OrderCanceled``
    (the order is gone). 400: nothing canceled -> ``OrderAmendRejected`` with the cancel's error.
    """
    if status == 200:
        reply = _CR_REPLY.decode(body)
        new = _ORDER_REPLY.decode(reply.newOrderResponse) if _present(reply.newOrderResponse) else None
        events: list[OrderEvent] = [
            OrderAmended(ts=ts, instrument_id=inst.id, client_order_id=client_order_id, price=price, qty=total_qty)
        ]
        if new is not None:
            events.extend(
                e for e in order_reply_events(new, inst, client_order_id, ts) if not isinstance(e, OrderAccepted)
            )
        return events, str(new.orderId) if new is not None else None
    err = _CR_ERROR.decode(body)
    data = err.data
    if data is not None and data.cancelResult == "SUCCESS":
        new_raw = data.newOrderResponse
        code, msg = decode_error(bytes(new_raw)) if _present(new_raw) else (err.code, err.msg)
        reason = f"cancel-replace: old order canceled, replacement refused ({code}: {msg})"
        return [OrderCanceled(ts=ts, instrument_id=inst.id, client_order_id=client_order_id, reason=reason)], None
    code, msg = err.code, err.msg
    if data is not None and _present(data.cancelResponse):
        code, msg = decode_error(bytes(data.cancelResponse))
    return [rejection("amend", inst, client_order_id, code, msg, ts)], None


def status_report(reply: OrderReply, inst: Instrument, client_order_id: str, ts: int) -> OrderStatusReport:
    """An order query reply as ``OrderStatusReport``."""
    price = fixed.parse(reply.price)
    return OrderStatusReport(
        ts=ts,
        instrument_id=inst.id,
        client_order_id=client_order_id,
        venue_order_id=str(reply.orderId),
        status=ORDER_STATUS.get(reply.status),
        filled_qty=fixed.parse(reply.executedQty),
        price=price if price > 0 else None,
        qty=fixed.parse(reply.origQty),
    )


def unknown_order_report(inst: Instrument, client_order_id: str, ts: int) -> OrderStatusReport:
    """The venue does not know this client order id."""
    return OrderStatusReport(
        ts=ts, instrument_id=inst.id, client_order_id=client_order_id, venue_order_id=None, status=None
    )


def trade_fills(
    trades: list[AccountTrade], inst: Instrument, client_order_id: str, ts: int, side: Side | None = None
) -> list[OrderFilled]:
    """``myTrades`` rows of one order as fills (``isBuyer``/``buyer`` gives the side)."""
    out = []
    for t in trades:
        buyer = t.isBuyer if t.isBuyer is not None else t.buyer
        maker = t.isMaker if t.isMaker is not None else t.maker
        fill_side = side if buyer is None else (Side.BUY if buyer else Side.SELL)
        if fill_side is None:
            continue
        out.append(
            _fill(
                inst,
                client_order_id,
                str(t.orderId),
                str(t.id),
                fill_side,
                fixed.parse(t.qty),
                fixed.parse(t.price),
                fixed.parse(t.commission),
                t.commissionAsset,
                bool(maker),
                ts,
            )
        )
    return out


def account_snapshot(
    body: bytes, venue: str, ts: int, *, market: BinanceMarket = BinanceMarket.SPOT
) -> AccountSnapshot:
    """Balances reply -> ``AccountSnapshot`` (total = free + locked), sorted by currency."""
    balances: list[Balance] = []
    if market is BinanceMarket.SPOT:
        for b in _ACCOUNT.decode(body).balances:
            free, locked = fixed.parse(b.free), fixed.parse(b.locked)
            balances.append(Balance(b.asset, free + locked, locked))
    else:
        for fb in _FUTURES_BALANCES.decode(body):
            total = fixed.parse(fb.balance)
            balances.append(Balance(fb.asset, total, max(total - fixed.parse(fb.availableBalance), 0)))
    balances.sort(key=lambda b: b.currency)
    return AccountSnapshot(ts=ts, venue=venue, balances=balances)


InstrumentLookup = Callable[[str], Instrument | None]
"""Venue symbol -> instrument (``None`` for symbols the client does not trade)."""
