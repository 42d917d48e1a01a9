"""The simulated venue: an exchange that matches our orders against replayed L2 books.

It routes market data and requests to one :class:`MatchingEngine` per instrument, keeps the
account (balances, locks, perp positions) and answers every request with events, stamped with
the venue's clock, through ``emit``. Requests arrive here already delayed by the execution
client (:mod:`tradeloop.venues.sim.execution`); events leave here undelayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tradeloop.core.clock import Clock
from tradeloop.core.ids import is_valid_client_order_id
from tradeloop.model.book import OrderBook
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, Quote, Trade
from tradeloop.model.enums import InstrumentKind, OrderType, RejectReason
from tradeloop.model.events import (
    AccountSnapshot,
    OrderAmendRejected,
    OrderCancelRejected,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.base import EmitEvent
from tradeloop.venues.sim.account import SimAccount
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.sim.matching import MatchingEngine
from tradeloop.venues.sim.orders import SimIds, SimOrder, SimOrderView, VenuePosition

_Rejection = OrderRejected | OrderCancelRejected | OrderAmendRejected
_REJECTIONS: Final[tuple[tuple[type, type[_Rejection]], ...]] = (
    (SubmitOrder, OrderRejected),
    (CancelOrder, OrderCancelRejected),
    (AmendOrder, OrderAmendRejected),
)


def rejection(cmd: SubmitOrder | CancelOrder | AmendOrder, reason: RejectReason, message: str, ts: int) -> _Rejection:
    """The venue's refusal of ``cmd``: ``OrderRejected``, ``OrderCancelRejected`` or ``OrderAmendRejected``."""
    for command_type, event_type in _REJECTIONS:
        if isinstance(cmd, command_type):
            return event_type(
                ts=ts,
                instrument_id=cmd.instrument_id,
                client_order_id=cmd.client_order_id,
                reason=reason,
                message=message,
            )
    raise TypeError(f"no rejection event for {type(cmd).__name__}")


