"""Venue-side order state of the simulated venue, its id counters and read-only views."""

from __future__ import annotations

import msgspec

from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import OrderStatus, OrderType, Side, TimeInForce
from tradeloop.model.events import OrderFilled
from tradeloop.model.identifiers import InstrumentId

_OPEN = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


class SimIds:
    """Deterministic venue order ids (``<venue>-O<n>``) and trade ids (``<venue>-T<n>``)."""

    __slots__ = ("_orders", "_trades", "venue")

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._orders = 0
        self._trades = 0

    def next_order_id(self) -> str:
        """A new venue order id."""
        self._orders += 1
        return f"{self.venue}-O{self._orders}"

    def next_trade_id(self) -> str:
        """A new trade id."""
        self._trades += 1
        return f"{self.venue}-T{self._trades}"

    @property
    def orders_created(self) -> int:
        """How many venue order ids were handed out."""
        return self._orders


class SimOrderView(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one order as the simulated venue sees it (for reconciliation and tests)."""

    instrument_id: InstrumentId
    client_order_id: str
    venue_order_id: str
    strategy_id: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: int | None
    qty: int
    filled_qty: int
    status: OrderStatus
    queue_ahead: int
    """Book volume still ahead of the order at its price (0 when not resting)."""


class VenuePosition(msgspec.Struct, frozen=True, kw_only=True):
    """The venue's view of a linear-perp position: signed size, open cost, realized PnL, fees, margin."""

    instrument_id: InstrumentId
    qty: int
    cost: int
    realized: int
    fees: int
    margin: int


class SimOrder:
    """Mutable venue-side order. The matching engine changes its fill and queue state; the venue
    its lock. ``ahead`` is the book volume in front of it at its price while it rests."""

    __slots__ = (
        "ahead",
        "client_order_id",
        "filled",
        "fills",
        "instrument_id",
        "lock",
        "lock_currency",
        "number",
        "order_type",
        "post_only",
        "price",
        "qty",
        "reduce_only",
        "resting",
        "side",
        "status",
        "strategy_id",
        "time_in_force",
        "ts_created",
        "venue_order_id",
    )

    def __init__(self, cmd: SubmitOrder, number: int, venue_order_id: str, ts: int) -> None:
        self.client_order_id = cmd.client_order_id
        self.venue_order_id = venue_order_id
        self.number = number
        """Creation order at the venue (1, 2, ...), used to list orders deterministically."""
        self.instrument_id = cmd.instrument_id
        self.strategy_id = cmd.strategy_id
        self.side = cmd.side
        self.order_type = cmd.order_type
        self.time_in_force = cmd.time_in_force
        self.post_only = cmd.post_only
        self.reduce_only = cmd.reduce_only
        self.price: int | None = cmd.price if cmd.order_type is OrderType.LIMIT else None
        self.qty = cmd.qty
        self.filled = 0
        self.status = OrderStatus.SUBMITTED
        self.resting = False
        self.ahead = 0
        self.fills: list[OrderFilled] = []
        self.lock = 0
        self.lock_currency = ""
        self.ts_created = ts

    @property
    def leaves(self) -> int:
        """Size still to fill."""
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        """Working at the venue (accepted and not yet terminal)."""
        return self.status in _OPEN

    def view(self) -> SimOrderView:
        """An immutable snapshot of the order."""
        return SimOrderView(
            instrument_id=self.instrument_id,
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            strategy_id=self.strategy_id,
            side=self.side,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            price=self.price,
            qty=self.qty,
            filled_qty=self.filled,
            status=self.status,
            queue_ahead=self.ahead if self.resting else 0,
        )

    def __repr__(self) -> str:
        return (
            f"SimOrder({self.client_order_id} {self.side.value} {self.filled}/{self.qty}@{self.price} "
            f"{self.status.value} ahead={self.ahead})"
        )
