"""Backoff delays against the jitter formulas, computed here from a generator seeded the same way."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeloop.venues.transport.backoff import Backoff, BackoffSpec, JitterMode


def test_full_jitter_follows_the_exponential_ceiling_up_to_the_cap() -> None:
    spec = BackoffSpec(base_s=0.1, cap_s=2.0, factor=2.0, jitter=JitterMode.FULL)
    backoff = Backoff(spec, random.Random(7))
    reference = random.Random(7)
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    for n, ceiling in enumerate(ceilings):
        delay = backoff.next_delay()
        assert delay == reference.uniform(0.0, ceiling)
        assert 0.0 <= delay <= ceiling
        assert backoff.attempts == n + 1


def test_full_jitter_spreads_over_the_whole_range_once_capped() -> None:
    backoff = Backoff(BackoffSpec(base_s=1.0, cap_s=8.0), random.Random(1))
    for _ in range(10):
        backoff.next_delay()
    delays = [backoff.next_delay() for _ in range(4000)]
    assert max(delays) <= 8.0
    assert min(delays) < 0.1 and max(delays) > 7.9
    assert abs(sum(delays) / len(delays) - 4.0) < 0.2  # uniform(0, 8) has mean 4


def test_decorrelated_jitter_grows_from_the_previous_delay() -> None:
    spec = BackoffSpec(base_s=0.5, cap_s=10.0, jitter=JitterMode.DECORRELATED)
    backoff = Backoff(spec, random.Random(3))
    reference = random.Random(3)
    previous = 0.5
    for _ in range(30):
        delay = backoff.next_delay()
        expected = min(10.0, reference.uniform(0.5, previous * 3.0))
        assert delay == expected
        assert 0.5 <= delay <= min(10.0, previous * 3.0)
        previous = delay


def test_reset_after_a_healthy_connection_starts_over() -> None:
    for jitter in JitterMode:
        spec = BackoffSpec(base_s=0.25, cap_s=60.0, jitter=jitter)
        backoff = Backoff(spec, random.Random(11))
        for _ in range(12):
            backoff.next_delay()
        backoff.reset()
        assert backoff.attempts == 0
        first_after_reset = backoff.next_delay()
        # Right after a reset the delay is back to the first attempt's range.
        upper = 0.25 if jitter is JitterMode.FULL else 0.75
        assert first_after_reset <= upper


def test_same_seed_same_delays() -> None:
    spec = BackoffSpec(base_s=0.1, cap_s=5.0, jitter=JitterMode.DECORRELATED)
    a = Backoff(spec, random.Random(42))
    b = Backoff(spec, random.Random(42))
    assert [a.next_delay() for _ in range(20)] == [b.next_delay() for _ in range(20)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_s": 0.0}, "base_s must be positive"),
        ({"base_s": 2.0, "cap_s": 1.0}, "cap_s"),
        ({"factor": 0.5}, "factor"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackoffSpec(**kwargs)  # type: ignore[arg-type]


def test_spec_decodes_strictly() -> None:
    spec = msgspec.json.decode(b'{"base_s": 0.2, "cap_s": 3, "jitter": "decorrelated"}', type=BackoffSpec)
    assert spec.jitter is JitterMode.DECORRELATED
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"base": 0.2}', type=BackoffSpec)


@given(
    base=st.floats(0.001, 5.0),
    extra=st.floats(0.0, 100.0),
    factor=st.floats(1.0, 4.0),
    seed=st.integers(0, 2**32),
    n=st.integers(1, 80),
)
def test_full_jitter_never_exceeds_its_ceiling(base: float, extra: float, factor: float, seed: int, n: int) -> None:
    cap = base + extra
    backoff = Backoff(BackoffSpec(base_s=base, cap_s=cap, factor=factor), random.Random(seed))
    ceiling = base
    for _ in range(n):
        delay = backoff.next_delay()
        assert 0.0 <= delay <= ceiling + 1e-12
        ceiling = min(cap, ceiling * factor)
