"""A failover lease in Redis with a fencing token: which node of a primary/secondary pair may trade.

One Redis key holds the lease (``<prefix>:{<name>}:holder`` = ``"<node_id>/<token>"`` with a TTL),
a second one the fencing counter (``<prefix>:{<name>}:fence``). Both share a hash tag, so the Lua
scripts below touch one slot (Redis Cluster accepts them).

* **Acquire** (one script): if the holder key is free, ``INCR`` the counter and ``SET`` the holder
  with ``PX ttl``; the new counter value is this holding's *fencing token*. Tokens only grow, so a
  venue (or anything else the primary writes to) can refuse whatever carries a lower token than the
  highest it has seen: a primary that lost the lease without noticing is fenced off.
* **Renew** (compare-and-``PEXPIRE``): extends the TTL only while the key still holds this node's
  value (node id *and* token, so an older holding of the same node never extends a newer one).
* **Release** (compare-and-``DEL``): deletes only our own value.

**Self-fencing.** Redis' word is not enough: a primary cut off from Redis cannot learn that its key
expired. So the holder keeps a local deadline on the monotonic clock,
``t_sent + ttl - safety_margin``, where ``t_sent`` is taken *before* the acquire or renew request
left: Redis started its TTL later than that, so the local deadline always falls ``safety_margin``
before the earliest instant another node can acquire. :meth:`FailoverLease.valid_now` compares the
clock with that deadline (no I/O, cheap enough for every order), and stays false after the deadline
passed even if a late renewal succeeds; a new holding needs a new acquire (and gets a new token).
The margin covers clock-rate differences between this host and Redis and the time an order needs to
reach the venue after the check. A process stopped (``SIGSTOP``, swapped out) keeps its monotonic
clock running, so it wakes up already invalid.

Assumptions: Redis' own clock does not jump forward (keys would expire early) and the fence counter
is never lost (run Redis with AOF or replication; a counter reset would make tokens go backwards,
and fenced venues would refuse the new primary). Key names hold the lease name and node ids only:
never secrets. The Redis URL (which may carry a password) is never logged; only host, port and db.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tradeloop.core.logging import get_logger, register_secret

__all__ = ["MAX_TOKEN", "FailoverLease", "LeaseError", "describe_redis_url", "lease_keys"]

log = get_logger("tradeloop.lease")

MAX_TOKEN: Final = 36**6 - 1
"""The largest token a client order id can carry (six base-36 digits)."""

_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_ACQUIRE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. token, 'PX', ARGV[2])
return token
"""
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseError(RuntimeError):
    """The lease cannot be used as configured (bad arguments, exhausted token space)."""


def lease_keys(prefix: str, name: str) -> tuple[str, str]:
    """``(holder key, fence counter key)`` of lease ``name`` under ``prefix``."""
    return f"{prefix}:{{{name}}}:holder", f"{prefix}:{{{name}}}:fence"


