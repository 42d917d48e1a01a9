from __future__ import annotations

import asyncio
import time

from tradeloop.core.clock import LiveClock


def test_live_clock_timers_alarms_calls_and_cancel() -> None:
    async def scenario() -> list[str]:
        clock = LiveClock()
        fired: list[str] = []
        start = clock.now_ns()
        assert abs(start - time.time_ns()) < 50_000_000
        clock.set_timer("tick", 20_000_000, lambda name, ts: fired.append(name))
        clock.set_alarm("once", start + 30_000_000, lambda name, ts: fired.append(name))
        clock.call_at(start + 10_000_000, lambda: fired.append("call"))
        clock.set_alarm("never", start + 40_000_000, lambda name, ts: fired.append(name))
        clock.cancel_timer("never")
        await asyncio.sleep(0.075)
        clock.cancel_timer("tick")
        count = fired.count("tick")
        await asyncio.sleep(0.05)
        assert fired.count("tick") == count  # cancelled timers stay quiet
        return fired

    fired = asyncio.run(scenario())
    assert fired[0] == "call" and "once" in fired and "never" not in fired
    assert fired.count("tick") >= 2 and fired.count("once") == 1
