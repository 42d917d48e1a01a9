"""One simulated exchange behind a local venue simulator: the backtest's :class:`SimulatedVenue`
(matching, queue position, balances, fees) on a :class:`LiveClock`, driven by domain commands.

A dialect turns a venue request into a command (``SubmitOrder``, ``CancelOrder``, ...), calls the
matching method here and encodes the events it returns (what the venue decided while handling that
request) in the venue's reply. Everything the venue emits, for requests and later (fills of resting
orders when the market moves), also goes to the private listeners, followed by an
``AccountSnapshot`` whenever balances changed: the dialect's private stream sends those.

Market items (``apply_market``) first move the venue's own book (and may fill resting orders), then
reach the market listeners, so a dialect encoding a delta can read the book after it from
:meth:`SimulatorCore.book` (for checksums). Nothing here blocks or awaits, except the feed drivers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Final

from tradeloop.core.clock import LiveClock
from tradeloop.core.logging import get_logger
from tradeloop.model.book import OrderBook
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import RejectReason
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    Event,
    OrderAccepted,
    OrderRejected,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.sim.orders import SimOrderView, VenuePosition
from tradeloop.venues.sim.venue import SimulatedVenue
from tradeloop.venues.simulator.faults import FaultPlan
from tradeloop.venues.simulator.fencing import Fencing

__all__ = ["MarketListener", "PrivateListener", "SimulatorCore"]

_log = get_logger(__name__)
_YIELD_EVERY: Final = 256
"""Items applied between yields to the event loop by :meth:`SimulatorCore.run_recording`."""
_FENCED: Final = RejectReason.OTHER
"""The reason of a request refused for a stale fencing token (the message says why)."""

MarketListener = Callable[[BookDeltas | Trade], None]
PrivateListener = Callable[[Event], None]


class SimulatorCore:
    """A simulated exchange for one venue: a :class:`SimulatedVenue` plus listeners and a fault plan.

    ``balances`` are the account's starting totals per currency (nanos). ``sim_config`` sets fees
    and the queue model (its latencies are not used: requests are handled when they arrive, the
    network is real). Instruments are keyed by their id; orders for other ids are rejected.
    ``fence`` refuses submits carrying a stale failover fencing token (see
    :mod:`~tradeloop.venues.simulator.fencing`).
    """

    def __init__(
        self,
        venue: str,
        instruments: Sequence[Instrument],
        *,
        balances: Mapping[str, int],
        sim_config: SimVenueConfig | None = None,
        clock: LiveClock | None = None,
        fence: Fencing | None = None,
    ) -> None:
        if not instruments:
            raise ValueError(f"simulator {venue}: no instruments")
        self.venue = venue
        """The venue name (``"binance"``)."""
        self.clock: LiveClock = clock if clock is not None else LiveClock()
        self.faults = FaultPlan()
        self.fence: Fencing | None = fence
        """Fencing of stale failover tokens (``None``: off); may be set any time."""
        self.instruments: dict[InstrumentId, Instrument] = {}
        for inst in instruments:
            if inst.id in self.instruments:
                raise ValueError(f"simulator {venue}: instrument {inst.id} listed twice")
            self.instruments[inst.id] = inst
        for ccy, amount in balances.items():
            if amount < 0:
                raise ValueError(f"simulator {venue}: negative starting balance of {ccy}")
        self.config = sim_config if sim_config is not None else SimVenueConfig()
        self.simulated = SimulatedVenue(venue, self.instruments, self.config, self.clock, self._on_event, balances)
        """The matching engine and account (read it for state; send requests through the methods here)."""
        self._market_listeners: list[MarketListener] = []
        self._private_listeners: list[PrivateListener] = []
        self._collecting: list[Event] | None = None
        self._by_venue_id: dict[str, str] = {}
        self._last_balances: list[Balance] = self.simulated.balances().balances
        self.market_items = 0
        """Market items applied so far."""

    # -- listeners ----------------------------------------------------------------------------

    def add_market_listener(self, fn: MarketListener) -> None:
        """``fn`` gets every market item after the venue's book applied it."""
        self._market_listeners.append(fn)

    def remove_market_listener(self, fn: MarketListener) -> None:
        if fn in self._market_listeners:
            self._market_listeners.remove(fn)

    def add_private_listener(self, fn: PrivateListener) -> None:
        """``fn`` gets every order event the venue emits (for requests and later fills), in order,
        each burst followed by an ``AccountSnapshot`` when balances changed."""
        self._private_listeners.append(fn)

    def remove_private_listener(self, fn: PrivateListener) -> None:
        if fn in self._private_listeners:
            self._private_listeners.remove(fn)

    # -- market -------------------------------------------------------------------------------

    def apply_market(self, item: BookDeltas | Trade) -> None:
        """Move the venue's own book (filling resting orders it crosses), then tell market listeners.

        Items of instruments the simulator does not list are ignored.
        """
        if item.instrument_id not in self.instruments:
            return
        events = self._run(lambda: self.simulated.on_market_data(item))
        self.market_items += 1
        self._publish(events)
        for fn in list(self._market_listeners):
            try:
                fn(item)
            except Exception as exc:  # a broken subscriber must not stop the feed of the others
                _log.error("simulator market listener failed", venue=self.venue, error=repr(exc))

    def book(self, iid: InstrumentId) -> OrderBook:
        """The venue's current book of ``iid`` (read only). ``KeyError`` for unknown instruments."""
        if iid not in self.instruments:
            raise KeyError(f"simulator {self.venue} does not list {iid}")
        return self.simulated.book(iid)

    # -- requests -----------------------------------------------------------------------------

    def submit(self, cmd: SubmitOrder) -> list[Event]:
        """Place an order: ``[OrderAccepted, (OrderFilled...)]`` or ``[OrderRejected]``."""
        refused = self._fenced(cmd)
        if refused is not None:
            return refused
        events = self._request(lambda: self.simulated.handle_submit(cmd))
        self._fence_accepted(cmd, events)
        return events

    def cancel(self, cmd: CancelOrder) -> list[Event]:
        """Cancel by client order id: ``[OrderCanceled]`` or ``[OrderCancelRejected]``."""
        return self._request(lambda: self.simulated.handle_cancel(cmd))

    def cancel_all(self, cmd: CancelAllOrders) -> list[Event]:
        """Cancel every matching open order: one ``OrderCanceled`` each (possibly none)."""
        return self._request(lambda: self.simulated.handle_cancel_all(cmd))

    def amend(self, cmd: AmendOrder) -> list[Event]:
        """Change price and/or size: ``[OrderAmended, (OrderFilled...)]`` or ``[OrderAmendRejected]``.

        Not fenced: an amend names an order whose id carries the token of the node that placed it, and
        a new primary amends the orders it recovered from the old one."""
        return self._request(lambda: self.simulated.handle_amend(cmd))

    def query(self, cmd: QueryOrder) -> list[Event]:
        """Every fill of the order, then an ``OrderStatusReport`` (``status=None`` if unknown).

        A query changes nothing, so its events do not go to the private listeners.
        """
        events = self._run(lambda: self.simulated.handle_query(cmd))
        return events

    # -- state --------------------------------------------------------------------------------

    def open_orders(self, iid: InstrumentId | None = None) -> list[SimOrderView]:
        """Open orders in creation order, optionally of one instrument."""
        return self.simulated.open_orders(iid)

    def order(self, client_order_id: str) -> SimOrderView | None:
        """The latest order with this client id (open or terminal), or ``None``."""
        return self.simulated.order(client_order_id)

    def client_order_id(self, venue_order_id: str) -> str | None:
        """The client order id of an order the venue accepted under ``venue_order_id``."""
        return self._by_venue_id.get(venue_order_id)

    def balances(self) -> AccountSnapshot:
        """Totals and locked amounts per currency, sorted by currency."""
        return self.simulated.balances()

    def positions(self) -> list[VenuePosition]:
        """Linear-perp positions, sorted by instrument."""
        return self.simulated.positions()

    # -- feed ---------------------------------------------------------------------------------

    async def run_recording(self, items: AsyncIterator[BookDeltas | Trade]) -> None:
        """Apply items from any async iterator (a recording, a test script, the synthetic market paced by
        :mod:`tradeloop.runtime.simulator_feed`) as they come; returns when the iterator ends."""
        n = 0
        async for item in items:
            self.apply_market(item)
            n += 1
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a fast source must not starve the simulator's sockets

    # -- internals ----------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if self._collecting is None:
            # The venue emits only while handling a request or a market item; keep anything else too.
            self._publish([event])
            return
        self._collecting.append(event)

    def _run(self, action: Callable[[], None]) -> list[Event]:
        if self._collecting is not None:
            raise RuntimeError(f"simulator {self.venue}: re-entrant request (from a listener?)")
        collected: list[Event] = []
        self._collecting = collected
        try:
            action()
        finally:
            self._collecting = None
        for event in collected:
            if isinstance(event, OrderAccepted):
                self._by_venue_id[event.venue_order_id] = event.client_order_id
        return collected

    def _fenced(self, cmd: SubmitOrder) -> list[Event] | None:
        """The published refusal of ``cmd`` for a stale fencing token, or ``None`` to handle it."""
        why = self.fence.check(cmd.client_order_id) if self.fence is not None else None
        if why is None:
            return None
        refused: list[Event] = [
            OrderRejected(
                ts=self.clock.now_ns(),
                instrument_id=cmd.instrument_id,
                client_order_id=cmd.client_order_id,
                reason=_FENCED,
                message=why,
            )
        ]
        self._publish(refused)
        return refused

    def _fence_accepted(self, cmd: SubmitOrder, events: list[Event]) -> None:
        if self.fence is not None and any(isinstance(e, OrderAccepted) for e in events):
            self.fence.accepted(cmd.client_order_id, self.clock.now_ns())

    def _request(self, action: Callable[[], None]) -> list[Event]:
        events = self._run(action)
        self._publish(events)
        return events

    def _publish(self, events: list[Event]) -> None:
        if not events:
            return
        out = list(events)
        snapshot = self.simulated.balances()
        if snapshot.balances != self._last_balances:
            self._last_balances = snapshot.balances
            out.append(snapshot)
        for fn in list(self._private_listeners):
            for event in out:
                try:
                    fn(event)
                except Exception as exc:
                    _log.error("simulator private listener failed", venue=self.venue, error=repr(exc))
