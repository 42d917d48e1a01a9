"""A service's NATS connection and the three ways the split moves messages over it.

* :class:`CorePublisher`: fire-and-forget publishing on core NATS, in call order (market data).
* :class:`StreamPublisher`: JetStream publishing in call order; every message is retried with the same
  ``Nats-Msg-Id`` until the stream acknowledges it (a reconnect does not lose it, the stream's duplicate
  window keeps it from being stored twice).
* :class:`DurableConsumer`: a durable pull consumer with explicit acks; a message is acknowledged only
  after its handler returned, so one the service had not finished is delivered again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig

from tradeloop.core.logging import get_logger
from tradeloop.deploy.codec import DecodeFailed, encode, headers_for
from tradeloop.deploy.subjects import Subjects
from tradeloop.venues.transport.endpoint import loggable_url

__all__ = ["CorePublisher", "DurableConsumer", "NatsLink", "StreamPublisher", "cancel_task"]

log = get_logger("tradeloop.deploy.nats")

DUPLICATE_WINDOW_S: Final = 120.0
"""How long a stream remembers message ids (a re-publish within it is stored once)."""
STREAM_MAX_AGE_S: Final = 7 * 86_400.0
_RETRY_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0)
_PUBLISH_TIMEOUT_S: Final = 2.0
_FETCH_TIMEOUT_S: Final = 0.5
_CLOSE_FLUSH_S: Final = 2
ACK_WAIT_S: Final = 30.0
"""A message not acknowledged this long after delivery is delivered again."""


async def cancel_task(task: asyncio.Task[Any] | None, timeout_s: float = 5.0) -> None:
    """Cancel ``task`` and wait until it ended, cancelling again while it goes on: on Python 3.11 a
    cancellation that meets a completing ``asyncio.wait_for`` inside the client can be lost."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    if not task.done():
        log.error("task did not stop", task=task.get_name())


class NatsLink:
    """One service's connection to NATS, its JetStream context and the deployment's names.

    The URL may hold credentials (``nats://user:pass@host``): only its scheme, host and port are ever
    logged or put in errors.
    """

    def __init__(self, url: str, subjects: Subjects, name: str) -> None:
        self.url = url
        self.subjects = subjects
        self.name = name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._closing = False

    @property
    def where(self) -> str:
        return loggable_url(self.url.replace("nats://", "http://", 1)).replace("http://", "nats://", 1)

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("NATS not connected")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("NATS not connected")
        return self._js

    async def connect(self, timeout_s: float = 5.0) -> None:
        """Connect (reconnecting for ever afterwards); :class:`ConnectionError` naming the server if it
        does not answer within ``timeout_s``."""

        async def on_error(exc: Exception) -> None:
            log.warning("nats error", service=self.name, error=f"{type(exc).__name__}: {exc}")

        async def on_disconnect() -> None:
            if not self._closing:
                log.warning("nats disconnected", service=self.name, server=self.where)

        async def on_reconnect() -> None:
            log.info("nats reconnected", service=self.name, server=self.where)

        self._closing = False
        await self._reachable(timeout_s)
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    name=f"tradeloop-{self.subjects.deployment}-{self.name}",
                    connect_timeout=max(1, int(timeout_s)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                ),
                timeout_s,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise ConnectionError(f"NATS at {self.where} did not answer: {type(exc).__name__}") from None
        self._js = self._nc.jetstream()

    async def _reachable(self, timeout_s: float) -> None:
        """Fail at once when nothing listens at the server's address (the client would retry until the
        timeout); several comma-separated servers are left to the client."""
        if "," in self.url:
            return
        parts = urlsplit(self.url)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 4222), timeout_s
            )
        except (TimeoutError, OSError) as exc:
            raise ConnectionError(f"NATS at {self.where} did not answer: {type(exc).__name__}") from None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def ensure_streams(self) -> None:
        """Create the command and event streams unless they exist (any service may start first)."""
        js = self.js
        for name, subject in (
            (self.subjects.command_stream, self.subjects.commands),
            (self.subjects.event_stream, self.subjects.events),
        ):
            try:
                await js.stream_info(name)
                continue
            except nats.js.errors.NotFoundError:
                pass
            try:
                await js.add_stream(
                    StreamConfig(
                        name=name,
                        subjects=[subject],
                        retention=RetentionPolicy.LIMITS,
                        storage=StorageType.FILE,
                        duplicate_window=DUPLICATE_WINDOW_S,
                        max_age=STREAM_MAX_AGE_S,
                    )
                )
            except nats.js.errors.BadRequestError as exc:
                # Another service created it in the meantime with the same settings: fine.
                if "already in use" not in str(exc):
                    raise
            except nats.js.errors.ServiceUnavailableError:
                raise ConnectionError(f"NATS at {self.where} has no JetStream (start nats-server with -js)") from None

    async def purge_streams(self) -> None:
        """Drop every stored command and event (a fresh start of the whole deployment)."""
        for name in (self.subjects.command_stream, self.subjects.event_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.purge_stream(name)

    async def delete_streams(self) -> None:
        for name in (self.subjects.command_stream, self.subjects.event_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.delete_stream(name)

    async def close(self) -> None:
        """Send what is buffered (bounded: a server that is gone must not hold a service up) and close."""
        nc, self._nc, self._js = self._nc, None, None
        self._closing = True
        if nc is None or nc.is_closed:
            return
        with contextlib.suppress(Exception):
            await nc.flush(timeout=_CLOSE_FLUSH_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), _CLOSE_FLUSH_S)


class CorePublisher:
    """Publishes on core NATS in the order :meth:`publish` is called (from synchronous code)."""

    def __init__(self, link: NatsLink) -> None:
        self._link = link
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.failed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self._link.name}.core-publish")

    def publish(self, subject: str, payload: bytes) -> None:
        self._queue.put_nowait((subject, payload))

    async def _run(self) -> None:
        queue = self._queue
        while True:
            item = await queue.get()
            if item is None:
                return
            try:
                await self._link.nc.publish(item[0], item[1])
                self.published += 1
            except nats.errors.Error as exc:  # core NATS is lossy by design; consumers resync
                self.failed += 1
                log.warning("market data not published", subject=item[0], error=type(exc).__name__)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._queue.put_nowait(None)
            await asyncio.wait({task}, timeout=2.0)
            await cancel_task(task)


