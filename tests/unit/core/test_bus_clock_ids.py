from __future__ import annotations

import pytest

from tradeloop.core.bus import MessageBus, Topic
from tradeloop.core.clock import SimClock
from tradeloop.core.ids import ClientOrderIdGenerator, is_valid_client_order_id, to_base36


def test_bus_dispatches_in_order_and_depth_first() -> None:
    bus = MessageBus(strict_types=True)
    a, b = Topic[int]("a", int), Topic[str]("b", str)
    seen: list[str] = []
    bus.subscribe(a, lambda m: (seen.append(f"a1:{m}"), bus.publish(b, f"from{m}")))
    bus.subscribe(a, lambda m: seen.append(f"a2:{m}"))
    bus.subscribe(b, lambda m: seen.append(f"b:{m}"))
    bus.publish(a, 1)
    assert seen == ["a1:1", "b:from1", "a2:1"]
    with pytest.raises(TypeError):
        bus.publish(a, "not an int")  # type: ignore[arg-type]


def test_bus_rejects_double_subscription() -> None:
    bus = MessageBus()
    t = Topic[int]("t", int)

    def handler(_: int) -> None:
        return None

    bus.subscribe(t, handler)
    with pytest.raises(ValueError):
        bus.subscribe(t, handler)


def test_sim_clock_fires_timers_and_calls_in_time_then_creation_order() -> None:
    clock = SimClock(1_000)
    fired: list[tuple[str, int]] = []
    clock.set_timer("t", 100, lambda name, ts: fired.append((name, ts)))
    clock.call_at(1_100, lambda: fired.append(("call", clock.now_ns())))
    clock.set_alarm("alarm", 1_150, lambda name, ts: fired.append((name, ts)))
    clock.advance_to(1_300)
    assert fired == [("t", 1_100), ("call", 1_100), ("alarm", 1_150), ("t", 1_200), ("t", 1_300)]
    assert clock.now_ns() == 1_300
    clock.cancel_timer("t")
    clock.advance_to(2_000)
    assert fired[-1] == ("t", 1_300)


def test_sim_clock_never_goes_back() -> None:
    clock = SimClock(500)
    clock.advance_to(100)
    assert clock.now_ns() == 500


def test_client_order_ids_are_short_alnum_unique_and_repeatable() -> None:
    gen = ClientOrderIdGenerator("BT", 1_723_161_253_937_085_768)
    ids = [gen.next() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(is_valid_client_order_id(i) and len(i) <= 20 for i in ids)
    again = ClientOrderIdGenerator("BT", 1_723_161_253_937_085_768)
    assert [again.next() for _ in range(10_000)] == ids
    restarted = ClientOrderIdGenerator("BT", 1_723_161_253_937_085_768)
    restarted.observe(ids[-1])
    assert restarted.next() not in ids
    assert to_base36(35) == "z" and to_base36(36) == "10"
    with pytest.raises(ValueError):
        ClientOrderIdGenerator("bad-tag", 0)
