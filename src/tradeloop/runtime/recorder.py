"""Recording a venue's raw market data for later replay through the same parsers.

``tradeloop record`` runs the venue's own market-data client (so the recording holds exactly what
the live node would have seen: the same subscriptions, the same snapshot procedure, resyncs
included) and writes every raw frame with its local receive time, in the format
``tradeloop replay`` reads:

* ``<ts_ns> <frame>`` per WebSocket frame;
* ``<ts_ns> REST <url> <body>`` per REST response the client fetched (book snapshots);
* gzip when the file name ends with ``.gz``.

How the frames are tapped: a client whose constructor declares ``frame_tap`` gets one (called with
``(frame, ts_recv_ns)`` for every frame it receives). Otherwise (today's adapters) the recorder tees
the transport's single read path, :meth:`~tradeloop.venues.transport.ws.WsConnection.next_frame`,
for the duration of the recording (:func:`tap_socket_reads`): every data frame of the client's
sockets, including those it reads while subscribing, with the receive time the client stamps on
it; no venue adapter has to know about recording. REST responses are tapped through the ``rest=``
client the connector's factory accepts: a :class:`~tradeloop.venues.transport.rest.RestClient`
that writes every successful GET response (replay keeps the book snapshots among them).

Frames are JSON text; a raw newline inside one (legal JSON whitespace) is written as a space so
that each frame stays on one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import inspect
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final, cast

import aiohttp

from tradeloop.core.clock import LiveClock
from tradeloop.core.logging import get_logger
from tradeloop.model.data import MarketData
from tradeloop.runtime.venue_feed import VenueMarketData, connector_for, connector_urls
from tradeloop.venues.transport.rest import RestClient, RestResponse
from tradeloop.venues.transport.ws import WsConnection

__all__ = ["FrameWriter", "RecordStats", "TappedRestClient", "record_venue", "tap_socket_reads"]

log = get_logger("tradeloop.record")

FrameTap = Callable[[str | bytes, int], None]

_NEWLINES: Final = bytes.maketrans(b"\r\n", b"  ")


class FrameWriter:
    """Writes a recording: ``<ts_ns> <frame>`` lines and ``<ts_ns> REST <url> <body>`` lines."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = self.path.open("wb")
        self._fh: IO[bytes] = (
            cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb")) if self.path.suffix == ".gz" else raw
        )
        self._raw = raw
        self.frames = 0
        self.rest = 0
        self.bytes = 0

    def frame(self, data: str | bytes, ts_ns: int) -> None:
        payload = data.encode() if isinstance(data, str) else data
        self._write(b"%d %s\n" % (ts_ns, payload.translate(_NEWLINES)))
        self.frames += 1

    def rest_response(self, url: str, body: bytes, ts_ns: int) -> None:
        if " " in url:
            raise ValueError(f"a recorded REST URL must not contain spaces: {url!r}")
        self._write(b"%d REST %s %s\n" % (ts_ns, url.encode(), body.translate(_NEWLINES)))
        self.rest += 1

    def _write(self, line: bytes) -> None:
        self._fh.write(line)
        self.bytes += len(line)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        if not self._raw.closed:
            self._raw.close()


class TappedRestClient(RestClient):
    """A :class:`RestClient` that hands every successful GET response to ``on_response(url, body, ts_ns)``."""

    def __init__(self, *args: Any, on_response: Callable[[str, bytes, int], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_response = on_response

    async def request(self, method: str, path: str, **kwargs: Any) -> RestResponse:
        reply = await super().request(method, path, **kwargs)
        if method.upper() == "GET" and 200 <= reply.status < 300:
            self._on_response(str(self._url(path, kwargs.get("params"))), reply.body, time.time_ns())
        return reply


def accepts_keyword(factory: Callable[..., Any], name: str) -> bool:
    """Whether ``factory`` (a class or function) declares the keyword parameter ``name`` (a bare
    ``**kwargs`` does not count: it may pass the keyword on to something that refuses it)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    param = params.get(name)
    return param is not None and param.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@contextlib.contextmanager
def tap_socket_reads(tap: FrameTap) -> Iterator[None]:
    """Inside the block, every data frame any :class:`WsConnection` reads (pongs excluded; frames a
    client reads while subscribing included) also goes to ``tap`` with its receive time.

    The recorder's process runs one market-data client and nothing else, so tapping the transport's
    one read path records what the client saw without any venue adapter knowing about it."""
    original = WsConnection.next_frame

    async def next_frame(self: WsConnection) -> tuple[str | bytes, int] | None:
        got = await original(self)
        if got is not None:
            tap(got[0], got[1])
        return got

    WsConnection.next_frame = next_frame  # type: ignore[method-assign]
    try:
        yield
    finally:
        WsConnection.next_frame = original  # type: ignore[method-assign]


class RecordStats:
    """What a recording session saw: frames and REST responses written, items the client parsed."""

    def __init__(self) -> None:
        self.frames = 0
        self.rest = 0
        self.bytes = 0
        self.items = 0
        self.malformed = 0
        self.tap = ""


async def record_venue(
    venue: str,
    symbols: list[str],
    out: str | Path,
    *,
    endpoint: str | None = None,
    duration_s: float | None = None,
    stop: asyncio.Event | None = None,
    start_timeout_s: float = 15.0,
) -> RecordStats:
    """Record ``venue``'s market data for ``symbols`` into ``out`` until ``duration_s`` passes or ``stop`` is set."""
    stats = RecordStats()
    writer = FrameWriter(out)
    session = aiohttp.ClientSession()
    try:
        clock = LiveClock()
        connector = connector_for(venue)
        urls = connector_urls(connector, endpoint)
        kwargs: dict[str, Any] = {
            "rest": TappedRestClient(urls.rest, session, on_response=writer.rest_response, name=f"{venue}-record")
        }
        native_tap = accepts_keyword(connector.market_data, "frame_tap")
        if native_tap:
            kwargs["frame_tap"] = writer.frame

        def count(_item: MarketData) -> None:
            stats.items += 1

        market = VenueMarketData(venue, symbols, endpoint=endpoint, clock=clock, sink=count, market_data_kwargs=kwargs)
        stats.tap = "frame_tap" if native_tap else "transport read tap"
        waiter = stop if stop is not None else asyncio.Event()
        with contextlib.nullcontext() if native_tap else tap_socket_reads(writer.frame):
            await market.start(start_timeout_s)
            log.info("recording", venue=venue, symbols=",".join(symbols), out=str(out), tap=stats.tap)
            try:
                await asyncio.wait_for(waiter.wait(), duration_s)
            except TimeoutError:
                pass
            finally:
                await market.stop()
                stats.malformed = market.counters.malformed
    finally:
        writer.close()
        await session.close()
    stats.frames, stats.rest, stats.bytes = writer.frames, writer.rest, writer.bytes
    return stats
