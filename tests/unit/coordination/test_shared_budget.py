"""Shared rate budgets against a real Redis: the synchronous RateBudget API on reserved capacity, shared
by several factories (as several processes would be), penalties, syncs, expiry and outages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.services import require_redis, unique_name
from tests.unit.coordination.redis_helpers import TcpProxy, closed_port_url, delete_prefix
from tradeloop.coordination.shared_budget import (
    ReservationPolicy,
    SharedBudgetFactory,
    SharedBudgetUnavailable,
    SharedRateBudget,
    rate_limit_specs,
)
from tradeloop.security.credentials import Credentials
from tradeloop.venues.simulator.server import max_in_window
from tradeloop.venues.transport.ratelimit import (
    RateBudget,
    RateLimited,
    RateLimitScope,
    RateLimitSpec,
    acquire,
)

FP = "0123456789ab"
ORDERS = RateLimitSpec(name="orders", limit=20, window_s=0.5)
POLICY = ReservationPolicy(validity_s=0.1, margin_s=0.0)


def run(body: Callable[[str, str], Awaitable[Any]]) -> Any:
    url = require_redis()
    prefix = unique_name("tlsb")

    async def main() -> Any:
        try:
            return await body(url, prefix)
        finally:
            await delete_prefix(url, prefix)

    return asyncio.run(main())


async def factories(url: str, prefix: str, n: int, policy: ReservationPolicy = POLICY) -> list[SharedBudgetFactory]:
    out = [SharedBudgetFactory(url, prefix, ip_scope="host-a", policy=policy) for _ in range(n)]
    for f in out:
        await f.start()
    return out


async def hammer(budget: RateBudget, count: int, costs: dict[str, int], stamps: list[float]) -> None:
    for _ in range(count):
        await acquire(budget, costs)
        stamps.append(time.monotonic())


def test_the_synchronous_call_answers_a_wait_until_capacity_is_reserved_then_admits() -> None:
    async def body(url: str, prefix: str) -> None:
        (factory,) = await factories(url, prefix, 1)
        budget = factory.budget("okx", FP, [ORDERS])
        try:
            wait = budget.try_acquire_ns({"orders": 1})
            assert 0 < wait <= 1_000_000  # nothing held yet: a poll wait, a reservation is on its way
            assert budget.held("orders") == 0
            # Retry from a timer, as WebSocket order entry does: never awaiting inside the call.
            loop = asyncio.get_running_loop()
            admitted = loop.create_future()

            def retry() -> None:
                w = budget.try_acquire_ns({"orders": 1})
                if w:
                    loop.call_later(w / 1e9, retry)
                else:
                    admitted.set_result(True)

            loop.call_later(wait / 1e9, retry)
            assert await asyncio.wait_for(admitted, 2.0)
            assert budget.admitted == 1 and budget.reservations >= 1
            assert await budget.shared_used("orders") == budget.held("orders") + 1
        finally:
            await factory.aclose()

    run(body)


def test_two_processes_never_exceed_the_limit_together_and_share_it_fully() -> None:
    async def body(url: str, prefix: str) -> None:
        fa, fb = await factories(url, prefix, 2)
        a, b = fa.budget("okx", FP, [ORDERS]), fb.budget("okx", FP, [ORDERS])
        stamps: list[float] = []
        try:
            await asyncio.gather(*(hammer(x, 20, {"orders": 1}, stamps) for x in (a, b, a, b)))
        finally:
            await fa.aclose()
            await fb.aclose()
        assert len(stamps) == 80
        assert max_in_window(stamps, ORDERS.window_s) <= ORDERS.limit
        # Both were served, and together they used the whole limit in the first window.
        assert a.admitted == b.admitted == 40
        assert max_in_window(stamps, ORDERS.window_s) == ORDERS.limit

    run(body)


def test_without_sharing_the_same_load_exceeds_the_limit() -> None:
    async def body() -> None:
        a, b = RateBudget("okx", FP, [ORDERS]), RateBudget("okx", FP, [ORDERS])
        stamps: list[float] = []
        await asyncio.gather(hammer(a, 20, {"orders": 1}, stamps), hammer(b, 20, {"orders": 1}, stamps))
        assert max_in_window(stamps, ORDERS.window_s) == 2 * ORDERS.limit

    asyncio.run(body())


def test_an_idle_process_gives_its_reservation_back() -> None:
    async def body(url: str, prefix: str) -> None:
        policy = ReservationPolicy(validity_s=0.1, margin_s=0.0, max_share=0.5)
        fa, fb = await factories(url, prefix, 2, policy)
        spec = RateLimitSpec(name="orders", limit=20, window_s=30.0)
        a, b = fa.budget("okx", FP, [spec]), fb.budget("okx", FP, [spec])
        try:
            await acquire(a, {"orders": 1})
            await asyncio.sleep(0.05)  # let the prefetch land
            held = a.held("orders")
            assert held >= 1
            assert await a.shared_used("orders") == 1 + held
            await asyncio.sleep(0.25)  # past the validity: the unspent part went back
            assert a.held("orders") == 0
            assert await a.shared_used("orders") == 1
            assert a.returned >= held
            # The other process gets everything else of the window.
            for _ in range(19):
                await acquire(b, {"orders": 1}, max_wait_s=2.0)
            assert b.try_acquire_ns({"orders": 1}) > 0
        finally:
            await fa.aclose()
            await fb.aclose()

    run(body)


def test_a_penalty_in_one_process_blocks_the_others() -> None:
    async def body(url: str, prefix: str) -> None:
        fa, fb = await factories(url, prefix, 2)
        a, b = fa.budget("okx", FP, [ORDERS]), fb.budget("okx", FP, [ORDERS])
        try:
            await acquire(b, {"orders": 1})
            a.penalize(0.5)
            assert a.try_acquire_ns({"orders": 1}) >= 400_000_000
            deadline = time.monotonic() + 2.0
            while b.remote_penalties == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            assert b.remote_penalties == 1
            assert b.try_acquire_ns({"orders": 1}) >= 300_000_000
            # A process that missed the announcement is refused by Redis itself.
            (fc,) = await factories(url, prefix, 1)
            c = fc.budget("okx", FP, [ORDERS])
            c.try_acquire_ns({"orders": 1})
            await asyncio.sleep(0.05)
            assert c.refusals >= 1 and c.held("orders") == 0
            await fc.aclose()
            waited = await acquire(b, {"orders": 1}, max_wait_s=2.0)
            assert waited > 0.2
        finally:
            await fa.aclose()
            await fb.aclose()

    run(body)


def test_a_venue_usage_header_counts_for_every_process() -> None:
    async def body(url: str, prefix: str) -> None:
        fa, fb = await factories(url, prefix, 2)
        spec = RateLimitSpec(name="weight", limit=100, window_s=30.0, usage_header="X-Used")
        a, b = fa.budget("binance", FP, [spec]), fb.budget("binance", FP, [spec])
        try:
            assert a.sync_from_headers({"x-used": "95"}) == ["weight"]
            await acquire(a, {"weight": 1})  # the task syncs before it reserves
            assert await a.shared_used("weight") >= 96
            await acquire(b, {"weight": 4}, max_wait_s=1.0)
            assert await b.shared_used("weight") == 100
            with pytest.raises(RateLimited):
                await acquire(b, {"weight": 1}, max_wait_s=0.3)
            a.sync_used("weight", 10)  # lower than the shared count: no effect
            await asyncio.sleep(0.05)
            assert await a.shared_used("weight") == 100
        finally:
            await fa.aclose()
            await fb.aclose()

    run(body)


def test_ip_windows_are_shared_across_accounts_account_windows_are_not() -> None:
    async def body(url: str, prefix: str) -> None:
        ip = RateLimitSpec(name="weight", limit=10, window_s=30.0, scope=RateLimitScope.IP)
        acct = RateLimitSpec(name="orders", limit=5, window_s=30.0)
        fa, fb = await factories(url, prefix, 2)
        a = fa.budget("binance", "aaaaaaaaaaaa", [ip, acct])
        b = fb.budget("binance", "bbbbbbbbbbbb", [ip, acct])
        try:
            for _ in range(5):
                await acquire(a, {"orders": 1, "weight": 1}, max_wait_s=1.0)
            for _ in range(5):  # another account: its own order window, the same IP weight
                await acquire(b, {"orders": 1, "weight": 1}, max_wait_s=1.0)
            with pytest.raises(RateLimited):
                await acquire(b, {"weight": 1}, max_wait_s=0.3)
            await a.aclose()  # gives back what it held
            assert await b.shared_used("weight") == 10
        finally:
            await fa.aclose()
            await fb.aclose()

    run(body)


def test_closing_gives_back_what_was_held() -> None:
    async def body(url: str, prefix: str) -> None:
        (factory,) = await factories(url, prefix, 1, ReservationPolicy(validity_s=5.0, max_share=0.5))
        spec = RateLimitSpec(name="orders", limit=40, window_s=30.0)
        budget = factory.budget("okx", FP, [spec])
        for _ in range(3):
            await acquire(budget, {"orders": 1})
        await asyncio.sleep(0.05)
        assert budget.held("orders") > 0
        await factory.aclose()
        reader = SharedBudgetFactory(url, factory.prefix, ip_scope="host-a")
        other = reader.budget("okx", FP, [spec])
        assert await other.shared_used("orders") == 3
        await reader.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            budget.try_acquire_ns({"orders": 1})

    run(body)


def test_an_unreachable_redis_fails_closed_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    async def body(url: str, prefix: str, caplog: pytest.LogCaptureFixture) -> None:
        with pytest.raises(SharedBudgetUnavailable, match="did not answer"):
            await SharedBudgetFactory(closed_port_url(), prefix).start(timeout_s=1.0)
        proxy = TcpProxy(url)
        await proxy.start()
        factory = SharedBudgetFactory(proxy.url, prefix, ip_scope="h", policy=POLICY)
        await factory.start()
        budget = factory.budget("okx", FP, [ORDERS])
        try:
            await acquire(budget, {"orders": 1})
            await proxy.stop()
            await asyncio.sleep(0.15)  # held grants expire (validity 0.1 s)
            with pytest.raises(RateLimited):
                await acquire(budget, {"orders": 1}, max_wait_s=0.5)
            assert budget.outages == 1
            warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
            assert len(warnings) == 1  # said once, not once per attempt
            await proxy.start()
            assert await acquire(budget, {"orders": 1}, max_wait_s=3.0) >= 0
            assert any("Redis answers again" in r.getMessage() for r in caplog.records)
        finally:
            await factory.aclose()
            await proxy.stop()

    with caplog.at_level(logging.INFO, logger="tradeloop.coordination"):
        run(lambda url, prefix: body(url, prefix, caplog))


def test_bad_input_is_refused_and_changes_nothing() -> None:
    async def body(url: str, prefix: str) -> None:
        (factory,) = await factories(url, prefix, 1)
        budget = factory.budget("okx", FP, [ORDERS])
        try:
            with pytest.raises(ValueError, match="no rate limit window"):
                budget.try_acquire_ns({"nope": 1})
            with pytest.raises(ValueError, match="negative cost"):
                budget.try_acquire_ns({"orders": -1})
            with pytest.raises(ValueError, match="exceeds its whole limit"):
                budget.try_acquire_ns({"orders": 21})
            with pytest.raises(ValueError, match="no rate limit window"):
                budget.sync_used("nope", 3)
            assert budget.waits == 0 and budget.admitted == 0
            assert await budget.shared_used("orders") == 0
            with pytest.raises(ValueError, match="different specs"):
                factory.budget("okx", FP, [RateLimitSpec(name="orders", limit=21, window_s=0.5)])
            assert factory.budget("okx", FP, [ORDERS]) is budget
        finally:
            await factory.aclose()

    run(body)


def test_accounts_are_named_by_fingerprint_never_by_a_key() -> None:
    url = require_redis()
    factory = SharedBudgetFactory(url, unique_name("tlsb"), ip_scope="h")
    secret_key = "tlSimOkxKey0000000000000000"
    with pytest.raises(ValueError, match="fingerprint") as info:
        factory.budget("okx", secret_key, [ORDERS])
    assert secret_key not in str(info.value)
    creds = Credentials("okx", "main", secret_key, "tlSimOkxSecret000000000000000", "tlSimOkxPass00")
    budget = factory.for_venue("okx", creds)
    assert budget.account == creds.fingerprint
    assert all(secret_key not in k.log for k in budget._keys.values())
    assert {s.name for s in budget.specs} == {s.name for s in rate_limit_specs("okx")}
    with pytest.raises(ValueError, match="no rate limits known"):
        rate_limit_specs("nasdaq")
    for venue in ("binance", "binance_usdm", "bybit", "bybit_linear", "kraken", "coinbase"):
        assert rate_limit_specs(venue)
    with pytest.raises(ValueError, match="Redis URL"):
        SharedBudgetFactory("http://127.0.0.1:6379", "p")
    with pytest.raises(ValueError, match="validity_s"):
        ReservationPolicy(validity_s=0)
    asyncio.run(factory.aclose())


def test_a_budget_needs_a_running_loop() -> None:
    url = require_redis()
    factory = SharedBudgetFactory(url, unique_name("tlsb"), ip_scope="h")
    budget: SharedRateBudget = factory.budget("okx", FP, [ORDERS])
    with pytest.raises(RuntimeError, match="running event loop"):
        budget.try_acquire_ns({"orders": 1})
    asyncio.run(factory.aclose())
