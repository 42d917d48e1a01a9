"""A venue's market data as a split service consumes it: the items the market-data service publishes on
``tl.<d>.md.<venue>.<symbol>``, into the service's own book manager.

:class:`NatsMarketData` is a :class:`~tradeloop.runtime.venue_feed.VenueMarketData` whose items come from
NATS instead of the venue: its market-data client is built for the venue's book rules (sequence rule,
checksum, depth) but never connected. Core NATS may drop messages; the book manager then finds the
sequence gap and invalidates the book, and this feed asks the market-data service for a snapshot
(``tl.<d>.ctl.resync``), as it does for every book when it starts, until one arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Final

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.deploy.codec import DecodeFailed, ResyncRequest, decode_market, encode
from tradeloop.deploy.nats_link import NatsLink, cancel_task
from tradeloop.model import topics
from tradeloop.model.data import BookDeltas, BookStatus, MarketData, Trade
from tradeloop.model.identifiers import InstrumentId
from tradeloop.runtime.venue_feed import DEFAULT_START_TIMEOUT_S, VenueMarketData
from tradeloop.trading.views import BookView

__all__ = ["NatsMarketData"]

log = get_logger("tradeloop.deploy.market_feed")

RESYNC_RETRY_S: Final = 0.5
"""While a book waits for a snapshot, the request is repeated this often (the market-data service may
not be up yet, or its own book may be resyncing)."""


class NatsMarketData(VenueMarketData):
    """``venue``'s books for ``symbols`` from NATS (see the module docstring).

    ``requester`` names the consuming service in resync requests. ``books`` (set before items flow) lets
    the feed drop a republished snapshot of a book that is valid at that very sequence, so another
    consumer's resync does not show this one's strategy the same book twice.
    """

    def __init__(
        self,
        venue: str,
        symbols: Sequence[str],
        link: NatsLink,
        requester: str,
        *,
        endpoint: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(venue, symbols, endpoint=endpoint, clock=clock)
        self._link = link
        self.requester = requester
        self.books: BookView | None = None
        self._subs: list[Subscription] = []
        self._wanted: dict[InstrumentId, str] = {}
        self._wanted_event = asyncio.Event()
        self._resync_task: asyncio.Task[None] | None = None
        self._own: dict[InstrumentId, deque[str]] = {}
        self._started_nats = False
        self.items_received = 0
        self.rejected = 0
        self.snapshots_dropped = 0
        self.resync_requests = 0
        self.last_trade: dict[InstrumentId, str] = {}

    @property
    def description(self) -> str:
        symbols = ", ".join(i.id.symbol for i in self.instruments)
        return f"{self.venue} market data ({symbols}) over NATS {self._link.where}"

    @property
    def awaiting_snapshot(self) -> list[InstrumentId]:
        """Books this feed has asked a snapshot for and not received yet."""
        return sorted(self._wanted)

    async def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Subscribe to every book's subject and ask for snapshots (repeated until they come)."""
        if self._sink is None:
            raise RuntimeError("NatsMarketData.start() before set_sink()")
        nc = self._link.nc
        for inst in self.instruments:
            self._subs.append(await nc.subscribe(self._link.subjects.market_data(inst.id), cb=self._on_msg))
        self._started_nats = True
        self._resync_task = asyncio.get_running_loop().create_task(self._resync_loop(), name=f"{self.venue}.resync")
        for inst in self.instruments:
            self._want(inst.id, "starting")
        log.info("market data from nats", venue=self.venue, server=self._link.where, requester=self.requester)

    async def stop(self) -> None:
        task, self._resync_task = self._resync_task, None
        await cancel_task(task)
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._started_nats = False

    def watch(self, bus: MessageBus) -> None:
        """Answer the book manager's invalid ``BookStatus`` for these books with a snapshot request."""
        bus.subscribe(topics.BOOK_STATUS, self._on_status)

    # -- items --------------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        try:
            item = decode_market(msg.data, msg.subject)
        except DecodeFailed as exc:
            self.rejected += 1
            log.error("market data message rejected", error=str(exc))
            return
        self.deliver(item)

    def deliver(self, item: MarketData) -> None:
        """Hand one item to the sink (what a NATS message becomes once decoded)."""
        iid = item.instrument_id
        if iid not in self._iids:
            return
        self.items_received += 1
        kind = type(item)
        if kind is BookDeltas:
            assert isinstance(item, BookDeltas)
            if item.snapshot:
                if self._is_repeat(item):
                    self.snapshots_dropped += 1
                    self._wanted.pop(iid, None)
                    return
                self._wanted.pop(iid, None)
        elif kind is Trade:
            assert isinstance(item, Trade)
            self.last_trade[iid] = item.trade_id
        elif kind is BookStatus:
            assert isinstance(item, BookStatus)
            if not item.valid:
                # The service's venue client lost its feed and resubscribes: its snapshot will come.
                self._own.setdefault(iid, deque(maxlen=8)).append(item.reason)
        sink = self._sink
        if sink is not None:
            sink(item)

    def _is_repeat(self, snapshot: BookDeltas) -> bool:
        if self.books is None or snapshot.last_seq <= 0:
            return False
        book = self.books.book(snapshot.instrument_id)
        return book is not None and book.valid and book.last_seq == snapshot.last_seq

    # -- resyncs ------------------------------------------------------------------------------

    def _on_status(self, status: BookStatus) -> None:
        iid = status.instrument_id
        if status.valid or iid not in self._iids:
            return
        own = self._own.get(iid)
        if own and status.reason in own:
            own.remove(status.reason)
            return
        log.warning("book invalid, snapshot requested", instrument=str(iid), reason=status.reason)
        self._want(iid, status.reason)

    def _want(self, iid: InstrumentId, reason: str) -> None:
        self._wanted.setdefault(iid, reason)
        self._wanted_event.set()

    async def _resync_loop(self) -> None:
        while True:
            await self._wanted_event.wait()
            self._wanted_event.clear()
            while self._wanted:
                await self._request(dict(self._wanted))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted_event.wait(), RESYNC_RETRY_S)
                self._wanted_event.clear()

    async def _request(self, wanted: dict[InstrumentId, str]) -> None:
        reasons = sorted(set(wanted.values()))
        request = ResyncRequest(instruments=sorted(wanted), reason="; ".join(reasons), requester=self.requester)
        self.resync_requests += 1
        try:
            await self._link.nc.publish(self._link.subjects.resync, encode(request))
        except Exception as exc:  # retried by the loop
            log.warning("snapshot request not sent", error=type(exc).__name__)
