"""RestClient against aiohttp servers on 127.0.0.1: retries, outcome-unknown, 429 handling, usage headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from tests.secret_scan import register_test_secret
from tradeloop.venues.transport.backoff import BackoffSpec
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimited, RateLimitScope, RateLimitSpec
from tradeloop.venues.transport.rest import (
    OutcomeUnknown,
    RequestNotSent,
    RestClient,
    RestConfig,
    RestUnavailable,
    parse_retry_after,
)

API_KEY = "rest-test-api-key-0f9e8d7c6b5a"
SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
register_test_secret(API_KEY, SIGNATURE)

FAST = RestConfig(timeout_s=0.3, max_attempts=3, backoff=BackoffSpec(base_s=0.02, cap_s=0.05))
WEIGHT = [
    RateLimitSpec(
        name="REQUEST_WEIGHT", limit=6000, window_s=60, scope=RateLimitScope.IP, usage_header="X-MBX-USED-WEIGHT-1M"
    )
]


class Recorder:
    """What the server saw: (arrival time, method, path, query string) per request."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str, str]] = []
        self.release = asyncio.Event()

    def note(self, request: web.Request) -> int:
        self.seen.append((time.monotonic(), request.method, request.path, request.query_string))
        return len(self.seen)


@contextlib.asynccontextmanager
async def serving(routes: list[web.RouteDef], recorder: Recorder) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        recorder.release.set()  # let hanging handlers finish so cleanup does not wait for them
        await runner.cleanup()


