"""What the trading core needs from a venue: an execution client that sends commands and
reports back through events.

A client never blocks and never raises for venue-side problems: every outcome (accepted,
rejected, filled, timed out) comes back as an event through the ``emit`` callback it was
constructed with. Requests carry the client order id the OMS assigned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.events import Event

EmitEvent = Callable[[Event], None]


class ExecutionClient(Protocol):
    venue: str

    supports_amend: bool
    """False: the execution engine turns an amend into cancel + new order (marked as such)."""

    def submit(self, cmd: SubmitOrder) -> None: ...

    def cancel(self, cmd: CancelOrder) -> None: ...

    def cancel_all(self, cmd: CancelAllOrders) -> None: ...

    def amend(self, cmd: AmendOrder) -> None: ...

    def query(self, cmd: QueryOrder) -> None:
        """Ask for an order's state; answered by an ``OrderStatusReport`` (and any missed fills)."""
