"""REST client on an aiohttp session: per-request timeouts, retries only for idempotent requests, rate budgets.

What happens to a request that fails:

================================  ==============================  ===================================
failure                           idempotent (queries, GET)       not idempotent (place/amend order)
================================  ==============================  ===================================
could not connect                 retried with backoff            :class:`RequestNotSent`
timeout / connection lost         retried with backoff            :class:`OutcomeUnknown`
HTTP 5xx                          retried with backoff            :class:`OutcomeUnknown` (status, body)
HTTP 429 / 418                    waits ``Retry-After``, retried  returned as is (the venue refused it)
================================  ==============================  ===================================

Every 429/418 penalizes the rate budget for ``Retry-After`` so every request sharing it waits. A
retry is attempted only while attempts remain and it would start within ``retry_deadline_s`` of the
first; otherwise the last reply is returned (or :class:`RestUnavailable` raised when there was none).
After each reply the budget adopts the venue's usage headers for the windows the request was
charged to, and ``on_response_headers`` sees the headers. Logs and errors name the method and the
path without its query, never headers, bodies or signed URLs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import aiohttp
import msgspec
from multidict import CIMultiDictProxy
from yarl import URL

from tradeloop.core.logging import get_logger
from tradeloop.venues.transport.backoff import Backoff, BackoffSpec
from tradeloop.venues.transport.clock_sync import ClockOffsetEstimator
from tradeloop.venues.transport.endpoint import loggable_url, with_endpoint
from tradeloop.venues.transport.ratelimit import RateBudget, acquire

__all__ = [
    "OutcomeUnknown",
    "RequestNotSent",
    "RestClient",
    "RestConfig",
    "RestCounters",
    "RestError",
    "RestResponse",
    "RestUnavailable",
    "measure_clock_offset",
    "parse_retry_after",
]

log = get_logger("tradeloop.venues.transport.rest")

Params = Mapping[str, str] | Sequence[tuple[str, str]] | str
"""Query parameters; a ``str`` is sent verbatim (a signed query must reach the venue byte for byte)."""
HeadersHook = Callable[[int, "CIMultiDictProxy[str]"], None]
"""Called with (status, headers) after every reply, retried ones included."""

RATE_LIMIT_STATUSES = frozenset({429, 418})


class RestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    timeout_s: float = 10.0
    """Whole request, connect to last body byte."""
    connect_timeout_s: float = 5.0
    max_attempts: int = 3
    """Attempts of an idempotent request (non-idempotent requests are sent once)."""
    retry_deadline_s: float = 30.0
    """No retry starts later than this after the first attempt."""
    max_budget_wait_s: float = 5.0
    """Longest wait for the rate budget before a request is refused with ``RateLimited``."""
    backoff: BackoffSpec = BackoffSpec(base_s=0.2, cap_s=5.0)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("timeout_s", "connect_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


class RestResponse(msgspec.Struct, frozen=True):
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    attempts: int
    """How many times the request was sent."""


class RestCounters(msgspec.Struct, kw_only=True):
    attempts: int = 0
    retries: int = 0
    timeouts: int = 0
    connect_errors: int = 0
    server_errors: int = 0
    rate_limited: int = 0
    outcome_unknown: int = 0


class RestError(Exception):
    """A request failed; the message names the method and path only."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class RequestNotSent(RestError):
    """No connection could be made: the venue never saw the request, so sending it again is safe."""


class OutcomeUnknown(RestError):
    """A non-idempotent request may or may not have been executed (timeout, lost connection, 5xx).

    Never retried: the caller queries the venue (by client order id) to learn what happened.
    ``status`` and ``body`` are set when the venue answered with a 5xx.
    """

    def __init__(self, message: str, *, method: str, path: str, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message, method=method, path=path)
        self.status = status
        self.body = body


class RestUnavailable(RestError):
    """An idempotent request failed on every attempt without any reply (timeouts, connection errors)."""


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds, or an HTTP date); ``None`` if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


def _safe_path(path: str) -> str:
    return path.split("?", 1)[0]


