"""A mirror of a node's hot state in Redis: positions, open orders and balances, for other processes to read.

:class:`StateMirror` listens on the engine's bus (order and account events) and only marks the state
dirty there: the engine's hot path pays one attribute store per event. A task of its own, at most every
``interval_s``, renders the state (the admin snapshot's views, decimal strings), compares it with what it
last wrote and writes the difference in one ``MULTI`` pipeline, so a reader never sees half an update.
Every ``refresh_s`` it renders even without events (marks move, reconciliation corrects balances).

Keys (see :mod:`tradeloop.coordination.redis_keys`), one hash per kind, one field per item, JSON values::

    <prefix>:<node>:positions   "<venue>:<symbol>" -> {"instrument", "qty", "mark"}
    <prefix>:<node>:orders      client order id    -> {"client_order_id", "instrument", "side", "price", ...}
    <prefix>:<node>:balances    "<venue>:<ccy>"    -> {"venue", "currency", "total", "wallet"}
    <prefix>:<node>:meta        seq (+1 per write, across restarts), updated_ns (engine clock), written_unix_ns

A Redis outage never reaches the engine: the write fails, one warning is logged, the mirror retries
with a backoff and, once Redis answers again, rewrites the whole state (it cannot know what the failed
write left behind). :func:`read_mirror` (or a :class:`MirrorReader`) reads a node's mirror into a typed
:class:`MirrorView`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any, Final, Protocol

import msgspec
from redis.asyncio import Redis

from tradeloop.coordination.redis_keys import REDIS_ERRORS, MirrorKeys, connect, mirror_keys, safe_url
from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model import topics
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import Order
from tradeloop.ops.snapshot import OrderView, PositionView, order_views, position_views
from tradeloop.trading.portfolio import Portfolio

__all__ = [
    "BalanceView",
    "MirrorCorrupt",
    "MirrorNotFound",
    "MirrorReader",
    "MirrorView",
    "MirroredEngine",
    "StateMirror",
    "read_mirror",
    "render_state",
]

log = get_logger("tradeloop.coordination.mirror")

_KINDS: Final = ("positions", "orders", "balances")
_MAX_BACKOFF_S: Final = 5.0


class BalanceView(msgspec.Struct, frozen=True):
    """One balance: the engine's ``total`` (perp cost basis in the quote cash) and the venue-style ``wallet``."""

    venue: str
    currency: str
    total: str
    wallet: str


class MirrorView(msgspec.Struct, frozen=True, kw_only=True):
    """A node's mirrored state as one consistent read."""

    node: str
    seq: int
    """Writes so far (grows across restarts of the node)."""
    updated_ns: int
    """The engine's clock when the state was rendered."""
    written_unix_ns: int
    """Wall clock of the write (how stale the mirror is)."""
    positions: dict[str, PositionView]
    orders: dict[str, OrderView]
    balances: dict[str, BalanceView]


class MirrorNotFound(LookupError):
    """No mirror of that node under that prefix."""


class MirrorCorrupt(ValueError):
    """A mirrored value does not decode (names the key and field)."""


class MirroredEngine(Protocol):
    """What the mirror reads from a node (a :class:`~tradeloop.runtime.backtest.BacktestEngine`)."""

    @property
    def bus(self) -> MessageBus: ...

    @property
    def portfolio(self) -> Portfolio: ...

    @property
    def clock(self) -> Clock: ...

    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[Order]: ...


_encode = msgspec.json.Encoder().encode


def render_state(portfolio: Portfolio, orders: list[Order]) -> dict[str, dict[str, bytes]]:
    """The mirrored hashes' fields (kind -> field -> JSON) of a portfolio and its open orders (pure)."""
    balances = {
        f"{venue}:{ccy}": _encode(
            BalanceView(venue, ccy, fixed.to_str(total), fixed.to_str(portfolio.wallet_balance(venue, ccy)))
        )
        for (venue, ccy), total in sorted(portfolio.balances.items())
    }
    return {
        "positions": {view.instrument: _encode(view) for view in position_views(portfolio)},
        "orders": {view.client_order_id: _encode(view) for view in order_views(orders)},
        "balances": balances,
    }


