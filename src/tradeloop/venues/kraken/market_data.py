"""Kraken public market data over WebSocket v2: books (with checksums), trades and best bid/ask.

Procedure (Kraken's): subscribe ``book`` with a depth; the first message per symbol is a snapshot,
then updates; after applying each message cut every side to the subscribed depth (Kraken sends no
delete for levels that leave the range) and compare the CRC32 of the best 10 levels per side, written
with the pair's price/qty precision, with the message's ``checksum``. There are no sequence ids
(``SequenceRule.NONE``). On a mismatch the book is rebuilt by unsubscribing and subscribing that one
symbol, which sends a fresh snapshot.

The engine's book manager applies the same rules (:attr:`KrakenMarketData.depth_limit`,
:attr:`KrakenMarketData.checksum_fn`, precisions seeded from the static spec and kept current by
the ``instrument`` channel). This client also keeps a copy of each book and checks every message on
arrival: a message that breaks the book is not passed on; the client sends ``BookStatus(valid=False)``
instead, resubscribes, and drops the symbol's updates until the new snapshot. So no update older than
a resync's snapshot ever reaches the book manager, however far behind the consumer runs (with no
sequence ids the manager could not tell such an update is stale). ``resync()`` from the engine is
answered the same way.

Trades come from the ``trade`` channel (no snapshot), best bid/ask from ``ticker`` with
``event_trigger: "bbo"``. Keep-alive: ``{"method":"ping"}`` every 20 s and the ``heartbeat``
channel for the stale-feed watchdog (:func:`tradeloop.venues.kraken.spec.public_ws_spec`).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.book import ApplyResult, OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas, BookStatus, Quote, Trade
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.base import MarketDataCounters, MarketItem
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.parse import KrakenPrecisions, KrakenV2Parser, ParseError
from tradeloop.venues.transport.rest import RestClient
from tradeloop.venues.transport.ws import NotConnected, ReconnectingWebSocket, WsConnection, WsSpec

__all__ = ["KrakenMarketData", "book_subscription"]

log = get_logger("tradeloop.venues.kraken.market_data")

_CHANNEL: Final = re.compile(rb'"(?:channel|method)"\s*:\s*"([a-z_]{1,32})"')
RESYNC_RETRY_S: Final = 5.0
"""A resync still waiting for its snapshot after this long is sent again."""


def book_subscription(method: str, symbols: Sequence[str], depth: int, req_id: int) -> str:
    """``subscribe`` / ``unsubscribe`` message of the ``book`` channel."""
    params: dict[str, object] = {"channel": "book", "symbol": list(symbols), "depth": depth}
    if method == "subscribe":
        params["snapshot"] = True
    return msgspec.json.encode({"method": method, "params": params, "req_id": req_id}).decode()


def _channel_of(payload: bytes) -> str:
    match = _CHANNEL.search(payload[:96])
    return match.group(1).decode() if match else "unknown"


class KrakenMarketData:
    """Books, trades and best bid/ask of ``instruments`` (``kraken:BTC/USD``...) from the v2 public socket."""

    venue = spec.VENUE
    sequence_rule: Final = spec.SEQUENCE_RULE

    def __init__(
        self,
        instruments: Sequence[InstrumentId],
        on_item: Callable[[MarketItem], None],
        clock: Clock,
        urls: ConnectorUrls,
        *,
        rest: RestClient | None = None,
        depth: int = spec.DEFAULT_BOOK_DEPTH,
        trades: bool = True,
        quotes: bool = True,
        ws_spec: WsSpec | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if depth not in spec.BOOK_DEPTHS:
            raise ValueError(f"kraken book depth must be one of {spec.BOOK_DEPTHS}, got {depth}")
        if not instruments:
            raise ValueError("kraken market data: no instruments")
        self.precisions = KrakenPrecisions()
        for iid in instruments:
            if iid.venue != spec.VENUE:
                raise ValueError(f"kraken market data got an instrument of {iid.venue}: {iid}")
            spec.to_v1_pair(iid.symbol)  # SymbolError unless BASE/QUOTE
            try:
                pair = spec.pair_of(iid.symbol)
            except spec.SymbolError:
                continue  # precisions arrive with the instrument channel
            self.precisions.set(iid, pair.price_decimals, pair.qty_decimals)
        self._iids = list(dict.fromkeys(instruments))
        self._known = frozenset(self._iids)
        self._symbols = [iid.symbol for iid in self._iids]
        self._on_item = on_item
        self._clock = clock
        self.depth_limit = depth
        self.checksum_fn = self.precisions.book_checksum
        self._trades = trades
        self._quotes = quotes
        self._parser = KrakenV2Parser(precisions=self.precisions)
        self.counters = MarketDataCounters()
        self._books = {iid: OrderBook(iid, SequenceRule.NONE, None, True, depth) for iid in self._iids}
        """The client's own copy of each book, to check messages on arrival."""
        self._awaiting: dict[InstrumentId, float] = {}
        """Symbols whose next book message must be a snapshot (value: loop time of the request)."""
        self._req_id = 0
        self._opened = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws = ReconnectingWebSocket(
            ws_spec or spec.public_ws_spec(urls.ws_public),
            on_open=self._on_open,
            on_frame=self._on_frame,
            on_close=self._on_close,
            rng=rng,
            now_ns=clock.now_ns,
            name="kraken-public",
        )

    @property
    def ws(self) -> ReconnectingWebSocket:
        return self._ws

    async def start(self, timeout_s: float = 15.0) -> None:
        """Connect and subscribe; returns once the first connection is open."""
        self._ws.start()
        await self._ws.wait_open(timeout_s)

    async def stop(self) -> None:
        await self._ws.close()
        for task in list(self._tasks):
            task.cancel()

    def resync(self, instrument_id: InstrumentId, reason: str) -> None:
        """Rebuild one book: unsubscribe and subscribe its ``book`` channel (a fresh snapshot)."""
        if instrument_id not in self._known:
            log.warning("resync of an instrument not subscribed", venue=self.venue, instrument=str(instrument_id))
            return
        self.counters.resyncs_requested += 1
        loop = asyncio.get_running_loop()
        since = self._awaiting.get(instrument_id)
        if since is not None and loop.time() - since < RESYNC_RETRY_S:
            return  # a resubscription is already under way
        self._awaiting[instrument_id] = loop.time()
        log.info("book resync", venue=self.venue, instrument=str(instrument_id), reason=reason)
        task = loop.create_task(self._resubscribe(instrument_id.symbol))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resubscribe(self, symbol: str) -> None:
        try:
            await self._ws.send(book_subscription("unsubscribe", [symbol], self.depth_limit, self._next_id()))
            await self._ws.send(book_subscription("subscribe", [symbol], self.depth_limit, self._next_id()))
        except (NotConnected, ConnectionError, RuntimeError) as exc:
            # The next connection subscribes every book again.
            log.info("resync deferred to the next connection", venue=self.venue, symbol=symbol, error=str(exc))

    def _next_id(self) -> int:
        self._req_id += 1
        return self._req_id

    # -- connection callbacks -------------------------------------------------------------------

    async def _on_open(self, conn: WsConnection) -> None:
        self._opened += 1
        if self._opened > 1:
            self.counters.reconnects += 1
        now = asyncio.get_running_loop().time()
        for iid in self._iids:
            self._awaiting[iid] = now
        symbols = self._symbols
        messages: list[dict[str, object]] = [
            {"method": "subscribe", "params": {"channel": "instrument", "snapshot": True}},
        ]
        if self._quotes:
            params = {"channel": "ticker", "symbol": symbols, "event_trigger": "bbo", "snapshot": True}
            messages.append({"method": "subscribe", "params": params})
        if self._trades:
            messages.append(
                {"method": "subscribe", "params": {"channel": "trade", "symbol": symbols, "snapshot": False}}
            )
        for message in messages:
            message["req_id"] = self._next_id()
            await conn.send(msgspec.json.encode(message).decode())
        await conn.send(book_subscription("subscribe", symbols, self.depth_limit, self._next_id()))

    def _on_close(self, reason: str) -> None:
        now = self._clock.now_ns()
        for iid in self._iids:
            self._awaiting[iid] = 0.0
            self._on_item(BookStatus(iid, now, False, f"connection lost: {reason}"))

    def _malformed(self, payload: bytes, error: str) -> None:
        self.counters.malformed += 1
        n = self.counters.malformed
        if n <= 20 or n % 1000 == 0:
            log.warning("malformed frame", venue=self.venue, channel=_channel_of(payload), error=error[:200], count=n)

    def _on_frame(self, data: str | bytes, ts_recv: int) -> None:
        payload = data.encode() if isinstance(data, str) else data
        self.counters.frames += 1
        if b'"channel"' not in payload[:48]:
            self._on_reply(payload)
            return
        try:
            items = self._parser.parse(payload, ts_recv)
        except ParseError as exc:
            self._malformed(payload, str(exc))
            return
        for item in items:
            if item.instrument_id not in self._known:
                self._malformed(payload, f"unknown symbol {item.instrument_id.symbol!r}")
                continue
            if isinstance(item, BookDeltas):
                if self._check(item):
                    self._emit(item)
            else:
                self._emit(item)

    def _check(self, item: BookDeltas) -> bool:
        """Apply ``item`` to the client's copy; False (and a resync) when it must not be passed on."""
        iid = item.instrument_id
        if not item.snapshot and iid in self._awaiting:
            return False  # an update before the snapshot of a resubscription: the snapshot supersedes it
        book = self._books[iid]
        problem = ""
        if book.apply_deltas(item) is ApplyResult.INVALID:
            problem = book.invalid_reason
        elif item.checksum is not None and self.precisions.get(iid) is not None:
            local = self.precisions.book_checksum(book)
            if local != item.checksum:
                problem = f"checksum mismatch: venue {item.checksum}, local {local}"
        if not problem:
            if item.snapshot:
                self._awaiting.pop(iid, None)
            return True
        book.invalidate(problem)
        self._on_item(BookStatus(iid, self._clock.now_ns(), False, problem))
        self._awaiting.pop(iid, None)
        self.resync(iid, problem)
        return False

    def _emit(self, item: BookDeltas | Trade | Quote) -> None:
        self.counters.items += 1
        self._on_item(item)

    def _on_reply(self, payload: bytes) -> None:
        try:
            reply = msgspec.json.decode(payload, type=dict[str, object])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._malformed(payload, f"not a JSON object: {exc}")
            return
        if reply.get("success") is False or reply.get("error"):
            log.error(
                "kraken refused a request",
                venue=self.venue,
                method=str(reply.get("method", "")),
                error=str(reply.get("error", ""))[:200],
            )
