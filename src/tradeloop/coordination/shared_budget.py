"""Rate budgets shared by several processes through Redis: one venue limit, never exceeded together.

A :class:`SharedRateBudget` is a :class:`~tradeloop.venues.transport.ratelimit.RateBudget` (venue
clients take it where they take their own), whose windows are also counted in Redis
(:mod:`tradeloop.coordination.budget_store`) for every process trading the same account (ACCOUNT
scope: venue + the credentials' fingerprint) or from the same IP (IP scope: venue + ``ip_scope``).

The order path cannot wait for Redis: :meth:`SharedRateBudget.try_acquire_ns` is synchronous and is
called inside the strategy's ``submit``. So each process *reserves* small amounts of capacity ahead
of use, from a background task, and the synchronous call spends from what it holds:

* a reservation (a *grant*) counts against the shared window from the moment Redis makes it, for the
  whole time it may be spent (``validity_s``) plus the window, so the weight all processes send in any
  window stays within the venue's limit (the proof is in ``budget_store``);
* a grant may be spent only until its deadline, measured from *before* the request left (so it is
  never later than the server-side deadline); then its unspent part goes back, and a grant spent in
  full is ended at once, so capacity does not sit idle in a process that stopped trading;
* with nothing in hand the call answers a short wait (a reservation is on its way) or the wait Redis
  gave; the callers already retry (WebSocket order entry holds the op and sends it from a timer,
  REST's ``acquire`` sleeps);
* grants start at a quarter of ``max_share`` of a window's limit and double while they are spent in
  full, halve when they expire unspent;
* :meth:`penalize` (a 429's ``Retry-After``) blocks the local windows at once and the shared ones in
  Redis, and is announced on a channel the :class:`SharedBudgetFactory` listens to, so every process on
  that account stops for the same time;
* :meth:`sync_used` (a venue usage header) raises the shared window's count, never lowers it.

The local sliding windows of the base class are kept too (this process alone never exceeds a limit).
When Redis cannot be reached the budget fails closed: grants already held are spent until their
deadline, then every call answers a wait (callers give up with ``RATE_LIMITED`` after their
patience), and one warning is logged until Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import msgspec
from redis.asyncio import Redis

from tradeloop.coordination.budget_store import BudgetStore, GrantSettlement, PenaltyNotice, WindowAsk
from tradeloop.coordination.redis_keys import (
    REDIS_ERRORS,
    WindowKeys,
    check_name,
    connect,
    penalty_channel,
    safe_url,
    window_keys,
)
from tradeloop.core.logging import get_logger
from tradeloop.security.credentials import Credentials
from tradeloop.security.fingerprint import FINGERPRINT_HEX_DIGITS
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimitScope, RateLimitSpec

__all__ = [
    "ReservationPolicy",
    "SharedBudgetFactory",
    "SharedBudgetUnavailable",
    "SharedRateBudget",
    "rate_limit_specs",
]

log = get_logger("tradeloop.coordination.shared_budget")

_NS: Final = 1_000_000_000


class SharedBudgetUnavailable(RuntimeError):
    """Redis did not answer when the shared budgets were started."""


class ReservationPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How much capacity a process reserves, and for how long."""

    validity_s: float = 0.25
    """How long reserved capacity may be spent; the unspent part goes back after it."""
    max_share: float = 0.1
    """The largest single grant as a share of a window's limit (at least 1)."""
    margin_s: float = 0.05
    """Added to every shared window: covers the time from admission here to arrival at the venue."""
    poll_s: float = 0.001
    """The wait answered while a reservation is on its way."""
    retry_max_s: float = 1.0
    """The longest pause between attempts while Redis cannot be reached."""

    def __post_init__(self) -> None:
        if not 0 < self.validity_s <= 60:
            raise ValueError(f"validity_s must be in (0, 60], got {self.validity_s}")
        if not 0 < self.max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], got {self.max_share}")
        if not 0 <= self.margin_s <= 10:
            raise ValueError(f"margin_s must be in [0, 10], got {self.margin_s}")
        if not 0 < self.poll_s <= 1:
            raise ValueError(f"poll_s must be in (0, 1], got {self.poll_s}")
        if not self.poll_s <= self.retry_max_s <= 60:
            raise ValueError(f"retry_max_s must be in [poll_s, 60], got {self.retry_max_s}")