def describe_redis_url(url: str) -> str:
    """``redis://host:port/db`` without user name or password (for logs and messages)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 6379
    return f"{parts.scheme or 'redis'}://{host}:{port}{parts.path or '/0'}"


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise LeaseError(f"{what} must be 1-64 characters of letters, digits, '_', '.', '-'; got {value!r}")
    return value


class FailoverLease:
    """One node's handle on the lease ``name`` in the Redis at ``redis_url``.

    :param node_id: this node's name (letters, digits, ``_.-``); two nodes of a pair must differ.
    :param ttl_ms: the TTL Redis gives the holder key; the other node takes over at most this long
        after the holder's last successful renewal.
    :param renew_every_ms: pause between renewals; must be below ``ttl_ms - safety_margin_ms``.
    :param safety_margin_ms: how long before the Redis expiry the holder considers the lease lost
        (default a quarter of the TTL).
    :param poll_ms: pause between acquire attempts while another node holds the lease.
    :param key_prefix: namespace of the keys (tests use a unique one).
    :param clock_ns: the monotonic clock (tests may pass their own).
    """

    def __init__(
        self,
        redis_url: str,
        name: str,
        node_id: str,
        *,
        ttl_ms: int = 2000,
        renew_every_ms: int = 500,
        safety_margin_ms: int | None = None,
        poll_ms: int = 100,
        key_prefix: str = "tradeloop:lease",
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.name = _check_name(name, "lease name")
        self.node_id = _check_name(node_id, "node id")
        margin = ttl_ms // 4 if safety_margin_ms is None else safety_margin_ms
        if ttl_ms <= 0 or not 0 < margin < ttl_ms:
            raise LeaseError(
                f"lease {name}: need ttl_ms > 0 and 0 < safety_margin_ms < ttl_ms (got {ttl_ms}, {margin})"
            )
        if not 0 < renew_every_ms < ttl_ms - margin:
            raise LeaseError(
                f"lease {name}: renew_every_ms must be positive and below ttl_ms - safety_margin_ms "
                f"({ttl_ms - margin}), got {renew_every_ms}"
            )
        if poll_ms <= 0:
            raise LeaseError(f"lease {name}: poll_ms must be positive, got {poll_ms}")
        parts = urlsplit(redis_url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise LeaseError(f"lease {name}: not a Redis URL: {describe_redis_url(redis_url)}")
        if parts.password:
            register_secret(parts.password)
        self.ttl_ms = ttl_ms
        self.renew_every_ms = renew_every_ms
        self.safety_margin_ms = margin
        self.poll_ms = poll_ms
        self.where = describe_redis_url(redis_url)
        """Where the lease lives, without credentials."""
        self._holder_key, self._fence_key = lease_keys(key_prefix, name)
        self._clock = clock_ns
        # No hidden retries: every call is bounded by the caller's own deadline and retried by the caller.
        timeout = renew_every_ms / 1000
        self._redis = aioredis.Redis.from_url(
            redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._token: int | None = None
        self._value = ""
        self._held = False
        self._valid_until_ns = 0
        self.lost_reason = ""
        """Why the last holding ended without a release ("" while held or after a release)."""

    def __repr__(self) -> str:
        return f"FailoverLease({self.name!r}, node={self.node_id!r}, at={self.where}, token={self._token})"

    # -- state ----------------------------------------------------------------------------------

    @property
    def token(self) -> int | None:
        """The fencing token of the current (or last) holding; ``None`` before the first acquire."""
        return self._token

    @property
    def held(self) -> bool:
        """Acquired, and neither released nor found lost (it may still have lapsed: see :meth:`valid_now`)."""
        return self._held

    def valid_now(self) -> bool:
        """True while this node may act as the holder: held and before the local deadline."""
        return self._held and self._clock() < self._valid_until_ns

    def remaining_ms(self) -> float:
        """Milliseconds of local validity left (0 when not valid)."""
        if not self._held:
            return 0.0
        return max(self._valid_until_ns - self._clock(), 0) / 1e6

    # -- operations -----------------------------------------------------------------------------

    async def try_acquire(self) -> int | None:
        """One attempt: the new fencing token if the lease was free, else ``None``.

        Redis errors propagate (:class:`redis.exceptions.RedisError`, ``OSError``, ``TimeoutError``).
        """
        if self._held:
            if self.valid_now():
                raise LeaseError(f"lease {self.name}: already held by this node (token {self._token})")
            self._lose("local validity ended")
        sent = self._clock()
        token = int(await self._acquire(keys=[self._holder_key, self._fence_key], args=[self.node_id, self.ttl_ms]))
        if token == 0:
            return None
        if token > MAX_TOKEN:
            # Holding it with an unusable token would block the other node for nothing.
            await self._release(keys=[self._holder_key], args=[f"{self.node_id}/{token}"])
            raise LeaseError(f"lease {self.name}: fencing counter {self._fence_key} exceeds {MAX_TOKEN}")
        self._token = token
        self._value = f"{self.node_id}/{token}"
        self._held = True
        self.lost_reason = ""
        self._valid_until_ns = sent + (self.ttl_ms - self.safety_margin_ms) * 1_000_000
        log.info("failover lease acquired", lease=self.name, node=self.node_id, fencing_epoch=token, at=self.where)
        return token

    async def acquire_wait(self) -> int:
        """Try every ``poll_ms`` until the lease is ours; returns its fencing token.

        Redis being unreachable is logged (once per outage) and retried; cancel the call to give up.
        """
        failing = False
        while True:
            try:
                token = await asyncio.wait_for(self.try_acquire(), self.renew_every_ms / 1000)
            except (RedisError, OSError, TimeoutError) as exc:
                if not failing:
                    log.warning("failover lease: Redis unreachable, retrying", lease=self.name, error=_why(exc))
                failing = True
            else:
                if token is not None:
                    return token
                if failing:
                    log.info("failover lease: Redis reachable again", lease=self.name)
                failing = False
            await asyncio.sleep(self.poll_ms / 1000)

    async def renew(self) -> bool:
        """Extend the TTL if the lease is still ours and locally valid; ``False`` (and the holding is
        over) when it is not. Redis errors propagate and leave the holding as it was."""
        if not self._held:
            return False
        sent = self._clock()
        if sent >= self._valid_until_ns:
            self._lose("local validity ended before the renewal")
            return False
        extended = int(await self._renew(keys=[self._holder_key], args=[self._value, self.ttl_ms]))
        if not extended:
            self._lose("the lease key no longer holds this node's value (expired or taken over)")
            return False
        self._valid_until_ns = max(self._valid_until_ns, sent + (self.ttl_ms - self.safety_margin_ms) * 1_000_000)
        return True

    async def run_renewals(self, on_lost: Callable[[str], object]) -> str:
        """Renew every ``renew_every_ms`` while held; when the holding ends without a release, call
        ``on_lost(reason)`` once and return the reason (``""`` if released meanwhile).

        A renewal that fails (Redis unreachable, too slow) is retried until the local deadline; no
        request is allowed to run past it, so ``on_lost`` comes at the deadline at the latest.
        """
        while self._held:
            remaining_s = (self._valid_until_ns - self._clock()) / 1e9
            if remaining_s <= 0:
                self._lose("could not renew before the local validity ended")
                break
            try:
                if not await asyncio.wait_for(self.renew(), min(remaining_s, self.renew_every_ms / 1000)):
                    break
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning(
                    "failover lease: renewal failed", lease=self.name, error=_why(exc), left_ms=self.remaining_ms()
                )
                await asyncio.sleep(min(self.poll_ms / 1000, max(self.remaining_ms() / 1000, 0.0)))
                continue
            if not self._held:
                break
            # Wake at the deadline at the latest, so a renewal stuck in the event loop still ends the holding.
            await asyncio.sleep(min(self.renew_every_ms / 1000, max(self.remaining_ms() / 1000, 0.0)))
        reason = self.lost_reason
        if reason:
            on_lost(reason)
        return reason

    async def release(self) -> bool:
        """Give the lease up (only our own value is deleted); ``True`` if the key was ours and deleted.

        Locally the holding ends at once, whatever Redis answers; if Redis cannot be reached the key
        expires by its TTL.
        """
        if not self._held:
            return False
        self._held = False
        self.lost_reason = ""
        try:
            deleted = int(await asyncio.wait_for(self._release(keys=[self._holder_key], args=[self._value]), 1.0))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("failover lease: release failed; it will expire", lease=self.name, error=_why(exc))
            return False
        log.info("failover lease released", lease=self.name, node=self.node_id, fencing_epoch=self._token)
        return deleted == 1

    async def holder(self) -> tuple[str, int] | None:
        """Who holds the lease now according to Redis: ``(node_id, token)``, or ``None`` if free."""
        value = await self._redis.get(self._holder_key)
        if value is None:
            return None
        node, _, token = str(value).rpartition("/")
        return node, int(token)

    async def close(self) -> None:
        """Close the Redis connections (does not release the lease)."""
        await self._redis.aclose()

    # -- internals ------------------------------------------------------------------------------

    def _lose(self, reason: str) -> None:
        if self._held:
            self._held = False
            self.lost_reason = reason
            log.error("failover lease lost", lease=self.name, node=self.node_id, fencing_epoch=self._token, why=reason)


def _why(exc: BaseException) -> str:
    """An error's type and message; Redis errors never include the URL's password."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