class StreamPublisher:
    """Publishes messages to a JetStream subject in order, each retried until the stream stored it.

    :meth:`publish` is synchronous (call it from a bus handler): it numbers the message (``Tl-Seq``) and
    queues it. :attr:`seq` is the last number given out, :attr:`acked` the last one the stream confirmed.
    """

    def __init__(self, link: NatsLink, subject: str, origin: str) -> None:
        self._link = link
        self.subject = subject
        self.origin = origin
        self.seq = 0
        self.acked = 0
        self.duplicates = 0
        self.retries = 0
        self._queue: asyncio.Queue[tuple[int, dict[str, str], bytes]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._acked_event = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self._link.name}.stream-publish")

    def publish(self, message: object, client_order_id: str = "") -> int:
        self.seq += 1
        self._queue.put_nowait((self.seq, headers_for(self.origin, self.seq, client_order_id), encode(message)))
        return self.seq

    async def _run(self) -> None:
        while True:
            seq, headers, payload = await self._queue.get()
            attempt = 0
            while True:
                try:
                    ack = await self._link.js.publish(
                        self.subject, payload, timeout=_PUBLISH_TIMEOUT_S, headers=headers
                    )
                    break
                except (
                    nats.errors.TimeoutError,
                    nats.errors.NoRespondersError,
                    nats.errors.ConnectionReconnectingError,
                    nats.js.errors.ServiceUnavailableError,
                ) as exc:
                    # Not stored, or stored without our hearing of it: the same message id again is safe.
                    self.retries += 1
                    log.warning(
                        "publish not confirmed, retrying", subject=self.subject, seq=seq, error=type(exc).__name__
                    )
                    await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
                    attempt += 1
            if ack.duplicate:
                self.duplicates += 1
            self.acked = seq
            self._acked_event.set()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every message published so far is stored; ``False`` if that took longer than ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.acked < self.seq:
            if self._task is None or self._task.done():
                return False
            self._acked_event.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked_event.wait(), left)
        return True

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_task(task)

    @property
    def failure(self) -> BaseException | None:
        """The exception that ended the publishing task, if it ended by one."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()


Handler = Callable[[Msg], Awaitable[None]]


class DurableConsumer:
    """A durable pull consumer of one stream: messages in stream order, each acknowledged after
    ``handler`` returned. A message whose payload cannot be decoded (:class:`DecodeFailed`) is logged,
    counted in :attr:`rejected` and acknowledged, so it cannot block the stream; any other error of the
    handler ends :meth:`run` without acknowledging (the message is delivered again to the next run)."""

    def __init__(
        self,
        link: NatsLink,
        stream: str,
        subject: str,
        durable: str,
        handler: Handler,
        *,
        ack_wait_s: float = ACK_WAIT_S,
    ) -> None:
        self._link = link
        self.ack_wait_s = ack_wait_s
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self._handler = handler
        self._sub: JetStreamContext.PullSubscription | None = None
        self.delivered = 0
        self.rejected = 0
        self._running = False

    async def subscribe(self) -> None:
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_s,
            max_ack_pending=1024,
        )
        self._sub = await self._link.js.pull_subscribe(
            self.subject, durable=self.durable, stream=self.stream, config=config
        )

    async def run(self) -> None:
        """Fetch and handle messages until :meth:`stop_running` (or cancelled)."""
        self._running = True
        while self._running:
            await self.fetch_once(_FETCH_TIMEOUT_S)

    def stop_running(self) -> None:
        """:meth:`run` returns after the batch in hand (cancel its task too, to end a fetch at once)."""
        self._running = False

    async def fetch_once(self, timeout_s: float) -> int:
        """Handle whatever arrives within ``timeout_s`` (one batch); returns how many."""
        sub = self._sub
        if sub is None:
            raise RuntimeError("DurableConsumer.fetch_once() before subscribe()")
        try:
            msgs = await sub.fetch(64, timeout=timeout_s)
        except TimeoutError:  # nats' own TimeoutError, or asyncio's from inside fetch: nothing came
            return 0
        for msg in msgs:
            self.delivered += 1
            try:
                await self._handler(msg)
            except DecodeFailed as exc:
                self.rejected += 1
                log.error("message rejected", subject=msg.subject, error=str(exc))
            await msg.ack()
        return len(msgs)

    async def pending(self) -> int:
        """Messages in the stream this consumer has not been handed yet."""
        if self._sub is None:
            return 0
        info: Any = await self._sub.consumer_info()
        return int(info.num_pending)

    async def drain(self, timeout_s: float) -> bool:
        """Handle every message already in the stream; ``False`` if some were left after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if await self.pending() == 0:
                return True
            await self.fetch_once(0.2)
        return await self.pending() == 0

    async def unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
