"""Binance user data: WebSocket API frames and user-data-stream events -> engine events (pure).

Spot events arrive on the WebSocket API as ``{"subscriptionId": N, "event": {...}}`` after
``userDataStream.subscribe.signature``; replies to requests are ``{"id", "status", "result"|"error"}``.
USD-M events arrive bare on the listen-key stream (``ORDER_TRADE_UPDATE`` wraps the order in ``o``).

``executionReport`` by execution type ``x``: ``NEW`` -> accepted; ``TRADE`` -> a fill (trade id
``t``, maker flag ``m``, fee ``n`` in ``N``); ``CANCELED`` -> canceled (the order's id is ``C``, ``c``
being the cancel request's id); ``EXPIRED`` / ``TRADE_PREVENTION`` -> expired; ``REJECTED`` ->
rejected; ``REPLACED`` (keep-priority amend) and USD-M ``AMENDMENT`` -> amended.
"""

from __future__ import annotations

from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.enums import LiquiditySide, RejectReason, Side
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.binance.orders import InstrumentLookup, fee_in_quote
from tradeloop.venues.binance.schemas import (
    AccountPosition,
    EventType,
    ExecutionReport,
    FuturesOrderUpdate,
    UserEventHead,
)

__all__ = [
    "UserFrame",
    "UserFrameError",
    "account_position_snapshot",
    "decode_user_frame",
    "execution_report_events",
    "user_events",
]

_HEAD: Final = msgspec.json.Decoder(UserEventHead)
_TYPE: Final = msgspec.json.Decoder(EventType)
_REPORT: Final = msgspec.json.Decoder(ExecutionReport)
_FUTURES_UPDATE: Final = msgspec.json.Decoder(FuturesOrderUpdate)
_POSITION: Final = msgspec.json.Decoder(AccountPosition)


class UserFrameError(ValueError):
    """A user-data frame that is not valid JSON of a known shape (counted and logged, never fatal)."""


class UserFrame(msgspec.Struct, frozen=True):
    """One decoded frame: a request reply (``reply_id`` set) or an event (``event_type`` and raw JSON)."""

    reply_id: str | None = None
    status: int = 0
    error_code: int = 0
    error_msg: str = ""
    event_type: str = ""
    event: bytes = b""


def decode_user_frame(payload: bytes | str) -> UserFrame:
    """Route one frame of the user socket; raises :class:`UserFrameError` when it is malformed."""
    data = payload.encode() if isinstance(payload, str) else payload
    try:
        head = _HEAD.decode(data)
        if head.id is not None:
            err = head.error
            return UserFrame(
                reply_id=str(head.id),
                status=head.status,
                error_code=err.code if err else 0,
                error_msg=err.msg if err else "",
            )
        if head.event and bytes(head.event) != b"null":
            raw = bytes(head.event)
            return UserFrame(event_type=_TYPE.decode(raw).e, event=raw)
        return UserFrame(event_type=head.e, event=data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UserFrameError(f"binance user data frame: {exc}") from exc


def execution_report_events(report: ExecutionReport, inst: Instrument, ts: int) -> list[OrderEvent]:
    """One order update as engine events (``[]`` for execution types that change nothing we track)."""
    x = report.x
    iid = inst.id
    if x == "CANCELED":
        cid = report.C or report.c
        return [OrderCanceled(ts=ts, instrument_id=iid, client_order_id=cid, reason="canceled")]
    cid = report.c
    venue_id = str(report.i)
    if x == "NEW":
        return [OrderAccepted(ts=ts, instrument_id=iid, client_order_id=cid, venue_order_id=venue_id)]
    if x == "TRADE":
        price = fixed.parse(report.L)
        fee, _ = fee_in_quote(fixed.parse(report.n or "0"), report.N, price, inst)
        return [
            OrderFilled(
                ts=ts,
                instrument_id=iid,
                client_order_id=cid,
                venue_order_id=venue_id,
                trade_id=str(report.t),
                side=Side(report.S),
                last_qty=fixed.parse(report.l),
                last_price=price,
                fee=fee,
                fee_currency=inst.quote,
                liquidity=LiquiditySide.MAKER if report.m else LiquiditySide.TAKER,
            )
        ]
    if x in ("EXPIRED", "TRADE_PREVENTION"):
        return [OrderExpired(ts=ts, instrument_id=iid, client_order_id=cid, reason=report.X)]
    if x == "REJECTED":
        return [
            OrderRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=RejectReason.OTHER, message=report.r)
        ]
    if x in ("REPLACED", "AMENDMENT"):
        price = fixed.parse(report.p)
        return [
            OrderAmended(
                ts=ts,
                instrument_id=iid,
                client_order_id=cid,
                price=price if price > 0 else None,
                qty=fixed.parse(report.q),
            )
        ]
    return []


def account_position_snapshot(position: AccountPosition, venue: str, ts: int) -> AccountSnapshot:
    """``outboundAccountPosition`` -> ``AccountSnapshot`` of the assets it lists (those that changed)."""
    balances = [Balance(b.a, fixed.parse(b.f) + fixed.parse(b.l), fixed.parse(b.l)) for b in position.B]
    balances.sort(key=lambda b: b.currency)
    return AccountSnapshot(ts=ts, venue=venue, balances=balances)


def user_events(
    frame: UserFrame, lookup: InstrumentLookup, venue: str, ts: int
) -> tuple[list[Event], ExecutionReport | None]:
    """The engine events of one user-data event frame, and its order report (for the client's tracking).

    Order updates of symbols ``lookup`` does not know give no events. Raises :class:`UserFrameError`
    for an event whose fields do not decode.
    """
    try:
        if frame.event_type == "executionReport":
            report = _REPORT.decode(frame.event)
        elif frame.event_type == "ORDER_TRADE_UPDATE":
            report = _FUTURES_UPDATE.decode(frame.event).o
        elif frame.event_type == "outboundAccountPosition":
            return [account_position_snapshot(_POSITION.decode(frame.event), venue, ts)], None
        else:
            return [], None
        inst = lookup(report.s)
        if inst is None:
            return [], report
        return list(execution_report_events(report, inst, ts)), report
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise UserFrameError(f"binance {frame.event_type or 'user'} event: {exc}") from exc
