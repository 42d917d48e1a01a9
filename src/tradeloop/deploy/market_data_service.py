"""The market-data service: each venue's market-data client, every normalized item published on NATS.

For each ``[live.venues.<v>]`` of the config the service runs the venue's own market-data client (as
``tradeloop live`` does) and publishes every item it produces (``BookDeltas``, ``Trade``, ``Quote``,
``BookStatus``), unchanged and in order, on ``tl.<d>.md.<venue>.<symbol>`` (core NATS: nothing is
stored, a consumer that misses a message finds the gap by the book's sequence).

The service keeps its own books (the engine's :class:`~tradeloop.data.book_manager.BookManager` with
the venue's rules): a gap or checksum failure there resyncs the venue client, as in a live node; and a
consumer's :class:`~tradeloop.deploy.codec.ResyncRequest` is answered by publishing a snapshot of the
service's current book on the book's subject, so it arrives in order with the deltas after it. While
its own book is invalid the request waits for the venue's snapshot, which reaches every consumer anyway.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock
from tradeloop.core.logging import get_logger
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.deploy.codec import DecodeFailed, Progress, ResyncRequest, decode, encode, new_origin
from tradeloop.deploy.counting import MarketCounts
from tradeloop.deploy.nats_link import CorePublisher, NatsLink
from tradeloop.deploy.service import ServiceControl, serve_status
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, MarketData
from tradeloop.runtime.live_config import LiveConfig, check_live_venues
from tradeloop.runtime.venue_feed import BookRules, VenueMarketData

__all__ = ["MarketDataService", "book_snapshot"]

log = get_logger("tradeloop.deploy.market_data")


def book_snapshot(book: OrderBook) -> BookDeltas:
    """``book`` as a snapshot batch at its last sequence (best levels first; no checksum)."""
    return BookDeltas(
        book.instrument_id,
        book.ts_event,
        book.ts_recv,
        book.last_seq,
        book.last_seq,
        sorted(book.bids.items(), reverse=True),
        sorted(book.asks.items()),
        snapshot=True,
    )


class MarketDataService:
    """Runs until stopped; ``await run()``. ``endpoint`` points a single-venue config at a local simulator."""

    def __init__(
        self,
        config: LiveConfig,
        link: NatsLink,
        *,
        endpoint: str | None = None,
        duration_s: float | None = None,
        handle_signals: bool = True,
    ) -> None:
        check_live_venues(config, endpoint)
        venues = config.live.venues
        self.config = config
        self.link = link
        self.control = ServiceControl("market-data", duration_s, handle_signals)
        self.clock = LiveClock()
        self.bus = MessageBus()
        self.sources = [
            VenueMarketData(venue, section.symbols, endpoint=endpoint or section.endpoint, clock=self.clock)
            for venue, section in sorted(venues.items())
        ]
        rules = BookRules()
        for source in self.sources:
            source.add_rules(rules)
        self.books = BookManager(
            self.bus, self.clock, rules.sequence_rules, rules.checksum_fns, depth_limits=rules.depth_limits
        )
        self.hub = MarketDataHub(self.bus, self.books)
        self.counts = MarketCounts(self.bus, self.books)
        self.instruments = {i.id for s in self.sources for i in s.instruments}
        self.origin = new_origin("market-data")
        self.items = 0
        self.snapshots_sent = 0
        self.ready = False
        self._publisher: CorePublisher | None = None

    def stop(self, reason: str = "stopped") -> None:
        self.control.stop(reason)

    async def run(self) -> None:
        control = self.control
        control.install()
        subs: list[Subscription] = []
        try:
            await self.link.connect()
            self._publisher = CorePublisher(self.link)
            self._publisher.start()
            subs.append(await self.link.nc.subscribe(self.link.subjects.resync, cb=self._on_resync))
            subs.append(await serve_status(self.link, "market-data", self.progress))
            for source in self.sources:
                source.set_sink(self._on_item)
                source.watch(self.bus)
            timeout = self.config.live.start_timeout_s
            await asyncio.gather(*(source.start(timeout) for source in self.sources))
            self.ready = True
            log.info("market data service running", origin=self.origin, instruments=len(self.instruments))
            await control.wait()
        finally:
            self.ready = False
            for source in self.sources:
                try:
                    await source.stop()
                except Exception as exc:
                    log.error("market data did not stop cleanly", venue=source.venue, error=type(exc).__name__)
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            if self._publisher is not None:
                await self._publisher.stop()
            await self.link.close()
            control.uninstall()

    def _on_item(self, item: MarketData) -> None:
        self.items += 1
        self.hub.on_data(item)
        publisher = self._publisher
        if publisher is not None:
            publisher.publish(self.link.subjects.market_data(item.instrument_id), encode(item))

    async def _on_resync(self, msg: Msg) -> None:
        try:
            request = decode(msg.data, ResyncRequest, msg.subject)
        except DecodeFailed as exc:
            log.error("resync request rejected", error=str(exc))
            return
        publisher = self._publisher
        for iid in request.instruments:
            if iid not in self.instruments:
                continue
            book = self.books.book(iid)
            if book is None or not book.valid or publisher is None:
                continue  # the venue's own snapshot is on its way to every consumer
            self.snapshots_sent += 1
            publisher.publish(self.link.subjects.market_data(iid), encode(book_snapshot(book)))
        log.info("snapshots requested", requester=request.requester, reason=request.reason)

    def progress(self) -> Progress:
        counts = self.counts
        return Progress(
            service="market-data",
            origin=self.origin,
            ready=self.ready,
            books=counts.books(),
            deltas=counts.deltas(),
            trades=counts.trades(),
            quotes=counts.quotes(),
            items=self.items,
        )