def run(
    routes: Callable[[Recorder], list[web.RouteDef]],
    scenario: Callable[[aiohttp.ClientSession, str, Recorder], Awaitable[None]],
) -> Recorder:
    recorder = Recorder()

    async def main() -> None:
        async with serving(routes(recorder), recorder) as url, aiohttp.ClientSession() as session:
            await scenario(session, url, recorder)

    asyncio.run(main())
    return recorder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_get_on_503_is_retried_and_succeeds() -> None:
    def routes(rec: Recorder) -> list[web.RouteDef]:
        async def depth(request: web.Request) -> web.Response:
            n = rec.note(request)
            return web.Response(status=503, text="busy") if n == 1 else web.Response(body=b'{"lastUpdateId":1}')

        return [web.get("/api/v3/depth", depth)]

    async def scenario(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        client = RestClient("https://api.binance.com", session, endpoint=url, config=FAST)
        reply = await client.request("GET", "/api/v3/depth", params={"symbol": "BTCUSDT"}, idempotent=True)
        assert (reply.status, reply.body, reply.attempts) == (200, b'{"lastUpdateId":1}', 2)
        assert (client.counters.retries, client.counters.server_errors) == (1, 1)

    rec = run(routes, scenario)
    assert [(m, p, q) for _, m, p, q in rec.seen] == [("GET", "/api/v3/depth", "symbol=BTCUSDT")] * 2


def test_get_gives_up_after_max_attempts_and_returns_the_last_reply() -> None:
    def routes(rec: Recorder) -> list[web.RouteDef]:
        async def down(request: web.Request) -> web.Response:
            rec.note(request)
            return web.Response(status=502)

        return [web.get("/x", down)]

    async def scenario(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        client = RestClient(url, session, config=FAST)
        reply = await client.request("GET", "/x", idempotent=True)
        assert (reply.status, reply.attempts) == (502, 3)

    assert len(run(routes, scenario).seen) == 3


def test_post_on_503_is_not_retried_and_the_outcome_is_unknown() -> None:
    def routes(rec: Recorder) -> list[web.RouteDef]:
        async def order(request: web.Request) -> web.Response:
            rec.note(request)
            return web.Response(status=503, body=b'{"code":-1007,"msg":"Timeout waiting for response"}')

        return [web.post("/api/v3/order", order)]

    async def scenario(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        client = RestClient(url, session, config=FAST)
        with pytest.raises(OutcomeUnknown) as err:
            await client.request("POST", "/api/v3/order", body="symbol=BTCUSDT", idempotent=False)
        assert (err.value.status, err.value.method, err.value.path) == (503, "POST", "/api/v3/order")
        assert b"-1007" in err.value.body
        assert client.counters.outcome_unknown == 1

    assert len(run(routes, scenario).seen) == 1


def test_post_timeout_raises_outcome_unknown_and_leaks_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    query = f"symbol=BTCUSDT&side=BUY&timestamp=1700000000000&signature={SIGNATURE}"

    def routes(rec: Recorder) -> list[web.RouteDef]:
        async def slow(request: web.Request) -> web.Response:
            rec.note(request)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rec.release.wait(), 3)
            return web.Response(body=b"{}")

        return [web.post("/api/v3/order", slow)]

    async def scenario(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        client = RestClient(url, session, config=FAST)
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown, match=r"POST /api/v3/order: timed out") as err:
            await client.request(
                "POST", "/api/v3/order", params=query, headers={"X-MBX-APIKEY": API_KEY}, idempotent=False
            )
        assert 0.25 < time.monotonic() - started < 1.5
        assert err.value.status is None
        text = str(err.value) + repr(err.value) + repr(client)
        assert SIGNATURE not in text and API_KEY not in text and "timestamp" not in text
        assert client.counters.timeouts == 1

    with caplog.at_level(logging.DEBUG, logger="tradeloop"):
        rec = run(routes, scenario)
    assert len(rec.seen) == 1  # never retried
    assert rec.seen[0][3] == query  # the signed query reached the server byte for byte
    unknown = [r for r in caplog.records if r.getMessage() == "request outcome unknown"]
    assert [r.fields["path"] for r in unknown] == ["/api/v3/order"]  # type: ignore[attr-defined]
    assert all(SIGNATURE not in str(vars(r)) and API_KEY not in str(vars(r)) for r in caplog.records)


def test_get_timeout_is_retried() -> None:
    def routes(rec: Recorder) -> list[web.RouteDef]:
        async def flaky(request: web.Request) -> web.Response:
            if rec.note(request) == 1:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(rec.release.wait(), 3)
            return web.Response(body=b"ok")

        return [web.get("/api/v3/openOrders", flaky)]

    async def scenario(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        client = RestClient(url, session, config=FAST)
        reply = await client.request("GET", "/api/v3/openOrders", idempotent=True)
        assert (reply.status, reply.body, reply.attempts) == (200, b"ok", 2)
        assert client.counters.timeouts == 1

    assert len(run(routes, scenario).seen) == 2


def test_connection_refused() -> None:
    async def scenario() -> None:
        url = f"http://127.0.0.1:{free_port()}"
        async with aiohttp.ClientSession() as session:
            client = RestClient(url, session, config=FAST)
            with pytest.raises(RequestNotSent, match="POST /api/v3/order: could not connect"):
                await client.request("POST", "/api/v3/order", idempotent=False)
            with pytest.raises(RestUnavailable, match="after 3 attempt"):
                await client.request("GET", "/api/v3/time", idempotent=True)
            assert client.counters.connect_errors == 4
            assert client.counters.outcome_unknown == 0

    asyncio.run(scenario())


def test_429_waits_retry_after_and_penalizes_the_budget() -> None:
    budget = RateBudget("binance", "acct", WEIGHT)

    def routes(rec: Recorder) -> list[web.RouteDef]:
        async def limited(request: web.Request) -> web.Response:
            if rec.note(request) == 1:
                return web.Response(status=429, headers={"Retry-After": "0.3"}, body=b'{"code":-1003}')
            return web.Response(body=b"[]")

        async def order(request: web.Request) -> web.Response:
            rec.note(request)
            return web.Response(status=429, headers={"Retry-After": "0.2"})

        return [web.get("/api/v3/ticker", limited), web.post("/api/v3/order", order)]

    async def scenario(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        client = RestClient(url, session, config=FAST, budget=budget)
        reply = await client.request("GET", "/api/v3/ticker", idempotent=True, costs={"REQUEST_WEIGHT": 2})
        assert (reply.status, reply.attempts) == (200, 2)
        assert budget.penalties == 1
        assert client.counters.rate_limited == 1
        # A refused order is returned as is (the venue did not execute it), and everyone sharing the
        # budget now waits out the Retry-After.
        refused = await client.request("POST", "/api/v3/order", idempotent=False, costs={"REQUEST_WEIGHT": 1})
        assert (refused.status, refused.attempts) == (429, 1)
        assert budget.penalties == 2
        assert 0.15 < budget.try_acquire({"REQUEST_WEIGHT": 1}) <= 0.2

    rec = run(routes, scenario)
    assert [p for _, _, p, _ in rec.seen] == ["/api/v3/ticker", "/api/v3/ticker", "/api/v3/order"]
    assert rec.seen[1][0] - rec.seen[0][0] >= 0.3  # waited Retry-After


def test_retry_after_beyond_the_deadline_returns_the_reply() -> None:
    def routes(rec: Recorder) -> list[web.RouteDef]:
        async def banned(request: web.Request) -> web.Response:
            rec.note(request)
            return web.Response(status=418, headers={"Retry-After": "120"})

        return [web.get("/api/v3/account", banned)]

    async def scenario(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        client = RestClient(url, session, config=RestConfig(retry_deadline_s=5, max_attempts=5))
        started = time.monotonic()
        reply = await client.request("GET", "/api/v3/account", idempotent=True)
        assert reply.status == 418 and time.monotonic() - started < 1.0

    assert len(run(routes, scenario).seen) == 1


def test_usage_header_is_read_back_into_the_budget() -> None:
    budget = RateBudget("binance", "acct", WEIGHT)
    hook_saw: list[tuple[int, str | None]] = []

    def routes(rec: Recorder) -> list[web.RouteDef]:
        async def info(request: web.Request) -> web.Response:
            rec.note(request)
            return web.Response(body=b"{}", headers={"X-MBX-USED-WEIGHT-1M": "5990"})

        return [web.get("/api/v3/exchangeInfo", info)]

    async def scenario(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
        client = RestClient(
            url,
            session,
            config=RestConfig(max_budget_wait_s=0.05),
            budget=budget,
            on_response_headers=lambda status, headers: hook_saw.append((status, headers.get("x-mbx-used-weight-1m"))),
        )
        await client.request("GET", "/api/v3/exchangeInfo", idempotent=True, costs={"REQUEST_WEIGHT": 20})
        assert budget.used("REQUEST_WEIGHT") == 5990  # other processes on this IP spent the rest
        with pytest.raises(RateLimited):
            await client.request("GET", "/api/v3/exchangeInfo", idempotent=True, costs={"REQUEST_WEIGHT": 20})

    rec = run(routes, scenario)
    assert len(rec.seen) == 1  # the refused request never left
    assert hook_saw == [(200, "5990")]


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now_s=1445412480.0) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412480.0 + 60) == 0.0
