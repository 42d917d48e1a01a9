"""The Redis side of shared rate budgets: sliding-log windows kept and changed only by Lua scripts.

A window is a sorted set of *grants*: capacity one process reserved, member ``<grant id>:<weight>``,
score = the last instant (Redis ``TIME``, microseconds) the weight may be spent. A grant counts against
the window from the moment it is made until ``score + window``; a reservation is admitted only if the
weight still counted plus its own stays within the limit. Since a grant counts over the whole interval in
which its weight may be spent, the weight actually sent in any window of the venue's length never
exceeds the limit, whichever processes sent it (the sum over all processes is what the log bounds).
Why: take any window ``[x, x + W)`` and, among the grants spent in it, the one made last, ``g``; every
other such grant was made before ``g`` and ends at or after ``x`` > ``made(g) - W``, so it was still
counted when ``g`` was admitted, and all of them together fit in the limit. Settling shrinks a grant
only to spends that already happened, which keeps this true. ``W`` is the venue's window plus a margin
for the trip from admission to the venue.

Scripts (each atomic on the server, all on the server's clock, so processes never compare clocks):

* ``reserve``: expire, check every window of a request (blocked? enough room for ``need``?), then grant
  each window ``min(want, room)`` (at least ``need``) or nothing at all, with the wait until it would fit
  (or until a grant still being spent ends, when its unspent part may come back);
* ``settle``: shrink a grant to the weight actually spent and end it now (returns unspent capacity early);
* ``sync``: adopt a venue's usage count when it is higher than the window's;
* ``penalize``: block windows until ``now + duration`` (a 429's ``Retry-After``) and announce it on the
  penalty channel.

The hash ``<window>:m`` keeps the running sum ``used`` (so a day-long window never needs a full scan)
and ``blocked``. Keys expire on their own once nothing in them counts any more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
from redis.asyncio import Redis

from tradeloop.coordination.redis_keys import REDIS_ERRORS, WindowKeys
from tradeloop.core.logging import get_logger

__all__ = ["BudgetStore", "GrantSettlement", "PenaltyNotice", "ReserveResult", "WindowAsk", "decode_notice"]

log = get_logger("tradeloop.coordination.budget_store")

_COMMON: Final = r"""
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function int(x)
  return string.format('%d', x)
