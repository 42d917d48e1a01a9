"""Clock offset estimation: simulated round trips with a known offset, then a real server whose clock is shifted."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from tradeloop.venues.transport.clock_sync import ClockOffsetEstimator, NoClockSample
from tradeloop.venues.transport.rest import RestClient, measure_clock_offset

MS = 1_000_000


def round_trip(sent: int, true_offset: int, out_ns: int, back_ns: int, resolution: int = 0) -> tuple[int, int, int]:
    """(sent, server stamp, received) for a request that takes out_ns to arrive and back_ns to return."""
    server_true = sent + out_ns + true_offset
    server_stamp = server_true - server_true % resolution if resolution else server_true
    return sent, server_stamp, sent + out_ns + back_ns


def test_symmetric_round_trip_gives_the_exact_offset() -> None:
    est = ClockOffsetEstimator()
    est.add(*round_trip(10_000 * MS, true_offset=-250 * MS, out_ns=4 * MS, back_ns=4 * MS))
    assert est.offset_ns == -250 * MS
    assert est.uncertainty_ns == 4 * MS
    assert est.server_now_ns(20_000 * MS) == 19_750 * MS


def test_the_shortest_round_trip_wins() -> None:
    est = ClockOffsetEstimator(window=8)
    true_offset = 1_234 * MS
    # A slow, lopsided trip (30 ms out, 2 ms back) is far off; a fast one is close.
    est.add(*round_trip(0, true_offset, out_ns=30 * MS, back_ns=2 * MS))
    est.add(*round_trip(100 * MS, true_offset, out_ns=1 * MS, back_ns=3 * MS))
    est.add(*round_trip(200 * MS, true_offset, out_ns=20 * MS, back_ns=20 * MS))
    assert est.best.rtt_ns == 4 * MS
    assert est.offset_ns == true_offset - 1 * MS  # (out - back) / 2 = -1 ms
    assert abs(est.offset_ns - true_offset) <= est.uncertainty_ns


def test_old_samples_leave_the_window_so_drift_is_followed() -> None:
    est = ClockOffsetEstimator(window=3)
    est.add(*round_trip(0, 100 * MS, out_ns=MS, back_ns=MS))  # best trip, but old
    for i in range(1, 4):
        est.add(*round_trip(i * 1000 * MS, 150 * MS, out_ns=2 * MS, back_ns=2 * MS))
    assert len(est.samples) == 3
    assert est.offset_ns == 150 * MS


def test_bad_samples_and_no_samples_are_clear_errors() -> None:
    est = ClockOffsetEstimator()
    assert not est.has_estimate
    with pytest.raises(NoClockSample):
        _ = est.offset_ns
    with pytest.raises(ValueError, match="received before it was sent"):
        est.add(100, 50, 99)
    with pytest.raises(ValueError, match="at least 1"):
        ClockOffsetEstimator(window=0)


@given(
    true_offset=st.integers(-(10**12), 10**12),
    trips=st.lists(st.tuples(st.integers(0, 50 * MS), st.integers(0, 50 * MS)), min_size=1, max_size=12),
    resolution=st.sampled_from([0, 1, 1000, MS]),
)
def test_the_error_stays_within_the_stated_bound(
    true_offset: int, trips: list[tuple[int, int]], resolution: int
) -> None:
    est = ClockOffsetEstimator(window=16)
    for i, (out_ns, back_ns) in enumerate(trips):
        est.add(
            *round_trip(1_700_000_000_000 * MS + i * 1000 * MS, true_offset, out_ns, back_ns, resolution), resolution
        )
    assert abs(est.offset_ns - true_offset) <= est.uncertainty_ns
    assert est.best.rtt_ns == min(o + b for o, b in trips)


def test_offset_to_a_real_server_with_a_shifted_clock() -> None:
    shift_ns = 3_700 * MS + 123_456  # the server's clock runs 3.7001 s ahead of ours

    async def server_time(request: web.Request) -> web.Response:
        await asyncio.sleep(0.002)
        return web.Response(body=orjson.dumps({"serverTime": (time.time_ns() + shift_ns) // MS}))

    async def scenario() -> tuple[int, int]:
        app = web.Application()
        app.router.add_get("/api/v3/time", server_time)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                client = RestClient("https://api.binance.com", session, endpoint=f"http://127.0.0.1:{port}")
                est = ClockOffsetEstimator()
                offset = await measure_clock_offset(
                    client, "/api/v3/time", lambda body: int(orjson.loads(body)["serverTime"]) * MS, est, samples=5
                )
                assert len(est.samples) == 5
                return offset, est.uncertainty_ns
        finally:
            await runner.cleanup()

    offset, uncertainty = asyncio.run(scenario())
    assert abs(offset - shift_ns) <= uncertainty
    assert uncertainty < 100 * MS  # loopback: a few ms at most, even on a busy machine
