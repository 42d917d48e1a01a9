"""Rate-limit budgets: several sliding windows per venue and account, each request costing a weight per window.

A venue's limits are data: a list of :class:`RateLimitSpec` in its ``spec.py`` (Binance's
``REQUEST_WEIGHT`` 6000 per minute per IP, ``ORDERS`` 100 per 10 s and 200000 per day per account;
OKX's per-endpoint limits; Bybit's per-endpoint per-UID limits). A :class:`RateBudget` holds one
window per spec and answers :meth:`RateBudget.try_acquire` with the seconds to wait, consuming the
costs only when it answers 0.

Each window is a sliding log: a request is admitted only if the costs admitted in the last
``window_s`` seconds plus its own cost stay within ``limit``. That holds for *every* window of that
length, so it also holds for a venue's fixed (clock-aligned) windows; it is stricter than the venue
when the venue resets its count at a boundary, never looser. Kraken's decaying counter (capacity
``C``, decay ``r`` per second) is declared as a window of ``C`` per ``C / r`` seconds, which is
likewise stricter than the venue.

Other processes on the same IP or account spend the same venue budget; :meth:`RateBudget.sync_used`
adopts the venue's own count from its usage headers when it is higher than ours (never lower, since
replies may arrive out of order and a lower count could be an older one). :meth:`RateBudget.penalize`
blocks every window after a 429/418 for the venue's ``Retry-After``.

Everything here is pure apart from the injected clock; :func:`acquire` is the one awaiting helper.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from enum import StrEnum

import msgspec

__all__ = [
    "RateBudget",
    "RateBudgetRegistry",
    "RateLimitScope",
    "RateLimitSpec",
    "RateLimited",
    "UsageHeaderKind",
    "acquire",
]

_NS = 1_000_000_000


class RateLimitScope(StrEnum):
    """Who a limit is counted against: the API account (key/UID) or the client's IP address."""

    ACCOUNT = "account"
    IP = "ip"


class UsageHeaderKind(StrEnum):
    """What a usage header's number means: the weight already used, or what is left, in the window."""

    USED = "used"
    REMAINING = "remaining"


class RateLimitSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One limit a venue declares: at most ``limit`` weight in any ``window_s`` seconds."""

    name: str
    """The window's name, which request costs refer to (``"REQUEST_WEIGHT"``, ``"/api/v5/trade/order"``)."""
    limit: int
    window_s: float
    scope: RateLimitScope = RateLimitScope.ACCOUNT
    usage_header: str | None = None
    """Reply header carrying the venue's own count for this window (``X-MBX-USED-WEIGHT-1M``), if any."""
    usage_kind: UsageHeaderKind = UsageHeaderKind.USED

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a rate limit needs a name")
        if self.limit <= 0:
            raise ValueError(f"rate limit {self.name!r}: limit must be positive, got {self.limit}")
        if not self.window_s > 0:
            raise ValueError(f"rate limit {self.name!r}: window_s must be positive, got {self.window_s}")


class RateLimited(Exception):
    """The budget would not admit a request within the time the caller was willing to wait."""


class _Window:
    """A sliding log of (admitted at ns, cost) with a running sum; shared between budgets for IP limits."""

    __slots__ = ("blocked_until_ns", "entries", "spec", "used", "window_ns")

    def __init__(self, spec: RateLimitSpec) -> None:
        self.spec = spec
        self.window_ns = max(1, round(spec.window_s * _NS))
        self.entries: deque[tuple[int, int]] = deque()
        self.used = 0
        self.blocked_until_ns = 0

    def expire(self, now_ns: int) -> None:
        # An entry admitted at t counts while now - t < window.
        horizon = now_ns - self.window_ns
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            self.used -= entries.popleft()[1]

    def wait_ns(self, now_ns: int, cost: int) -> int:
        """Nanoseconds until ``cost`` fits (0 if it fits now); assumes :meth:`expire` ran at ``now_ns``."""
        wait = max(0, self.blocked_until_ns - now_ns)
        excess = self.used + cost - self.spec.limit
        if excess > 0:
            for admitted_ns, entry_cost in self.entries:
                excess -= entry_cost
                if excess <= 0:
                    wait = max(wait, admitted_ns + self.window_ns - now_ns)
                    break
        return wait

    def record(self, now_ns: int, cost: int) -> None:
        if cost:
            self.entries.append((now_ns, cost))
            self.used += cost


