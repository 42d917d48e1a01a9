"""A venue's live public market data, as the engine consumes it: the connector's market-data client
for a set of symbols, its book rules for the book manager, and resyncs on request.

:class:`VenueMarketData` wraps one venue's ``CONNECTOR.market_data(...)`` client (production URLs,
or a local simulator through ``endpoint``). Items go to a sink: the engine's ``on_market_data``
directly (live trading, no hop through the event loop), or the :class:`VenueFeed` queue that a
:class:`~tradeloop.runtime.paper.PaperSession` reads as its ``feed``.

Resync loop: when the book manager declares a book invalid (sequence gap, checksum mismatch,
crossed book) it publishes ``BookStatus(valid=False)`` on the bus; :meth:`VenueMarketData.watch`
turns that into ``client.resync(instrument_id, reason)``. A status the client itself raised (it lost
its connection and resubscribes on its own) is not answered with another resync.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import Clock, LiveClock
from tradeloop.core.config import ConfigError
from tradeloop.core.logging import get_logger
from tradeloop.model import topics
from tradeloop.model.book import ChecksumFn, SequenceRule
from tradeloop.model.data import BookStatus, MarketData
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.base import MarketDataClient, MarketDataCounters
from tradeloop.venues.connector import ConnectorUrls, VenueConnector
from tradeloop.venues.connectors import UnknownConnector, get_connector
from tradeloop.venues.registry import UnknownVenue, market_data_adapter
from tradeloop.venues.transport.endpoint import loggable_url

__all__ = [
    "BookRules",
    "VenueFeed",
    "VenueMarketData",
    "check_valuation",
    "connector_for",
    "connector_urls",
    "default_balances",
    "item_ts_recv",
    "resolve_instruments",
]

log = get_logger("tradeloop.venue_feed")

DEFAULT_START_TIMEOUT_S: Final = 15.0

ItemSink = Callable[[MarketData], None]


def connector_for(venue: str) -> VenueConnector:
    """The venue's connector, or a :class:`ConfigError` naming the venues that have one."""
    try:
        return get_connector(venue)
    except UnknownConnector as exc:
        raise ConfigError(str(exc)) from None


def resolve_instruments(connector: VenueConnector, symbols: Iterable[str]) -> list[Instrument]:
    """The connector's instruments for ``symbols`` (in the order given, no duplicates), or a
    :class:`ConfigError` that lists the symbols the venue has."""
    listed = {inst.id.symbol: inst for inst in connector.instruments()}
    out: list[Instrument] = []
    seen: set[str] = set()
    for symbol in symbols:
        if symbol in seen:
            raise ConfigError(f"{connector.venue}: symbol {symbol} given twice")
        seen.add(symbol)
        inst = listed.get(symbol)
        if inst is None:
            known = ", ".join(sorted(listed)) or "none"
            raise ConfigError(f"unknown symbol {symbol!r} on {connector.venue}; known symbols: {known}")
        out.append(inst)
    if not out:
        raise ConfigError(f"{connector.venue}: no symbols given")
    return out


def connector_urls(connector: VenueConnector, endpoint: str | None) -> ConnectorUrls:
    """Production URLs, or the same endpoints on a local simulator at ``endpoint`` (``http://127.0.0.1:PORT``)."""
    if not endpoint:
        return connector.urls
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint must be an http(s) base URL like http://127.0.0.1:8765, got {endpoint!r}")
    return connector.local_urls(endpoint.rstrip("/"))


def check_valuation(valuation: str, instruments: Iterable[Instrument]) -> None:
    """A :class:`ConfigError` unless every instrument is quoted in the valuation currency."""
    others = sorted({i.quote for i in instruments if i.quote != valuation})
    if others:
        names = ", ".join(str(i.id) for i in instruments if i.quote != valuation)
        raise ConfigError(
            f"{names} quote(s) in {', '.join(others)}, not the valuation currency {valuation}; set "
            f'valuation = "{others[0]}" in the config (or TRADELOOP__VALUATION={others[0]})'
        )


def default_balances(instruments: Iterable[Instrument]) -> dict[str, str]:
    """Starting balances of a simulated account trading ``instruments``: 100,000 of each quote currency
    and 1 of each base currency (as the local simulators start)."""
    out: dict[str, str] = {}
    for inst in instruments:
        out[inst.quote] = "100000"
    for inst in instruments:
        out.setdefault(inst.base, "1")
    return dict(sorted(out.items()))


def item_ts_recv(item: MarketData) -> int:
    """Local receive time of an item (a ``BookStatus`` carries only ``ts``)."""
    return item.ts if isinstance(item, BookStatus) else item.ts_recv


class BookRules:
    """What the book manager needs to know about each venue's books."""

    def __init__(self) -> None:
        self.sequence_rules: dict[str, SequenceRule] = {}
        self.checksum_fns: dict[str, ChecksumFn] = {}
        self.depth_limits: dict[str, int] = {}

    def add(self, venue: str, client: object) -> None:
        """The rules ``client`` exposes (``sequence_rule``, ``checksum_fn``, ``depth_limit``); any it lacks
        come from the venue's registry adapter, the same one ``tradeloop replay`` uses."""
        adapter: Any
        try:
            adapter = market_data_adapter(venue)
        except UnknownVenue:
            adapter = None

        def rule_of(name: str) -> Any:
            if hasattr(client, name):
                return getattr(client, name)
            return getattr(adapter, name, None)

        rule = rule_of("sequence_rule")
        if not isinstance(rule, SequenceRule):
            raise ConfigError(f"{venue}: the market-data client declares no sequence rule")
        self.sequence_rules[venue] = rule
        checksum = rule_of("checksum_fn")
        if checksum is not None:
            self.checksum_fns[venue] = checksum
        depth = rule_of("depth_limit")
        if depth:
            self.depth_limits[venue] = int(depth)