class _Grant:
    """Capacity held by this process: ``left`` per window, spendable while ``now < deadline_ns``."""

    __slots__ = ("deadline_ns", "gid", "granted", "left")

    def __init__(self, gid: str, deadline_ns: int, granted: dict[str, int]) -> None:
        self.gid = gid
        self.deadline_ns = deadline_ns
        self.granted = granted
        self.left = dict(granted)


class _Demand:
    """Unmet need of one set of windows (the windows one kind of request is charged to)."""

    __slots__ = ("denied_until_ns", "need")

    def __init__(self) -> None:
        self.need: dict[str, int] = {}
        self.denied_until_ns = 0


class SharedRateBudget(RateBudget):
    """A rate budget whose windows are shared with other processes through Redis (module docstring).

    Needs a running event loop: its background task starts on first use (or :meth:`start`).
    """

    def __init__(
        self,
        venue: str,
        account: str,
        specs: Sequence[RateLimitSpec],
        store: BudgetStore,
        keys: Mapping[str, WindowKeys],
        policy: ReservationPolicy | None = None,
        *,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        super().__init__(venue, account, specs, now_ns)
        missing = [s.name for s in specs if s.name not in keys]
        if missing:
            raise ValueError(f"{venue}: no Redis keys for windows {missing}")
        self._store = store
        self._keys = {s.name: keys[s.name] for s in specs}
        self.policy = policy or ReservationPolicy()
        self._limit = {s.name: s.limit for s in specs}
        self._window_us = {s.name: max(1, round((s.window_s + self.policy.margin_s) * 1_000_000)) for s in specs}
        self._max_chunk = {s.name: max(1, int(s.limit * self.policy.max_share)) for s in specs}
        self._chunk = {name: max(1, m // 4) for name, m in self._max_chunk.items()}
        self._avail = {s.name: 0 for s in specs}
        self._validity_ns = round(self.policy.validity_s * _NS)
        self._poll_ns = max(1, round(self.policy.poll_s * _NS))
        self._grants: deque[_Grant] = deque()
        self._demand: dict[tuple[str, ...], _Demand] = {}
        self._prefetch: set[str] = set()
        self._last_spend_ns: dict[str, int] = {}
        self._settle_q: list[GrantSettlement] = []
        self._syncs: dict[str, int] = {}
        self._penalty_s = 0.0
        self._instance = uuid.uuid4().hex[:12]
        self._seq = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._down = False
        self._retry_at_ns = 0
        self.reservations = 0
        """Grants received from Redis."""
        self.refusals = 0
        """Reservations Redis refused (window full or blocked)."""
        self.returned = 0
        """Weight given back unspent."""
        self.remote_penalties = 0
        """Penalties announced by other processes and applied here."""
        self.outages = 0
        """Times Redis stopped answering."""

    # -- the RateBudget API (synchronous, never waits for Redis) --------------------------------

    def try_acquire_ns(self, costs: Mapping[str, int]) -> int:
        """Spend ``costs`` from the capacity reserved here and return 0, or return the nanoseconds to
        wait before asking again (nothing spent); a shortfall wakes the reservation task."""
        if self._closed:
            raise RuntimeError(f"{self.venue}/{self.account}: shared rate budget is closed")
        checked = self._checked(costs)
        now = self._now_ns()
        wait = 0
        for window, cost in checked:
            window.expire(now)
            wait = max(wait, window.wait_ns(now, cost))
        if wait > 0:
            self.waits += 1
            return wait
        if self._grants and self._grants[0].deadline_ns <= now:
            self._drop_expired(now)
        avail = self._avail
        short: tuple[str, ...] = ()
        for window, cost in checked:
            if cost and avail[window.spec.name] < cost:
                short = tuple(w.spec.name for w, c in checked if c)
                break
        if short:
            self.waits += 1
            return self._want(short, costs, now)
        low = False
        for window, cost in checked:
            if cost:
                name = window.spec.name
                self._spend(name, cost)
                self._last_spend_ns[name] = now
                if avail[name] < max(1, self._chunk[name] // 2):
                    self._prefetch.add(name)
                    low = True
            window.record(now, cost)
        self.admitted += 1
        if low:
            self._kick()
        return 0

    def sync_used(self, name: str, used: int) -> None:
        """Count the shared window ``name`` as at least ``used`` (the venue's usage header), soon."""
        self._window(name)
        if used > self._syncs.get(name, -1):
            self._syncs[name] = used
            self._kick()

    def penalize(self, retry_after_s: float) -> None:
        """Block every window here now, and in every process sharing them as soon as Redis hears of it."""
        super().penalize(retry_after_s)
        self._penalty_s = max(self._penalty_s, retry_after_s)
        self._kick()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the reservation task now (it also starts on first use)."""
        self._ensure_task()

    async def aclose(self, timeout_s: float = 1.0) -> None:
        """Stop reserving and give back what is held unspent (best effort within ``timeout_s``)."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._grants:
            self._retire(self._grants.popleft(), expired=False)
        if self._settle_q:
            try:
                async with asyncio.timeout(timeout_s):
                    self.returned += await self._store.settle(self._settle_q)
                self._settle_q = []
            except (*REDIS_ERRORS, TimeoutError) as exc:
                log.warning("shared rate budget: held capacity not given back", venue=self.venue, error=repr(exc))

    async def shared_used(self, name: str) -> int:
        """The weight window ``name`` counts now over every process (reserved capacity included)."""
        self._window(name)
        return await self._store.used(self._keys[name], self._window_us[name])

    def held(self, name: str) -> int:
        """Capacity of window ``name`` reserved here and not spent yet."""
        self._window(name)
        return self._avail[name]

    def on_penalty_notice(self, notice: PenaltyNotice) -> None:
        """Apply a penalty another process announced (called by the factory's listener)."""
        if notice.origin == self._instance or notice.for_us <= 0:
            return
        hit = [name for name, keys in self._keys.items() if keys.log in notice.keys]
        if not hit:
            return
        until = self._now_ns() + notice.for_us * 1000
        for name in hit:
            window = self._window(name)
            window.blocked_until_ns = max(window.blocked_until_ns, until)
        self.remote_penalties += 1

    # -- the synchronous side ------------------------------------------------------------------------

    def _want(self, names: tuple[str, ...], costs: Mapping[str, int], now: int) -> int:
        demand = self._demand.get(names)
        if demand is None:
            demand = self._demand[names] = _Demand()
        for name in names:
            demand.need[name] = max(demand.need.get(name, 0), costs[name])
        self._kick()
        if self._down:
            return max(self._poll_ns, self._retry_at_ns - now)
        return max(self._poll_ns, demand.denied_until_ns - now)

    def _spend(self, name: str, cost: int) -> None:
        """Take ``cost`` of window ``name`` from the grants, oldest (first to expire) first."""
        self._avail[name] -= cost
        drained: list[_Grant] = []
        for grant in self._grants:
            left = grant.left.get(name, 0)
            if left:
                take = min(left, cost)
                grant.left[name] = left - take
                cost -= take
                if not any(grant.left.values()):
                    drained.append(grant)
                if cost == 0:
                    break
        for grant in drained:  # spent in full: ended now, so its weight stops counting soonest
            self._grants.remove(grant)
            self._retire(grant, expired=False)

    def _drop_expired(self, now: int) -> None:
        grants = self._grants
        while grants and grants[0].deadline_ns <= now:
            self._retire(grants.popleft(), expired=True)
        self._kick()

    def _retire(self, grant: _Grant, *, expired: bool) -> None:
        """Stop spending ``grant``: its unspent part leaves ``_avail``; Redis shrinks it to what was spent."""
        for name, granted in grant.granted.items():
            left = grant.left[name]
            self._avail[name] -= left
            if expired and left:
                self._chunk[name] = max(1, self._chunk[name] // 2)
            elif not left and not expired:
                self._chunk[name] = min(self._max_chunk[name], self._chunk[name] * 2)
            self._settle_q.append(
                GrantSettlement(self._keys[name], self._window_us[name], f"{grant.gid}:{granted}", granted - left)
            )

    def _kick(self) -> None:
        if self._closed:
            return
        self._ensure_task()
        assert self._wake is not None
        self._wake.set()

    def _ensure_task(self) -> None:
        if self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    f"{self.venue}/{self.account}: a shared rate budget is used inside a running event loop"
                ) from None
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"shared-budget-{self.venue}")

    # -- the reservation task -------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.05
        wake = self._wake
        assert wake is not None
        while not self._closed:
            timeout = self._idle_timeout(self._now_ns())
            if timeout != 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await wake.wait()
            wake.clear()
            try:
                await self._exchange()
            except Exception as exc:  # the task must outlive any failure, or the budget would stay shut
                self._outage(exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.policy.retry_max_s)
                continue
            backoff = 0.05
            if self._down:
                self._down = False
                log.info("shared rate budget: Redis answers again", venue=self.venue, account=self.account)

    def _idle_timeout(self, now: int) -> float | None:
        """Seconds until the task has something to do (0: now; ``None``: only when woken)."""
        if self._settle_q or self._syncs or self._penalty_s or self._prefetch:
            return 0
        due: int | None = self._grants[0].deadline_ns if self._grants else None
        for demand in self._demand.values():
            if demand.need:
                if demand.denied_until_ns <= now:
                    return 0
                due = demand.denied_until_ns if due is None else min(due, demand.denied_until_ns)
        return None if due is None else max(0.0, (due - now) / _NS)

    def _outage(self, exc: BaseException, backoff: float) -> None:
        self._retry_at_ns = self._now_ns() + round(backoff * _NS)
        if not self._down:
            self._down = True
            self.outages += 1
            what = "Redis unreachable" if isinstance(exc, REDIS_ERRORS) else "reservation failed"
            log.warning(
                f"shared rate budget: {what}; only capacity already held is spent",
                venue=self.venue,
                account=self.account,
                error=repr(exc)[:200],
            )

    async def _exchange(self) -> None:
        """One round with Redis: give back, sync, penalize, then reserve what is missing."""
        now = self._now_ns()
        if self._grants and self._grants[0].deadline_ns <= now:
            self._drop_expired(now)
        store = self._store
        if self._settle_q:
            settle = self._settle_q
            self._settle_q = []
            try:
                self.returned += await store.settle(settle)
            except BaseException:
                self._settle_q = settle + self._settle_q
                raise
        while self._syncs:
            name, used = next(iter(self._syncs.items()))
            member = f"sync.{self._instance}.{self._next()}"
            await store.sync_used(self._keys[name], self._window_us[name], used, member)
            if self._syncs.get(name) == used:
                del self._syncs[name]
        if self._penalty_s:
            penalty = self._penalty_s
            windows = [(self._keys[n], self._window_us[n]) for n in self._keys]
            await store.penalize(windows, max(1, round(penalty * 1_000_000)), self._instance)
            if self._penalty_s == penalty:
                self._penalty_s = 0.0
        for names, demand in list(self._demand.items()):
            await self._reserve_for(names, demand)
        if self._prefetch:
            names = tuple(sorted(n for n in self._prefetch if self._active(n, now)))
            self._prefetch.clear()
            if names:
                await self._reserve(names, {}, None)

    def _active(self, name: str, now: int) -> bool:
        last = self._last_spend_ns.get(name)
        return last is not None and now - last < self._validity_ns

    async def _reserve_for(self, names: tuple[str, ...], demand: _Demand) -> None:
        now = self._now_ns()
        deficits = {n: max(0, need - self._avail[n]) for n, need in demand.need.items()}
        if not any(deficits.values()):
            del self._demand[names]
            return
        if demand.denied_until_ns > now:
            return
        await self._reserve(names, deficits, demand)

    async def _reserve(self, names: tuple[str, ...], deficits: Mapping[str, int], demand: _Demand | None) -> None:
        asks = []
        for name in names:
            need = deficits.get(name, 0)
            room = 2 * self._max_chunk[name] - self._avail[name]
            want = max(need, min(self._chunk[name], room))
            asks.append(WindowAsk(self._keys[name], self._limit[name], self._window_us[name], need, want))
        if not any(a.want for a in asks):
            return
        gid = f"{self._instance}.{self._next()}"
        sent = self._now_ns()  # the deadline counts from before the request left: never later than Redis's
        result = await self._store.reserve(gid, self._validity_ns // 1000, asks)
        if not result.ok:
            self.refusals += 1
            if demand is not None:
                demand.denied_until_ns = self._now_ns() + result.wait_us * 1000
            return
        granted = {name: g for name, g in zip(names, result.granted, strict=True) if g > 0}
        if not granted or self._closed:
            if granted:  # closed meanwhile: hand it straight back
                self._retire(_Grant(gid, sent, granted), expired=False)
            return
        self.reservations += 1
        self._grants.append(_Grant(gid, sent + self._validity_ns, granted))
        for name, g in granted.items():
            self._avail[name] += g
        if demand is not None:
            demand.denied_until_ns = 0
            if all(self._avail[n] >= need for n, need in demand.need.items()):
                del self._demand[names]

    def _next(self) -> int:
        self._seq += 1
        return self._seq


def rate_limit_specs(venue: str) -> tuple[RateLimitSpec, ...]:
    """The rate-limit windows the execution client of ``venue`` charges (the same specs, so the same names)."""
    if venue == "okx":
        from tradeloop.venues.okx.spec import RATE_LIMIT_SPECS

        return RATE_LIMIT_SPECS
    if venue.startswith("binance"):
        from tradeloop.venues.binance.spec import MARKETS, RATE_LIMITS

        for market, spec in MARKETS.items():
            if spec.venue == venue and market in RATE_LIMITS:
                return RATE_LIMITS[market]
    if venue.startswith("bybit"):
        from tradeloop.venues.bybit.spec import RATE_LIMITS as BYBIT

        if venue in BYBIT:
            return BYBIT[venue]
    if venue == "kraken":
        from tradeloop.venues.kraken.spec import RATE_LIMITS as KRAKEN

        return KRAKEN
    if venue == "coinbase":
        from tradeloop.venues.coinbase.spec import RATE_LIMITS as COINBASE

        return COINBASE
    raise ValueError(f"no rate limits known for venue {venue!r}")


def _fingerprint_of(account: Credentials | str) -> str:
    if isinstance(account, Credentials):
        return account.fingerprint
    if len(account) != FINGERPRINT_HEX_DIGITS or any(c not in "0123456789abcdef" for c in account):
        raise ValueError(
            f"an account is named by its credentials or their fingerprint ({FINGERPRINT_HEX_DIGITS} hex digits), "
            "never by a key"
        )
    return account


class SharedBudgetFactory:
    """Shared rate budgets on one Redis: one per (venue, account) in this process, and a listener
    that applies the 429 penalties other processes announce.

    ``ip_scope`` names the IP that IP-scoped windows count against (default: this host's name, so
    processes on one host share them). Call :meth:`start` once inside the event loop, and
    :meth:`aclose` at the end.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        *,
        ip_scope: str | None = None,
        policy: ReservationPolicy | None = None,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.prefix = check_name(prefix, "prefix", colons=True)
        self.ip_scope = check_name(ip_scope or socket.gethostname(), "ip_scope", colons=True)
        self.policy = policy or ReservationPolicy()
        self._url = redis_url
        self._client: Redis = connect(redis_url)
        self._store = BudgetStore(self._client, penalty_channel(prefix))
        self._now_ns = now_ns
        self._budgets: dict[tuple[str, str], SharedRateBudget] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    def budget(self, venue: str, account: Credentials | str, specs: Sequence[RateLimitSpec]) -> SharedRateBudget:
        """The shared budget of ``account`` (credentials, or their fingerprint) on ``venue``; the same
        object for the same pair (later calls must declare the same specs)."""
        fingerprint = _fingerprint_of(account)
        key = (venue, fingerprint)
        existing = self._budgets.get(key)
        if existing is not None:
            if existing.specs != tuple(specs):
                raise ValueError(f"rate limits of {venue}/{fingerprint} declared twice with different specs")
            return existing
        keys = {
            s.name: window_keys(self.prefix, venue, "ip", self.ip_scope, s.name)
            if s.scope is RateLimitScope.IP
            else window_keys(self.prefix, venue, "account", fingerprint, s.name)
            for s in specs
        }
        budget = SharedRateBudget(venue, fingerprint, specs, self._store, keys, self.policy, now_ns=self._now_ns)
        self._budgets[key] = budget
        return budget

    def for_venue(self, venue: str, credentials: Credentials) -> SharedRateBudget:
        """:meth:`budget` with the windows ``venue``'s execution client charges (:func:`rate_limit_specs`)."""
        return self.budget(venue, credentials, rate_limit_specs(venue))

    async def start(self, timeout_s: float = 2.0) -> None:
        """Check that Redis answers (:class:`SharedBudgetUnavailable` if not) and start the penalty listener."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._client.ping()
        except (*REDIS_ERRORS, TimeoutError) as exc:
            raise SharedBudgetUnavailable(
                f"shared rate budgets: Redis at {safe_url(self._url)} did not answer ({type(exc).__name__})"
            ) from None
        if self._listener is None:
            listen = self._store.listen(self._on_notice, self._listening, self.policy.retry_max_s)
            self._listener = asyncio.get_running_loop().create_task(listen, name="shared-budget-penalties")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._listening.wait()

    async def aclose(self) -> None:
        """Close every budget (giving back held capacity), the listener and the connection."""
        for budget in self._budgets.values():
            await budget.aclose()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._client.aclose()

    def _on_notice(self, notice: PenaltyNotice) -> None:
        for budget in self._budgets.values():
            budget.on_penalty_notice(notice)
