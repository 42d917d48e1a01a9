"""A venue's local simulator whose book jumps at a steady pace: the market for the tick-to-trade benchmark.

    python benchmarks/t2t_simulator.py VENUE [--interval 0.25] [--ticks 6] [--levels 20]

Prints the simulator's base URL on stdout, then every ``interval`` seconds moves the venue's book
(one delta batch: the old ladder's levels removed, the new one's set): the touch alternately widens
by ``ticks`` ticks on both sides and narrows back, around a fixed mid. A market maker joining the
touch with a refresh threshold below ``ticks`` must requote both sides on every such frame, so each
frame is one tick-to-trade event; its quotes are never crossed by the move (no fills, no inventory
drift). Runs until SIGTERM/SIGINT. The simulator runs in this process, apart from the node measured.

With ``--batch`` the process runs under ``SCHED_BATCH`` (Linux): its wake-ups never preempt another
process. On a machine with few cores the node's ``send`` of an order frame to loopback wakes the
simulator, and a normal-priority simulator would take the CPU inside that system call, so the
node's write would return only after the simulator had read and answered the order (hundreds of
microseconds of the simulator's work counted as the node's). A real venue is another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from tradeloop.core import fixed
from tradeloop.model.data import BookDeltas, Level
from tradeloop.model.instrument import Instrument
from tradeloop.venues.connectors import get_connector
from tradeloop.venues.simulator.local import build_simulator

START = fixed.parse("60000")


def ladder(inst: Instrument, mid: int, half_spread: int, levels: int, size: int) -> tuple[list[Level], list[Level]]:
    """``levels`` bids and asks, the best ``half_spread`` ticks from ``mid``, sizes growing away from it."""
    tick = inst.tick_size
    return (
        [(mid - (half_spread + k) * tick, size * (k + 1)) for k in range(levels)],
        [(mid + (half_spread + k) * tick, size * (k + 1)) for k in range(levels)],
    )


def move(old: list[Level], new: list[Level]) -> list[Level]:
    """Absolute level updates turning side ``old`` into side ``new`` (size 0 deletes)."""
    target = dict(new)
    return [(p, 0) for p, _ in old if p not in target] + [(p, q) for p, q in new if dict(old).get(p) != q]


async def main(venue: str, interval: float, ticks: int, levels: int) -> None:
    connector = get_connector(venue)
    sim = build_simulator(connector)
    inst = connector.instruments()[0]
    core = sim.core
    unit = max(inst.lot_size, -(-inst.min_qty // inst.lot_size) * inst.lot_size)
    notional_unit = fixed.div(2 * inst.min_notional, START, "ceil") if inst.min_notional else 0
    size = max(unit, -(-notional_unit // inst.lot_size) * inst.lot_size) * 50
    mid = inst.round_price(START)
    bids, asks = ladder(inst, mid, 1, levels, size)
    seq = 1
    now = core.clock.now_ns()
    core.apply_market(BookDeltas(inst.id, now, now, seq, seq, bids, asks, snapshot=True))
    await sim.start()
    print(sim.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    wide = False
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            wide = not wide
            new_bids, new_asks = ladder(inst, mid, 1 + ticks if wide else 1, levels, size)
            seq += 1
            now = core.clock.now_ns()
            core.apply_market(BookDeltas(inst.id, now, now, seq, seq, move(bids, new_bids), move(asks, new_asks)))
            bids, asks = new_bids, new_asks
    finally:
        await sim.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("venue")
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument("--levels", type=int, default=20)
    parser.add_argument("--batch", action="store_true", help="run under SCHED_BATCH (no wake-up preemption)")
    args = parser.parse_args()
    if args.batch:
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except (AttributeError, OSError) as exc:
            print(f"SCHED_BATCH not available: {exc}", file=sys.stderr)
    asyncio.run(main(args.venue, args.interval, args.ticks, args.levels))
