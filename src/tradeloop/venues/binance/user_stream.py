"""Binance user data stream: orders, fills and balances pushed by the venue.

Spot: the WebSocket API (``wss://ws-api.binance.com/ws-api/v3``) with
``userDataStream.subscribe.signature`` (any key type; the REST/WS listen keys of spot were retired
on 2026-02-20), sent again after every reconnect; the server pings every 20 s and the transport
answers. USD-M: a listen key from ``POST /fapi/v1/listenKey``, extended every 30 minutes with
``PUT`` and connected as ``<private url>/<listenKey>``; a refused keep-alive or ``listenKeyExpired``
gets a new key and a new connection. The listen key is never logged (the transport logs the host).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
import msgspec
import orjson

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.events import Event
from tradeloop.security.credentials import Credentials
from tradeloop.venues.binance.auth import ws_api_params_for
from tradeloop.venues.binance.orders import InstrumentLookup
from tradeloop.venues.binance.private import UserFrame, UserFrameError, decode_user_frame, user_events
from tradeloop.venues.binance.spec import BinanceMarket
from tradeloop.venues.transport.ws import HeartbeatSpec, ReconnectingWebSocket, WsConnection, WsSpec

__all__ = ["UserStream"]

log = get_logger("tradeloop.venues.binance.user_stream")

_LISTEN_KEY: Final = msgspec.json.Decoder(dict[str, str])
_ENDED: Final = frozenset({"eventStreamTerminated", "listenKeyExpired"})

OnEvents = Callable[[list[Event], str | None], None]
"""(engine events of one venue event, the ``orderId`` it was about)."""


class UserStream:
    """One account's user data socket; events go to ``on_events``, reconnects to ``on_resumed``.

    ``new_listen_key`` (USD-M) is an async callable returning a fresh key; ``now_ms`` is the
    venue-corrected clock used to sign the spot subscription.
    """

    def __init__(
        self,
        market: BinanceMarket,
        venue: str,
        url: str,
        credentials: Credentials,
        clock: Clock,
        now_ms: Callable[[], int],
        lookup: InstrumentLookup,
        on_events: OnEvents,
        on_resumed: Callable[[], None],
        *,
        session: aiohttp.ClientSession | None = None,
        spec: WsSpec | None = None,
        new_listen_key: Callable[[], Awaitable[str]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.market = market
        self.venue = venue
        self._base_url = url
        self._creds = credentials
        self._clock = clock
        self._now_ms = now_ms
        self._lookup = lookup
        self._on_events = on_events
        self._on_resumed = on_resumed
        self._session = session
        self._spec = spec or WsSpec(url=url, heartbeat=HeartbeatSpec(), max_lifetime_s=23.5 * 3600)
        self._new_listen_key = new_listen_key
        self._rng = rng or random.Random()
        self._ws: ReconnectingWebSocket | None = None
        self._req_ids = itertools.count(1)
        self.opens = 0
        self.malformed = 0
        """Frames that did not decode (logged with venue and channel, never fatal)."""

    async def start(self) -> None:
        """Connect and subscribe; returns once the first subscription is confirmed."""
        url = self._base_url
        if self.market is BinanceMarket.USDM:
            url = await self._listen_key_url()
        spec = msgspec.structs.replace(self._spec, url=url)
        self._ws = ReconnectingWebSocket(
            spec,
            on_open=self._on_open,
            on_frame=self._on_frame,
            on_close=self._on_close,
            session=self._session,
            rng=self._rng,
            name=f"{self.venue}-user",
        )
        self._ws.start()
        await self._ws.wait_open(spec.open_timeout_s + spec.connect_timeout_s)

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def renew(self) -> None:
        """Start over on a new connection (USD-M: with a new listen key)."""
        ws = self._ws
        if ws is None:
            return
        if self.market is BinanceMarket.USDM:
            ws.url = await self._listen_key_url()
        conn = ws._conn  # the transport reconnects after this socket closes
        if conn is not None:
            conn.note_loss("user data stream renewed")
            await conn.close_socket()

    async def _listen_key_url(self) -> str:
        if self._new_listen_key is None:
            raise RuntimeError("USD-M user data needs a listen key source")
        return f"{self._base_url.rstrip('/')}/{await self._new_listen_key()}"

    async def _on_open(self, conn: WsConnection) -> None:
        self.opens += 1
        if self.market is BinanceMarket.SPOT:
            req_id = f"tl{next(self._req_ids)}"
            params = ws_api_params_for(self._creds, {}, self._now_ms())
            request = {"id": req_id, "method": "userDataStream.subscribe.signature", "params": params}
            await conn.send(orjson.dumps(request).decode())
            while True:
                frame = decode_user_frame(await conn.receive(10.0))
                if frame.reply_id == req_id:
                    if frame.status != 200:
                        raise ConnectionError(f"user data subscription refused: {frame.error_code} {frame.error_msg}")
                    break
                self._handle(frame)
        if self.opens > 1:
            self._on_resumed()

    def _on_frame(self, data: str | bytes, ts_recv: int) -> None:
        try:
            frame = decode_user_frame(data)
        except UserFrameError as exc:
            self._malformed(exc)
            return
        self._handle(frame)

    def _handle(self, frame: UserFrame) -> None:
        if frame.reply_id is not None or not frame.event_type:
            return
        if frame.event_type in _ENDED:
            log.warning("user data stream ended by the venue", venue=self.venue, kind=frame.event_type)
            self._spawn_renew()
            return
        try:
            events, report = user_events(frame, self._lookup, self.venue, self._clock.now_ns())
        except UserFrameError as exc:
            self._malformed(exc)
            return
        if events:
            self._on_events(events, str(report.i) if report is not None else None)

    def _spawn_renew(self) -> None:
        task = asyncio.get_running_loop().create_task(self.renew())
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    def _malformed(self, exc: Exception) -> None:
        self.malformed += 1
        log.warning("malformed user data frame", venue=self.venue, channel="user", error=str(exc)[:200])

    def _on_close(self, reason: str) -> None:
        log.info("user data stream lost", venue=self.venue, reason=reason)