class VenueMarketData:
    """One venue's market-data client for ``symbols``, delivering items to ``sink`` (set before start).

    ``market_data_kwargs`` are passed to the connector's factory as they are (e.g. ``rest=`` a
    :class:`~tradeloop.venues.transport.rest.RestClient` of the caller's).
    """

    def __init__(
        self,
        venue: str,
        symbols: Sequence[str],
        *,
        endpoint: str | None = None,
        clock: Clock | None = None,
        sink: ItemSink | None = None,
        market_data_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.connector = connector_for(venue)
        self.venue = venue
        self.instruments = resolve_instruments(self.connector, symbols)
        self._iids = frozenset(i.id for i in self.instruments)
        self.urls = connector_urls(self.connector, endpoint)
        self.endpoint = endpoint
        self.clock: Clock = clock if clock is not None else LiveClock()
        self._sink: ItemSink | None = sink
        self._own_status: dict[InstrumentId, deque[str]] = {}
        self.resyncs_requested = 0
        self.client: MarketDataClient = self.connector.market_data(
            [i.id for i in self.instruments], self._on_item, self.clock, self.urls, **dict(market_data_kwargs or {})
        )
        self._started = False

    @property
    def counters(self) -> MarketDataCounters:
        return self.client.counters

    @property
    def description(self) -> str:
        symbols = ", ".join(i.id.symbol for i in self.instruments)
        return f"{self.venue} live market data ({symbols}) from {loggable_url(self.urls.ws_public)}"

    def set_sink(self, sink: ItemSink) -> None:
        """Where items go (the engine's ``on_market_data``, or a :class:`VenueFeed` queue)."""
        self._sink = sink

    def add_rules(self, rules: BookRules) -> None:
        for venue in sorted({i.id.venue for i in self.instruments}):
            rules.add(venue, self.client)

    def watch(self, bus: MessageBus) -> None:
        """Answer the book manager's invalid ``BookStatus`` for this venue's books with a resync."""
        bus.subscribe(topics.BOOK_STATUS, self._on_book_status)

    async def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Connect and subscribe; a clear :class:`ConnectionError` when that takes longer than ``timeout_s``."""
        if self._sink is None:
            raise RuntimeError("VenueMarketData.start() before set_sink()")
        self._started = True
        try:
            await asyncio.wait_for(self.client.start(), timeout_s)
        except TimeoutError:
            raise ConnectionError(
                f"{self.venue}: market data at {loggable_url(self.urls.ws_public)} did not open within {timeout_s:g}s"
            ) from None
        log.info("market data started", venue=self.venue, url=loggable_url(self.urls.ws_public))

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.client.stop()

    def _on_item(self, item: MarketData) -> None:
        if type(item) is BookStatus and not item.valid:
            # The client lost continuity itself and resubscribes: no resync request for this one.
            self._own_status.setdefault(item.instrument_id, deque(maxlen=8)).append(item.reason)
        sink = self._sink
        if sink is not None:
            sink(item)

    def _on_book_status(self, status: BookStatus) -> None:
        if status.valid or status.instrument_id not in self._iids:
            return
        own = self._own_status.get(status.instrument_id)
        if own and status.reason in own:
            own.remove(status.reason)
            return
        self.resyncs_requested += 1
        log.warning("book invalid, resync requested", instrument=str(status.instrument_id), reason=status.reason)
        self.client.resync(status.instrument_id, status.reason)


class VenueFeed:
    """The items of one or more :class:`VenueMarketData` as a paper session's feed: an async iterator
    of ``(ts_recv, item)`` in arrival order, with a start/stop life of its own."""

    def __init__(self, sources: Sequence[VenueMarketData]) -> None:
        if not sources:
            raise ConfigError("a venue feed needs at least one venue")
        venues = [s.venue for s in sources]
        if len(set(venues)) != len(venues):
            raise ConfigError(f"venue listed twice in the feed: {', '.join(venues)}")
        self.sources = list(sources)
        self._queue: deque[MarketData] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        for source in self.sources:
            source.set_sink(self._push)

    @property
    def instruments(self) -> list[Instrument]:
        return [i for s in self.sources for i in s.instruments]

    @property
    def description(self) -> str:
        return "; ".join(s.description for s in self.sources)

    def book_rules(self) -> BookRules:
        rules = BookRules()
        for source in self.sources:
            source.add_rules(rules)
        return rules

    def watch(self, bus: MessageBus) -> None:
        for source in self.sources:
            source.watch(bus)

    async def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        await asyncio.gather(*(s.start(timeout_s) for s in self.sources))

    async def stop(self) -> None:
        self._closed = True
        self._ready.set()
        for source in self.sources:
            await source.stop()

    def _push(self, item: MarketData) -> None:
        self._queue.append(item)
        self._ready.set()

    def __aiter__(self) -> VenueFeed:
        return self

    async def __anext__(self) -> tuple[int, MarketData]:
        queue = self._queue
        while not queue:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        item = queue.popleft()
        return item_ts_recv(item), item
