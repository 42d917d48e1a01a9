"""Sending Bybit v5 signed requests: fresh signatures per attempt, rate-limit replies waited out, clock offset.

:class:`BybitRest` wraps the transport's :class:`RestClient` for one venue and account:

* every attempt is signed anew (``build(now_ms)``) with the local clock corrected by the offset to
  ``/v5/market/time`` (:meth:`BybitRest.sync_clock`; re-measured after a ``10002`` timestamp error);
* a rate-limit reply (``retCode`` 10006/10429, HTTP 429, or HTTP 403 "access too frequent") is waited
  out (``Retry-After``, else ``X-Bapi-Limit-Reset-Timestamp``, else a backoff) and the same request
  re-sent, until ``patience_s``; the budget is penalized for the wait. Each request is charged to the
  IP window and its endpoint's window, whose ``X-Bapi-Limit-Status`` (remaining) the budget adopts;
* a request not sent (no connection) is re-sent within the patience; an outcome that cannot be known
  (timeout or 5xx of a non-idempotent request, retries exhausted) is reported as such, never guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Final

import aiohttp
import msgspec

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.enums import RejectReason
from tradeloop.venues.base import SignedRequest
from tradeloop.venues.bybit import orders, spec
from tradeloop.venues.bybit.schemas import Reply
from tradeloop.venues.transport.backoff import Backoff, BackoffSpec
from tradeloop.venues.transport.clock_sync import ClockOffsetEstimator
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimited
from tradeloop.venues.transport.rest import (
    OutcomeUnknown,
    RequestNotSent,
    RestClient,
    RestConfig,
    RestError,
    RestResponse,
    measure_clock_offset,
    parse_retry_after,
)

__all__ = ["BybitRequestError", "BybitRest", "Outcome", "RestCounters"]

log = get_logger("tradeloop.venues.bybit.rest")

_RATE_LIMIT_HTTP: Final = frozenset({429, 403})


class BybitRequestError(RuntimeError):
    """A request whose answer was needed failed; the message says why (never a secret)."""


class RestCounters(msgspec.Struct, kw_only=True):
    requests: int = 0
    rate_limit_retries: int = 0
    outcome_unknown: int = 0


class Outcome(msgspec.Struct, kw_only=True):
    """What became of one request: Bybit's ``reply``, or no reply (``unknown``, or a ``failure`` reason)."""

    reply: Reply | None = None
    attempts: int = 0
    unknown: bool = False
    failure: RejectReason | None = None
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.reply is not None and self.reply.retCode == 0

    def refusal(self) -> tuple[RejectReason, str]:
        """Why the request was refused (the venue's code mapped, or the local failure)."""
        if self.reply is not None:
            return orders.reject_reason(self.reply.retCode), f"{self.reply.retCode} {self.reply.retMsg}"
        return self.failure or RejectReason.OTHER, self.message

    def ok(self, what: str) -> Reply:
        """The accepted reply, or :class:`BybitRequestError`."""
        if self.reply is None:
            raise BybitRequestError(f"bybit {what}: {self.message or 'no reply'}")
        if self.reply.retCode != 0:
            raise BybitRequestError(f"bybit {what}: retCode {self.reply.retCode} {self.reply.retMsg}")
        return self.reply


