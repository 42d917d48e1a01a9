"""Bybit v5 public market data on the transport: books, trades and best bid/ask for one venue (category).

Procedure (Bybit's, per book): subscribe ``orderbook.{depth}.{symbol}``; the first message is a
snapshot (replace the book), then deltas whose update id ``u`` rises by one; any later snapshot
resets the book. There is no REST step and no checksum. The client checks the ``u`` chain itself:
a jump emits ``BookStatus(valid=False)`` and resubscribes that one topic (unsubscribe + subscribe),
whose fresh snapshot resyncs the book; deltas before it are dropped. ``publicTrade.{symbol}`` gives
trades, ``orderbook.1.{symbol}`` best bid/ask quotes.

Every connection loss emits ``BookStatus(valid=False)`` for each book; the reconnect resubscribes.
Subscriptions go in requests of at most 10 topics (Bybit spot's limit). Malformed frames and frames
of symbols not subscribed are counted in ``counters.malformed`` and logged, never raised. The
socket sends ``{"op":"ping"}`` every 20 s (the transport swallows the pongs).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.book import ChecksumFn, SequenceRule
from tradeloop.model.data import BookDeltas, BookStatus
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.base import MarketDataCounters, MarketItem
from tradeloop.venues.bybit import spec
from tradeloop.venues.bybit.parse import BybitParser, ParseError
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.registry import market_data_adapter
from tradeloop.venues.transport.rest import RestClient
from tradeloop.venues.transport.ws import NotConnected, ReconnectingWebSocket, WsConnection

__all__ = ["BybitMarketData", "subscribe_frames"]

log = get_logger("tradeloop.venues.bybit.market_data")

MAX_ARGS_PER_REQUEST: Final = 10
STALE_AFTER_S: Final = 60.0
"""A subscribed book sends at least its level-1 snapshot every few seconds; a minute of silence is a dead feed."""


def subscribe_frames(op: str, topics: Sequence[str], req_prefix: str = "") -> list[str]:
    """``subscribe``/``unsubscribe`` requests for ``topics``, at most 10 topics each."""
    out = []
    for n, start in enumerate(range(0, len(topics), MAX_ARGS_PER_REQUEST)):
        chunk = list(topics[start : start + MAX_ARGS_PER_REQUEST])
        out.append(msgspec.json.encode({"req_id": f"{req_prefix}{op[0]}{n}", "op": op, "args": chunk}).decode())
    return out


class BybitMarketData:
    """Books (+ trades, quotes) of instruments of one Bybit venue over one public WebSocket."""

    def __init__(
        self,
        instruments: Sequence[InstrumentId],
        on_item: Callable[[MarketItem], None],
        clock: Clock,
        urls: ConnectorUrls,
        *,
        rest: RestClient | None = None,
        venue: str | None = None,
        depth: int = 50,
        trades: bool = True,
        quotes: bool = True,
        seed: int | None = None,
    ) -> None:
        venues = {iid.venue for iid in instruments}
        self.venue = venue or (venues.pop() if len(venues) == 1 else "")
        if self.venue not in spec.CATEGORY_OF_VENUE or any(iid.venue != self.venue for iid in instruments):
            raise ValueError(f"instruments must all be of one Bybit venue (bybit or bybit_linear): {instruments}")
        if depth not in spec.BOOK_DEPTHS or depth == 1:
            raise ValueError(f"book depth {depth}: Bybit offers {', '.join(map(str, spec.BOOK_DEPTHS[1:]))}")
        self.instruments = list(dict.fromkeys(instruments))
        self.depth = depth
        self.counters = MarketDataCounters()
        adapter = market_data_adapter(self.venue)
        self.sequence_rule: SequenceRule = adapter.sequence_rule
        self.checksum_fn: ChecksumFn | None = adapter.checksum_fn
        self.depth_limit = adapter.depth_limit  # 0: Bybit deletes levels leaving the top ``depth`` itself
        self._on_item = on_item
        self._clock = clock
        self._rest = rest  # unused: Bybit's procedure needs no REST snapshot
        self._parser = BybitParser(self.venue)
        self._by_symbol = {iid.symbol: iid for iid in self.instruments}
        self._topics: list[str] = []
        for iid in self.instruments:
            self._topics.append(self.book_topic(iid))
            if trades:
                self._topics.append(f"publicTrade.{iid.symbol}")
            if quotes:
                self._topics.append(f"orderbook.1.{iid.symbol}")
        self._last_u: dict[InstrumentId, int] = {}
        self._awaiting_snapshot: set[InstrumentId] = set(self.instruments)
        self._conn: WsConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws = ReconnectingWebSocket(
            spec.ws_spec(urls.ws_public, stale_after_s=STALE_AFTER_S),
            on_open=self._on_open,
            on_frame=self._on_frame,
            on_close=self._on_close,
            rng=random.Random(seed),
            now_ns=clock.now_ns,
            name=f"{self.venue}-public",
        )
        self._started = False

    def book_topic(self, iid: InstrumentId) -> str:
        return spec.BOOK_TOPIC.format(depth=self.depth, symbol=iid.symbol)

    @property
    def connected(self) -> bool:
        return self._ws.connected

    async def start(self) -> None:
        """Connect and subscribe; returns once the first connection is open."""
        if not self._started:
            self._started = True
            self._ws.start()
        await self._ws.wait_open(self._ws.spec.connect_timeout_s + self._ws.spec.open_timeout_s)

    async def stop(self) -> None:
        await self._ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def resync(self, instrument_id: InstrumentId, reason: str) -> None:
        """Resubscribe one book: its next snapshot rebuilds it (deltas until then are dropped)."""
        if instrument_id not in self._by_symbol.values():
            return
        self.counters.resyncs_requested += 1
        self._invalidate(instrument_id, reason)
        conn = self._conn
        if conn is None or conn.closed:
            return  # the reconnect resubscribes every book
        task = asyncio.get_running_loop().create_task(self._resubscribe(conn, instrument_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resubscribe(self, conn: WsConnection, iid: InstrumentId) -> None:
        topic = [self.book_topic(iid)]
        try:
            for frame in subscribe_frames("unsubscribe", topic, "r") + subscribe_frames("subscribe", topic, "r"):
                await conn.send(frame)
        except (NotConnected, ConnectionError, RuntimeError) as exc:
            log.warning("bybit resubscribe failed", venue=self.venue, book=str(iid), error=type(exc).__name__)

    def _invalidate(self, iid: InstrumentId, reason: str) -> None:
        self._awaiting_snapshot.add(iid)
        self._last_u.pop(iid, None)
        self._on_item(BookStatus(iid, self._clock.now_ns(), False, reason))

    # -- socket callbacks ---------------------------------------------------------------------

    async def _on_open(self, conn: WsConnection) -> None:
        self._conn = conn
        self._awaiting_snapshot = set(self.instruments)
        self._last_u.clear()
        for frame in subscribe_frames("subscribe", self._topics):
            await conn.send(frame)

    def _on_close(self, reason: str) -> None:
        self._conn = None
        self.counters.reconnects += 1
        for iid in self.instruments:
            self._invalidate(iid, f"connection lost: {reason}")

    def _on_frame(self, frame: str | bytes, ts_recv: int) -> None:
        self.counters.frames += 1
        data = frame.encode() if isinstance(frame, str) else frame
        try:
            items = self._parser.parse(data, ts_recv)
        except ParseError as exc:
            self._malformed(_channel(data), str(exc))
            return
        for item in items:
            iid = item.instrument_id
            if self._by_symbol.get(iid.symbol) != iid:
                self._malformed(_channel(data), f"unknown symbol {iid.symbol!r}")
                continue
            if isinstance(item, BookDeltas) and not self._in_sequence(item):
                continue
            self.counters.items += 1
            self._on_item(item)

    def _in_sequence(self, item: BookDeltas) -> bool:
        iid = item.instrument_id
        if item.snapshot:
            self._awaiting_snapshot.discard(iid)
            self._last_u[iid] = item.last_seq
            return True
        if iid in self._awaiting_snapshot:
            return False  # from before a resubscribe: the coming snapshot replaces it
        last = self._last_u.get(iid)
        if last is not None and item.first_seq != last + 1:
            log.warning("bybit book gap", venue=self.venue, book=str(iid), expected=last + 1, got=item.first_seq)
            self.resync(iid, f"sequence gap: expected u={last + 1}, got {item.first_seq}")
            return False
        self._last_u[iid] = item.last_seq
        return True

    def _malformed(self, channel: str, error: str) -> None:
        self.counters.malformed += 1
        log.warning("bybit malformed frame", venue=self.venue, channel=channel, error=error[:200])


def _channel(data: bytes) -> str:
    """The topic of a frame, for logs (``"?"`` when it has none that can be read)."""
    start = data.find(b'"topic":"')
    if start < 0:
        return "?"
    end = data.find(b'"', start + 9)
    return data[start + 9 : end].decode(errors="replace") if end > 0 else "?"
