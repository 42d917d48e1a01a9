"""What the Coinbase execution client knows of its orders, and the events that knowledge implies.

Pure and synchronous: the client feeds it request replies, ``user`` channel updates and REST order
records; it emits each order's acceptance and terminal event exactly once (whichever source reports
it first) and every fill exactly once (fills derived by :class:`~.private.FillTracker`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.base import EmitEvent
from tradeloop.venues.coinbase import orders as req
from tradeloop.venues.coinbase.parse import ParseError
from tradeloop.venues.coinbase.private import FillTracker, UserUpdate, rounded_nanos
from tradeloop.venues.coinbase.schemas import OrderRecord

__all__ = ["OrderTracker", "TrackedOrder"]

log = get_logger("tradeloop.venues.coinbase.tracking")

_WORKING: Final = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
_KEEP_ORDERS: Final = 10_000


class TrackedOrder:
    """What the client knows of one order it placed (or found)."""

    __slots__ = (
        "accepted",
        "client_order_id",
        "instrument",
        "order_id",
        "order_type",
        "post_only",
        "price",
        "qty",
        "side",
        "strategy_id",
        "terminal",
        "time_in_force",
    )

    def __init__(self, cmd: SubmitOrder, instrument: Instrument) -> None:
        self.client_order_id = cmd.client_order_id
        self.instrument = instrument
        self.strategy_id = cmd.strategy_id
        self.side: Side = cmd.side
        self.qty = cmd.qty
        self.price = cmd.price
        self.order_type = cmd.order_type
        self.time_in_force = cmd.time_in_force
        self.post_only = cmd.post_only
        self.order_id: str | None = None
        self.accepted = False
        self.terminal = False

    @property
    def immediate(self) -> bool:
        """Never rests: market, IOC or FOK."""
        return self.order_type is OrderType.MARKET or self.time_in_force is not TimeInForce.GTC


class OrderTracker:
    """Orders by client id (the last ``10_000`` finished ones are kept for late replies and queries)."""

    def __init__(self, clock: Clock, emit: EmitEvent) -> None:
        self._clock = clock
        self._emit = emit
        self._orders: OrderedDict[str, TrackedOrder] = OrderedDict()
        self._by_order_id: dict[str, str] = {}
        self._fills = FillTracker()

    def get(self, client_order_id: str) -> TrackedOrder | None:
        return self._orders.get(client_order_id)

    def working(self) -> list[TrackedOrder]:
        """Orders not known to be finished whose venue id is known."""
        return [o for o in self._orders.values() if not o.terminal and o.order_id is not None]

    def on_update(self, u: UserUpdate) -> None:
        order = self._orders.get(u.client_order_id)
        if order is None:
            cid = self._by_order_id.get(u.order_id)
            order = self._orders.get(cid) if cid is not None else None
        if order is None:
            return  # not placed through this client
        self.set_order_id(order, u.order_id)
        if u.status == "FAILED" and not order.accepted:
            self.reject(order.instrument.id, order.client_order_id, req.Rejection(RejectReason.OTHER, u.reason))
            return
        self.accept(order)
        status = req.engine_status(u.status, u.cumulative_qty)
        self.fill(order, u.cumulative_qty, u.avg_price, u.total_fees, working=status in _WORKING)
        self.end(order, u.status, u.reason)

    def apply_record(self, order: TrackedOrder, record: OrderRecord) -> None:
        self.set_order_id(order, record.order_id)
        if record.status == "FAILED" and not order.accepted:
            self.reject(
                order.instrument.id, order.client_order_id, req.Rejection(RejectReason.OTHER, record.reject_reason)
            )
            return
        self.accept(order)
        self.fill_from_record(order, record)
        self.end(order, record.status, record.cancel_message)

    def fill_from_record(self, order: TrackedOrder, record: OrderRecord) -> None:
        try:
            cum = req.decimal_amount(record.filled_size)
            fees = rounded_nanos(record.total_fees)
        except (req.ReplyError, ParseError) as exc:
            log.warning("coinbase order record unreadable", error=str(exc))
            return
        status = req.engine_status(record.status, cum)
        self.fill(order, cum, record.average_filled_price, fees, working=status in _WORKING)

    def fill(self, order: TrackedOrder, cum: int, avg: str, fees: int, *, working: bool) -> None:
        assert order.order_id is not None
        try:
            delta = self._fills.observe(order.order_id, cum, avg, fees, order.instrument.tick_size, working=working)
        except ParseError as exc:
            log.warning("coinbase fill not derivable", client_order_id=order.client_order_id, error=str(exc))
            return
        if delta is None:
            return
        if not delta.exact:
            log.info("coinbase fill priced at the average of its increase", client_order_id=order.client_order_id)
        if order.post_only:
            liquidity = LiquiditySide.MAKER
        elif order.immediate:
            liquidity = LiquiditySide.TAKER
        else:
            liquidity = LiquiditySide.MAKER if delta.rested else LiquiditySide.TAKER
        self._emit(
            OrderFilled(
                ts=self._clock.now_ns(),
                instrument_id=order.instrument.id,
                client_order_id=order.client_order_id,
                venue_order_id=order.order_id,
                trade_id=delta.trade_id,
                side=order.side,
                last_qty=delta.qty,
                last_price=delta.price,
                fee=delta.fee,
                fee_currency=order.instrument.quote,
                liquidity=liquidity,
            )
        )

    def end(self, order: TrackedOrder, status: str, reason: str) -> None:
        if status in ("CANCELLED", "EXPIRED"):
            if order.immediate or status == "EXPIRED":
                self.terminal(order, OrderExpired, reason=reason or status.lower())
            else:
                self.terminal(order, OrderCanceled, reason=reason or "canceled by the venue")
        elif status in ("FILLED", "FAILED"):
            order.terminal = True

    def remember(self, order: TrackedOrder) -> None:
        self._orders[order.client_order_id] = order
        if len(self._orders) > _KEEP_ORDERS:
            for cid in [c for c, o in self._orders.items() if o.terminal][: len(self._orders) - _KEEP_ORDERS]:
                gone = self._orders.pop(cid)
                if gone.order_id is not None:
                    self._by_order_id.pop(gone.order_id, None)

    def set_order_id(self, order: TrackedOrder, order_id: str) -> None:
        if order.order_id is None and order_id:
            order.order_id = order_id
            self._by_order_id[order_id] = order.client_order_id

    def accept(self, order: TrackedOrder) -> None:
        if order.accepted or order.order_id is None:
            return
        order.accepted = True
        self.emit_now(OrderAccepted, order.instrument.id, order.client_order_id, venue_order_id=order.order_id)

    def terminal(self, order: TrackedOrder, kind: type[OrderCanceled] | type[OrderExpired], *, reason: str) -> None:
        if order.terminal:
            return
        order.terminal = True
        self.emit_now(kind, order.instrument.id, order.client_order_id, reason=reason)

    def reject(self, iid: InstrumentId, cid: str, rejection: req.Rejection) -> None:
        order = self._orders.get(cid)
        if order is not None:
            if order.accepted or order.terminal:
                return
            order.terminal = True
        self.emit_now(OrderRejected, iid, cid, reason=rejection.reason, message=rejection.message)

    def emit_now(self, kind: Callable[..., Any], iid: InstrumentId, cid: str, **fields: Any) -> None:
        self._emit(kind(ts=self._clock.now_ns(), instrument_id=iid, client_order_id=cid, **fields))
