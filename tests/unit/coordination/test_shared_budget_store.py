"""The Lua side of shared rate budgets, against a real Redis: grants, windows, settling, sync, penalties."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.services import require_redis, unique_name
from tests.unit.coordination.redis_helpers import delete_prefix
from tradeloop.coordination.budget_store import BudgetStore, GrantSettlement, WindowAsk, decode_notice
from tradeloop.coordination.redis_keys import WindowKeys, penalty_channel, window_keys

Body = Callable[[BudgetStore, str, str], Awaitable[Any]]


def run(body: Body) -> Any:
    """Run ``body(store, prefix, url)`` on a fresh prefix, deleting its keys afterwards."""
    url = require_redis()
    prefix = unique_name("tlrl")

    async def main() -> Any:
        client = Redis.from_url(url)
        try:
            return await body(BudgetStore(client, penalty_channel(prefix)), prefix, url)
        finally:
            await client.aclose()
            await delete_prefix(url, prefix)

    return asyncio.run(main())


def keys(prefix: str, window: str = "orders", account: str = "0123456789ab") -> WindowKeys:
    return window_keys(prefix, "okx", "account", account, window)


def ask(wk: WindowKeys, *, limit: int = 10, window_s: float = 60.0, need: int = 1, want: int = 1) -> WindowAsk:
    return WindowAsk(wk, limit, round(window_s * 1_000_000), need, want)


def test_grants_up_to_the_limit_then_refuses_with_the_wait_until_the_oldest_grant_leaves() -> None:
    async def body(store: BudgetStore, prefix: str, _: str) -> None:
        wk = keys(prefix)
        first = await store.reserve("g1", 100_000, [ask(wk, need=4, want=4, window_s=2.0)])
        second = await store.reserve("g2", 100_000, [ask(wk, need=1, want=50, window_s=2.0)])
        assert first.ok and first.granted == (4,)
        assert second.ok and second.granted == (6,)  # partial: only the room left, at least its need
        refused = await store.reserve("g3", 100_000, [ask(wk, need=1, want=1, window_s=2.0)])
        assert not refused.ok and refused.granted == ()
        # g1 is still being spent: ask again 1 ms after its deadline, when its owner may give some back.
        assert refused.wait_us == first.server_us + 100_000 + 1_000 - refused.server_us
        await asyncio.sleep(0.15)  # past the deadlines of g1 and g2
        # Nobody gave anything back: g1 counts until its deadline plus the window.
        later = await store.reserve("g4", 100_000, [ask(wk, need=1, want=1, window_s=2.0)])
        assert not later.ok
        assert later.wait_us == first.server_us + 100_000 + 2_000_000 - later.server_us
        assert await store.used(wk, 2_000_000) == 10

    run(body)


def test_a_need_larger_than_the_room_gets_nothing() -> None:
    async def body(store: BudgetStore, prefix: str, _: str) -> None:
        wk = keys(prefix)
        assert (await store.reserve("a", 1000, [ask(wk, need=7, want=7)])).granted == (7,)
        await asyncio.sleep(0.002)  # past the grant's deadline (validity 1 ms)
        refused = await store.reserve("b", 1000, [ask(wk, need=4, want=4)])
        assert not refused.ok
        assert refused.wait_us > 59_000_000  # the whole minute window, nearly
        assert await store.used(wk, 60_000_000) == 7

    run(body)


def test_windows_of_one_reservation_are_granted_all_or_nothing() -> None:
    async def body(store: BudgetStore, prefix: str, _: str) -> None:
        small, big = keys(prefix, "small"), keys(prefix, "big")
        await store.reserve("fill", 1000, [ask(small, limit=2, need=2, want=2)])
        refused = await store.reserve("both", 1000, [ask(small, limit=2), ask(big, limit=100, need=5, want=5)])
        assert not refused.ok
        assert await store.used(big, 60_000_000) == 0  # nothing taken from the window that had room
        prefetch = await store.reserve("pre", 1000, [ask(small, limit=2, need=0, want=3), ask(big, limit=100)])
        assert prefetch.ok and prefetch.granted == (0, 1)  # a window with need 0 may get nothing

    run(body)


def test_capacity_comes_back_when_the_window_has_passed() -> None:
    async def body(store: BudgetStore, prefix: str, _: str) -> None:
        wk = keys(prefix)
        window_us, validity_us = 150_000, 20_000
        granted = await store.reserve("a", validity_us, [ask(wk, limit=3, window_s=0.15, need=3, want=3)])
        refused = await store.reserve("b", validity_us, [ask(wk, limit=3, window_s=0.15)])
        assert granted.ok and not refused.ok
        again = refused
        for _ in range(10):
            await asyncio.sleep((again.wait_us + 2_000) / 1e6)
            again = await store.reserve("c", validity_us, [ask(wk, limit=3, window_s=0.15, need=3, want=3)])
            if again.ok:
                break
        assert again.ok and again.granted == (3,)
        assert again.server_us >= granted.server_us + validity_us + window_us
        assert await store.used(wk, window_us) == 3

    run(body)


def test_settling_gives_back_the_unspent_part_and_ends_the_spent_part_now() -> None:
    async def body(store: BudgetStore, prefix: str, _: str) -> None:
        wk = keys(prefix)
        client: Redis = store.client
        granted = await store.reserve("g", 10_000_000, [ask(wk, need=8, want=8)])
        score_before = await client.zscore(wk.log, "g:8")
        freed = await store.settle([GrantSettlement(wk, 60_000_000, "g:8", 3)])
        assert freed == 5
        assert await store.used(wk, 60_000_000) == 3
        assert await client.zscore(wk.log, "g:8") is None
        score_after = await client.zscore(wk.log, "g:3")
        assert score_before is not None and score_after is not None
        assert granted.server_us <= score_after < score_before  # ended now, not at the deadline
        # Settling again (a retry after a lost reply) changes nothing; a vanished grant neither.
        assert await store.settle([GrantSettlement(wk, 60_000_000, "g:8", 3)]) == 0
        assert await store.settle([GrantSettlement(wk, 60_000_000, "gone:4", 0)]) == 0
        # Fully unspent: the grant disappears.
        await store.reserve("h", 1000, [ask(wk, need=2, want=2)])
        assert await store.settle([GrantSettlement(wk, 60_000_000, "h:2", 0)]) == 2
        assert await store.used(wk, 60_000_000) == 3
        # Spent can never exceed what was granted.
        await store.reserve("k", 1000, [ask(wk, need=1, want=1)])
        assert await store.settle([GrantSettlement(wk, 60_000_000, "k:1", 99)]) == 0
        assert await store.used(wk, 60_000_000) == 4

    run(body)


def test_sync_raises_the_count_and_never_lowers_it() -> None:
    async def body(store: BudgetStore, prefix: str, _: str) -> None:
        wk = keys(prefix)
        await store.reserve("g", 1000, [ask(wk, need=3, want=3)])
        assert await store.sync_used(wk, 60_000_000, 7, "s1") == 7
        assert await store.sync_used(wk, 60_000_000, 2, "s2") == 7
        refused = await store.reserve("x", 1000, [ask(wk, need=4, want=4)])
        assert not refused.ok
        assert (await store.reserve("y", 1000, [ask(wk, need=3, want=3)])).granted == (3,)

    run(body)


def test_penalize_blocks_every_window_for_the_duration_and_announces_it() -> None:
    async def body(store: BudgetStore, prefix: str, url: str) -> None:
        a, b = keys(prefix, "a"), keys(prefix, "b")
        listener = Redis.from_url(url)
        pubsub = listener.pubsub()
        await pubsub.subscribe(store.channel)
        try:
            until = await store.penalize([(a, 60_000_000), (b, 60_000_000)], 300_000, "proc-1")
            refused = await store.reserve("g", 1000, [ask(b)])
            assert not refused.ok
            assert 0 < refused.wait_us <= 300_000
            assert until - refused.server_us == refused.wait_us
            message = None
            deadline = time.monotonic() + 2
            while message is None and time.monotonic() < deadline:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            assert message is not None
            notice = decode_notice(message["data"])
            assert notice is not None
            assert notice.keys == [a.log, b.log] and notice.for_us == 300_000 and notice.origin == "proc-1"
            # A shorter penalty later never shortens the block.
            await store.penalize([(a, 60_000_000)], 1_000, "proc-2")
            assert not (await store.reserve("h", 1000, [ask(a)])).ok
            await asyncio.sleep(0.35)
            assert (await store.reserve("i", 1000, [ask(a)])).ok
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await listener.aclose()

    run(body)


def test_concurrent_clients_never_get_more_than_the_limit_together() -> None:
    async def body(store: BudgetStore, prefix: str, url: str) -> None:
        wk = keys(prefix)
        limit = 25
        clients = [Redis.from_url(url) for _ in range(8)]
        stores = [BudgetStore(c, store.channel) for c in clients]
        try:

            async def grab(s: BudgetStore, n: int) -> int:
                got = 0
                for i in range(n):
                    result = await s.reserve(f"{id(s)}.{i}", 1_000_000, [ask(wk, limit=limit, need=1, want=3)])
                    got += sum(result.granted)
                return got

            totals = await asyncio.gather(*(grab(s, 20) for s in stores))
        finally:
            for c in clients:
                await c.aclose()
        assert sum(totals) == limit  # every unit granted once, none more, under 160 racing reservations
        assert await store.used(wk, 60_000_000) == limit

    run(body)


def test_keys_expire_once_nothing_counts() -> None:
    async def body(store: BudgetStore, prefix: str, _: str) -> None:
        wk = keys(prefix)
        await store.reserve("g", 50_000, [ask(wk, window_s=0.2)])
        client: Redis = store.client
        for key in (wk.log, wk.meta):
            ttl = await client.pttl(key)
            assert 0 < ttl <= 1000 + 250 + 10  # window + validity + 1 s slack
        await store.penalize([(wk, 200_000)], 5_000_000, "p")
        assert await client.pttl(wk.meta) > 5000  # a block outlives the window

    run(body)


def test_bad_requests_are_refused_before_reaching_redis() -> None:
    async def body(store: BudgetStore, prefix: str, _: str) -> None:
        wk = keys(prefix)
        with pytest.raises(ValueError, match="at least one window"):
            await store.reserve("g", 1000, [])
        with pytest.raises(ValueError, match="need 11 outside"):
            await store.reserve("g", 1000, [ask(wk, need=11, want=11)])
        assert await store.used(wk, 60_000_000) == 0

    run(body)


def test_key_names_are_checked() -> None:
    with pytest.raises(ValueError, match="prefix"):
        window_keys("bad prefix", "okx", "account", "0123456789ab", "w")
    with pytest.raises(ValueError, match="venue"):
        window_keys("p", "ok{x}", "account", "0123456789ab", "w")
    with pytest.raises(ValueError, match="scope"):
        window_keys("p", "okx", "user", "0123456789ab", "w")
    with pytest.raises(ValueError, match="window name"):
        window_keys("p", "okx", "ip", "host", "has space")
    wk = window_keys("p:q", "okx", "ip", "::1", "/api/v5/trade/order")
    assert wk.log == "p:q:rl:{okx}:ip:::1:/api/v5/trade/order" and wk.meta == wk.log + ":m"
    assert decode_notice(b"not json") is None
    assert decode_notice(b'{"keys": "x"}') is None
