"""Commands: what strategies (and operators) ask the trading core to do.

Commands are requests; the answer comes back as events. All are frozen, serializable structs so
they can be journaled and sent between processes unchanged.
"""

from __future__ import annotations

import msgspec

from tradeloop.model.enums import OrderType, Side, TimeInForce
from tradeloop.model.identifiers import InstrumentId


class SubmitOrder(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Place a new order. ``client_order_id`` is assigned by the OMS if left empty."""

    ts: int
    strategy_id: str
    instrument_id: InstrumentId
    side: Side
    qty: int
    price: int | None = None
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str = ""


class CancelOrder(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    ts: int
    strategy_id: str
    instrument_id: InstrumentId
    client_order_id: str


class CancelAllOrders(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Cancel every open order, optionally narrowed to one instrument, venue or strategy."""

    ts: int
    strategy_id: str
    instrument_id: InstrumentId | None = None
    venue: str | None = None
    only_strategy: bool = False
    reason: str = ""


class AmendOrder(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Change price and/or size of a working order (cancel/replace where the venue cannot amend)."""

    ts: int
    strategy_id: str
    instrument_id: InstrumentId
    client_order_id: str
    price: int | None = None
    qty: int | None = None


class QueryOrder(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Ask the venue for the current state of an order whose outcome is unknown."""

    ts: int
    instrument_id: InstrumentId
    client_order_id: str


TradingCommand = SubmitOrder | CancelOrder | CancelAllOrders | AmendOrder | QueryOrder
