"""OKX public market data on the transport: ``books`` (400 levels), ``trades`` and ``bbo-tbt``.

One :class:`~tradeloop.venues.transport.ws.ReconnectingWebSocket` to ``/ws/v5/public`` carries
every instrument. After each (re)connect ``on_open`` subscribes all channels; each book is then
kept by :class:`~tradeloop.venues.okx.book_sync.OkxBookSync` (WebSocket snapshot, or the 2026 REST
snapshot procedure, see there). A gap, a checksum mismatch, a crossed book or a sequence reset
emits ``BookStatus(valid=False)`` for that book and resyncs only it: unsubscribe + subscribe of its
``books`` channel (or a new REST snapshot in the REST procedure). A lost connection emits
``BookStatus(valid=False)`` for every book; the reconnect resubscribes them all.

Swap sizes arrive in contracts and are handed on in base units (``ctVal`` from the instrument
specs); :attr:`OkxMarketData.checksum_fn` turns them back for OKX's checksum. Malformed frames
(truncated JSON, wrong types, unknown symbols, error events) are counted in ``counters.malformed``
and logged with the venue and the channel; they never stop the feed. Keepalive: text ``ping``
after 25 s of silence, ``pong`` expected (a missing pong reconnects).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import aiohttp
import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.data import BookDeltas, BookStatus
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.base import MarketDataCounters, MarketItem
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.okx.book_sync import BookProcedure, OkxBookSync, SyncStep
from tradeloop.venues.okx.instruments import OkxInstrument, contract_values, instruments_by_symbol
from tradeloop.venues.okx.orders import book_snapshot
from tradeloop.venues.okx.parse import OkxBookChecksum, OkxParser, ParseError
from tradeloop.venues.okx.schemas import EventReply
from tradeloop.venues.okx.spec import (
    BBO_CHANNEL,
    BOOK_CHANNEL,
    SEQUENCE_RULE,
    TRADE_CHANNEL,
    VENUE,
    WS_PUBLIC,
    SymbolError,
    request_costs,
)
from tradeloop.venues.transport.rest import RestClient, RestError
from tradeloop.venues.transport.ws import NotConnected, ReconnectingWebSocket, WsConnection, WsSpec

__all__ = ["OkxMarketData"]

log = get_logger("tradeloop.venues.okx.market_data")

_EVENT = msgspec.json.Decoder(EventReply)
_CHANNEL_RE: Final = re.compile(rb'"channel"\s*:\s*"([^"]{1,40})"')
_LOG_FIRST: Final = 10
_LOG_EVERY: Final = 1000
_FETCH_ATTEMPTS: Final = 10


def _channel_of(payload: bytes) -> str:
    found = _CHANNEL_RE.search(payload[:256])
    return found.group(1).decode(errors="replace") if found else "?"


class OkxMarketData:
    """The :class:`~tradeloop.venues.base.MarketDataClient` of OKX.

    ``instruments`` are ``okx:<instId>`` ids; swaps need a spec (``specs``, default: the listed
    instruments) for their contract value. ``procedure`` picks the book procedure (default AUTO).
    """

    venue = VENUE
    sequence_rule = SEQUENCE_RULE
    depth_limit = 0

    def __init__(
        self,
        instruments: Sequence[InstrumentId],
        on_item: Callable[[MarketItem], None],
        clock: Clock,
        urls: ConnectorUrls,
        *,
        rest: RestClient | None = None,
        specs: Mapping[str, OkxInstrument] | None = None,
        procedure: BookProcedure = BookProcedure.AUTO,
        ws_spec: WsSpec | None = None,
        trades: bool = True,
        bbo: bool = True,
        snapshot_retry_s: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not instruments:
            raise ValueError("okx market data: no instruments")
        known = specs if specs is not None else instruments_by_symbol()
        swaps: list[OkxInstrument] = []
        for iid in instruments:
            if iid.venue != VENUE:
                raise ValueError(f"okx market data: {iid} is not an okx instrument")
            spec = known.get(iid.symbol)
            if spec is None and iid.symbol.count("-") != 1:
                raise SymbolError(f"okx market data: {iid.symbol} needs an instrument spec (contract value)")
            if spec is not None and spec.is_swap:
                swaps.append(spec)
        self.counters = MarketDataCounters()
        self.procedure = procedure
        ct = contract_values(swaps)
        self.checksum_fn = OkxBookChecksum(ct)
        """The book checksum for the engine's book manager (swap sizes back to contracts)."""
        self._parser = OkxParser(VENUE, ct)
        self._on_item = on_item
        self._clock = clock
        self._urls = urls
        self._rest = rest
        self._session: aiohttp.ClientSession | None = None
        self._spec = msgspec.structs.replace(ws_spec or WS_PUBLIC, url=urls.ws_public)
        self._channels = [BOOK_CHANNEL] + ([TRADE_CHANNEL] if trades else []) + ([BBO_CHANNEL] if bbo else [])
        self._syncs: dict[str, OkxBookSync] = {
            iid.symbol: OkxBookSync(iid, procedure, self.checksum_fn) for iid in dict.fromkeys(instruments)
        }
        self._snapshot_retry_s = snapshot_retry_s
        self._rng = rng
        self._ws: ReconnectingWebSocket | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def instruments(self) -> list[InstrumentId]:
        return [s.instrument_id for s in self._syncs.values()]

    def sync(self, instrument_id: InstrumentId) -> OkxBookSync:
        """The sync state of one book (for tests and diagnostics)."""
        return self._syncs[instrument_id.symbol]

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and subscribe; returns once the first connection is open."""
        if self._ws is not None:
            raise RuntimeError("okx market data already started")
        if self._rest is None:
            self._session = aiohttp.ClientSession()
            self._rest = RestClient(self._urls.rest, self._session, name="okx-public")
        self._ws = ReconnectingWebSocket(
            self._spec,
            on_open=self._on_open,
            on_frame=self._on_frame,
            on_close=self._on_close,
            now_ns=self._clock.now_ns,
            rng=self._rng,
            name="okx-public",
        )
        self._ws.start()
        await self._ws.wait_open(self._spec.connect_timeout_s + self._spec.open_timeout_s)

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def ws(self) -> ReconnectingWebSocket | None:
        return self._ws

    def resync(self, instrument_id: InstrumentId, reason: str) -> None:
        """Rebuild one book (asked by the engine's book manager)."""
        sync = self._syncs.get(instrument_id.symbol)
        if sync is None:
            return
        self.counters.resyncs_requested += 1
        log.info("okx book resync requested", venue=VENUE, instrument=str(instrument_id), reason=reason)
        self._resync(sync, reason)

    # -- connection callbacks -----------------------------------------------------------------

    def _args(self, symbols: Sequence[str], channels: Sequence[str]) -> list[dict[str, str]]:
        return [{"channel": ch, "instId": s} for s in symbols for ch in channels]

    async def _on_open(self, conn: WsConnection) -> None:
        for sync in self._syncs.values():
            sync.subscribing()
        args = self._args(list(self._syncs), self._channels)
        await conn.send(msgspec.json.encode({"op": "subscribe", "args": args}).decode())

    def _on_close(self, reason: str) -> None:
        self.counters.reconnects += 1
        ts = self._clock.now_ns()
        for sync in self._syncs.values():
            sync.subscribing()
            self._emit(BookStatus(sync.instrument_id, ts, False, f"okx connection lost: {reason}"))

    def _on_frame(self, data: str | bytes, ts_recv: int) -> None:
        payload = data.encode() if isinstance(data, str) else data
        self.counters.frames += 1
        if b'"event"' in payload[:80]:
            self._on_event(payload)
            return
        try:
            items = self._parser.parse(payload, ts_recv)
        except ParseError as exc:
            self._malformed(_channel_of(payload), str(exc))
            return
        for item in items:
            symbol = item.instrument_id.symbol
            sync = self._syncs.get(symbol)
            if sync is None:
                self._malformed(_channel_of(payload), f"unknown symbol {symbol!r}")
                continue
            if isinstance(item, BookDeltas):
                self._step(sync, sync.on_deltas(item))
            else:
                self._emit(item)

    def _on_event(self, payload: bytes) -> None:
        try:
            event = _EVENT.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._malformed(_channel_of(payload), f"bad event frame: {exc}")
            return
        if event.event == "error":
            self._malformed("event", f"okx error {event.code}: {event.msg}")
            return
        if event.event == "subscribe" and event.arg is not None and event.arg.channel == BOOK_CHANNEL:
            sync = self._syncs.get(event.arg.instId)
            if sync is not None:
                sync.subscribed()

    # -- books --------------------------------------------------------------------------------

    def _emit(self, item: MarketItem) -> None:
        self.counters.items += 1
        self._on_item(item)

    def _step(self, sync: OkxBookSync, step: SyncStep) -> None:
        for d in step.emit:
            self._emit(d)
        if step.failure:
            log.warning(
                "okx book lost continuity", venue=VENUE, instrument=str(sync.instrument_id), reason=step.failure
            )
            self._emit(BookStatus(sync.instrument_id, self._clock.now_ns(), False, step.failure))
            self._repair(sync)
        elif step.fetch:
            self._spawn(self._fetch(sync, sync.generation, retry=sync.rest_retries > 0))

    def _resync(self, sync: OkxBookSync, reason: str) -> None:
        if sync.resubscribe_on_failure:
            sync.subscribing()
        else:
            sync.restart(reason)
        self._repair(sync)

    def _repair(self, sync: OkxBookSync) -> None:
        if sync.resubscribe_on_failure:
            self._spawn(self._resubscribe(sync.instrument_id.symbol))

    async def _resubscribe(self, symbol: str) -> None:
        ws = self._ws
        if ws is None:
            return
        args = self._args([symbol], [BOOK_CHANNEL])
        try:
            await ws.send(msgspec.json.encode({"op": "unsubscribe", "args": args}).decode())
            await ws.send(msgspec.json.encode({"op": "subscribe", "args": args}).decode())
        except (NotConnected, ConnectionError, RuntimeError) as exc:
            # The reconnect subscribes everything again.
            log.info("okx resubscribe deferred to the reconnect", venue=VENUE, instrument=symbol, error=repr(exc))

    async def _fetch(self, sync: OkxBookSync, generation: int, *, retry: bool) -> None:
        rest = self._rest
        assert rest is not None
        symbol = sync.instrument_id.symbol
        problem = ""
        for attempt in range(_FETCH_ATTEMPTS):
            if retry or attempt:
                await asyncio.sleep(self._snapshot_retry_s)
            if generation != sync.generation:
                return
            req = book_snapshot(symbol)
            try:
                reply = await rest.request(
                    req.method, req.path, params=req.query, idempotent=True, costs=request_costs(req.path)
                )
                snap = self._parser.parse_rest_book(reply.body, symbol, self._clock.now_ns())
            except (RestError, ParseError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                log.warning("okx book snapshot failed", venue=VENUE, instrument=symbol, error=problem)
                continue
            step = sync.on_rest_snapshot(snap, generation)
            if step.fetch and not step.emit and not step.failure:
                continue  # older than the buffered updates: fetch again
            self._step(sync, step)
            return
        self._step(sync, sync.fetch_failed(generation, problem or "snapshot stayed behind the updates"))

    # -- helpers ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _malformed(self, channel: str, error: str) -> None:
        self.counters.malformed += 1
        n = self.counters.malformed
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.warning("okx malformed market data", venue=VENUE, channel=channel, error=error[:300], count=n)