class RestClient:
    """Requests to one venue's REST API over a shared ``aiohttp.ClientSession`` (the caller owns the session).

    ``endpoint`` replaces ``base_url``'s scheme, host and port (tests, simulators). ``budget`` is the
    account's rate budget; a request's ``costs`` are charged to it before every attempt.
    """

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        config: RestConfig | None = None,
        endpoint: str | None = None,
        budget: RateBudget | None = None,
        rng: random.Random | None = None,
        on_response_headers: HeadersHook | None = None,
        name: str = "rest",
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.base_url = with_endpoint(base_url, endpoint).rstrip("/")
        self._session = session
        self.config = config or RestConfig()
        self.budget = budget
        self._rng = rng or random.Random()
        self._on_headers = on_response_headers
        self.name = name
        self._sleep = sleep
        self.counters = RestCounters()

    def _url(self, path: str, params: Params | None) -> URL:
        if not path.startswith("/"):
            path = "/" + path
        if not params:
            query = ""
        elif isinstance(params, str):
            query = params
        else:
            query = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
        text = self.base_url + path
        if query:
            text += ("&" if "?" in path else "?") + query
        return URL(text, encoded=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        idempotent: bool,
        costs: Mapping[str, int] | None = None,
        timeout_s: float | None = None,
    ) -> RestResponse:
        """Send one request; see the module docstring for timeouts, retries and errors.

        Raises ``RateLimited`` (nothing sent) when the rate budget would not admit it within
        ``max_budget_wait_s``.
        """
        cfg = self.config
        method = method.upper()
        url = self._url(path, params)
        safe = _safe_path(path)
        data = body.encode() if isinstance(body, str) else body
        timeout = aiohttp.ClientTimeout(total=timeout_s or cfg.timeout_s, sock_connect=cfg.connect_timeout_s)
        backoff = Backoff(cfg.backoff, self._rng)
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            attempt += 1
            if self.budget is not None and costs:
                await acquire(self.budget, costs, max_wait_s=cfg.max_budget_wait_s, sleep=self._sleep)
            self.counters.attempts += 1
            reply: RestResponse | None = None
            try:
                async with self._session.request(
                    method, url, headers=headers, data=data, timeout=timeout, allow_redirects=False
                ) as resp:
                    reply = RestResponse(resp.status, resp.headers, await resp.read(), attempt)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                self.counters.connect_errors += 1
                failure = f"could not connect ({type(exc).__name__})"
                if not idempotent:
                    log.warning("request not sent", client=self.name, method=method, path=safe, reason=failure)
                    raise RequestNotSent(f"{method} {safe}: {failure}", method=method, path=safe) from None
            except (TimeoutError, aiohttp.ClientError) as exc:
                timed_out = isinstance(exc, TimeoutError)
                if timed_out:
                    self.counters.timeouts += 1
                failure = "timed out" if timed_out else f"connection failed ({type(exc).__name__})"
                if not idempotent:
                    self.counters.outcome_unknown += 1
                    log.warning("request outcome unknown", client=self.name, method=method, path=safe, reason=failure)
                    raise OutcomeUnknown(
                        f"{method} {safe}: {failure}; the outcome is unknown", method=method, path=safe
                    ) from None

            if reply is not None:
                self._after_reply(reply, costs)
                if reply.status in RATE_LIMIT_STATUSES:
                    self.counters.rate_limited += 1
                    retry_after = parse_retry_after(reply.headers.get("Retry-After"))
                    delay = retry_after if retry_after is not None else backoff.next_delay()
                    if self.budget is not None:
                        self.budget.penalize(delay)
                    log.warning(
                        "rate limited by venue",
                        client=self.name,
                        method=method,
                        path=safe,
                        status=reply.status,
                        retry_after_s=retry_after,
                    )
                    if not idempotent:
                        return reply
                    failure = f"HTTP {reply.status}"
                elif reply.status >= 500:
                    self.counters.server_errors += 1
                    if not idempotent:
                        self.counters.outcome_unknown += 1
                        log.warning(
                            "request outcome unknown", client=self.name, method=method, path=safe, status=reply.status
                        )
                        raise OutcomeUnknown(
                            f"{method} {safe}: HTTP {reply.status}; the outcome is unknown",
                            method=method,
                            path=safe,
                            status=reply.status,
                            body=reply.body,
                        )
                    delay = backoff.next_delay()
                    failure = f"HTTP {reply.status}"
                else:
                    return reply
            else:
                delay = backoff.next_delay()

            if attempt >= cfg.max_attempts or loop.time() + delay - started > cfg.retry_deadline_s:
                if reply is not None:
                    return reply
                raise RestUnavailable(
                    f"{method} {safe}: {failure} after {attempt} attempt(s)", method=method, path=safe
                )
            self.counters.retries += 1
            log.info(
                "retrying request",
                client=self.name,
                method=method,
                path=safe,
                attempt=attempt,
                reason=failure,
                delay_s=round(delay, 3),
            )
            await self._sleep(delay)

    def _after_reply(self, reply: RestResponse, costs: Mapping[str, int] | None) -> None:
        if self.budget is not None and costs:
            self.budget.sync_from_headers(reply.headers, costs.keys())
        if self._on_headers is not None:
            self._on_headers(reply.status, reply.headers)

    def __repr__(self) -> str:
        return f"RestClient({self.name!r}, {loggable_url(self.base_url)})"


async def measure_clock_offset(
    client: RestClient,
    path: str,
    parse_server_ns: Callable[[bytes], int],
    estimator: ClockOffsetEstimator,
    *,
    samples: int = 3,
    server_resolution_ns: int = 1_000_000,
    costs: Mapping[str, int] | None = None,
    now_ns: Callable[[], int] = time.time_ns,
) -> int:
    """Sample a venue's server-time endpoint ``samples`` times into ``estimator``; returns the offset (ns).

    ``parse_server_ns`` turns the reply body into server nanoseconds (Binance ``serverTime`` ms * 10^6).
    """
    for _ in range(samples):
        sent = now_ns()
        reply = await client.request("GET", path, idempotent=True, costs=costs)
        received = now_ns()
        if reply.status != 200:
            raise RestError(
                f"GET {_safe_path(path)}: HTTP {reply.status} from the server-time endpoint",
                method="GET",
                path=_safe_path(path),
            )
        estimator.add(sent, parse_server_ns(reply.body), received, server_resolution_ns)
    return estimator.offset_ns
