"""Rebuild trading state from a journal: orders and portfolio are a fold over its events.

A journal starts with ``InstrumentAdded`` and ``AccountSnapshot`` records (what is traded and the
starting balances), so it is self-contained: nothing but the journal is needed to rebuild.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tradeloop.model.events import (
    AccountSnapshot,
    InstrumentAdded,
    MarkPrice,
    OrderEventBase,
    OrderFilled,
    OrderInitialized,
    OrderTransitionRefused,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.order import Order
from tradeloop.persistence.codec import JournalRecord
from tradeloop.trading.portfolio import Portfolio


class RebuildError(RuntimeError):
    pass


@dataclass
class RebuiltState:
    orders: dict[str, Order] = field(default_factory=dict)
    portfolio: Portfolio | None = None
    records: int = 0


def rebuild_state(records: Iterable[JournalRecord], valuation: str = "USDT") -> RebuiltState:
    """Fold journal records into orders and a portfolio, exactly as the live node built them."""
    state = RebuiltState()
    instruments: dict[InstrumentId, Instrument] = {}
    balances: dict[str, dict[str, int]] = {}
    for record in records:
        state.records += 1
        if state.portfolio is None:
            if isinstance(record, InstrumentAdded):
                instruments[record.instrument.id] = record.instrument
                continue
            if isinstance(record, AccountSnapshot) and record.venue not in balances:
                balances[record.venue] = {b.currency: b.total for b in record.balances}
                continue
            state.portfolio = Portfolio(instruments.values(), balances, valuation=valuation)
        portfolio = state.portfolio
        if isinstance(record, MarkPrice):
            portfolio.update_mark(record.instrument_id, record.price)
        elif isinstance(record, OrderInitialized):
            if record.client_order_id in state.orders:
                raise RebuildError(f"order {record.client_order_id} initialized twice")
            state.orders[record.client_order_id] = Order(record)
        elif isinstance(record, OrderEventBase) and not isinstance(record, OrderTransitionRefused):
            order = state.orders.get(record.client_order_id)
            if order is None:
                continue  # events for orders this node never created are journaled for audit only
            order.apply(record)
            if isinstance(record, OrderFilled):
                portfolio.apply_fill(record)
    if state.portfolio is None:
        state.portfolio = Portfolio(instruments.values(), balances, valuation=valuation)
    return state