class StateMirror:
    """Mirrors ``engine``'s positions, open orders and balances to Redis (module docstring).

    ``start()`` inside the engine's event loop, ``stop()`` at the end (one last write, bounded by the
    connection timeouts). Never raises into the engine.
    """

    def __init__(
        self,
        engine: MirroredEngine,
        redis_url: str,
        prefix: str,
        node: str,
        interval_s: float = 0.1,
        *,
        refresh_s: float = 1.0,
    ) -> None:
        if not 0.001 <= interval_s <= 60:
            raise ValueError(f"mirror interval_s must be in [0.001, 60], got {interval_s}")
        if not interval_s <= refresh_s <= 3600:
            raise ValueError(f"mirror refresh_s must be in [interval_s, 3600], got {refresh_s}")
        self.engine = engine
        self.node = node
        self.keys: MirrorKeys = mirror_keys(prefix, node)
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self._url = redis_url
        self._client: Redis = connect(redis_url)
        self._dirty = True
        self._written: dict[str, dict[str, bytes]] | None = None
        self._last_render = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._down = False
        self._broken: str | None = None
        self.seq = 0
        """The seq of the last write (0 before the first)."""
        self.writes = 0
        """Successful writes."""
        self.failures = 0
        """Writes that failed (Redis unreachable or refusing)."""

    # -- bus side (the engine's thread: constant time, never raises) ---------------------------

    def _on_event(self, _: object) -> None:
        self._dirty = True

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the bus and start writing (the first write happens at once, in the task)."""
        if self._task is not None:
            raise RuntimeError(f"mirror of {self.node} already started")
        bus = self.engine.bus
        bus.subscribe(topics.ORDER_EVENTS, self._on_event)
        bus.subscribe(topics.ACCOUNT_EVENTS, self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"state-mirror-{self.node}")

    async def stop(self) -> None:
        """Stop listening, write the final state (best effort) and close the connection."""
        bus = self.engine.bus
        bus.unsubscribe(topics.ORDER_EVENTS, self._on_event)
        bus.unsubscribe(topics.ACCOUNT_EVENTS, self._on_event)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.flush(force=True)
        await self._client.aclose()

    async def flush(self, *, force: bool = False) -> bool:
        """Write the state now if it changed (always with ``force``); ``False`` if Redis failed."""
        async with self._lock:  # one write at a time: ``_written`` must follow the order of the writes
            return await self._flush(force)

    async def _flush(self, force: bool) -> bool:
        self._last_render = time.monotonic()
        dirty, self._dirty = self._dirty, False
        try:
            state = render_state(self.engine.portfolio, self.engine.open_orders())
            updated_ns = self.engine.clock.now_ns()
        except Exception as exc:  # a rendering bug must not stop the node; said once per kind of error
            self._dirty = True
            self._report_broken(exc)
            return False
        if not (dirty or force) and state == self._written:
            return True
        try:
            await self._write(state, updated_ns)
        except REDIS_ERRORS as exc:
            self._dirty = True
            self._written = None  # whatever the failed MULTI left: rewrite everything next time
            self.failures += 1
            if not self._down:
                self._down = True
                log.warning(
                    "state mirror: Redis unreachable; trading goes on",
                    url=safe_url(self._url),
                    error=repr(exc)[:200],
                )
            return False
        if self._down:
            self._down = False
            log.info("state mirror: Redis answers again; state rewritten", node=self.node)
        return True

    # -- internals ----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.interval_s
        while True:
            due = self._dirty or time.monotonic() - self._last_render >= self.refresh_s
            ok = await self.flush() if due else True
            backoff = self.interval_s if ok else min(max(backoff * 2, self.interval_s), _MAX_BACKOFF_S)
            await asyncio.sleep(backoff)

    async def _write(self, state: dict[str, dict[str, bytes]], updated_ns: int) -> None:
        keys = self.keys
        hashes = {"positions": keys.positions, "orders": keys.orders, "balances": keys.balances}
        pipe = self._client.pipeline(transaction=True)
        last = self._written
        if last is None:
            pipe.delete(keys.positions, keys.orders, keys.balances)
        for kind in _KINDS:
            now, before = state[kind], ({} if last is None else last[kind])
            changed = {field: value for field, value in now.items() if before.get(field) != value}
            removed = [field for field in before if field not in now]
            if changed:
                pipe.hset(hashes[kind], mapping=changed)  # type: ignore[arg-type]
            if removed:
                pipe.hdel(hashes[kind], *removed)
        pipe.hincrby(keys.meta, "seq", 1)
        pipe.hset(keys.meta, mapping={"updated_ns": updated_ns, "written_unix_ns": time.time_ns()})
        replies = await pipe.execute()
        self._written = state
        self.seq = int(replies[-2])
        self.writes += 1

    def _report_broken(self, exc: Exception) -> None:
        kind = type(exc).__name__
        if self._broken != kind:
            self._broken = kind
            log.error("state mirror: state not rendered; trading goes on", node=self.node, error=repr(exc)[:300])


class MirrorReader:
    """Reads node mirrors under one prefix (one connection, reused)."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.prefix = prefix
        self._client: Redis = connect(redis_url)

    async def read(self, node: str) -> MirrorView:
        """``node``'s mirror, read in one transaction (:class:`MirrorNotFound` if there is none)."""
        keys = mirror_keys(self.prefix, node)
        pipe = self._client.pipeline(transaction=True)
        for key in keys.all():
            pipe.hgetall(key)
        positions, orders, balances, meta = await pipe.execute()
        if not meta:
            raise MirrorNotFound(f"no mirror of node {node!r} under prefix {self.prefix!r}")
        return MirrorView(
            node=node,
            seq=_int_field(meta, b"seq", keys.meta),
            updated_ns=_int_field(meta, b"updated_ns", keys.meta),
            written_unix_ns=_int_field(meta, b"written_unix_ns", keys.meta),
            positions=_decode_hash(positions, PositionView, keys.positions),
            orders=_decode_hash(orders, OrderView, keys.orders),
            balances=_decode_hash(balances, BalanceView, keys.balances),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


async def read_mirror(redis_url: str, prefix: str, node: str) -> MirrorView:
    """One read of ``node``'s mirror (a :class:`MirrorReader` for repeated reads)."""
    reader = MirrorReader(redis_url, prefix)
    try:
        return await reader.read(node)
    finally:
        await reader.aclose()


def _int_field(meta: Mapping[bytes, bytes], field: bytes, key: str) -> int:
    raw = meta.get(field)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        raise MirrorCorrupt(f"{key} field {field.decode()}: not an integer: {raw!r:.60}") from None


def _decode_hash(raw: Mapping[bytes, bytes], kind: type[Any], key: str) -> dict[str, Any]:
    decoder = msgspec.json.Decoder(kind)
    out: dict[str, Any] = {}
    for field, value in raw.items():
        name = field.decode(errors="replace")
        try:
            out[name] = decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MirrorCorrupt(f"{key} field {name!r}: {exc}") from None
    return dict(sorted(out.items()))