class BybitRest:
    """Signed requests to one Bybit REST API (``base_url``) for one account's rate budget."""

    def __init__(
        self,
        venue: str,
        base_url: str,
        clock: Clock,
        budget: RateBudget,
        *,
        config: RestConfig | None = None,
        patience_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.venue = venue
        self.base_url = base_url
        self.budget = budget
        self.clock_offset = ClockOffsetEstimator()
        self.counters = RestCounters()
        self._clock = clock
        self._config = config or RestConfig()
        self._patience_s = patience_s
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._client: RestClient | None = None
        self._clock_task: asyncio.Task[None] | None = None

    @property
    def client(self) -> RestClient:
        if self._client is None:
            self._session = aiohttp.ClientSession()
            self._client = RestClient(
                self.base_url, self._session, config=self._config, budget=self.budget, rng=self._rng, name=self.venue
            )
        return self._client

    async def close(self) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._clock_task
        if self._session is not None:
            await self._session.close()
        self._session = self._client = None

    def now_ms(self) -> int:
        """Milliseconds for signing: the clock corrected by the measured offset to Bybit's."""
        now = self._clock.now_ns()
        if self.clock_offset.has_estimate:
            now = self.clock_offset.server_now_ns(now)
        return now // 1_000_000

    async def sync_clock(self, samples: int = 3) -> bool:
        """Measure the offset to ``/v5/market/time``; False (offset unchanged) when it cannot be reached."""
        estimator = ClockOffsetEstimator()
        try:
            await measure_clock_offset(
                self.client,
                spec.SERVER_TIME,
                orders.server_time_ns,
                estimator,
                samples=samples,
                now_ns=self._clock.now_ns,
            )
        except (RestError, RateLimited, orders.ReplyError, aiohttp.ClientError) as exc:
            log.warning("bybit clock offset not measured", venue=self.venue, error=type(exc).__name__)
            return False
        self.clock_offset = estimator
        return True

    async def call(self, path: str, build: Callable[[int], SignedRequest]) -> Outcome:
        """Send ``build(now_ms)`` (re-built for every attempt) until answered; see the module docstring."""
        client = self.client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._patience_s
        backoff = Backoff(BackoffSpec(base_s=0.05, cap_s=1.0), self._rng)
        attempt = 0
        while True:
            attempt += 1
            request = build(self.now_ms())
            self.counters.requests += 1
            try:
                resp = await client.request(
                    request.method,
                    request.path,
                    params=request.query or None,
                    headers=request.headers,
                    body=request.body,
                    idempotent=request.idempotent,
                    costs=spec.costs(path),
                )
            except OutcomeUnknown as exc:
                self.counters.outcome_unknown += 1
                return Outcome(unknown=True, attempts=attempt, message=str(exc))
            except (RequestNotSent, RateLimited) as exc:  # nothing reached Bybit: safe to send again
                delay = backoff.next_delay()
                if loop.time() + delay > deadline:
                    reason = RejectReason.RATE_LIMITED if isinstance(exc, RateLimited) else RejectReason.OTHER
                    return Outcome(attempts=attempt, failure=reason, message=str(exc))
                await asyncio.sleep(delay)
                continue
            except RestError as exc:  # an idempotent request's retries ran out without any answer
                self.counters.outcome_unknown += 1
                return Outcome(unknown=True, attempts=attempt, message=str(exc))
            reply: Reply | None = None
            with contextlib.suppress(orders.ReplyError):
                reply = orders.decode_reply(resp.body)
            if resp.status in _RATE_LIMIT_HTTP or (reply is not None and reply.retCode in spec.RATE_LIMITED_CODES):
                delay = self._retry_delay(resp, backoff)
                if loop.time() + delay > deadline:
                    code = reply.retCode if reply is not None else resp.status
                    return Outcome(
                        attempts=attempt, failure=RejectReason.RATE_LIMITED, message=f"rate limited ({code})"
                    )
                self.counters.rate_limit_retries += 1
                if resp.status not in _RATE_LIMIT_HTTP:
                    self.budget.penalize(delay)  # the transport penalizes 429/418 itself
                log.info("bybit rate limited, re-sending", venue=self.venue, path=path, delay_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            if reply is None:
                return Outcome(attempts=attempt, failure=RejectReason.OTHER, message=f"HTTP {resp.status}, no reply")
            if reply.retCode == spec.TIMESTAMP_CODE and (self._clock_task is None or self._clock_task.done()):
                self._clock_task = loop.create_task(self._resync(), name=f"{self.venue}:clock")
            return Outcome(reply=reply, attempts=attempt)

    async def _resync(self) -> None:
        await self.sync_clock()

    def _retry_delay(self, resp: RestResponse, backoff: Backoff) -> float:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if retry_after is not None:
            return retry_after
        reset = resp.headers.get("X-Bapi-Limit-Reset-Timestamp", "")
        if reset.isdigit():
            return min(max((int(reset) - self.now_ms()) / 1000, 0.01), 1.0)
        return backoff.next_delay()
