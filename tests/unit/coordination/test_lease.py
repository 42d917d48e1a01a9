"""The failover lease against the real Redis: mutual exclusion, growing fencing tokens, renewal,
hand-over on expiry, self-fencing of a paused or cut-off holder, release only by the owner."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from tests.services import require_redis, unique_name
from tradeloop.coordination.lease import MAX_TOKEN, FailoverLease, LeaseError, describe_redis_url, lease_keys

T = TypeVar("T")


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key namespace of this test; every key under it is deleted afterwards."""
    name = unique_name("tltest_lease")
    yield name

    async def cleanup() -> None:
        client = aioredis.Redis.from_url(redis_url)
        keys = [k async for k in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    asyncio.run(cleanup())


def run(fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await fn()

    return asyncio.run(main())


@contextlib.asynccontextmanager
async def leases(url: str, prefix: str, count: int, **kw: Any) -> AsyncIterator[list[FailoverLease]]:
    out = [FailoverLease(url, "pair", f"node-{i}", key_prefix=prefix, **kw) for i in range(count)]
    try:
        yield out
    finally:
        for lease in out:
            await lease.close()


class StallingProxy:
    """A TCP proxy to Redis that can stop forwarding (connections stay open, requests hang):
    the holder's view of a network partition."""

    def __init__(self, upstream: str) -> None:
        parts = upstream.split("://", 1)[1].split("/", 1)[0]
        host, _, port = parts.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port or 6379)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self.tasks.add(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        dst.close()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_concurrent_acquirers_exclude_each_other_and_tokens_only_grow(redis_url: str, prefix: str) -> None:
    async def scenario() -> list[int]:
        tokens: list[int] = []
        async with leases(redis_url, prefix, 8) as group:
            for _ in range(10):
                got = await asyncio.gather(*(lease.try_acquire() for lease in group))
                winners = [(lease, t) for lease, t in zip(group, got, strict=True) if t is not None]
                assert len(winners) == 1, f"{len(winners)} nodes hold the lease at once"
                lease, token = winners[0]
                assert lease.valid_now() and lease.token == token
                assert await group[0].holder() == (lease.node_id, token)
                assert [other.valid_now() for other in group if other is not lease] == [False] * 7
                tokens.append(token)
                assert await lease.release()
                assert not lease.valid_now()
        return tokens

    tokens = run(scenario)
    assert all(b > a for a, b in itertools.pairwise(tokens)), tokens
    assert tokens[0] >= 1


def test_renewals_keep_the_lease_past_several_ttls(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with leases(redis_url, prefix, 2, ttl_ms=300, renew_every_ms=50) as (a, b):
            token = await a.try_acquire()
            assert token is not None
            lost: list[str] = []
            renewing = asyncio.create_task(a.run_renewals(lost.append))
            deadline = time.monotonic() + 1.2  # four TTLs
            while time.monotonic() < deadline:
                assert a.valid_now()
                assert await b.try_acquire() is None
                await asyncio.sleep(0.02)
            assert await a.release()
            assert await renewing == "" and lost == []  # a release is not a loss
            newer = await b.try_acquire()
            assert newer is not None and newer > token

    run(scenario)


def test_a_paused_holder_lapses_before_anyone_can_take_over(redis_url: str, prefix: str) -> None:
    """No renewals (the holder hangs): its own view ends ``safety_margin`` before the key expires,
    and the other node gets the lease (with a higher token) only after that."""

    async def scenario() -> tuple[float, float, int, int]:
        async with leases(redis_url, prefix, 2, ttl_ms=400, renew_every_ms=100, safety_margin_ms=100) as (a, b):
            first = await a.try_acquire()
            assert first is not None
            lapsed_at: float | None = None
            started = time.monotonic()
            while True:
                if lapsed_at is None and not a.valid_now():
                    lapsed_at = time.monotonic()
                got = await b.try_acquire()
                if got is not None:
                    taken_at = time.monotonic()
                    break
                assert time.monotonic() - started < 3, "the lease never expired"
                await asyncio.sleep(0.005)
            assert lapsed_at is not None, "the other node took over while the holder still believed it held the lease"
            assert not a.valid_now()
            assert not await a.renew()  # too late: it stays lost
            assert "validity ended" in a.lost_reason
            return lapsed_at - started, taken_at - started, first, got

    lapsed, taken, first, second = run(scenario)
    assert lapsed < taken
    assert second > first
    assert lapsed >= 0.25  # ttl - margin after the acquire was sent, on the monotonic clock
    assert taken >= 0.35  # the key's own TTL


def test_release_deletes_only_the_owners_key(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        async with leases(redis_url, prefix, 2, ttl_ms=200, renew_every_ms=50) as (a, b):
            assert not await b.release()  # never held: nothing to release
            assert await a.try_acquire() is not None
            await asyncio.sleep(0.25)  # a lapses and the key expires
            token_b = await b.try_acquire()
            assert token_b is not None
            # a still thinks it held something (no renewal ran); its release must not delete b's key.
            assert a.held and not a.valid_now()
            assert not await a.release()
            assert await b.holder() == ("node-1", token_b)
            assert b.valid_now()

    run(scenario)


def test_a_stale_holding_of_the_same_node_cannot_renew_the_new_one(redis_url: str, prefix: str) -> None:
    """The key holds node id *and* token: an old incarnation with a frozen clock (it believes it is
    still valid) finds the value changed and reports the loss."""

    async def scenario() -> None:
        frozen = time.monotonic_ns()
        old = FailoverLease(redis_url, "pair", "n1", ttl_ms=200, renew_every_ms=50, key_prefix=prefix,
                            clock_ns=lambda: frozen)  # fmt: skip
        new = FailoverLease(redis_url, "pair", "n1", ttl_ms=200, renew_every_ms=50, key_prefix=prefix)
        try:
            first = await old.try_acquire()
            await asyncio.sleep(0.25)
            second = await new.try_acquire()
            assert first is not None and second is not None and second > first
            assert old.valid_now()  # by its own (frozen) clock
            assert not await old.renew()
            assert "no longer holds this node's value" in old.lost_reason and not old.valid_now()
            assert await new.holder() == ("n1", second)
        finally:
            await old.close()
            await new.close()

    run(scenario)


def test_a_holder_cut_off_from_redis_calls_on_lost_before_the_key_expires(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        proxy = StallingProxy(redis_url)
        via_proxy = await proxy.start()
        a = FailoverLease(via_proxy, "pair", "a", ttl_ms=600, renew_every_ms=100, safety_margin_ms=150,
                          key_prefix=prefix)  # fmt: skip
        direct = aioredis.Redis.from_url(redis_url)
        holder_key, _ = lease_keys(prefix, "pair")
        try:
            assert await a.try_acquire() is not None
            lost: list[str] = []
            renewing = asyncio.create_task(a.run_renewals(lost.append))
            await asyncio.sleep(0.3)
            assert a.valid_now() and not renewing.done()
            proxy.flowing.clear()  # partition: requests hang from now on
            cut_at = time.monotonic()
            reason = await asyncio.wait_for(renewing, 2)
            detected = time.monotonic() - cut_at
            # At this instant nobody else can hold it yet: the key still has TTL left.
            assert await direct.pttl(holder_key) > 0, "the key had already expired when the holder noticed"
            assert reason and lost == [reason]
            assert not a.valid_now()
            assert detected < 0.9  # about ttl - margin after the last successful renewal
        finally:
            proxy.flowing.set()
            await a.close()
            await direct.aclose()
            await proxy.stop()

    run(scenario)


def test_acquire_wait_returns_when_the_holder_goes_and_retries_through_an_unreachable_redis(
    redis_url: str, prefix: str
) -> None:
    async def scenario() -> None:
        async with leases(redis_url, prefix, 2, ttl_ms=300, renew_every_ms=50, poll_ms=20) as (a, b):
            assert await a.try_acquire() is not None
            waiting = asyncio.create_task(b.acquire_wait())
            await asyncio.sleep(0.1)
            assert not waiting.done()
            assert await a.release()
            token = await asyncio.wait_for(waiting, 1)
            assert b.valid_now() and b.token == token
        nowhere = FailoverLease("redis://:hunter2secret@127.0.0.1:9/0", "pair", "c", key_prefix=prefix, poll_ms=20)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(nowhere.acquire_wait(), 0.3)
            assert "hunter2secret" not in repr(nowhere) and nowhere.where == "redis://127.0.0.1:9/0"
        finally:
            await nowhere.close()

    run(scenario)


def test_an_exhausted_fence_counter_refuses_and_leaves_the_lease_free(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        direct = aioredis.Redis.from_url(redis_url)
        holder_key, fence_key = lease_keys(prefix, "pair")
        try:
            await direct.set(fence_key, MAX_TOKEN)
            async with leases(redis_url, prefix, 1) as (a,):
                with pytest.raises(LeaseError, match="exceeds"):
                    await a.try_acquire()
                assert not a.valid_now() and await direct.exists(holder_key) == 0
        finally:
            await direct.aclose()

    run(scenario)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "has space"}, "lease name"),
        ({"name": ""}, "lease name"),
        ({"node_id": "a/b"}, "node id"),
        ({"ttl_ms": 0}, "ttl_ms"),
        ({"ttl_ms": 1000, "safety_margin_ms": 1000}, "safety_margin_ms"),
        ({"ttl_ms": 1000, "renew_every_ms": 750}, "renew_every_ms"),
        ({"poll_ms": 0}, "poll_ms"),
        ({"redis_url": "http://user:pw12345678@host/0"}, "not a Redis URL"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"redis_url": "redis://127.0.0.1:6379/0", "name": "pair", "node_id": "n1", **kwargs}
    with pytest.raises(LeaseError, match=match) as info:
        FailoverLease(args.pop("redis_url"), args.pop("name"), args.pop("node_id"), **args)
    assert "pw12345678" not in str(info.value)


def test_describe_redis_url_drops_credentials() -> None:
    assert describe_redis_url("redis://user:secretpw@10.0.0.1:6380/2") == "redis://10.0.0.1:6380/2"
    assert describe_redis_url("redis://127.0.0.1") == "redis://127.0.0.1:6379/0"
