"""Rate budgets on an injected clock: admission, waits, usage headers, penalties, shared IP windows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.venues.transport.ratelimit import (
    RateBudget,
    RateBudgetRegistry,
    RateLimited,
    RateLimitScope,
    RateLimitSpec,
    UsageHeaderKind,
    acquire,
)

S = 1_000_000_000

BINANCE_SPOT = [
    RateLimitSpec(
        name="REQUEST_WEIGHT", limit=6000, window_s=60, scope=RateLimitScope.IP, usage_header="X-MBX-USED-WEIGHT-1M"
    ),
    RateLimitSpec(name="ORDERS_10S", limit=100, window_s=10, usage_header="X-MBX-ORDER-COUNT-10S"),
    RateLimitSpec(name="ORDERS_1D", limit=200_000, window_s=86_400, usage_header="X-MBX-ORDER-COUNT-1D"),
]
ORDER = {"REQUEST_WEIGHT": 1, "ORDERS_10S": 1, "ORDERS_1D": 1}


class FakeClock:
    def __init__(self, start_ns: int = 1_000 * S) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * S)


def test_orders_window_admits_its_limit_then_waits_for_the_oldest_to_expire() -> None:
    clock = FakeClock()
    budget = RateBudget("binance", "acct", BINANCE_SPOT, clock)
    start = clock.now
    for i in range(100):
        assert budget.try_acquire(ORDER) == 0.0, i
        clock.advance(0.05)  # 100 orders over 5 s
    # The 101st must wait until the first order (at `start`) is 10 s old.
    wait = budget.try_acquire(ORDER)
    assert wait == pytest.approx((start + 10 * S - clock.now) / S)
    assert budget.used("ORDERS_10S") == 100  # the refused request consumed nothing
    assert budget.used("REQUEST_WEIGHT") == 100
    clock.advance(wait)
    assert budget.try_acquire(ORDER) == 0.0
    assert budget.used("ORDERS_10S") == 100  # the first one left the window, the new one entered
    assert budget.used("ORDERS_1D") == 101
    assert (budget.admitted, budget.waits) == (101, 1)


def test_a_heavy_request_waits_until_enough_weight_has_expired() -> None:
    clock = FakeClock()
    budget = RateBudget("binance", "acct", BINANCE_SPOT, clock)
    assert budget.try_acquire({"REQUEST_WEIGHT": 2500}) == 0.0  # t = 0
    clock.advance(20)
    assert budget.try_acquire({"REQUEST_WEIGHT": 2500}) == 0.0  # t = 20
    clock.advance(20)
    # At t = 40 a depth snapshot of weight 1500 would make 6500: it fits only when the t=0 entry expires (t=60).
    assert budget.try_acquire({"REQUEST_WEIGHT": 1500}) == pytest.approx(20.0)
    assert budget.try_acquire({"REQUEST_WEIGHT": 1000}) == 0.0  # 6000 exactly is allowed
    assert budget.remaining("REQUEST_WEIGHT") == 0


def test_usage_headers_raise_our_count_but_never_lower_it() -> None:
    clock = FakeClock()
    budget = RateBudget("binance", "acct", BINANCE_SPOT, clock)
    budget.try_acquire({"REQUEST_WEIGHT": 20})
    synced = budget.sync_from_headers({"x-mbx-used-weight-1m": "5990", "X-MBX-ORDER-COUNT-10S": "oops"})
    assert synced == ["REQUEST_WEIGHT"]  # the malformed order count is ignored
    assert budget.used("REQUEST_WEIGHT") == 5990
    assert budget.try_acquire({"REQUEST_WEIGHT": 20}) > 0  # another process spent the budget
    budget.sync_used("REQUEST_WEIGHT", 100)  # an older, lower count: ignored
    assert budget.used("REQUEST_WEIGHT") == 5990
    clock.advance(60)
    assert budget.used("REQUEST_WEIGHT") == 0
    assert budget.try_acquire({"REQUEST_WEIGHT": 20}) == 0.0


def test_headers_are_read_only_for_the_windows_named() -> None:
    clock = FakeClock()
    budget = RateBudget("binance", "acct", BINANCE_SPOT, clock)
    headers = {"X-MBX-USED-WEIGHT-1M": "50", "X-MBX-ORDER-COUNT-10S": "7"}
    assert budget.sync_from_headers(headers, ["REQUEST_WEIGHT"]) == ["REQUEST_WEIGHT"]
    assert budget.used("ORDERS_10S") == 0
    assert budget.sync_from_headers(headers, ["ORDERS_10S", "ORDERS_1D"]) == ["ORDERS_10S"]
    assert budget.used("ORDERS_10S") == 7


def test_bybit_remaining_header() -> None:
    clock = FakeClock()
    spec = RateLimitSpec(
        name="/v5/order/create",
        limit=10,
        window_s=1,
        usage_header="X-Bapi-Limit-Status",
        usage_kind=UsageHeaderKind.REMAINING,
    )
    budget = RateBudget("bybit", "uid1", [spec], clock)
    assert budget.try_acquire({"/v5/order/create": 1}) == 0.0
    budget.sync_from_headers({"X-Bapi-Limit-Status": "3", "X-Bapi-Limit": "10"})
    assert budget.used("/v5/order/create") == 7
    for _ in range(3):
        assert budget.try_acquire({"/v5/order/create": 1}) == 0.0
    assert budget.try_acquire({"/v5/order/create": 1}) > 0


def test_penalty_blocks_every_window_for_retry_after() -> None:
    clock = FakeClock()
    budget = RateBudget("binance", "acct", BINANCE_SPOT, clock)
    budget.penalize(2.5)
    assert budget.try_acquire({"ORDERS_1D": 1}) == pytest.approx(2.5)
    clock.advance(1.0)
    assert budget.try_acquire({"REQUEST_WEIGHT": 1}) == pytest.approx(1.5)
    clock.advance(1.5)
    assert budget.try_acquire({"REQUEST_WEIGHT": 1}) == 0.0
    assert budget.penalties == 1


def test_registry_shares_ip_windows_between_accounts_only() -> None:
    clock = FakeClock()
    registry = RateBudgetRegistry(clock)
    a = registry.budget("binance", "a", BINANCE_SPOT)
    b = registry.budget("binance", "b", BINANCE_SPOT)
    assert registry.budget("binance", "a", BINANCE_SPOT) is a
    a.try_acquire({"REQUEST_WEIGHT": 5000, "ORDERS_10S": 100})
    assert b.used("REQUEST_WEIGHT") == 5000  # one IP
    assert b.used("ORDERS_10S") == 0  # separate accounts
    assert b.try_acquire({"REQUEST_WEIGHT": 1001}) > 0
    other = registry.budget("okx", "a", [RateLimitSpec(name="REQUEST_WEIGHT", limit=10, window_s=1)])
    assert other.used("REQUEST_WEIGHT") == 0  # another venue
    with pytest.raises(ValueError, match="different specs"):
        registry.budget("binance", "a", BINANCE_SPOT[:1])


def test_bad_requests_and_specs_get_clear_errors() -> None:
    budget = RateBudget("binance", "acct", BINANCE_SPOT, FakeClock())
    with pytest.raises(ValueError, match="no rate limit window 'WEIGHT'"):
        budget.try_acquire({"WEIGHT": 1})
    with pytest.raises(ValueError, match="exceeds its whole limit"):
        budget.try_acquire({"ORDERS_10S": 101})
    with pytest.raises(ValueError, match="negative cost"):
        budget.try_acquire({"ORDERS_10S": -1})
    with pytest.raises(ValueError, match="unique"):
        RateBudget("x", "y", [BINANCE_SPOT[0], BINANCE_SPOT[0]])
    with pytest.raises(ValueError, match="limit must be positive"):
        RateLimitSpec(name="w", limit=0, window_s=1)
    with pytest.raises(ValueError, match="window_s must be positive"):
        RateLimitSpec(name="w", limit=1, window_s=0)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"name":"w","limit":1,"window_s":1,"per":"ip"}', type=RateLimitSpec)
    assert budget.admitted == 0


def test_acquire_sleeps_exactly_the_waits_and_refuses_beyond_max_wait() -> None:
    clock = FakeClock()
    budget = RateBudget("okx", "acct", [RateLimitSpec(name="order", limit=2, window_s=2)], clock)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    async def scenario() -> None:
        assert await acquire(budget, {"order": 1}, sleep=fake_sleep) == 0.0
        clock.advance(0.5)
        assert await acquire(budget, {"order": 1}, sleep=fake_sleep) == 0.0
        assert await acquire(budget, {"order": 1}, sleep=fake_sleep) == pytest.approx(1.5)  # the first expires
        with pytest.raises(RateLimited, match=r"more than 0\.1s"):
            await acquire(budget, {"order": 1}, max_wait_s=0.1, sleep=fake_sleep)

    asyncio.run(scenario())
    assert slept == [pytest.approx(1.5)]
    assert budget.used("order") == 2


SPECS = [
    RateLimitSpec(name="w1", limit=10, window_s=1.0),
    RateLimitSpec(name="w5", limit=30, window_s=5.0),
    RateLimitSpec(name="w60", limit=100, window_s=60.0, usage_header="used-60"),
]


@dataclass(frozen=True)
class Op:
    kind: str  # "req", "sync" (a usage header for w60) or "penalty"
    dt_ns: int
    costs: dict[str, int] = field(default_factory=dict)
    value: int = 0


ops = st.one_of(
    st.builds(
        Op,
        kind=st.just("req"),
        dt_ns=st.integers(0, 2 * S),
        costs=st.dictionaries(st.sampled_from(["w1", "w5", "w60"]), st.integers(0, 10), min_size=1),
    ),
    st.builds(Op, kind=st.just("sync"), dt_ns=st.integers(0, S), value=st.integers(0, 130)),
    st.builds(Op, kind=st.just("penalty"), dt_ns=st.integers(0, S), value=st.integers(0, 3 * S)),
)


@settings(max_examples=150, deadline=None)
@given(sequence=st.lists(ops, min_size=1, max_size=120))
def test_no_window_ever_holds_more_than_its_limit(sequence: list[Op]) -> None:
    """Whatever the requests, header syncs and penalties: when a request is admitted, the weight counted
    in each window it is charged to, over that limit's length (admitted requests plus the venue counts adopted from
    headers) is within the limit; no request is admitted during a penalty; and a request told to wait
    is admitted once the clock reaches the wait."""
    clock = FakeClock(0)
    budget = RateBudget("v", "a", SPECS, clock)
    ledger: list[tuple[int, dict[str, int]]] = []  # everything counted, kept independently here
    admissions: list[int] = []  # ledger length right after each admission
    blocked_until = 0
    for op in sequence:
        clock.now += op.dt_ns
        if op.kind == "req":
            wait_ns = budget.try_acquire_ns(op.costs)
            if wait_ns > 0:
                clock.now += wait_ns
                assert budget.try_acquire_ns(op.costs) == 0, "admitted once the wait has passed"
            assert clock.now >= blocked_until
            ledger.append((clock.now, op.costs))
            admissions.append(len(ledger))
        elif op.kind == "sync":
            before = budget.used("w60")
            budget.sync_from_headers({"USED-60": str(op.value)})
            if op.value > before:
                ledger.append((clock.now, {"w60": op.value - before}))
            assert budget.used("w60") == max(before, op.value)
        else:
            budget.penalize(op.value / S)
            blocked_until = max(blocked_until, clock.now + op.value)
    for spec in SPECS:
        window_ns = round(spec.window_s * S)
        for n in admissions:  # everything counted up to and including this admission
            t_end, costs = ledger[n - 1]
            if not costs.get(spec.name):
                continue  # a request not charged to this window cannot push it over
            in_window = sum(c.get(spec.name, 0) for t, c in ledger[:n] if t > t_end - window_ns)
            assert in_window <= spec.limit, (spec.name, t_end, in_window)
