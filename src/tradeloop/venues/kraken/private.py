"""Kraken's private stream (``executions``, ``balances``) and REST replies merged into one event stream.

An order's news reaches the client twice: in the REST reply to the request (``AddOrder`` gives the
order id, ``AmendOrder`` confirms an amend) and in the ``executions`` stream (``new``, ``trade``,
``canceled``, ``amended``...). :class:`OrderTracker` keeps what was already reported per order so the
engine hears each fact once: one acceptance, each fill once (by ``exec_id``, Kraken's trade id), one
terminal event, and each amend once (the first of its REST and stream confirmations). It is pure:
feed it replies and frames, it returns the events to emit.

Terminal events come from the stream, not from REST replies, so a fill the stream reports before
the cancel is never refused by the order state machine; only while the stream is down does a
confirmed cancel count as the cancel (:meth:`OrderTracker.on_cancel_confirmed`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import LiquiditySide, RejectReason, Side
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.schemas import BalancesMessage, Execution, ExecutionsMessage

__all__ = ["BalanceBook", "OrderTracker", "PrivateParseError", "TrackedOrder", "decode_private"]

_KEEP_TERMINAL: Final = 10_000
"""Finished orders remembered (late duplicates of their events are dropped)."""

_EXECUTIONS: Final = msgspec.json.Decoder(ExecutionsMessage)
_BALANCES: Final = msgspec.json.Decoder(BalancesMessage)


class PrivateParseError(ValueError):
    """A private frame that cannot be read (the message names the channel)."""


def decode_private(payload: bytes | str) -> ExecutionsMessage | BalancesMessage | None:
    """An ``executions`` or ``balances`` message; ``None`` for anything else (acks, pongs, heartbeats)."""
    raw = payload.encode() if isinstance(payload, str) else payload
    head = raw[:48]
    try:
        if b'"executions"' in raw[:64] and b'"channel"' in head:
            return _EXECUTIONS.decode(raw)
        if b'"balances"' in raw[:64] and b'"channel"' in head:
            return _BALANCES.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        channel = "executions" if b'"executions"' in raw[:64] else "balances"
        raise PrivateParseError(f"kraken {channel} frame: {exc}") from None
    return None


def _nanos(value: Decimal | None) -> int:
    return 0 if value is None else fixed.parse(format(value, "f"))


class TrackedOrder:
    """What the engine has been told about one order."""

    __slots__ = (
        "accepted",
        "amends_rest",
        "amends_stream",
        "client_order_id",
        "exec_ids",
        "filled",
        "instrument",
        "post_only",
        "price",
        "qty",
        "side",
        "terminal",
        "venue_order_id",
    )

    def __init__(
        self, client_order_id: str, instrument: Instrument, side: Side, qty: int, price: int | None, post_only: bool
    ) -> None:
        self.client_order_id = client_order_id
        self.instrument = instrument
        self.side = side
        self.qty = qty
        self.price = price
        self.post_only = post_only
        self.venue_order_id = ""
        self.accepted = False
        self.terminal = False
        self.filled = 0
        self.exec_ids: set[str] = set()
        self.amends_rest = 0
        self.amends_stream = 0


class OrderTracker:
    """Per-order dedupe of REST replies and ``executions`` events (see the module docstring)."""

    def __init__(self, instruments: Mapping[InstrumentId, Instrument]) -> None:
        self._instruments = dict(instruments)
        self._by_symbol = {iid.symbol: inst for iid, inst in instruments.items()}
        self._orders: dict[str, TrackedOrder] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._orders)

    def get(self, client_order_id: str) -> TrackedOrder | None:
        return self._orders.get(client_order_id)

    def open_orders(self) -> list[TrackedOrder]:
        return [o for o in self._orders.values() if not o.terminal]

    def track(self, cmd: SubmitOrder) -> TrackedOrder:
        """Remember an order about to be sent (its terms are needed to report amends)."""
        existing = self._orders.get(cmd.client_order_id)
        if existing is not None and not existing.terminal:
            return existing
        order = TrackedOrder(
            cmd.client_order_id,
            self._instruments[cmd.instrument_id],
            cmd.side,
            cmd.qty,
            cmd.price,
            cmd.post_only,
        )
        self._orders[cmd.client_order_id] = order
        self._finished.pop(cmd.client_order_id, None)
        return order

    def _finish(self, order: TrackedOrder) -> None:
        order.terminal = True
        self._finished[order.client_order_id] = None
        while len(self._finished) > _KEEP_TERMINAL:
            old, _ = self._finished.popitem(last=False)
            self._orders.pop(old, None)

    # -- REST replies ---------------------------------------------------------------------------

    def on_place_reply(self, event: OrderAccepted | OrderRejected) -> list[Event]:
        order = self._orders.get(event.client_order_id)
        if order is None or order.terminal:
            return []
        if isinstance(event, OrderRejected):
            if order.accepted:
                return []
            self._finish(order)
            return [event]
        order.venue_order_id = event.venue_order_id
        if order.accepted or order.filled:
            order.accepted = True
            return []
        order.accepted = True
        return [event]

    def on_amend_reply(self, event: OrderAmended | OrderAmendRejected) -> list[Event]:
        order = self._orders.get(event.client_order_id)
        if isinstance(event, OrderAmendRejected):
            return [event]
        if order is None:
            return [event]
        order.amends_rest += 1
        order.price = event.price
        order.qty = event.qty
        return [event] if order.amends_rest > order.amends_stream else []

    def on_cancel_confirmed(self, client_order_id: str, ts: int, reason: str = "") -> list[Event]:
        """A cancel Kraken confirmed while the stream was down: the order is canceled."""
        order = self._orders.get(client_order_id)
        if order is None or order.terminal:
            return []
        self._finish(order)
        return [OrderCanceled(ts=ts, instrument_id=order.instrument.id, client_order_id=client_order_id, reason=reason)]

    def on_fills(self, fills: Iterable[OrderFilled]) -> list[Event]:
        """Fills recovered by a query: the ones not yet reported."""
        out: list[Event] = []
        for fill in fills:
            order = self._orders.get(fill.client_order_id)
            if order is None:
                out.append(fill)
                continue
            if fill.trade_id in order.exec_ids:
                continue
            order.exec_ids.add(fill.trade_id)
            order.filled += fill.last_qty
            order.accepted = True
            out.append(fill)
        return out

    # -- the executions stream ------------------------------------------------------------------

    def on_executions(self, msg: ExecutionsMessage, ts: int) -> list[Event]:
        """Events for one ``executions`` message. A snapshot (sent on every subscribe: open orders and
        the last fills) reports only what this tracker has not told yet about orders it knows."""
        out: list[Event] = []
        snapshot = msg.type == "snapshot"
        for ex in msg.data:
            known = bool(ex.cl_ord_id) and spec.from_cl_ord_id(ex.cl_ord_id or "") in self._orders
            order = self._order_of(ex)
            if order is None:
                continue
            if ex.order_id:
                order.venue_order_id = ex.order_id
            if snapshot:
                if ex.exec_type == "trade":
                    if known:
                        out += self._fill(order, ex, ts)
                    elif ex.exec_id:  # an older fill of an order from before this client: not news
                        order.exec_ids.add(ex.exec_id)
                elif not order.accepted and not order.terminal:
                    order.accepted = True
                    out.append(self._accepted(order, ts))
                continue
            out += self._event(order, ex, ts)
        return out

    def _order_of(self, ex: Execution) -> TrackedOrder | None:
        if not ex.cl_ord_id:
            return None
        cid = spec.from_cl_ord_id(ex.cl_ord_id)
        order = self._orders.get(cid)
        if order is not None:
            return order
        inst = self._by_symbol.get(ex.symbol or "")
        if inst is None or ex.side not in ("buy", "sell") or ex.order_qty is None:
            return None
        # An order this client did not place (an earlier run of the node): follow it from here on.
        order = TrackedOrder(
            cid,
            inst,
            Side.BUY if ex.side == "buy" else Side.SELL,
            _nanos(ex.order_qty),
            _nanos(ex.limit_price) or None,
            bool(ex.post_only),
        )
        order.accepted = True
        order.filled = _nanos(ex.cum_qty)
        self._orders[cid] = order
        return order

    def _accepted(self, order: TrackedOrder, ts: int) -> OrderAccepted:
        return OrderAccepted(
            ts=ts,
            instrument_id=order.instrument.id,
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
        )

    def _event(self, order: TrackedOrder, ex: Execution, ts: int) -> list[Event]:
        kind = ex.exec_type
        iid = order.instrument.id
        cid = order.client_order_id
        if kind == "trade":
            return self._fill(order, ex, ts)
        if kind == "amended":
            order.amends_stream += 1
            if order.terminal:
                return []
            if ex.order_qty is not None:
                order.qty = _nanos(ex.order_qty)
            if ex.limit_price is not None:
                order.price = _nanos(ex.limit_price)
            if order.amends_stream > order.amends_rest:
                return [OrderAmended(ts=ts, instrument_id=iid, client_order_id=cid, price=order.price, qty=order.qty)]
            return []
        if order.terminal:
            return []
        if kind == "new":
            if order.accepted or order.filled:
                order.accepted = True
                return []
            order.accepted = True
            return [self._accepted(order, ts)]
        if kind == "filled":
            self._finish(order)
            return []
        reason = ex.reason or ""
        if kind == "canceled":
            self._finish(order)
            if not order.accepted and not order.filled and "post only" in reason.lower():
                return [
                    OrderRejected(
                        ts=ts,
                        instrument_id=iid,
                        client_order_id=cid,
                        reason=RejectReason.POST_ONLY_WOULD_CROSS,
                        message=reason,
                    )
                ]
            return [OrderCanceled(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason)]
        if kind == "expired":
            self._finish(order)
            return [OrderExpired(ts=ts, instrument_id=iid, client_order_id=cid, reason=reason)]
        return []  # pending_new, restated, iceberg_refill, status: nothing for the engine

    def _fill(self, order: TrackedOrder, ex: Execution, ts: int) -> list[Event]:
        trade_id = ex.exec_id or (f"{ex.order_id}:{ex.trade_id}" if ex.trade_id is not None else "")
        if not trade_id or trade_id in order.exec_ids:
            return []
        qty = _nanos(ex.last_qty)
        price = _nanos(ex.last_price)
        if qty <= 0:
            return []
        order.exec_ids.add(trade_id)
        order.filled += qty
        order.accepted = True
        inst = order.instrument
        fee = 0
        for f in ex.fees:
            amount = _nanos(f.qty)
            if f.asset == inst.quote:
                fee += amount
            elif f.asset == inst.base:
                fee += fixed.mul(amount, price)  # charged in base despite fciq: valued at the fill price
        return [
            OrderFilled(
                ts=ts,
                instrument_id=inst.id,
                client_order_id=order.client_order_id,
                venue_order_id=ex.order_id,
                trade_id=trade_id,
                side=order.side,
                last_qty=qty,
                last_price=price,
                fee=fee,
                fee_currency=inst.quote,
                liquidity=LiquiditySide.MAKER if ex.liquidity_ind == "m" else LiquiditySide.TAKER,
            )
        ]


class BalanceBook:
    """Totals per asset from the ``balances`` channel (a snapshot, then one entry per ledger change)."""

    def __init__(self, venue: str = spec.VENUE) -> None:
        self.venue = venue
        self._totals: dict[str, int] = {}

    def on_balances(self, msg: BalancesMessage, ts: int) -> AccountSnapshot:
        if msg.type == "snapshot":
            self._totals.clear()
        for entry in msg.data:
            self._totals[entry.asset] = _nanos(entry.balance)
        balances = [Balance(asset, total) for asset, total in sorted(self._totals.items())]
        return AccountSnapshot(ts=ts, venue=self.venue, balances=balances)
