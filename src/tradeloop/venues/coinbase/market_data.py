"""Coinbase Advanced Trade public market data: ``level2`` books, ``market_trades``, ``heartbeats``.

Procedure (the venue's): subscribe ``level2`` (first message within 5 s of connecting); the first
``l2_data`` event of each product is a full snapshot, then absolute updates follow. Every message of
the connection carries ``sequence_num``, which must rise by exactly one
(:class:`~tradeloop.venues.coinbase.parse.ConnectionSequence`); there is no checksum. On a jump
(a message was lost, it may have been any product's) every book of the connection is marked
invalid and ``level2`` is unsubscribed and subscribed again, which brings fresh snapshots. Until a
book's new snapshot arrives its updates are dropped here, so nothing older than the snapshot
reaches the book manager. The ``heartbeats`` channel (one message a second) keeps quiet channels
open and feeds the stale-feed watchdog; WebSocket pings keep the link alive.

Best bid/ask comes from the level2 book itself (no separate ticker subscription).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.book import ChecksumFn, SequenceRule
from tradeloop.model.data import BookDeltas, BookStatus
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.base import MarketDataCounters, MarketItem
from tradeloop.venues.coinbase.parse import CoinbaseAdvancedParser, ParseError
from tradeloop.venues.coinbase.spec import (
    BOOK_CHANNEL,
    HEARTBEAT_CHANNEL,
    TRADE_CHANNEL,
    VENUE,
    WS_HEARTBEAT,
    WS_STALE_AFTER_S,
)
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.registry import market_data_adapter
from tradeloop.venues.transport.rest import RestClient
from tradeloop.venues.transport.ws import NotConnected, ReconnectingWebSocket, WsConnection, WsSpec

__all__ = ["CoinbaseMarketData"]

log = get_logger("tradeloop.venues.coinbase.market_data")


def subscription(kind: str, channel: str, product_ids: Sequence[str] = ()) -> str:
    """A ``subscribe``/``unsubscribe`` message (public channels need no JWT)."""
    msg: dict[str, Any] = {"type": kind}
    if product_ids:
        msg["product_ids"] = list(product_ids)
    msg["channel"] = channel
    return msgspec.json.encode(msg).decode()


class CoinbaseMarketData:
    """:class:`~tradeloop.venues.base.MarketDataClient` for Coinbase Advanced Trade."""

    venue = VENUE

    def __init__(
        self,
        instruments: Sequence[InstrumentId],
        on_item: Callable[[MarketItem], None],
        clock: Clock,
        urls: ConnectorUrls,
        *,
        rest: RestClient | None = None,
    ) -> None:
        for iid in instruments:
            if iid.venue != VENUE:
                raise ValueError(f"{iid} is not a Coinbase instrument")
        if not instruments:
            raise ValueError("coinbase market data needs at least one instrument")
        self._instruments = {iid.symbol: iid for iid in instruments}
        self._on_item = on_item
        self._clock = clock
        self.urls = urls
        adapter = market_data_adapter(VENUE)
        self.sequence_rule: SequenceRule = adapter.sequence_rule
        self.checksum_fn: ChecksumFn | None = adapter.checksum_fn
        self.depth_limit: int = adapter.depth_limit
        self.counters = MarketDataCounters()
        self.sequence_gaps = 0
        self._parser = CoinbaseAdvancedParser(VENUE)
        self._awaiting: set[str] = set(self._instruments)
        """Products whose book waits for a snapshot (their updates are dropped until then)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws = ReconnectingWebSocket(
            WsSpec(url=urls.ws_public, heartbeat=WS_HEARTBEAT, stale_after_s=WS_STALE_AFTER_S),
            on_open=self._on_open,
            on_frame=self._on_frame,
            on_close=self._on_close,
            now_ns=clock.now_ns,
            name="coinbase-market",
        )
        self._opened_once = False

    @property
    def ws(self) -> ReconnectingWebSocket:
        return self._ws

    async def start(self) -> None:
        self._ws.start()
        await self._ws.wait_open(15)

    async def stop(self) -> None:
        await self._ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def resync(self, instrument_id: InstrumentId, reason: str) -> None:
        """Unsubscribe and subscribe ``level2`` of that product: the venue sends a new snapshot."""
        product = instrument_id.symbol
        if product not in self._instruments:
            return
        self.counters.resyncs_requested += 1
        self._awaiting.add(product)
        log.info("coinbase book resync", venue=VENUE, product=product, reason=reason)
        self._spawn(self._resubscribe_books([product]))

    # ---- socket callbacks ------------------------------------------------------------------------

    async def _on_open(self, conn: WsConnection) -> None:
        self._parser.sequence.reset()
        self._awaiting = set(self._instruments)
        if self._opened_once:
            self.counters.reconnects += 1
        self._opened_once = True
        products = sorted(self._instruments)
        await conn.send(subscription("subscribe", BOOK_CHANNEL, products))
        await conn.send(subscription("subscribe", TRADE_CHANNEL, products))
        await conn.send(subscription("subscribe", HEARTBEAT_CHANNEL))

    def _on_close(self, reason: str) -> None:
        self._invalidate(sorted(self._instruments), f"feed lost: {reason}")

    def _on_frame(self, data: str | bytes, ts_recv: int) -> None:
        self.counters.frames += 1
        payload = data.encode() if isinstance(data, str) else data
        gaps = self._parser.sequence.gaps
        try:
            items = self._parser.parse(payload, ts_recv)
        except ParseError as exc:
            self._malformed(payload, str(exc))
            return
        if self._parser.sequence.gaps != gaps:
            self.sequence_gaps += 1
            products = sorted(self._instruments)
            self._invalidate(products, f"sequence gap at {self._parser.sequence.last}")
            self._spawn(self._resubscribe_books(products))
        for item in items:
            product = item.instrument_id.symbol
            if product not in self._instruments:
                self._malformed(payload, f"unknown product {product!r}")
                continue
            if isinstance(item, BookDeltas):
                if item.snapshot:
                    self._awaiting.discard(product)
                elif product in self._awaiting:
                    continue  # older than the snapshot we are waiting for
            self.counters.items += 1
            self._on_item(item)

    # ---- internals -------------------------------------------------------------------------------

    def _malformed(self, payload: bytes, error: str) -> None:
        self.counters.malformed += 1
        channel = "?"
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            head = msgspec.json.decode(payload, type=dict[str, Any])
            channel = str(head.get("channel") or head.get("type") or "?")
        if self.counters.malformed <= 10 or self.counters.malformed % 1000 == 0:
            log.warning(
                "coinbase frame malformed",
                venue=VENUE,
                channel=channel,
                error=error[:200],
                count=self.counters.malformed,
            )

    def _invalidate(self, products: Sequence[str], reason: str) -> None:
        now = self._clock.now_ns()
        for product in products:
            self._awaiting.add(product)
            self._on_item(BookStatus(instrument_id=self._instruments[product], ts=now, valid=False, reason=reason))

    async def _resubscribe_books(self, products: Sequence[str]) -> None:
        with contextlib.suppress(NotConnected):  # a reconnect subscribes everything anyway
            await self._ws.send(subscription("unsubscribe", BOOK_CHANNEL, products))
            await self._ws.send(subscription("subscribe", BOOK_CHANNEL, products))

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
