"""Binance public market data on the transport: diff books by the documented procedure, trades, best bid/ask.

Book procedure (spot ``<symbol>@depth@100ms``; USD-M the same stream with ``pu``):

1. Subscribe; every diff is handed on at once (the engine's book manager holds diffs that arrive
   before a snapshot and replays them after it).
2. Fetch the REST snapshot (``/api/v3/depth``, ``/fapi/v1/depth``) and hand it on; the book manager
   links it to the diffs by the venue's rule (``RANGE`` spot, ``PREV_LINK`` USD-M).
3. :class:`DepthSync` checks continuity here too: consecutive diffs must chain (spot ``U == last u
   + 1``, USD-M ``pu == last u``) and the snapshot must reach the first diff seen (spot ``U <=
   lastUpdateId + 1``, USD-M ``U <= lastUpdateId``); a too-old snapshot is fetched again, a broken
   chain is a gap: ``BookStatus(valid=False)`` and a new snapshot for that one book.

A lost connection marks every book of that connection invalid; the next connection subscribes again
and fetches new snapshots. :meth:`BinanceMarketData.resync` does the same for one book on request.
Malformed frames (bad JSON, wrong types, unknown symbols) are counted and logged with venue and
channel, never raised.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Sequence
from typing import Final

import aiohttp
import msgspec
import orjson

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.book import ChecksumFn, SequenceRule
from tradeloop.model.data import BookDeltas, BookStatus
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.base import MarketDataCounters, MarketItem
from tradeloop.venues.binance.spec import MARKETS, RATE_LIMITS, BinanceMarket, depth_weight, market_of_venue
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.registry import PARSE_ERRORS, market_data_adapter
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimited
from tradeloop.venues.transport.rest import RestClient, RestError
from tradeloop.venues.transport.ws import HeartbeatSpec, ReconnectingWebSocket, WsConnection, WsSpec

__all__ = ["BinanceMarketData", "DepthSync"]

log = get_logger("tradeloop.venues.binance.market_data")

_SNAPSHOT_RETRIES: Final = 5
_SNAPSHOT_RETRY_S: Final = 0.25
_PARAMS_PER_SUBSCRIBE: Final = 200


class DepthSync:
    """Continuity of one symbol's diff stream and its snapshot (pure)."""

    __slots__ = ("first_u", "last_u", "pending_snapshot", "rule")

    def __init__(self, rule: SequenceRule) -> None:
        self.rule = rule
        self.first_u: int | None = None
        self.last_u: int | None = None
        self.pending_snapshot: int | None = None
        """A snapshot taken before any diff arrived: the first diff must reach it."""

    def reset(self) -> None:
        self.first_u = self.last_u = self.pending_snapshot = None

    def on_diff(self, first: int, last: int, prev: int) -> str | None:
        """Record a diff ``U..u`` (``pu``); returns the gap's description when it does not chain."""
        gap = None
        if self.last_u is not None:
            linked = prev == self.last_u if self.rule is SequenceRule.PREV_LINK else first == self.last_u + 1
            if not linked:
                gap = f"sequence gap: last u {self.last_u}, next U {first} pu {prev}"
        elif self.pending_snapshot is not None and last >= self.pending_snapshot:
            if first > self._reach(self.pending_snapshot):
                gap = f"sequence gap: snapshot {self.pending_snapshot}, first diff U {first}"
            self.pending_snapshot = None
        if self.first_u is None:
            self.first_u = first
        self.last_u = last
        return gap

    def on_snapshot(self, last_update_id: int) -> bool:
        """Whether a snapshot at ``lastUpdateId`` can start the book (else fetch a newer one)."""
        if self.first_u is None:
            self.pending_snapshot = last_update_id
            return True
        return self.first_u <= self._reach(last_update_id)

    def _reach(self, snapshot_id: int) -> int:
        """The highest first ``U`` that still links to a snapshot at ``snapshot_id``."""
        return snapshot_id if self.rule is SequenceRule.PREV_LINK else snapshot_id + 1


class _Book:
    __slots__ = ("iid", "refetch", "sync", "task")

    def __init__(self, iid: InstrumentId, rule: SequenceRule) -> None:
        self.iid = iid
        self.sync = DepthSync(rule)
        self.task: asyncio.Task[None] | None = None
        self.refetch = False


class _Socket:
    """One WebSocket and the streams (and books) it carries."""

    def __init__(self, url: str, streams: list[str], books: list[InstrumentId]) -> None:
        self.url = url
        self.streams = streams
        self.books = books
        self.ws: ReconnectingWebSocket | None = None
        self.opens = 0