class RateBudget:
    """The rate-limit windows of one venue account.

    ``now_ns`` is the clock the windows run on (monotonic nanoseconds live; a test's own counter in
    tests). Budgets made by one :class:`RateBudgetRegistry` share their IP-scoped windows.
    """

    def __init__(
        self,
        venue: str,
        account: str,
        specs: Sequence[RateLimitSpec],
        now_ns: Callable[[], int] = time.monotonic_ns,
        *,
        shared_windows: Mapping[str, _Window] | None = None,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"{venue}: rate limit names must be unique, got {names}")
        self.venue = venue
        self.account = account
        self._now_ns = now_ns
        shared = shared_windows or {}
        self._windows: dict[str, _Window] = {s.name: shared.get(s.name) or _Window(s) for s in specs}
        self.admitted = 0
        """Requests admitted."""
        self.waits = 0
        """:meth:`try_acquire` calls answered with a wait."""
        self.penalties = 0
        """:meth:`penalize` calls (429/418 replies)."""

    @property
    def specs(self) -> tuple[RateLimitSpec, ...]:
        return tuple(w.spec for w in self._windows.values())

    def _window(self, name: str) -> _Window:
        try:
            return self._windows[name]
        except KeyError:
            raise ValueError(
                f"{self.venue}: no rate limit window {name!r} (declared: {', '.join(self._windows) or 'none'})"
            ) from None

    def _checked(self, costs: Mapping[str, int]) -> list[tuple[_Window, int]]:
        out = []
        for name, cost in costs.items():
            window = self._window(name)
            if cost < 0:
                raise ValueError(f"{self.venue}: negative cost {cost} for window {name!r}")
            if cost > window.spec.limit:
                raise ValueError(
                    f"{self.venue}: cost {cost} for window {name!r} exceeds its whole limit {window.spec.limit}"
                )
            out.append((window, cost))
        return out

    def try_acquire(self, costs: Mapping[str, int]) -> float:
        """Admit a request costing ``costs`` (window name -> weight) now and return 0.0, or return the
        seconds to wait before asking again without consuming anything."""
        wait = self.try_acquire_ns(costs)
        return wait / _NS

    def try_acquire_ns(self, costs: Mapping[str, int]) -> int:
        """:meth:`try_acquire` in integer nanoseconds."""
        checked = self._checked(costs)
        now = self._now_ns()
        wait = 0
        for window, cost in checked:
            window.expire(now)
            wait = max(wait, window.wait_ns(now, cost))
        if wait > 0:
            self.waits += 1
            return wait
        for window, cost in checked:
            window.record(now, cost)
        self.admitted += 1
        return 0

    def used(self, name: str) -> int:
        """Weight counted in window ``name`` over the last ``window_s`` seconds."""
        window = self._window(name)
        window.expire(self._now_ns())
        return window.used

    def remaining(self, name: str) -> int:
        window = self._window(name)
        return max(0, window.spec.limit - self.used(name))

    def sync_used(self, name: str, used: int) -> None:
        """Adopt the venue's count for window ``name`` if it is higher than ours (other clients, other
        processes); the difference is counted as spent now."""
        window = self._window(name)
        now = self._now_ns()
        window.expire(now)
        if used > window.used:
            window.record(now, used - window.used)

    def sync_remaining(self, name: str, remaining: int) -> None:
        """Adopt a venue's "remaining in this window" count (Bybit ``X-Bapi-Limit-Status``)."""
        window = self._window(name)
        self.sync_used(name, window.spec.limit - max(0, remaining))

    def sync_from_headers(self, headers: Mapping[str, str], windows: Iterable[str] | None = None) -> list[str]:
        """Read the usage headers of ``windows`` (default: all) from a reply; returns the windows synced.

        Pass only the windows the request was charged to: a header such as Bybit's
        ``X-Bapi-Limit-Status`` refers to the endpoint that answered.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        synced = []
        for name in self._windows if windows is None else windows:
            spec = self._window(name).spec
            if spec.usage_header is None:
                continue
            raw = lowered.get(spec.usage_header.lower())
            if raw is None:
                continue
            try:
                value = int(raw.strip())
            except ValueError:
                continue  # a malformed header is ignored, never fatal
            if spec.usage_kind is UsageHeaderKind.USED:
                self.sync_used(name, value)
            else:
                self.sync_remaining(name, value)
            synced.append(name)
        return synced

    def penalize(self, retry_after_s: float) -> None:
        """Block every window of this budget for ``retry_after_s`` (a 429/418 reply's ``Retry-After``)."""
        until = self._now_ns() + max(0, round(retry_after_s * _NS))
        for window in self._windows.values():
            window.blocked_until_ns = max(window.blocked_until_ns, until)
        self.penalties += 1


class RateBudgetRegistry:
    """One :class:`RateBudget` per (venue, account); IP-scoped windows are shared by all accounts of a venue."""

    def __init__(self, now_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._now_ns = now_ns
        self._budgets: dict[tuple[str, str], RateBudget] = {}
        self._ip_windows: dict[tuple[str, str], _Window] = {}

    def budget(self, venue: str, account: str, specs: Sequence[RateLimitSpec]) -> RateBudget:
        """The budget of ``account`` on ``venue`` (created on first use; later calls must declare the same specs)."""
        key = (venue, account)
        existing = self._budgets.get(key)
        if existing is not None:
            if existing.specs != tuple(specs):
                raise ValueError(f"rate limits of {venue}/{account} declared twice with different specs")
            return existing
        shared: dict[str, _Window] = {}
        for spec in specs:
            if spec.scope is RateLimitScope.IP:
                window = self._ip_windows.setdefault((venue, spec.name), _Window(spec))
                if window.spec != spec:
                    raise ValueError(f"IP rate limit {venue}/{spec.name} declared twice with different specs")
                shared[spec.name] = window
        budget = RateBudget(venue, account, specs, self._now_ns, shared_windows=shared)
        self._budgets[key] = budget
        return budget


async def acquire(
    budget: RateBudget,
    costs: Mapping[str, int],
    *,
    max_wait_s: float | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> float:
    """Wait until ``budget`` admits ``costs``; returns the seconds waited.

    Raises :class:`RateLimited` (without consuming anything) when admission would take longer than
    ``max_wait_s`` in total.
    """
    waited = 0.0
    while True:
        wait = budget.try_acquire(costs)
        if wait <= 0:
            return waited
        if max_wait_s is not None and waited + wait > max_wait_s:
            raise RateLimited(
                f"{budget.venue}/{budget.account}: rate budget needs {waited + wait:.3f}s, more than {max_wait_s}s"
            )
        await sleep(wait)
        waited += wait
