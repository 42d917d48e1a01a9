from __future__ import annotations

import pytest

from tradeloop.trading.execution import TokenBucket

SEC = 1_000_000_000


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=3, now_ns=0)
    assert [bucket.try_take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.next_token_ns(0) == SEC // 10
    assert not bucket.try_take(SEC // 10 - 1)
    assert bucket.try_take(SEC // 10)
    assert bucket.try_take(10 * SEC) and bucket.try_take(10 * SEC) and bucket.try_take(10 * SEC)
    assert not bucket.try_take(10 * SEC)  # refills to the burst, never beyond


def test_debt_from_cancels_delays_but_refills() -> None:
    bucket = TokenBucket(rate_per_s=2, burst=1, now_ns=0)
    bucket.take_anyway(0)
    bucket.take_anyway(0)  # one token in debt
    assert not bucket.try_take(0)
    assert bucket.next_token_ns(0) == SEC  # 2 tokens missing at 2/s
    assert bucket.try_take(SEC)


def test_invalid_bucket() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 0)
