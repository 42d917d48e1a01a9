"""FaultPlan: arming, consuming in order, counters, validation."""

from __future__ import annotations

import pytest

from tradeloop.venues.simulator.faults import FAULTS, FaultError, FaultPlan


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counted_faults_apply_to_exactly_the_next_n_occasions() -> None:
    plan = FaultPlan()
    assert not plan.take_skip()
    plan.skip_sequence(2)
    plan.skip_sequence()  # adds to what is left
    assert [plan.take_skip() for _ in range(5)] == [True, True, True, False, False]
    plan.corrupt_checksum(1)
    assert [plan.take_corrupt() for _ in range(2)] == [True, False]
    plan.rate_limit_next(2)
    assert [plan.take_rate_limit() for _ in range(3)] == [True, True, False]
    assert plan.armed["skip_sequence"] == 3 and plan.consumed["skip_sequence"] == 3
    assert plan.consumed["rate_limit_next"] == 2


def test_rejects_delays_and_payloads_come_back_in_arming_order() -> None:
    plan = FaultPlan()
    plan.reject_next("-2010", count=2)
    plan.reject_next("51008")
    assert [plan.take_reject() for _ in range(4)] == ["-2010", "-2010", "51008", None]
    plan.delay_next_reply(1.5)
    plan.delay_next_reply(0.25, count=2)
    assert [plan.take_delay() for _ in range(4)] == [1.5, 0.25, 0.25, 0.0]
    plan.send_malformed(b'{"truncated', count=2)
    plan.send_malformed("text is encoded")  # type: ignore[arg-type]
    assert [plan.take_malformed() for _ in range(4)] == [b'{"truncated', b'{"truncated', b"text is encoded", None]
    assert plan.pending()["reject_next"] == 0
    assert plan.consumed["send_malformed"] == 3


def test_stall_lasts_its_seconds_and_is_counted_once_when_it_ends() -> None:
    clock = FakeMonotonic()
    plan = FaultPlan(monotonic=clock)
    assert not plan.stalled()
    plan.stall_feed(2.0)
    assert plan.stalled() and plan.pending()["stall_feed"] == 1
    clock.now += 1.999
    assert plan.stalled()
    clock.now += 0.002
    assert not plan.stalled() and not plan.stalled()
    assert plan.consumed["stall_feed"] == 1 and plan.pending()["stall_feed"] == 0


def test_drop_connections_calls_every_listener_until_removed() -> None:
    plan = FaultPlan()
    calls: list[str] = []

    def listener() -> None:
        calls.append("drop")

    plan.add_drop_listener(listener)
    plan.drop_connections()
    plan.remove_drop_listener(listener)
    plan.drop_connections()
    assert calls == ["drop"]
    assert plan.armed["drop_connections"] == 2 == plan.consumed["drop_connections"]


@pytest.mark.parametrize(
    ("fault", "kwargs", "match"),
    [
        ("skip_sequence", {"count": 0}, "positive integer"),
        ("skip_sequence", {"count": True}, "positive integer"),
        ("corrupt_checksum", {"count": 1.5}, "positive integer"),
        ("reject_next", {"error": ""}, "non-empty string"),
        ("reject_next", {}, "bad arguments"),
        ("delay_next_reply", {"seconds": -1}, r"\[0, 3600\]"),
        ("stall_feed", {"seconds": "5"}, r"\[0, 3600\]"),
        ("send_malformed", {"payload": 5}, "bytes or text"),
        ("rate_limit_next", {"counts": 2}, "bad arguments"),
        ("explode", {}, "unknown fault 'explode'; known faults: corrupt_checksum"),
    ],
)
def test_bad_faults_are_refused_and_leave_the_plan_untouched(fault: str, kwargs: dict[str, object], match: str) -> None:
    plan = FaultPlan()
    with pytest.raises(FaultError, match=match):
        plan.arm(fault, **kwargs)
    assert plan.pending() == dict.fromkeys(FAULTS, 0)
    assert sum(plan.armed.values()) == 0


def test_arm_by_name_reaches_the_same_state_as_the_method() -> None:
    plan = FaultPlan()
    plan.arm("skip_sequence", count=2)
    plan.arm("reject_next", error="rate limited", count=1)
    plan.arm("send_malformed", payload="[1,")
    assert plan.pending()["skip_sequence"] == 2
    assert plan.take_reject() == "rate limited"
    assert plan.take_malformed() == b"[1,"
    snap = plan.snapshot()
    assert snap["armed"]["skip_sequence"] == 2 and snap["consumed"]["reject_next"] == 1
    assert set(snap) == {"armed", "consumed", "pending"}


def test_clear_disarms_everything_and_keeps_the_counters() -> None:
    plan = FaultPlan()
    plan.skip_sequence(2)
    plan.reject_next("x")
    plan.stall_feed(10)
    plan.clear()
    assert plan.pending() == dict.fromkeys(FAULTS, 0)
    assert not plan.take_skip() and plan.take_reject() is None and not plan.stalled()
    assert plan.armed["skip_sequence"] == 2 and plan.consumed["skip_sequence"] == 0