class BinanceMarketData:
    """``MarketDataClient`` for Binance spot (``binance``) or USD-M (``binance_usdm``) instruments.

    ``rest`` is the REST client for snapshots (one is made on ``urls.rest`` if not given);
    ``ws_spec`` overrides the socket rules (tests use a short stale timeout); ``snapshot_limit`` is
    the depth of REST snapshots (spot allows 5000 at weight 250; 1000 costs 50).
    """

    def __init__(
        self,
        instruments: Sequence[InstrumentId],
        on_item: Callable[[MarketItem], None],
        clock: Clock,
        urls: ConnectorUrls,
        *,
        rest: RestClient | None = None,
        ws_spec: WsSpec | None = None,
        snapshot_limit: int = 1000,
        trades: bool = True,
        book_ticker: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        venues = {iid.venue for iid in instruments}
        if len(venues) != 1:
            raise ValueError(f"one Binance venue per client, got {sorted(venues) or 'no instruments'}")
        self.venue = venues.pop()
        self.market = market_of_venue(self.venue)
        spec = MARKETS[self.market]
        self._spec = spec
        self._adapter = market_data_adapter(self.venue)
        self.sequence_rule: SequenceRule = self._adapter.sequence_rule
        self.depth_limit: int = self._adapter.depth_limit
        self.checksum_fn: ChecksumFn | None = self._adapter.checksum_fn
        self._on_item = on_item
        self._clock = clock
        self.urls = urls
        self._rest = rest
        self._session: aiohttp.ClientSession | None = None
        self._snapshot_limit = min(snapshot_limit, spec.snapshot_limit)
        self._ws_spec = ws_spec or WsSpec(
            url=urls.ws_public, heartbeat=HeartbeatSpec(), stale_after_s=60.0, max_lifetime_s=23.5 * 3600
        )
        self._rng = rng or random.Random()
        self.counters = MarketDataCounters()
        self._ids = {iid.symbol: iid for iid in sorted(set(instruments))}
        self._books = {iid: _Book(iid, spec.sequence_rule) for iid in self._ids.values()}
        self._req_ids = itertools.count(1)
        self._sockets = self._plan(trades, book_ticker)

    def _plan(self, trades: bool, book_ticker: bool) -> list[_Socket]:
        spec = self._spec
        depth_streams: list[str] = []
        other: list[str] = []
        for symbol in self._ids:
            s = symbol.lower()
            depth_streams.append(spec.depth_channel.format(symbol=s))
            if book_ticker:
                depth_streams.append(spec.book_ticker_channel.format(symbol=s))
            if trades:
                other.append(spec.trade_channel.format(symbol=s))
        public = self.urls.ws_public
        books = list(self._ids.values())
        if self.market is BinanceMarket.SPOT or not other:
            return [_Socket(public, depth_streams + other, books)]
        # USD-M routes streams by path: books on /public, trades on /market.
        return [_Socket(public, depth_streams, books), _Socket(public.replace("/public/", "/market/"), other, [])]

    # -- MarketDataClient -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect every socket and subscribe; returns once all are open."""
        if self._rest is None:
            self._session = aiohttp.ClientSession()
            budget = RateBudget(self.venue, "public", RATE_LIMITS[self.market])
            self._rest = RestClient(self.urls.rest, self._session, budget=budget, name=f"{self.venue}-depth")
        for sock in self._sockets:
            spec = msgspec.structs.replace(self._ws_spec, url=sock.url)
            sock.ws = ReconnectingWebSocket(
                spec,
                on_open=lambda conn, s=sock: self._on_open(s, conn),  # type: ignore[misc]
                on_frame=self._on_frame,
                on_close=lambda reason, s=sock: self._on_close(s, reason),  # type: ignore[misc]
                session=self._session,
                rng=self._rng,
                name=f"{self.venue}-public",
            )
            sock.ws.start()
        for sock in self._sockets:
            assert sock.ws is not None
            await sock.ws.wait_open(self._ws_spec.open_timeout_s + self._ws_spec.connect_timeout_s)

    async def stop(self) -> None:
        for sock in self._sockets:
            if sock.ws is not None:
                await sock.ws.close()
        for book in self._books.values():
            self._cancel_fetch(book)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def resync(self, instrument_id: InstrumentId, reason: str) -> None:
        """Rebuild one book from a new REST snapshot (the diffs keep flowing)."""
        book = self._books.get(instrument_id)
        if book is None:
            return
        self.counters.resyncs_requested += 1
        log.info("book resync", venue=self.venue, symbol=instrument_id.symbol, reason=reason)
        self._invalidate(book, reason)
        self._fetch(book)

    # -- socket callbacks -----------------------------------------------------------------------

    async def _on_open(self, sock: _Socket, conn: WsConnection) -> None:
        sock.opens += 1
        if sock.opens > 1:
            self.counters.reconnects += 1
        for i in range(0, len(sock.streams), _PARAMS_PER_SUBSCRIBE):
            req_id = next(self._req_ids)
            chunk = sock.streams[i : i + _PARAMS_PER_SUBSCRIBE]
            await conn.send(orjson.dumps({"method": "SUBSCRIBE", "params": chunk, "id": req_id}).decode())
            while True:  # market data may come before the ack
                frame = await conn.receive(10.0)
                if _is_ack(frame, req_id):
                    break
                self._on_frame(frame, self._clock.now_ns())
        for iid in sock.books:
            self._fetch(self._books[iid])

    def _on_close(self, sock: _Socket, reason: str) -> None:
        for iid in sock.books:
            book = self._books[iid]
            self._cancel_fetch(book)
            self._invalidate(book, f"connection lost: {reason}")

    def _on_frame(self, data: str | bytes, ts_recv: int) -> None:
        payload = data.encode() if isinstance(data, str) else data
        self.counters.frames += 1
        try:
            items = self._adapter.parse(payload, ts_recv)
        except PARSE_ERRORS as exc:
            self._malformed(payload, str(exc))
            return
        for item in items:
            iid = self._ids.get(item.instrument_id.symbol)
            if iid is None or item.instrument_id.venue != self.venue:
                self._malformed(payload, f"unknown symbol {item.instrument_id.symbol}")
                continue
            if isinstance(item, BookDeltas):
                book = self._books[iid]
                gap = book.sync.on_diff(item.first_seq, item.last_seq, item.prev_seq)
                if gap is not None:
                    self._invalidate(book, gap)
                    book.sync.on_diff(item.first_seq, item.last_seq, item.prev_seq)
                    self._fetch(book)
            self.counters.items += 1
            self._on_item(item)

    def _malformed(self, payload: bytes, error: str) -> None:
        self.counters.malformed += 1
        log.warning("malformed market data frame", venue=self.venue, channel=_channel(payload), error=error[:200])

    # -- snapshots ------------------------------------------------------------------------------

    def _invalidate(self, book: _Book, reason: str) -> None:
        book.sync.reset()
        self._on_item(BookStatus(book.iid, self._clock.now_ns(), False, reason))

    def _fetch(self, book: _Book) -> None:
        if book.task is not None and not book.task.done():
            book.refetch = True
            return
        book.refetch = False
        book.task = asyncio.get_running_loop().create_task(self._snapshot(book))

    def _cancel_fetch(self, book: _Book) -> None:
        if book.task is not None and not book.task.done():
            book.task.cancel()
        book.task = None

    async def _snapshot(self, book: _Book) -> None:
        rest = self._rest
        assert rest is not None
        path = self._spec.depth_snapshot_path
        query = f"symbol={book.iid.symbol}&limit={self._snapshot_limit}"
        for attempt in range(_SNAPSHOT_RETRIES):
            try:
                resp = await rest.request(
                    "GET", path, params=query, idempotent=True, costs=depth_weight(self.market, self._snapshot_limit)
                )
            except (RestError, RateLimited) as exc:
                log.warning("depth snapshot failed", venue=self.venue, symbol=book.iid.symbol, error=str(exc))
                await asyncio.sleep(_SNAPSHOT_RETRY_S * (attempt + 1))
                continue
            if resp.status != 200:
                log.warning("depth snapshot refused", venue=self.venue, symbol=book.iid.symbol, status=resp.status)
                await asyncio.sleep(_SNAPSHOT_RETRY_S * (attempt + 1))
                continue
            try:
                items = self._adapter.parse_rest(f"{path}?{query}", resp.body, self._clock.now_ns())
            except PARSE_ERRORS as exc:
                self._malformed(resp.body, str(exc))
                continue
            snapshot = items[0]
            assert isinstance(snapshot, BookDeltas)
            if book.refetch:  # a resync asked for a newer one while this was in flight
                book.refetch = False
                continue
            if not book.sync.on_snapshot(snapshot.last_seq):
                await asyncio.sleep(_SNAPSHOT_RETRY_S)  # older than the diffs seen: wait for a newer one
                continue
            self._on_item(snapshot)
            return
        log.warning("no usable depth snapshot; will retry", venue=self.venue, symbol=book.iid.symbol)
        asyncio.get_running_loop().call_later(1.0, self._fetch, book)


def _is_ack(frame: str | bytes, req_id: int) -> bool:
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    if len(text) > 200 or '"id"' not in text:
        return False
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return isinstance(msg, dict) and msg.get("id") == req_id


def _channel(payload: bytes) -> str:
    if payload.startswith(b'{"stream":"'):
        end = payload.find(b'"', 11)
        if end > 0:
            return payload[11:end].decode("utf-8", "replace")
    return "unknown"
