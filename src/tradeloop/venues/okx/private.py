"""OKX private stream and order replies -> engine events, each exactly once (pure, no I/O).

OKX answers an order request over REST (``sCode`` per item) and reports what happens to the order on
the private ``orders`` channel, in the order it happens; the two race. :class:`OkxOrderTracker`
merges them per client order id:

* **Accepted** on the first of: a place reply with ``sCode`` "0", or any push of the order (a fill
  push that overtakes the reply is preceded by the acceptance it implies).
* **Rejected** on a place reply with an error code (rate limits are retried by the caller), or on a
  push that cancels a never-accepted order for a reason that is a rejection in the engine's terms:
  ``cancelSource`` 31 (post-only would take liquidity) and 13 with nothing filled (FOK not fillable).
* **Filled** per push carrying ``tradeId`` + ``fillSz``, de-duplicated by ``(instId, tradeId)``
  (OKX may repeat a message); fees are valued in the quote currency.
* **Canceled / Expired** only from the push (it is ordered with the fills, so a fill reported after
  a cancel reply is never lost); IOC/FOK leftovers (``cancelSource`` 14/13) are ``OrderExpired``.
  A cancel reply with an error code gives ``OrderCancelRejected``.
* **Amended** from the push that carries ``amendResult`` "0" after an amend was sent (``-1``:
  ``OrderAmendRejected``); an amend reply with an error code gives ``OrderAmendRejected``.

Pushes for orders without a client id (placed elsewhere) or on instruments without a spec are
skipped. The ``account`` channel gives ``AccountSnapshot``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from tradeloop.core.logging import get_logger
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import OrderStatus, RejectReason
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.okx.instruments import OkxInstrument, nanos_rounded, plain_decimal
from tradeloop.venues.okx.orders import (
    AckOutcome,
    account_snapshot,
    order_status,
    price_or_none,
    push_fill,
    rest_fill,
    status_report,
)
from tradeloop.venues.okx.schemas import AccountPush, FillData, OrderData, OrdersPush
from tradeloop.venues.okx.spec import CANCEL_FOK, CANCEL_POST_ONLY, CANCEL_SOURCES, VENUE, error_reason

__all__ = ["OkxOrderTracker", "PrivateParseError"]

log = get_logger("tradeloop.venues.okx.private")

_ORDERS = msgspec.json.Decoder(OrdersPush)
_ACCOUNT = msgspec.json.Decoder(AccountPush)
_MAX_TRADE_IDS: Final = 100_000


class PrivateParseError(ValueError):
    """A private-stream frame that is not valid OKX JSON (the message names the channel)."""


class _Channel(msgspec.Struct, frozen=True):
    channel: str = ""


class _Envelope(msgspec.Struct, frozen=True):
    event: str = ""
    arg: _Channel | None = None
    code: str = ""
    msg: str = ""


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class _OrderState:
    __slots__ = ("accepted", "amend_pending", "fee_total", "iid", "ord_id", "terminal")

    def __init__(self, iid: InstrumentId) -> None:
        self.iid = iid
        self.fee_total = 0
        self.accepted = False
        self.terminal = False
        self.amend_pending = False
        self.ord_id = ""


def _cancel_reason(source: str) -> str:
    return CANCEL_SOURCES.get(source, f"cancelSource {source}" if source else "canceled")


class OkxOrderTracker:
    """Per-order state that turns replies and pushes into engine events exactly once.

    ``specs`` maps ``instId`` to its spec (sizes in contracts for swaps). Every method takes ``ts``,
    the engine clock at receipt, and returns the events to emit in order.
    """

    def __init__(self, specs: Mapping[str, OkxInstrument], venue: str = VENUE) -> None:
        self.venue = venue
        self._specs = dict(specs)
        self._orders: dict[str, _OrderState] = {}
        self._trades: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.unvalued_fees = 0
        """Fills whose fee was in a currency other than base or quote (reported as 0)."""

    def _state(self, iid: InstrumentId, cid: str) -> _OrderState:
        state = self._orders.get(cid)
        if state is None:
            state = self._orders[cid] = _OrderState(iid)
        return state

    def is_terminal(self, client_order_id: str) -> bool:
        state = self._orders.get(client_order_id)
        return state is not None and state.terminal

    def open_orders(self) -> list[tuple[InstrumentId, str]]:
        """``(instrument, client order id)`` of the orders accepted and not finished, as far as we know."""
        return [(s.iid, cid) for cid, s in self._orders.items() if s.accepted and not s.terminal]

    def venue_order_id(self, client_order_id: str) -> str:
        state = self._orders.get(client_order_id)
        return state.ord_id if state is not None else ""

    # -- replies to our requests --------------------------------------------------------------

    def on_place_reply(self, ts: int, cmd: SubmitOrder, ack: AckOutcome) -> list[Event]:
        """A place reply (rate-limit replies are the caller's to retry before they get here)."""
        state = self._state(cmd.instrument_id, cmd.client_order_id)
        if state.accepted or state.terminal:
            return []
        if ack.ok:
            state.accepted = True
            state.ord_id = ack.ord_id
            return [self._accepted(ts, state, cmd.client_order_id)]
        return [self.rejected(ts, cmd, error_reason(ack.code), f"okx {ack.code}: {ack.message}")]

    def rejected(self, ts: int, cmd: SubmitOrder, reason: RejectReason, message: str) -> Event:
        """The order never reached the book (an error reply, a command OKX cannot take, rate limits)."""
        state = self._state(cmd.instrument_id, cmd.client_order_id)
        state.terminal = True
        return OrderRejected(
            ts=ts, instrument_id=cmd.instrument_id, client_order_id=cmd.client_order_id, reason=reason, message=message
        )

    def on_cancel_reply(self, ts: int, iid: InstrumentId, cid: str, ack: AckOutcome) -> list[Event]:
        """Success waits for the push (ordered with the fills); an error is a cancel rejection."""
        if ack.ok or self.is_terminal(cid):
            return []
        return [
            OrderCancelRejected(
                ts=ts,
                instrument_id=iid,
                client_order_id=cid,
                reason=error_reason(ack.code),
                message=f"okx {ack.code}: {ack.message}",
            )
        ]

    def amend_sent(self, iid: InstrumentId, cid: str) -> None:
        self._state(iid, cid).amend_pending = True

    def on_amend_reply(self, ts: int, iid: InstrumentId, cid: str, ack: AckOutcome) -> list[Event]:
        """Success waits for the push with ``amendResult``; an error is an amend rejection."""
        state = self._state(iid, cid)
        if ack.ok:
            return []
        state.amend_pending = False
        if state.terminal:
            return []
        return [
            OrderAmendRejected(
                ts=ts,
                instrument_id=iid,
                client_order_id=cid,
                reason=error_reason(ack.code),
                message=f"okx {ack.code}: {ack.message}",
            )
        ]

    def on_query(
        self, ts: int, iid: InstrumentId, cid: str, data: OrderData | None, fills: Sequence[FillData]
    ) -> list[Event]:
        """A query's answer: the fills not reported yet, then the status report (``status=None``: unknown)."""
        if data is None:
            return [OrderStatusReport(ts=ts, instrument_id=iid, client_order_id=cid, venue_order_id=None, status=None)]
        spec = self._specs.get(data.instId)
        if spec is None:
            raise ValueError(f"okx order {cid} on {data.instId}, an instrument without a spec")
        out: list[Event] = []
        for fill in fills:
            out.extend(self._fill(rest_fill(ts, fill, spec, cid, self.venue)))
        report = status_report(ts, data, spec, self.venue)
        if report.client_order_id != cid:
            report = msgspec.structs.replace(report, client_order_id=cid)
        state = self._state(iid, cid)
        if report.status is not None:
            state.accepted = True
            state.ord_id = data.ordId
            state.terminal = report.status.is_terminal
        out.append(report)
        return out

    # -- private stream -----------------------------------------------------------------------

    def parse(self, ts: int, payload: bytes) -> list[Event]:
        """Events in one private-stream frame (``orders`` or ``account`` push; acks and pongs give none).

        Raises :class:`PrivateParseError` for malformed frames; an ``error`` event is logged.
        """
        if payload == b"pong":
            return []
        try:
            env = _ENVELOPE.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise PrivateParseError(f"okx private: not a valid frame: {exc}") from exc
        if env.event:
            if env.event == "error":
                log.warning("okx private stream error", venue=self.venue, code=env.code, msg=env.msg)
            return []
        channel = env.arg.channel if env.arg else ""
        try:
            if channel == "orders":
                out: list[Event] = []
                for data in _ORDERS.decode(payload).data:
                    out.extend(self.on_order_push(ts, data))
                return out
            if channel == "account":
                return [account_snapshot(ts, _ACCOUNT.decode(payload).data, self.venue)]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise PrivateParseError(f"okx private {channel} frame: {exc}") from exc
        return []

    def on_order_push(self, ts: int, data: OrderData) -> list[Event]:
        """One ``orders`` push element."""
        cid = data.clOrdId
        spec = self._specs.get(data.instId)
        if not cid or spec is None:
            log.debug("okx order push skipped", venue=self.venue, inst=data.instId, has_client_id=bool(cid))
            return []
        iid = InstrumentId(self.venue, data.instId)
        state = self._state(iid, cid)
        # Parse everything first: a malformed push raises before any state changes.
        fill_data, fee_total = self._with_fill_fee(state.fee_total, data)
        fill = push_fill(ts, fill_data, spec, self.venue)
        amend_result = data.amendResult if state.amend_pending and data.amendResult in ("0", "-1") else ""
        amended = (price_or_none(data.px), spec.parse_sz(data.sz)) if amend_result == "0" else None
        state.fee_total = fee_total
        if state.terminal:
            return self._fill(fill)  # a repeated message: its fill (if any) is de-duplicated
        out: list[Event] = []
        status = order_status(data)
        canceled = status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
        if not state.accepted:
            rejection = self._push_rejection(data) if canceled else None
            if rejection is not None:
                state.terminal = True
                reason, message = rejection
                return [OrderRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)]
            state.accepted = True
            state.ord_id = data.ordId
            out.append(self._accepted(ts, state, cid))
        out.extend(self._fill(fill))
        if amend_result:
            state.amend_pending = False
            if amended is not None:
                price, qty = amended
                out.append(OrderAmended(ts=ts, instrument_id=iid, client_order_id=cid, price=price, qty=qty))
            else:
                reason = error_reason(data.code) if data.code not in ("", "0") else RejectReason.OTHER
                message = f"okx amend failed: {data.code} {data.msg}".strip()
                out.append(
                    OrderAmendRejected(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason, message=message)
                )
        if canceled:
            state.terminal = True
            why = _cancel_reason(data.cancelSource)
            if status is OrderStatus.EXPIRED:
                out.append(OrderExpired(ts=ts, instrument_id=iid, client_order_id=cid, reason=why))
            else:
                out.append(OrderCanceled(ts=ts, instrument_id=iid, client_order_id=cid, reason=why))
        elif status is OrderStatus.FILLED:
            state.terminal = True
        return out

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _with_fill_fee(fee_total: int, data: OrderData) -> tuple[OrderData, int]:
        """A fill push without ``fillFee`` (older messages) gets it from the change of the cumulative ``fee``;
        returns the push and the cumulative fee seen so far."""
        if not data.tradeId or data.fillFee or not data.fee:
            return data, fee_total
        total = nanos_rounded(data.fee)
        return msgspec.structs.replace(data, fillFee=plain_decimal(total - fee_total), fillFeeCcy=data.feeCcy), total

    def _accepted(self, ts: int, state: _OrderState, cid: str) -> OrderAccepted:
        return OrderAccepted(ts=ts, instrument_id=state.iid, client_order_id=cid, venue_order_id=state.ord_id)

    @staticmethod
    def _push_rejection(data: OrderData) -> tuple[RejectReason, str] | None:
        if data.cancelSource == CANCEL_POST_ONLY:
            return RejectReason.POST_ONLY_WOULD_CROSS, "okx: " + CANCEL_SOURCES[CANCEL_POST_ONLY]
        if data.cancelSource == CANCEL_FOK and data.accFillSz in ("", "0"):
            return RejectReason.FOK_NOT_FILLABLE, "okx: " + CANCEL_SOURCES[CANCEL_FOK]
        return None

    def _fill(self, got: tuple[OrderFilled, bool] | None) -> list[Event]:
        if got is None:
            return []
        fill, valued = got
        key = (fill.instrument_id.symbol, fill.trade_id)
        if key in self._trades:
            return []
        self._trades[key] = None
        if len(self._trades) > _MAX_TRADE_IDS:
            self._trades.popitem(last=False)
        if not valued:
            self.unvalued_fees += 1
            log.warning("okx fee in a third currency reported as 0", venue=self.venue, trade_id=fill.trade_id)
        return [fill]
