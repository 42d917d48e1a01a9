"""Acceptance: two OS processes trading one OKX account share its rate limit through Redis.

Two worker processes each run the real :class:`~tradeloop.venues.okx.execution.OkxExecutionClient`
(orders over signed REST, ``/api/v5/trade/order``: 60 per 2 s per account) against one local OKX
simulator, and submit more orders at once than the limit allows. The simulator records when each
request arrived; the busiest 2-second window of the two processes together must stay within 60.

The control run is the same load with each process on its own (unshared) budget: each alone is
allowed the full limit, so together they send twice the limit in one window. That is what the
shared budget prevents, and what this test would see without it.

Workers are started as ``python -c "...worker_main()" <json>``; they print ``READY`` once logged in,
wait for ``GO`` on stdin (so both start together), and print one JSON line with their results.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.services import require_redis, unique_name
from tests.unit.coordination.redis_helpers import delete_prefix
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import Side
from tradeloop.model.events import Event, OrderAccepted, OrderRejected
from tradeloop.venues.okx.connector import CONNECTOR
from tradeloop.venues.okx.instruments import instruments_by_symbol
from tradeloop.venues.simulator.local import build_simulator
from tradeloop.venues.simulator.server import max_in_window

ROOT = Path(__file__).resolve().parents[2]
PLACE = "/api/v5/trade/order"
LIMIT, WINDOW_S = 60, 2.0  # OKX: place order, 60 requests per 2 s per account
ORDERS_EACH = 90  # more than the limit: each process alone would spend it in full at once
BTC = instruments_by_symbol()["BTC-USDT"].instrument()
P = fixed.parse


# -- the worker process -----------------------------------------------------------------------


def worker_main() -> None:
    """Entry of a worker process: ``sys.argv[1]`` is its JSON arguments."""
    args = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(_worker(args))), flush=True)


async def _worker(args: dict[str, Any]) -> dict[str, Any]:
    from tradeloop.coordination.shared_budget import ReservationPolicy, SharedBudgetFactory
    from tradeloop.venues.okx.execution import OkxExecutionClient
    from tradeloop.venues.transport.rest import RestConfig

    creds = CONNECTOR.test_credentials()
    factory = None
    budget = None
    if args["shared"]:
        # The margin covers the time between admission here and arrival at the venue (a burst leaves the
        # client one request after the other): generous here, for a loaded test machine.
        policy = ReservationPolicy(margin_s=0.15)
        factory = SharedBudgetFactory(args["redis"], args["prefix"], ip_scope="test-host", policy=policy)
        await factory.start()
        budget = factory.for_venue("okx", creds)
    events: list[Event] = []
    client = OkxExecutionClient(
        creds,
        {BTC.id: BTC},
        LiveClock(),
        events.append,
        CONNECTOR.local_urls(args["base_url"]),
        rest_config=RestConfig(max_budget_wait_s=60.0),
        budget=budget,
        batch_place=False,
        order_entry="rest",
        measure_offset=False,
    )
    await client.start()
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "GO":
        raise SystemExit(f"worker expected GO, got {line!r}")
    started = time.monotonic()
    sent = {f"{args['tag']}n{n}" for n in range(ORDERS_EACH)}
    for n in range(ORDERS_EACH):
        client.submit(
            SubmitOrder(
                ts=time.time_ns(),
                strategy_id="sb",
                instrument_id=BTC.id,
                side=Side.BUY,
                qty=P("0.001"),
                price=P("10000") + n * BTC.tick_size,
                client_order_id=f"{args['tag']}n{n}",
            )
        )
    deadline = time.monotonic() + 60
    accepted: set[str] = set()
    rejected: dict[str, str] = {}
    while time.monotonic() < deadline:
        # An acceptance comes from the REST reply and from the private stream, which also shows the other
        # process's orders (one account): count this worker's orders.
        ours = [e for e in events if isinstance(e, OrderAccepted | OrderRejected) and e.client_order_id in sent]
        accepted = {e.client_order_id for e in ours if isinstance(e, OrderAccepted)}
        rejected = {e.client_order_id: e.message for e in ours if isinstance(e, OrderRejected)}
        if len(accepted) + len(rejected) >= ORDERS_EACH:
            break
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    await client.stop()
    result: dict[str, Any] = {"accepted": len(accepted), "rejected": rejected, "elapsed_s": round(elapsed, 3)}
    if budget is not None and factory is not None:
        result |= {"reservations": budget.reservations, "returned": budget.returned, "waits": budget.waits}
        await factory.aclose()
    return result


# -- the test ---------------------------------------------------------------------------------


async def _spawn(args: dict[str, Any]) -> asyncio.subprocess.Process:
    code = "from tests.integration.test_shared_budget_processes import worker_main; worker_main()"
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        json.dumps(args),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _expect_ready(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if line.strip() != b"READY":
        err = await proc.stderr.read()
        raise AssertionError(f"worker did not start: {line!r} {err.decode()[-2000:]}")


async def _run_pair(*, shared: bool, redis_url: str, prefix: str) -> tuple[list[float], list[dict[str, Any]]]:
    """Two workers against a fresh simulator; the arrival times of their place requests, their results."""
    sim = build_simulator(CONNECTOR, instruments=[BTC], balances={"USDT": P("1000000"), "BTC": P("10")})
    await sim.start()
    procs: list[asyncio.subprocess.Process] = []
    try:
        for tag in ("a", "b"):
            args = {"base_url": sim.base_url, "redis": redis_url, "prefix": prefix, "shared": shared, "tag": tag}
            procs.append(await _spawn(args))
        for proc in procs:
            await _expect_ready(proc)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"GO\n")
            await proc.stdin.drain()
        results = []
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), 90)
            assert proc.returncode == 0, err.decode()[-3000:]
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{sim.base_url}/__sim/requests", params={"path": PLACE}) as reply,
        ):
            rows = (await reply.json())["requests"]
        return [float(t) for t, method, _ in rows if method == "POST"], results
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await sim.stop()


def test_two_processes_on_one_account_never_exceed_the_venue_limit_together() -> None:
    redis_url = require_redis()
    prefix = unique_name("tlsbp")

    async def main() -> None:
        try:
            times, results = await _run_pair(shared=True, redis_url=redis_url, prefix=prefix)
        finally:
            await delete_prefix(redis_url, prefix)
        busiest = max_in_window(times, WINDOW_S)
        spread = max(times) - min(times)
        print(f"shared: {len(times)} place requests over {spread:.2f} s, busiest {WINDOW_S:g} s window: {busiest}")
        for r in results:
            print(f"  worker: {r}")
        assert len(times) == 2 * ORDERS_EACH
        assert [r["accepted"] for r in results] == [ORDERS_EACH, ORDERS_EACH]
        assert all(not r["rejected"] for r in results)
        assert busiest <= LIMIT
        # Sharing is not starving: together they used most of the limit, and both were served in it.
        assert busiest >= LIMIT * 3 // 4
        assert all(r["reservations"] > 0 for r in results)
        # 180 requests at 60 per 2 s: the requests must spread over at least two full windows.
        assert spread >= 2 * WINDOW_S

    asyncio.run(main())


def test_control_without_sharing_the_same_processes_exceed_the_limit() -> None:
    async def main() -> None:
        times, results = await _run_pair(shared=False, redis_url="", prefix="unused")
        busiest = max_in_window(times, WINDOW_S)
        print(f"unshared: {len(times)} place requests, busiest {WINDOW_S:g} s window: {busiest}")
        assert [r["accepted"] for r in results] == [ORDERS_EACH, ORDERS_EACH]
        # Each process alone keeps to the limit (by its own clock), so each is allowed all of it at once:
        # together at least twice the limit in one window (more when the arrival times bunch up).
        assert busiest >= 2 * LIMIT

    asyncio.run(main())
