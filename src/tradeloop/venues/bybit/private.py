"""Bybit v5 private stream -> engine events: pure (no I/O), with the per-order state the mapping needs.

Bybit answers order requests with an acknowledgement only; what happened arrives on the ``order``
topic (status changes), the ``execution`` topic (fills) and the ``wallet`` topic (balances), with
no ordering between topics. :class:`OrderTracker` turns them into the engine's events:

* the first sign of life of an order (``New``, a fill, ``PartiallyFilled``...) gives ``OrderAccepted``;
* ``Rejected``, or ``Cancelled`` before any acceptance or fill with a ``rejectReason`` (post-only
  would take liquidity, FOK not fillable, nothing to fill), gives ``OrderRejected`` with its reason;
* fills come from ``execution`` only (``Trade``/``AdlTrade``/``BustTrade``), deduplicated by ``execId``;
  a fee charged in the base coin (spot buys) is converted to the quote at the fill price;
* ``Cancelled`` gives ``OrderCanceled`` when someone asked for it (``cancelType``), else ``OrderExpired``
  (IOC/FOK/market leftovers: Bybit has no expired state). A terminal update that reports more
  filled (``cumExecQty``) than the fills seen so far is held until those fills arrive
  (:meth:`OrderTracker.release_held` lets the client give up waiting);
* an update showing the price and size of a pending amend gives ``OrderAmended``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.core.fastparse import parse_fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import (
    AccountSnapshot,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.orders import wallet_balances
from tradeloop.venues.bybit.schemas import ExecutionRow, ExecutionTopic, OrderRow, OrderTopic, WalletTopic

__all__ = ["FILL_EXEC_TYPES", "OrderTracker", "PrivateFrameError", "TrackedOrder", "classify", "decode_private"]

FILL_EXEC_TYPES: Final = frozenset({"Trade", "AdlTrade", "BustTrade", "BlockTrade"})
"""Executions that fill an order (``Funding``, ``Settle``... move cash, not orders)."""
_SIDES: Final = {"Buy": Side.BUY, "Sell": Side.SELL}
_SEEN_EXEC_IDS: Final = 50_000
_KEEP_DONE: Final = 10_000
"""Finished orders remembered (for late stream rows and queries); older ones are forgotten."""
_HEAD: Final = msgspec.json.Decoder(dict[str, object])
_ORDER: Final = msgspec.json.Decoder(OrderTopic)
_EXECUTION: Final = msgspec.json.Decoder(ExecutionTopic)
_WALLET: Final = msgspec.json.Decoder(WalletTopic)

PrivateMessage = OrderTopic | ExecutionTopic | WalletTopic


class PrivateFrameError(ValueError):
    """A private frame that is not valid JSON of a known shape (the message names the topic)."""


def decode_private(payload: bytes) -> PrivateMessage | dict[str, object]:
    """A topic message (``order``, ``order.spot``, ``execution``, ``wallet``...) or, for anything else
    (auth/subscribe replies, pongs, other topics), the decoded JSON object."""
    try:
        head = _HEAD.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PrivateFrameError(f"bybit private: not a JSON object: {exc}") from None
    topic = head.get("topic")
    if not isinstance(topic, str):
        return head
    base = topic.split(".", 1)[0]
    try:
        if base == "order":
            return _ORDER.decode(payload)
        if base == "execution":
            return _EXECUTION.decode(payload)
        if base == "wallet":
            return _WALLET.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PrivateFrameError(f"bybit private {topic}: {exc}") from None
    return head


def _qty(text: str) -> int:
    return parse_fixed(text) if text else 0


def classify(row: OrderRow, time_in_force: TimeInForce | None = None) -> tuple[OrderStatus, RejectReason | None]:
    """The engine status of a Bybit order row and, for a refusal, its reason.

    ``Cancelled`` without fills and with a known ``rejectReason`` is a rejection; ``Cancelled`` that
    nobody asked for (``cancelType`` not a user/admin cancel) of an IOC/FOK/market order is ``EXPIRED``.
    """
    status = spec.ORDER_STATUS.get(row.orderStatus)
    if status is None:
        raise ValueError(f"unknown orderStatus {row.orderStatus!r}")
    reason = spec.REJECT_REASONS.get(row.rejectReason)
    if status is OrderStatus.REJECTED:
        return status, reason or RejectReason.OTHER
    if status is OrderStatus.CANCELED:
        if reason is not None and _qty(row.cumExecQty) == 0:
            return OrderStatus.REJECTED, reason
        leftover = (
            row.orderType == "Market"
            or row.timeInForce in ("IOC", "FOK")
            or time_in_force
            in (
                TimeInForce.IOC,
                TimeInForce.FOK,
            )
        )
        if leftover and row.cancelType not in spec.USER_CANCEL_TYPES:
            return OrderStatus.EXPIRED, None
    return status, None


class TrackedOrder:
    """What the tracker knows of one order it placed."""

    __slots__ = (
        "accepted",
        "client_order_id",
        "done",
        "filled",
        "held",
        "held_cum",
        "instrument_id",
        "order_type",
        "pending_amend",
        "qty",
        "side",
        "strategy_id",
        "time_in_force",
        "venue_order_id",
    )

    def __init__(self, cmd: SubmitOrder) -> None:
        self.client_order_id = cmd.client_order_id
        self.instrument_id: InstrumentId = cmd.instrument_id
        self.strategy_id = cmd.strategy_id
        self.side: Side = cmd.side
        self.qty = cmd.qty
        self.order_type: OrderType = cmd.order_type
        self.time_in_force: TimeInForce = cmd.time_in_force
        self.venue_order_id = ""
        self.accepted = False
        self.done = False
        """A terminal event (rejected, canceled, expired, last fill) was emitted."""
        self.filled = 0
        self.held: Event | None = None
        self.held_cum = 0
        self.pending_amend: tuple[int | None, int | None] | None = None

    @property
    def is_open(self) -> bool:
        return not self.done


class OrderTracker:
    """Per-order state and the stream -> event mapping of one Bybit venue (category).

    ``instruments`` maps Bybit symbols to the instruments of this venue; rows of other categories or
    symbols are ignored. Every method returns the events to emit, stamped ``ts``.
    """

    def __init__(self, venue: str, instruments: Mapping[str, Instrument]) -> None:
        self.venue = venue
        self.category = spec.CATEGORY_OF_VENUE[venue]
        self.instruments = dict(instruments)
        self.orders: dict[str, TrackedOrder] = {}
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self.duplicate_fills = 0
        self.ignored = 0
        """Rows of other categories, unknown symbols or orders placed elsewhere."""

    # -- requests -----------------------------------------------------------------------------

    def track(self, cmd: SubmitOrder) -> TrackedOrder:
        if len(self.orders) >= 2 * _KEEP_DONE:
            done = [cid for cid, o in self.orders.items() if o.done]  # oldest first
            for cid in done[: max(len(done) - _KEEP_DONE, 0)]:
                del self.orders[cid]
        order = TrackedOrder(cmd)
        self.orders[cmd.client_order_id] = order
        return order

    def amend_sent(self, client_order_id: str, price: int | None, qty: int | None) -> None:
        order = self.orders.get(client_order_id)
        if order is not None:
            order.pending_amend = (price, qty)

    def amend_refused(self, client_order_id: str) -> None:
        order = self.orders.get(client_order_id)
        if order is not None:
            order.pending_amend = None

    def rejected(self, client_order_id: str) -> None:
        """The create request was refused: nothing will follow on the stream."""
        order = self.orders.get(client_order_id)
        if order is not None:
            order.done = True

    def open_orders(self) -> list[TrackedOrder]:
        return [o for o in self.orders.values() if not o.done]

    # -- stream -------------------------------------------------------------------------------

    def _mine(self, row: OrderRow | ExecutionRow) -> tuple[TrackedOrder, Instrument] | None:
        if row.category and row.category != self.category:
            self.ignored += 1
            return None
        order = self.orders.get(row.orderLinkId)
        inst = self.instruments.get(row.symbol)
        if order is None or inst is None or order.instrument_id != inst.id:
            self.ignored += 1
            return None
        return order, inst

    def _accept(self, order: TrackedOrder, venue_order_id: str, ts: int) -> list[Event]:
        if venue_order_id:
            order.venue_order_id = venue_order_id
        if order.accepted:
            return []
        order.accepted = True
        return [
            OrderAccepted(
                ts=ts,
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                venue_order_id=order.venue_order_id,
            )
        ]

    def on_order(self, row: OrderRow, ts: int) -> list[Event]:
        """Events of one ``order`` topic row (``ValueError`` for malformed numbers or statuses)."""
        mine = self._mine(row)
        if mine is None:
            return []
        order, inst = mine
        if order.done:
            return []
        status, reason = classify(row, order.time_in_force)
        cum = _qty(row.cumExecQty)
        if status is OrderStatus.REJECTED and not order.accepted and order.filled == 0 and cum == 0:
            order.done = True
            return [
                OrderRejected(
                    ts=ts,
                    instrument_id=order.instrument_id,
                    client_order_id=order.client_order_id,
                    reason=reason or RejectReason.OTHER,
                    message=row.rejectReason,
                )
            ]
        events = self._accept(order, row.orderId, ts)
        if status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            events += self._amended(order, inst, row, ts)
            return events
        if status is OrderStatus.FILLED:
            return events  # the fills themselves come from the execution topic
        terminal: Event
        if status is OrderStatus.EXPIRED:
            terminal = OrderExpired(
                ts=ts,
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                reason=f"{row.timeInForce or order.time_in_force.value} remainder cancelled by the venue",
            )
        else:  # CANCELED, or REJECTED after fills: the order is over either way
            terminal = OrderCanceled(
                ts=ts,
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                reason=row.cancelType or row.rejectReason,
            )
        if cum > order.filled:
            order.held, order.held_cum = terminal, cum
            return events
        order.done = True
        events.append(terminal)
        return events

    def _amended(self, order: TrackedOrder, inst: Instrument, row: OrderRow, ts: int) -> list[Event]:
        target = order.pending_amend
        if target is None:
            return []
        price, qty = target
        row_price = parse_fixed(row.price) if row.price else None
        row_qty = _qty(row.qty)
        if (price is not None and row_price != price) or (qty is not None and row_qty != qty):
            return []
        order.pending_amend = None
        order.qty = row_qty
        return [
            OrderAmended(
                ts=ts,
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                price=row_price,
                qty=row_qty,
            )
        ]

    def on_execution(self, row: ExecutionRow, ts: int) -> list[Event]:
        """Events of one ``execution`` row: ``OrderFilled`` once per ``execId`` (with ``OrderAccepted``
        first if the order was not yet seen), then a held terminal update once it is covered."""
        if row.execType not in FILL_EXEC_TYPES:
            return []
        mine = self._mine(row)
        if mine is None:
            return []
        order, inst = mine
        if row.execId in self._seen:
            self.duplicate_fills += 1
            return []
        qty = parse_fixed(row.execQty)
        price = parse_fixed(row.execPrice)
        side = _SIDES.get(row.side)
        if side is None or qty <= 0:
            raise ValueError(f"execution {row.execId}: side {row.side!r}, qty {row.execQty!r}")
        fee, fee_currency = _fee(row, inst, price)
        self._remember(row.execId)
        events = self._accept(order, row.orderId, ts)
        events.append(
            OrderFilled(
                ts=ts,
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                venue_order_id=order.venue_order_id,
                trade_id=row.execId,
                side=side,
                last_qty=qty,
                last_price=price,
                fee=fee,
                fee_currency=fee_currency,
                liquidity=LiquiditySide.MAKER if row.isMaker else LiquiditySide.TAKER,
            )
        )
        order.filled += qty
        if order.filled >= order.qty:
            order.done = True
            order.held = None
        elif order.held is not None and order.filled >= order.held_cum:
            events += self.release_held(order.client_order_id)
        return events

    def release_held(self, client_order_id: str) -> list[Event]:
        """Emit a held terminal update now (its missing fills did not come)."""
        order = self.orders.get(client_order_id)
        if order is None or order.held is None or order.done:
            return []
        held, order.held = order.held, None
        order.done = True
        return [held]

    def on_wallet(self, msg: WalletTopic, ts: int) -> AccountSnapshot:
        return AccountSnapshot(ts=ts, venue=self.venue, balances=wallet_balances(msg.data))

    def report(self, client_order_id: str, inst: Instrument, row: OrderRow | None, ts: int) -> OrderStatusReport:
        """``OrderStatusReport`` of a queried order (``row`` None: unknown to the venue); updates the state
        so later stream rows do not repeat what the report settles."""
        if row is None:
            return OrderStatusReport(
                ts=ts, instrument_id=inst.id, client_order_id=client_order_id, venue_order_id=None, status=None
            )
        order = self.orders.get(client_order_id)
        status, _ = classify(row, order.time_in_force if order is not None else None)
        if order is not None:
            order.venue_order_id = row.orderId or order.venue_order_id
            if status is not OrderStatus.REJECTED:
                order.accepted = True
            if status.is_terminal:
                order.done = True
                order.held = None
        return OrderStatusReport(
            ts=ts,
            instrument_id=inst.id,
            client_order_id=client_order_id,
            venue_order_id=row.orderId or None,
            status=status,
            filled_qty=_qty(row.cumExecQty),
            price=parse_fixed(row.price) if row.price and row.orderType != "Market" else None,
            qty=_qty(row.qty) or None,
        )

    def _remember(self, exec_id: str) -> None:
        self._seen.add(exec_id)
        self._seen_order.append(exec_id)
        if len(self._seen_order) > _SEEN_EXEC_IDS:
            self._seen.discard(self._seen_order.popleft())


def _fee(row: ExecutionRow, inst: Instrument, price: int) -> tuple[int, str]:
    """Fee in the instrument's quote currency: Bybit charges spot buys in the base coin."""
    fee = parse_fixed(row.execFee) if row.execFee else 0
    currency = row.feeCurrency or inst.settle
    if currency == inst.base and inst.base != inst.quote:
        return fixed.mul(fee, price), inst.quote
    return fee, currency
