"""What the trading core needs from a venue: an execution client that sends commands and reports
back through events, and a market-data client that keeps books in sync.

A client never blocks and never raises for venue-side problems: every outcome (accepted,
rejected, filled, timed out) comes back as an event through the ``emit`` callback it was
constructed with. Requests carry the client order id the OMS assigned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, Quote, Trade
from tradeloop.model.events import Event
from tradeloop.model.identifiers import InstrumentId

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


class SignedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A venue request ready to send, built by a pure function of (credentials, clock reading or
    nonce, parameters). ``query`` is sent verbatim (signed queries must reach the venue byte for
    byte); ``body`` is exactly what was signed."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    body: str | None = None
    idempotent: bool = False
    """True for requests that may be re-sent safely (queries, cancels by client id)."""

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/") + self.path + (f"?{self.query}" if self.query else "")


class MarketDataCounters(msgspec.Struct, kw_only=True):
    """What one connector's market data did; read them any time."""

    frames: int = 0
    items: int = 0
    malformed: int = 0
    """Frames that failed to parse (each is logged with venue and channel); never fatal."""
    reconnects: int = 0
    resyncs_requested: int = 0


MarketItem = BookDeltas | Trade | Quote | BookStatus
"""What a market-data client hands to the engine. ``BookStatus(valid=False)`` means the client lost
continuity (disconnect, gap it saw itself): the book manager invalidates that book until a snapshot."""


class MarketDataClient(Protocol):
    """A venue's public market data on the transport: subscribe, keep every book in sync by the venue's
    documented procedure, and resync one book on request.

    ``on_item`` receives normalized items in arrival order (the engine's ``MarketDataHub.on_data``).
    On every connection loss the client emits ``BookStatus(valid=False)`` for each book of that
    connection, then reconnects, resubscribes and delivers fresh snapshots.
    """

    venue: str
    counters: MarketDataCounters

    async def start(self) -> None:
        """Connect and subscribe; returns once the first connection is open."""

    async def stop(self) -> None: ...

    def resync(self, instrument_id: InstrumentId, reason: str) -> None:
        """Rebuild one book (the book manager found a gap, a checksum mismatch or a crossed book)."""
