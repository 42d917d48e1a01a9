"""Kraken spot REST orders, pure: signed request builders and reply -> engine event mappers.

Every builder is a function of (credentials, nonce, parameters) -> :class:`SignedRequest`: a POST to
``/0/private/<Method>`` with a form body that starts with the nonce and is signed by
:func:`tradeloop.venues.kraken.auth.private_request`. Nonces come from one strictly increasing source
per key (:func:`tradeloop.venues.kraken.auth.nonce_source`); a request is never re-sent with its old
nonce, it is rebuilt.

Amounts go out as the instrument's exact decimals with trailing zeros dropped (``0.1``, ``50``),
which is how ccxt writes them; an amount off the instrument's grid raises ``FixedPointError``.
Sells carry ``oflags=fciq`` so the fee is charged in the quote currency (Kraken's default for sells
is the base currency, which the engine's portfolio does not book); buys default to quote already.

Replies are ``{"error": [...], "result": ...}``; errors are strings (``EOrder:Insufficient funds``)
mapped by :func:`tradeloop.venues.kraken.spec.reject_reason`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

import msgspec

from tradeloop.core import fixed
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCancelRejected,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import SignedRequest
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.auth import private_request
from tradeloop.venues.kraken.schemas import (
    AddOrderResult,
    AmendResult,
    OrderInfo,
    TokenResult,
    TradeInfo,
)

__all__ = [
    "KrakenReply",
    "ReplyError",
    "account_snapshot",
    "amend_outcome",
    "amend_request",
    "balance_request",
    "cancel_all_request",
    "cancel_outcome",
    "cancel_request",
    "decode_reply",
    "fills_of_trades",
    "open_order_reports",
    "open_orders_request",
    "order_report",
    "place_outcome",
    "place_request",
    "query_request",
    "query_trades_request",
    "status_report",
    "throttled_for_s",
    "token_of",
    "wire_amount",
    "ws_token_request",
]

T = TypeVar("T")

COSTS_ORDER: Final = spec.costs("ORDERS")
COSTS_QUERY: Final = spec.costs("REST")
COSTS_TRADES: Final = spec.costs("REST", 2)


class ReplyError(ValueError):
    """A reply that is not Kraken's ``{"error": [...], "result": ...}`` JSON."""


class KrakenReply(msgspec.Struct, frozen=True):
    error: list[str] = []
    result: msgspec.Raw = msgspec.Raw(b"null")

    @property
    def first_error(self) -> str:
        return self.error[0] if self.error else ""


_REPLY: Final = msgspec.json.Decoder(KrakenReply)


def decode_reply(body: bytes) -> KrakenReply:
    """The reply envelope; :class:`ReplyError` for anything that is not one (an HTML error page)."""
    try:
        return _REPLY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplyError(f"kraken: not a REST reply ({exc})") from None


