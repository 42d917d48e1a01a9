"""Events: facts that happened. State (orders, positions, balances) is a fold over these.

Every event carries ``ts`` (engine clock, ns). Order events carry the ``client_order_id`` the OMS
assigned; venue-originated ones also the venue's id where known.
"""

from __future__ import annotations

import msgspec

from tradeloop.model.enums import (
    LiquiditySide,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    TradingState,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument


class OrderEventBase(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    ts: int
    instrument_id: InstrumentId
    client_order_id: str


class OrderInitialized(OrderEventBase, frozen=True, kw_only=True):
    """The OMS accepted a SubmitOrder command and created the order (the journaled intent)."""

    strategy_id: str
    side: Side
    qty: int
    price: int | None
    order_type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    reduce_only: bool


class OrderDenied(OrderEventBase, frozen=True, kw_only=True):
    """Refused before leaving the engine (risk or validation)."""

    reason: str


class OrderSubmitted(OrderEventBase, frozen=True, kw_only=True):
    """Handed to the venue client; the venue's answer is pending."""


class OrderAccepted(OrderEventBase, frozen=True, kw_only=True):
    venue_order_id: str


class OrderRejected(OrderEventBase, frozen=True, kw_only=True):
    reason: RejectReason
    message: str = ""


class OrderFilled(OrderEventBase, frozen=True, kw_only=True):
    venue_order_id: str
    trade_id: str
    side: Side
    last_qty: int
    last_price: int
    fee: int
    fee_currency: str
    liquidity: LiquiditySide


class OrderPendingCancel(OrderEventBase, frozen=True, kw_only=True):
    pass


class OrderCanceled(OrderEventBase, frozen=True, kw_only=True):
    reason: str = ""


class OrderCancelRejected(OrderEventBase, frozen=True, kw_only=True):
    reason: RejectReason
    message: str = ""


class OrderPendingAmend(OrderEventBase, frozen=True, kw_only=True):
    price: int | None = None
    qty: int | None = None


class OrderAmended(OrderEventBase, frozen=True, kw_only=True):
    price: int | None
    qty: int


class OrderAmendRejected(OrderEventBase, frozen=True, kw_only=True):
    reason: RejectReason
    message: str = ""


class OrderExpired(OrderEventBase, frozen=True, kw_only=True):
    reason: str = ""


class OrderOutcomeUnknown(OrderEventBase, frozen=True, kw_only=True):
    """A request's reply never came (timeout, dropped connection); the OMS will query the venue."""

    request: str
    detail: str = ""


class OrderStatusReport(OrderEventBase, frozen=True, kw_only=True):
    """The venue's answer to a status query: used to resolve unknown outcomes and to reconcile."""

    venue_order_id: str | None
    status: OrderStatus | None
    """``None`` means the venue does not know the order."""
    filled_qty: int = 0
    price: int | None = None
    qty: int | None = None


class OrderTransitionRefused(OrderEventBase, frozen=True, kw_only=True):
    """An event that would have taken an order through an illegal transition; it was not applied."""

    status: OrderStatus
    event: str


class TradingStateChanged(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    ts: int
    state: TradingState
    reason: str


class RiskAlert(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    ts: int
    check: str
    message: str


class StrategyAlert(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Something a strategy wants on the record and in the report (e.g. a leg-risk hedge)."""

    ts: int
    strategy_id: str
    kind: str
    message: str


class Balance(msgspec.Struct, frozen=True):
    currency: str
    total: int
    locked: int = 0


class AccountSnapshot(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Balances as a venue (or the simulated venue) reports them."""

    ts: int
    venue: str
    balances: list[Balance]


class MarkPrice(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Mark used for mark-to-market; journaled when the portfolio values positions."""

    ts: int
    instrument_id: InstrumentId
    price: int


class InstrumentAdded(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """An instrument the node trades, with its rules; journaled first so a journal is self-contained."""

    ts: int
    instrument: Instrument


class BalanceCorrected(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A reconciliation found a balance the venue reports differently: the node takes the venue's.

    ``engine_total`` is the node's cash in that currency before, ``venue_total`` after (the venue's
    wallet balance less the open cost of perpetual positions, which the node counts apart). For a spot
    base currency the position moves with the balance."""

    ts: int
    venue: str
    currency: str
    engine_total: int
    venue_total: int
    reason: str


class NodeRecovered(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A node restarted on this journal: what it recovered, and what reconciling with the venues changed."""

    ts: int
    snapshot_seq: int | None
    replayed: int
    orders_recovered: int
    orders_resolved: int
    fills_recovered: int
    orders_canceled_at_venue: int
    balances_corrected: int


OrderEvent = (
    OrderInitialized
    | OrderDenied
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderPendingCancel
    | OrderCanceled
    | OrderCancelRejected
    | OrderPendingAmend
    | OrderAmended
    | OrderAmendRejected
    | OrderExpired
    | OrderOutcomeUnknown
    | OrderStatusReport
    | OrderTransitionRefused
)

Event = (
    OrderEvent
    | TradingStateChanged
    | RiskAlert
    | StrategyAlert
    | AccountSnapshot
    | MarkPrice
    | InstrumentAdded
    | BalanceCorrected
    | NodeRecovered
)