end
local function cost_of(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end
-- Drop grants that no longer count (score <= now - window); the weight still counted.
local function expire(log, meta, now, window)
  local used = tonumber(redis.call('HGET', meta, 'used') or '-1')
  if used < 0 then
    used = 0
    for _, m in ipairs(redis.call('ZRANGE', log, 0, -1)) do used = used + cost_of(m) end
  end
  local horizon = int(now - window)
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', horizon)
  if #old > 0 then
    for _, m in ipairs(old) do used = used - cost_of(m) end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', horizon)
  end
  if used < 0 or redis.call('ZCARD', log) == 0 then used = 0 end
  redis.call('HSET', meta, 'used', int(used))
  return used
end
-- Both keys live until the last grant stops counting and any block ends (plus a second).
local function touch(log, meta, now, window)
  local last = now
  local top = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
  if #top == 2 then last = math.max(last, tonumber(top[2])) end
  local blocked = tonumber(redis.call('HGET', meta, 'blocked') or '0')
  local ttl_ms = math.floor((math.max(last + window, blocked) - now) / 1000) + 1000
  redis.call('PEXPIRE', log, int(ttl_ms))
  redis.call('PEXPIRE', meta, int(ttl_ms))
end
-- Microseconds until `excess` weight has left the window (walks at most 1000 grants: a lower bound then),
-- or until the first grant still being spent reaches its deadline, when its owner gives back what it
-- did not spend (1 ms later, for the owner's round trip): ask again then.
local function wait_for(log, now, window, excess)
  local entries = redis.call('ZRANGE', log, 0, 999, 'WITHSCORES')
  local last = now
  for j = 1, #entries, 2 do
    excess = excess - cost_of(entries[j])
    last = tonumber(entries[j + 1])
    if excess <= 0 then break end
  end
  local wait = last + window - now
  local live = redis.call('ZRANGE', log, '(' .. int(now), '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
  if #live == 2 then wait = math.min(wait, tonumber(live[2]) - now + 1000) end
  return math.max(1, wait)
end
"""

# KEYS: log1, meta1, log2, meta2, ...  ARGV: validity_us, grant_id, then limit, window_us, need, want per window.
# Returns {1, now, 0, grant1, grant2, ...} or {0, now, wait_us}.
_RESERVE: Final = (
    _COMMON
    + r"""
local now = now_us()
local validity = tonumber(ARGV[1])
local gid = ARGV[2]
local n = #KEYS / 2
local wait = 0
local room = {}
for i = 1, n do
  local log, meta = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 2 + (i - 1) * 4
  local limit, window, need = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local used = expire(log, meta, now, window)
  local blocked = tonumber(redis.call('HGET', meta, 'blocked') or '0')
  if blocked > now then wait = math.max(wait, blocked - now) end
  if used + need > limit then wait = math.max(wait, wait_for(log, now, window, used + need - limit)) end
  room[i] = limit - used
end
if wait > 0 then return {0, now, wait} end
local out = {1, now, 0}
for i = 1, n do
  local log, meta = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 2 + (i - 1) * 4
  local window, need, want = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local g = math.max(need, math.min(want, room[i]))
  if g > 0 then
    redis.call('ZADD', log, int(now + validity), gid .. ':' .. int(g))
    redis.call('HINCRBY', meta, 'used', int(g))
  end
  touch(log, meta, now, window)
  out[#out + 1] = g
end
return out
"""
)

# KEYS: log, meta per settlement.  ARGV: window_us, member, spent per settlement.  Returns the weight freed.
_SETTLE: Final = (
    _COMMON
    + r"""
local now = now_us()
local freed = 0
for i = 1, #KEYS / 2 do
  local log, meta = KEYS[2 * i - 1], KEYS[2 * i]
  local window, member, spent = tonumber(ARGV[3 * i - 2]), ARGV[3 * i - 1], tonumber(ARGV[3 * i])
  local used = expire(log, meta, now, window)
  local score = redis.call('ZSCORE', log, member)
  if score then
    local granted = cost_of(member)
    spent = math.min(spent, granted)
    redis.call('ZREM', log, member)
    used = used - granted
    if spent > 0 then
      local gid = string.match(member, '^(.*):%d+$')
      redis.call('ZADD', log, int(math.min(tonumber(score), now)), gid .. ':' .. int(spent))
      used = used + spent
    end
    freed = freed + granted - spent
    redis.call('HSET', meta, 'used', int(used))
    touch(log, meta, now, window)
  end
end
return freed
"""
)

# KEYS: log, meta.  ARGV: window_us, reported used, member id.  Returns the window's weight after.
_SYNC: Final = (
    _COMMON
    + r"""
local now = now_us()
local window, reported = tonumber(ARGV[1]), tonumber(ARGV[2])
local used = expire(KEYS[1], KEYS[2], now, window)
if reported > used then
  redis.call('ZADD', KEYS[1], int(now), ARGV[3] .. ':' .. int(reported - used))
  used = reported
  redis.call('HSET', KEYS[2], 'used', int(used))
end
touch(KEYS[1], KEYS[2], now, window)
return used
"""
)

# KEYS: log, meta per window.  ARGV: duration_us, channel, origin, then window_us per window.
# Returns the blocked-until instant (µs).
_PENALIZE: Final = (
    _COMMON
    + r"""
local now = now_us()
local duration = tonumber(ARGV[1])
local until_ = now + duration
local logs = {}
for i = 1, #KEYS / 2 do
  local log, meta = KEYS[2 * i - 1], KEYS[2 * i]
  local window = tonumber(ARGV[3 + i])
  expire(log, meta, now, window)
  local blocked = tonumber(redis.call('HGET', meta, 'blocked') or '0')
  if until_ > blocked then redis.call('HSET', meta, 'blocked', int(until_)) end
  touch(log, meta, now, window)
  logs[#logs + 1] = log
end
redis.call('PUBLISH', ARGV[2], cjson.encode({keys = logs, for_us = duration, origin = ARGV[3]}))
return until_
"""
)

# KEYS: log, meta.  ARGV: window_us.  Returns the weight counted now.
_USED: Final = (
    _COMMON
    + r"""
local now = now_us()
local used = expire(KEYS[1], KEYS[2], now, tonumber(ARGV[1]))
touch(KEYS[1], KEYS[2], now, tonumber(ARGV[1]))
return used
"""
)


class WindowAsk(msgspec.Struct, frozen=True):
    """One window of a reservation: ``need`` must be granted for anything to be, up to ``want`` may be."""

    keys: WindowKeys
    limit: int
    window_us: int
    need: int
    want: int


class ReserveResult(msgspec.Struct, frozen=True):
    """A reservation's answer: ``granted`` weights in the order asked, or the wait until it could be."""

    ok: bool
    server_us: int
    wait_us: int
    granted: tuple[int, ...]


class GrantSettlement(msgspec.Struct, frozen=True):
    """Shrink one window's part of a grant to what was spent (``member`` as :meth:`BudgetStore.reserve` made it)."""

    keys: WindowKeys
    window_us: int
    member: str
    spent: int


class PenaltyNotice(msgspec.Struct, frozen=True):
    """What the penalty channel carries."""

    keys: list[str]
    for_us: int
    origin: str


class BudgetStore:
    """The shared windows on one Redis (see the module docstring); each call is one atomic script."""

    def __init__(self, client: Redis, channel: str) -> None:
        self.client = client
        self.channel = channel
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._sync = client.register_script(_SYNC)
        self._penalize = client.register_script(_PENALIZE)
        self._used = client.register_script(_USED)

    async def reserve(self, grant_id: str, validity_us: int, asks: Sequence[WindowAsk]) -> ReserveResult:
        """Grant every window of ``asks`` at once (each its ``need`` at least), valid for ``validity_us``."""
        if not asks:
            raise ValueError("a reservation needs at least one window")
        keys: list[str] = []
        args: list[Any] = [validity_us, grant_id]
        for ask in asks:
            if not 0 <= ask.need <= ask.limit:
                raise ValueError(f"need {ask.need} outside 0..{ask.limit} for {ask.keys.log}")
            keys += (ask.keys.log, ask.keys.meta)
            args += (ask.limit, ask.window_us, ask.need, max(ask.need, ask.want))
        reply = await self._reserve(keys=keys, args=args)
        ok, server_us, wait_us = int(reply[0]), int(reply[1]), int(reply[2])
        return ReserveResult(ok=ok == 1, server_us=server_us, wait_us=wait_us, granted=tuple(int(g) for g in reply[3:]))

    async def settle(self, settlements: Sequence[GrantSettlement]) -> int:
        """Shrink grants to their spent weight, ending now; returns the weight given back."""
        if not settlements:
            return 0
        keys: list[str] = []
        args: list[Any] = []
        for s in settlements:
            keys += (s.keys.log, s.keys.meta)
            args += (s.window_us, s.member, s.spent)
        return int(await self._settle(keys=keys, args=args))

    async def sync_used(self, keys: WindowKeys, window_us: int, used: int, member_id: str) -> int:
        """Count the window as at least ``used`` (a venue's usage header); returns its weight after."""
        return int(await self._sync(keys=[keys.log, keys.meta], args=[window_us, used, member_id]))

    async def penalize(self, windows: Sequence[tuple[WindowKeys, int]], duration_us: int, origin: str) -> int:
        """Block ``windows`` (keys, window µs) for ``duration_us`` and announce it; returns the end (µs)."""
        keys: list[str] = []
        args: list[Any] = [duration_us, self.channel, origin]
        for wk, window_us in windows:
            keys += (wk.log, wk.meta)
            args.append(window_us)
        return int(await self._penalize(keys=keys, args=args))

    async def used(self, keys: WindowKeys, window_us: int) -> int:
        """The weight the window counts now (every process's grants)."""
        return int(await self._used(keys=[keys.log, keys.meta], args=[window_us]))

    async def listen(
        self, on_notice: Callable[[PenaltyNotice], None], listening: asyncio.Event, retry_max_s: float = 1.0
    ) -> None:
        """Hand every penalty announced on the channel to ``on_notice``, forever (run it as a task);
        ``listening`` is set once subscribed. A lost connection is logged once and subscribed again."""
        backoff = 0.05
        down = False
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                listening.set()
                if down:
                    down = False
                    log.info("shared rate budget: penalty channel listening again")
                backoff = 0.05
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    notice = decode_notice(message["data"])
                    if notice is not None:
                        on_notice(notice)
            except Exception as exc:  # keep listening whatever happened
                if not down:
                    down = True
                    log.warning("shared rate budget: penalty channel lost", error=repr(exc)[:200])
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, retry_max_s)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


_NOTICE = msgspec.json.Decoder(PenaltyNotice)


def decode_notice(payload: bytes | str) -> PenaltyNotice | None:
    """A penalty-channel message, or ``None`` if it is not one (foreign publishers are ignored)."""
    try:
        return _NOTICE.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