def _result(reply: KrakenReply, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(reply.result, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReplyError(f"kraken: unexpected result ({exc})") from None


def wire_amount(text: str) -> str:
    """``"0.10000000"`` -> ``"0.1"``, ``"50.0"`` -> ``"50"`` (the exact value, written shortest)."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _signed(
    credentials: Credentials, nonce: int, method: str, params: dict[str, str], *, idempotent: bool
) -> SignedRequest:
    path, headers, body = private_request(
        credentials.api_key.reveal(), credentials.secret.reveal(), method, nonce, params
    )
    return SignedRequest(method="POST", path=path, headers=headers, body=body, idempotent=idempotent)


# -- request builders -------------------------------------------------------------------------


def place_request(credentials: Credentials, nonce: int, cmd: SubmitOrder, instrument: Instrument) -> SignedRequest:
    """``AddOrder``: limit or market, post-only (``oflags=post``), IOC/FOK (``timeinforce``), ``cl_ord_id``.

    GTC is Kraken's default and is not sent; market orders carry no time in force. ``reduce_only``
    exists for margin orders only and is not sent for spot.
    """
    if cmd.instrument_id != instrument.id:
        raise ValueError(f"order for {cmd.instrument_id} built with the instrument of {instrument.id}")
    params = {
        "pair": spec.rest_pair(instrument.id.symbol),
        "type": "buy" if cmd.side is Side.BUY else "sell",
        "ordertype": "market" if cmd.order_type is OrderType.MARKET else "limit",
        "volume": wire_amount(instrument.qty_to_str(cmd.qty)),
    }
    if cmd.order_type is OrderType.LIMIT:
        if cmd.price is None:
            raise ValueError(f"limit order {cmd.client_order_id} has no price")
        params["price"] = wire_amount(instrument.price_to_str(cmd.price))
    flags = []
    if cmd.side is Side.SELL:
        flags.append("fciq")
    if cmd.post_only:
        flags.append("post")
    if flags:
        params["oflags"] = ",".join(flags)
    if cmd.order_type is OrderType.LIMIT and cmd.time_in_force is not TimeInForce.GTC:
        params["timeinforce"] = cmd.time_in_force.value
    if cmd.client_order_id:
        params["cl_ord_id"] = spec.to_cl_ord_id(cmd.client_order_id)
    return _signed(credentials, nonce, "AddOrder", params, idempotent=False)


def cancel_request(
    credentials: Credentials, nonce: int, *, client_order_id: str | None = None, txid: str | None = None
) -> SignedRequest:
    """``CancelOrder`` by our client order id (``cl_ord_id``) or by Kraken's order id (``txid``)."""
    if (client_order_id is None) == (txid is None):
        raise ValueError("cancel needs exactly one of client_order_id and txid")
    params = {"txid": txid} if txid is not None else {"cl_ord_id": spec.to_cl_ord_id(client_order_id or "")}
    return _signed(credentials, nonce, "CancelOrder", params, idempotent=True)


def cancel_all_request(credentials: Credentials, nonce: int) -> SignedRequest:
    """``CancelAll``: every open order of the account, on every pair."""
    return _signed(credentials, nonce, "CancelAll", {}, idempotent=True)


def amend_request(
    credentials: Credentials, nonce: int, cmd: AmendOrder, instrument: Instrument, *, post_only: bool = False
) -> SignedRequest:
    """``AmendOrder`` in place (queue priority kept where possible); ``post_only`` refuses a new price
    that would take liquidity."""
    if cmd.price is None and cmd.qty is None:
        raise ValueError(f"amend of {cmd.client_order_id} changes nothing")
    params = {"cl_ord_id": spec.to_cl_ord_id(cmd.client_order_id)}
    if cmd.qty is not None:
        params["order_qty"] = wire_amount(instrument.qty_to_str(cmd.qty))
    if cmd.price is not None:
        params["limit_price"] = wire_amount(instrument.price_to_str(cmd.price))
        if post_only:
            params["post_only"] = "true"
    return _signed(credentials, nonce, "AmendOrder", params, idempotent=False)


def query_request(credentials: Credentials, nonce: int, client_order_id: str) -> SignedRequest:
    """``QueryOrders`` by ``cl_ord_id``, with the ids of the order's trades."""
    params = {"trades": "true", "cl_ord_id": spec.to_cl_ord_id(client_order_id)}
    return _signed(credentials, nonce, "QueryOrders", params, idempotent=True)


def query_trades_request(credentials: Credentials, nonce: int, trade_ids: Sequence[str]) -> SignedRequest:
    """``QueryTrades``: price, volume and fee of each trade (at most 20 ids per call)."""
    if not 0 < len(trade_ids) <= 20:
        raise ValueError(f"QueryTrades takes 1-20 trade ids, got {len(trade_ids)}")
    return _signed(credentials, nonce, "QueryTrades", {"txid": ",".join(trade_ids)}, idempotent=True)


def open_orders_request(credentials: Credentials, nonce: int) -> SignedRequest:
    """``OpenOrders`` of every pair."""
    return _signed(credentials, nonce, "OpenOrders", {}, idempotent=True)


def balance_request(credentials: Credentials, nonce: int) -> SignedRequest:
    """``BalanceEx``: total and amount held by open orders per asset."""
    return _signed(credentials, nonce, "BalanceEx", {}, idempotent=True)


def ws_token_request(credentials: Credentials, nonce: int) -> SignedRequest:
    """``GetWebSocketsToken``: the token the private WebSocket's subscriptions carry."""
    return _signed(credentials, nonce, "GetWebSocketsToken", {}, idempotent=True)


# -- reply mappers ----------------------------------------------------------------------------


def throttled_for_s(error: str, now_s: float) -> float | None:
    """Seconds to wait after ``EService: Throttled: <unix time>`` (``None`` for other errors)."""
    if not error.startswith("EService: Throttled"):
        return None
    _, _, tail = error.rpartition(":")
    try:
        return max(0.0, float(tail.strip()) - now_s)
    except ValueError:
        return None


def _message(reply: KrakenReply) -> str:
    return "; ".join(reply.error)


def place_outcome(reply: KrakenReply, cmd: SubmitOrder, ts: int) -> OrderAccepted | OrderRejected:
    """``AddOrder``'s reply: accepted with Kraken's order id, or rejected with the mapped reason."""
    if reply.error:
        return OrderRejected(
            ts=ts,
            instrument_id=cmd.instrument_id,
            client_order_id=cmd.client_order_id,
            reason=spec.reject_reason(reply.first_error),
            message=_message(reply),
        )
    txids = _result(reply, AddOrderResult).txid
    if not txids:
        raise ReplyError("kraken AddOrder: no txid in a reply without errors")
    return OrderAccepted(
        ts=ts, instrument_id=cmd.instrument_id, client_order_id=cmd.client_order_id, venue_order_id=txids[0]
    )


def cancel_outcome(reply: KrakenReply, cmd: CancelOrder, ts: int) -> OrderCancelRejected | None:
    """``CancelOrder``'s reply: ``None`` when done (the ``executions`` stream reports the cancel)."""
    if not reply.error:
        return None
    return OrderCancelRejected(
        ts=ts,
        instrument_id=cmd.instrument_id,
        client_order_id=cmd.client_order_id,
        reason=spec.reject_reason(reply.first_error),
        message=_message(reply),
    )


def amend_outcome(
    reply: KrakenReply, cmd: AmendOrder, ts: int, price: int | None, qty: int
) -> OrderAmended | OrderAmendRejected:
    """``AmendOrder``'s reply; ``price``/``qty`` are the order's terms after the amend."""
    if reply.error:
        return OrderAmendRejected(
            ts=ts,
            instrument_id=cmd.instrument_id,
            client_order_id=cmd.client_order_id,
            reason=spec.reject_reason(reply.first_error),
            message=_message(reply),
        )
    _result(reply, AmendResult)
    return OrderAmended(
        ts=ts, instrument_id=cmd.instrument_id, client_order_id=cmd.client_order_id, price=price, qty=qty
    )


def _status_of(info: OrderInfo) -> OrderStatus | None:
    status = spec.REST_ORDER_STATUS.get(info.status)
    if status is OrderStatus.ACCEPTED and fixed.parse(info.vol_exec) > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def order_report(
    txid: str, info: OrderInfo, instrument_id: InstrumentId, client_order_id: str, ts: int
) -> OrderStatusReport:
    """One REST order info as the engine's status report."""
    price = fixed.parse(info.descr.price) if info.descr.ordertype == "limit" else None
    return OrderStatusReport(
        ts=ts,
        instrument_id=instrument_id,
        client_order_id=client_order_id,
        venue_order_id=txid,
        status=_status_of(info),
        filled_qty=fixed.parse(info.vol_exec),
        price=price or None,
        qty=fixed.parse(info.vol),
    )


def status_report(
    reply: KrakenReply, instrument_id: InstrumentId, client_order_id: str, ts: int
) -> tuple[OrderStatusReport, list[str]] | None:
    """``QueryOrders`` by ``cl_ord_id``: the report and the order's trade ids.

    ``status=None`` when Kraken does not know the order (unknown-order error or empty result);
    ``None`` for any other error (nothing can be concluded: the caller asks again later).
    """
    if reply.error:
        if spec.reject_reason(reply.first_error) is not RejectReason.UNKNOWN_ORDER:
            return None
        orders: dict[str, OrderInfo] = {}
    else:
        orders = _result(reply, dict[str, OrderInfo])
    if not orders:
        unknown = OrderStatusReport(
            ts=ts, instrument_id=instrument_id, client_order_id=client_order_id, venue_order_id=None, status=None
        )
        return unknown, []
    txid, info = next(iter(orders.items()))
    return order_report(txid, info, instrument_id, client_order_id, ts), list(info.trades)


def open_order_reports(reply: KrakenReply, ts: int, venue: str = spec.VENUE) -> list[OrderStatusReport]:
    """``OpenOrders`` as status reports (orders of pairs we cannot name are left out).

    Orders placed without a ``cl_ord_id`` are reported under their Kraken id.
    """
    if reply.error:
        raise ReplyError(f"kraken OpenOrders refused: {_message(reply)}")
    opened = _result(reply, dict[str, dict[str, OrderInfo]]).get("open", {})
    out: list[OrderStatusReport] = []
    for txid, info in opened.items():
        try:
            symbol = spec.symbol_of_rest_pair(info.descr.pair)
        except spec.SymbolError:
            continue
        cid = spec.from_cl_ord_id(info.cl_ord_id) if info.cl_ord_id else txid
        out.append(order_report(txid, info, InstrumentId(venue, symbol), cid, ts))
    out.sort(key=lambda r: (r.instrument_id, r.client_order_id))
    return out


def fills_of_trades(reply: KrakenReply, instrument: Instrument, client_order_id: str, ts: int) -> list[OrderFilled]:
    """``QueryTrades`` as fills (fee in the quote currency, as Kraken's trade records give it)."""
    if reply.error:
        raise ReplyError(f"kraken QueryTrades refused: {_message(reply)}")
    trades = _result(reply, dict[str, TradeInfo])
    fills = [
        OrderFilled(
            ts=ts,
            instrument_id=instrument.id,
            client_order_id=client_order_id,
            venue_order_id=t.ordertxid,
            trade_id=trade_id,
            side=Side.BUY if t.type == "buy" else Side.SELL,
            last_qty=fixed.parse(t.vol),
            last_price=fixed.parse(t.price),
            fee=fixed.parse(t.fee),
            fee_currency=instrument.quote,
            liquidity=LiquiditySide.MAKER if t.maker else LiquiditySide.TAKER,
        )
        for trade_id, t in trades.items()
    ]
    fills.sort(key=lambda f: f.trade_id)
    return fills


def account_snapshot(reply: KrakenReply, ts: int, venue: str = spec.VENUE) -> AccountSnapshot:
    """``BalanceEx`` (``{"balance", "hold_trade"}`` per asset) or ``Balance`` (a string per asset)."""
    if reply.error:
        raise ReplyError(f"kraken balance refused: {_message(reply)}")
    raw = _result(reply, dict[str, str | dict[str, str]])
    balances: list[Balance] = []
    for code, value in raw.items():
        if isinstance(value, str):
            total, held = fixed.parse(value), 0
        else:
            total = fixed.parse(value.get("balance", "0"))
            held = fixed.parse(value.get("hold_trade", "0"))
        balances.append(Balance(spec.asset_of_rest_code(code), total, held))
    balances.sort(key=lambda b: b.currency)
    return AccountSnapshot(ts=ts, venue=venue, balances=balances)


def token_of(reply: KrakenReply) -> str:
    """``GetWebSocketsToken``'s token."""
    if reply.error:
        raise ReplyError(f"kraken GetWebSocketsToken refused: {_message(reply)}")
    return _result(reply, TokenResult).token