class SimulatedVenue:
    """An exchange simulator for backtest and paper trading.

    ``instruments`` maps each tradable id to its rules; ``balances`` are the starting totals per
    currency (nanos). Unknown instruments in market data are ignored; orders for them are rejected.
    """

    def __init__(
        self,
        name: str,
        instruments: Mapping[InstrumentId, Instrument],
        config: SimVenueConfig,
        clock: Clock,
        emit: EmitEvent,
        balances: Mapping[str, int],
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._emit = emit
        self._ids = SimIds(name)
        self._account = SimAccount(config, balances)
        self._instruments: dict[InstrumentId, Instrument] = {}
        self._engines: dict[InstrumentId, MatchingEngine] = {}
        for iid in sorted(instruments):
            inst = instruments[iid]
            if inst.id != iid:
                raise ValueError(f"instrument keyed {iid} has id {inst.id}")
            self._instruments[iid] = inst
            self._engines[iid] = MatchingEngine(inst, config, self._ids, clock.now_ns, self._on_engine_event)
        self._orders: dict[str, SimOrder] = {}

    def set_emit(self, emit: EmitEvent) -> None:
        """Send events to ``emit`` from now on (the execution client installs itself here)."""
        self._emit = emit

    # -- market data --------------------------------------------------------------------------

    def on_market_data(self, item: BookDeltas | Trade | Quote | BookStatus) -> None:
        """Feed one replayed item at venue time; may fill resting orders."""
        engine = self._engines.get(item.instrument_id)
        if engine is None:
            return
        if isinstance(item, BookDeltas):
            engine.on_book(item)
        elif isinstance(item, Trade):
            engine.on_trade(item)
        elif isinstance(item, Quote):
            engine.on_quote(item)

    # -- requests -----------------------------------------------------------------------------

    def handle_submit(self, cmd: SubmitOrder) -> None:
        """Validate, check and lock funds, then accept and match a new order (or reject it)."""
        cid = cmd.client_order_id
        if not is_valid_client_order_id(cid):
            self._reject(cmd, RejectReason.INVALID_ORDER, f"invalid client order id {cid!r}")
            return
        existing = self._orders.get(cid)
        if existing is not None and existing.is_open:
            self._reject(cmd, RejectReason.DUPLICATE_CLIENT_ID, f"client order id {cid} is already open")
            return
        engine = self._engines.get(cmd.instrument_id)
        if engine is None:
            self._reject(cmd, RejectReason.INVALID_ORDER, f"unknown instrument {cmd.instrument_id}")
            return
        problem = engine.check_new(cmd)
        if problem is not None:
            self._reject(cmd, *problem)
            return
        inst = engine.instrument
        reduce_only = cmd.reduce_only and inst.kind is InstrumentKind.LINEAR_PERP
        if reduce_only:
            position = self._account.position_qty(inst.id)
            if position * cmd.side.sign >= 0 or cmd.qty > abs(position):
                self._reject(cmd, RejectReason.INVALID_ORDER, f"reduce-only order would not reduce position {position}")
                return
        if cmd.order_type is OrderType.MARKET:
            _, notional = engine.estimate_take(cmd.side, cmd.qty, None)
        else:
            assert cmd.price is not None
            notional = inst.notional(cmd.price, cmd.qty)
        currency, amount = self._account.required(inst, cmd.side, cmd.qty, notional, reduce_only)
        free = self._account.free(currency)
        if amount > free:
            self._reject(cmd, RejectReason.INSUFFICIENT_BALANCE, f"needs {amount} {currency}, free {free}")
            return
        venue_order_id = self._ids.next_order_id()
        order = SimOrder(cmd, self._ids.orders_created, venue_order_id, self._clock.now_ns())
        order.reduce_only = reduce_only
        self._orders[cid] = order
        self._account.set_lock(order, currency, amount)
        engine.submit(order)

    def handle_cancel(self, cmd: CancelOrder) -> None:
        """Cancel one open order; ``OrderCancelRejected(UNKNOWN_ORDER)`` if it is not open here."""
        order = self._open_order(cmd.instrument_id, cmd.client_order_id)
        if order is None:
            self._reject(cmd, RejectReason.UNKNOWN_ORDER, "order not open at the venue")
            return
        self._engines[order.instrument_id].cancel(order)

    def handle_cancel_all(self, cmd: CancelAllOrders) -> None:
        """Cancel every open order (in creation order), narrowed by instrument, venue or strategy."""
        if cmd.venue is not None and cmd.venue != self.name:
            return
        for order in self._open_orders():
            if cmd.instrument_id is not None and order.instrument_id != cmd.instrument_id:
                continue
            if cmd.only_strategy and order.strategy_id != cmd.strategy_id:
                continue
            self._engines[order.instrument_id].cancel(order, cmd.reason)

    def handle_amend(self, cmd: AmendOrder) -> None:
        """Change price and/or size of an open order (see :meth:`MatchingEngine.amend`).

        A size at or below the filled size cancels the rest of the order.
        """
        order = self._open_order(cmd.instrument_id, cmd.client_order_id)
        if order is None:
            self._reject(cmd, RejectReason.UNKNOWN_ORDER, "order not open at the venue")
            return
        if not self.config.supports_amend:
            self._reject(cmd, RejectReason.OTHER, "venue does not support amend")
            return
        if cmd.price is None and cmd.qty is None:
            self._reject(cmd, RejectReason.INVALID_ORDER, "nothing to amend")
            return
        engine = self._engines[order.instrument_id]
        price = cmd.price if cmd.price is not None else order.price
        qty = cmd.qty if cmd.qty is not None else order.qty
        assert price is not None  # only limit orders rest
        if qty <= order.filled:
            engine.cancel(order, "amended to a size at or below the filled size")
            return
        problem = engine.check_amend(order, price, qty)
        if problem is not None:
            self._reject(cmd, *problem)
            return
        inst = engine.instrument
        leaves = qty - order.filled
        currency, amount = self._account.required(
            inst, order.side, leaves, inst.notional(price, leaves), order.reduce_only
        )
        free = self._account.free(currency)
        if amount - order.lock > free:
            self._reject(cmd, RejectReason.INSUFFICIENT_BALANCE, f"needs {amount} {currency}, free {free}")
            return
        engine.amend(order, price, qty)

    def handle_query(self, cmd: QueryOrder) -> None:
        """Re-emit every fill of the order, then an ``OrderStatusReport`` (``status=None`` if unknown)."""
        order = self._orders.get(cmd.client_order_id)
        if order is None or order.instrument_id != cmd.instrument_id:
            self._emit(
                OrderStatusReport(
                    ts=self._clock.now_ns(),
                    instrument_id=cmd.instrument_id,
                    client_order_id=cmd.client_order_id,
                    venue_order_id=None,
                    status=None,
                )
            )
            return
        for fill in order.fills:
            self._emit(fill)
        self._emit(
            OrderStatusReport(
                ts=self._clock.now_ns(),
                instrument_id=order.instrument_id,
                client_order_id=order.client_order_id,
                venue_order_id=order.venue_order_id,
                status=order.status,
                filled_qty=order.filled,
                price=order.price,
                qty=order.qty,
            )
        )

    def transfer(self, currency: str, amount: int) -> None:
        """Move funds in (``amount > 0``) or out of the account outside trading (a deposit, a withdrawal)."""
        self._account.transfer(currency, amount)

    # -- state for reconciliation and tests ---------------------------------------------------

    def balances(self) -> AccountSnapshot:
        """Totals and locked amounts per currency, sorted by currency."""
        return AccountSnapshot(ts=self._clock.now_ns(), venue=self.name, balances=self._account.balances())

    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[SimOrderView]:
        """Open orders in creation order, optionally for one instrument."""
        return [o.view() for o in self._open_orders() if instrument_id is None or o.instrument_id == instrument_id]

    def positions(self) -> list[VenuePosition]:
        """Linear-perp positions as the venue tracks them, sorted by instrument."""
        return self._account.positions()

    def order(self, client_order_id: str) -> SimOrderView | None:
        """The latest order with this client id (open or terminal), or ``None``."""
        order = self._orders.get(client_order_id)
        return None if order is None else order.view()

    def book(self, instrument_id: InstrumentId) -> OrderBook:
        """The venue's replayed book of one instrument (read only)."""
        return self._engines[instrument_id].book

    # -- internals ----------------------------------------------------------------------------

    def _on_engine_event(self, order: SimOrder, event: OrderEvent) -> None:
        inst = self._instruments[order.instrument_id]
        if isinstance(event, OrderFilled):
            self._account.apply_fill(inst, event)
        if not order.is_open:
            self._account.release(order)
        elif order.price is not None:
            leaves = order.leaves
            currency, amount = self._account.required(
                inst, order.side, leaves, inst.notional(order.price, leaves), order.reduce_only
            )
            self._account.set_lock(order, currency, amount)
        self._emit(event)

    def _open_order(self, instrument_id: InstrumentId, client_order_id: str) -> SimOrder | None:
        order = self._orders.get(client_order_id)
        if order is None or not order.is_open or order.instrument_id != instrument_id:
            return None
        return order

    def _open_orders(self) -> list[SimOrder]:
        return sorted((o for o in self._orders.values() if o.is_open), key=lambda o: o.number)

    def _reject(self, cmd: SubmitOrder | CancelOrder | AmendOrder, reason: RejectReason, message: str) -> None:
        self._emit(rejection(cmd, reason, message, self._clock.now_ns()))
