"""Crash recovery, end to end: ``tradeloop live`` trades on a local venue simulator and is killed with
SIGKILL again and again; after every restart its orders, fills, positions and balances equal the
simulator's, no order reached the venue twice and none at the venue is unknown to the node.

Each backend (SQLite, PostgreSQL) gets ``TRADELOOP_CRASH_ROUNDS`` rounds (default 20). A round:

1. the simulator's market runs; the engine (a subprocess, market maker, WebSocket order entry)
   trades until it is killed: by a failpoint (``TRADELOOP_FAILPOINT``, see
   :mod:`tradeloop.core.failpoints`) at a random hit between an order's durable intent and its send,
   after a send before the reply, between a fill and its journal write, or in the middle of a
   snapshot; or by ``kill -9`` from here at a random instant;
2. the market is paused (so nothing fills while we compare) and the engine restarts with
   ``--reconcile-only``: it loads its snapshot and journal tail, asks the venue about every order it
   had not finished, cancels what the venue holds that it does not, corrects balances, and exits;
3. the journal's state is compared with the simulator's: every order's filled size, the open
   orders, the fills themselves (price, size, fee), the balances (for spot, the position).

Every round is printed (``-s`` shows them) and collected in the failure message.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.integration.test_live_session import (
    FEEDS,
    SPEED,
    first_instrument,
    key_fields,
    quote_qty,
    simulator_thread,
)
from tests.secret_scan import record_output
from tests.services import require_postgres, unique_name
from tradeloop.core import fixed
from tradeloop.model.events import Event, OrderAccepted, OrderFilled
from tradeloop.persistence import open_journal
from tradeloop.runtime.simulator_feed import run_synthetic
from tradeloop.trading.rebuild import rebuild_state
from tradeloop.venues.simulator.server import VenueSimulator

VENUE: Final = "okx"
ROUNDS: Final = int(os.environ.get("TRADELOOP_CRASH_ROUNDS", "20"))
KILLS: Final = ("send.before", "send.after", "fill.before_journal", "journal.snapshot", "kill -9")
FAILPOINT_MAX_HIT: Final = {"send.before": 12, "send.after": 12, "fill.before_journal": 4, "journal.snapshot": 3}
KILL_WAIT_S: Final = 20.0
"""How long a failpoint has to fire before the round kills the engine itself (and says so)."""


def _config(path: Path, journal: str) -> None:
    inst = first_instrument(VENUE)
    qty = quote_qty(inst)
    refs = "\n".join(f'{field} = "env:TL_CRASH_{field.upper()}"' for field in key_fields(VENUE))
    path.write_text(
        f"""
node_tag = "CR"
valuation = "{inst.quote}"

[journal]
path = "{journal}"
snapshot_interval_s = 0.4
flush_interval_s = 0.25

[strategy]
name = "market_making"
[strategy.params]
instruments = ["{inst.id}"]
order_qty = "{fixed.to_str(qty)}"
max_inventory = "{fixed.to_str(qty * 20)}"
refresh_threshold_ticks = 1

[risk]
order_rate_max = 400

[live]
existing_orders = "refuse"
start_timeout_s = 15
stop_timeout_s = 3

[live.venues.{VENUE}]
symbols = ["{inst.id.symbol}"]
order_entry = "websocket"
[live.venues.{VENUE}.credentials]
name = "simulator"
{refs}
"""
    )


class Venue:
    """The simulator (on its own thread) plus what the test watches there."""

    def __init__(self, sim: VenueSimulator) -> None:
        self.sim = sim
        self.loop: asyncio.AbstractEventLoop = FEEDS[id(sim)].get_loop()
        self.events: list[Event] = []
        sim.core.add_private_listener(self.events.append)
        self._seed = 100

    def _call(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def pause_market(self) -> None:
        def pause() -> None:
            task = FEEDS.get(id(self.sim))
            if task is not None:
                task.cancel()

        self._call(pause)
        time.sleep(0.3)  # let what the venue already sent (fills of the last moves) go out

    def resume_market(self) -> None:
        self._seed += 1
        seed = self._seed

        def resume() -> None:
            running = FEEDS.get(id(self.sim))
            if running is not None and not running.done():
                return
            FEEDS[id(self.sim)] = self.sim.spawn(run_synthetic(self.sim.core, seed=seed, speed=SPEED), "synthetic")

        self._call(resume)

    def accepted(self) -> Counter[str]:
        """Client order id -> how many times the venue accepted an order under it."""
        return Counter(e.client_order_id for e in list(self.events) if isinstance(e, OrderAccepted))

    def state(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            core = self.sim.core
            return {
                "open": {o.client_order_id: (o.qty, o.filled_qty) for o in core.open_orders()},
                "balances": {b.currency: b.total for b in core.balances().balances},
                "filled": {cid: v.filled_qty for cid in self.accepted() if (v := core.order(cid)) is not None},
                "fills": sorted(
                    (e.client_order_id, e.last_price, e.last_qty, e.fee)
                    for e in list(self.events)
                    if isinstance(e, OrderFilled)
                ),
            }

        result: dict[str, Any] = self._call(read)
        return result


@pytest.fixture
def venue() -> Iterator[Venue]:
    with simulator_thread(VENUE, seed=11, speed=SPEED) as sim:
        yield Venue(sim)


def _env() -> dict[str, str]:
    env = {"COLUMNS": "1000", "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}
    for field, value in key_fields(VENUE).items():
        env[f"TL_CRASH_{field.upper()}"] = value
    return env


def _live(config: Path, url: str, *extra: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tradeloop.cli", "live", "--config", str(config), "--endpoint", url, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _crash_round(rng: random.Random, kill: str, config: Path, venue: Venue) -> str:
    """Trade until killed; returns how the engine died."""
    env = _env()
    how = kill
    if kill != "kill -9":
        hit = rng.randint(1, FAILPOINT_MAX_HIT[kill])
        env["TRADELOOP_FAILPOINT"] = f"{kill}:{hit}"
        how = f"failpoint {kill} at hit {hit}"
    venue.resume_market()
    proc = _live(config, venue.sim.base_url, env=env)
    try:
        if kill == "kill -9":
            delay = rng.uniform(1.0, 4.0)
            try:
                proc.wait(delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
            how = f"kill -9 after {delay:.2f}s"
        else:
            try:
                proc.wait(KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                how += f" (not reached in {KILL_WAIT_S:g}s; kill -9)"
        out, _ = proc.communicate(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    record_output("tradeloop live (crash round)", out)
    if proc.returncode != -signal.SIGKILL:
        raise AssertionError(f"{how}: the engine ended with {proc.returncode} instead of being killed:\n{out[-3000:]}")
    venue.pause_market()
    return how


def _reconcile(config: Path, venue: Venue) -> str:
    proc = _live(config, venue.sim.base_url, "--reconcile-only", env=_env())
    out, _ = proc.communicate(timeout=60)
    record_output("tradeloop live --reconcile-only", out)
    if proc.returncode != 0:
        raise AssertionError(f"restart after the crash failed ({proc.returncode}):\n{out[-3000:]}")
    line = next((ln for ln in out.splitlines() if ln.startswith("recovered:")), "")
    return line.removeprefix("recovered: ")


def _compare(journal_url: str, venue: Venue) -> list[str]:
    """Differences between the journal's state and the simulator's (empty: equal)."""
    inst = first_instrument(VENUE)
    journal = open_journal(journal_url)
    try:
        records = [r for _, _, r in journal.read()]
    finally:
        journal.close()
    state = rebuild_state(records, valuation=inst.quote)
    assert state.portfolio is not None
    at_venue = venue.state()
    problems: list[str] = []
    accepted = venue.accepted()
    duplicated = {cid: n for cid, n in accepted.items() if n > 1}
    if duplicated:
        problems.append(f"orders accepted twice: {duplicated}")
    orphans = sorted(set(accepted) - set(state.orders))
    if orphans:
        problems.append(f"orders at the venue the journal does not know: {orphans}")
    open_engine = {cid: (o.qty, o.filled_qty) for cid, o in state.orders.items() if not o.is_terminal}
    if open_engine != at_venue["open"]:
        problems.append(f"open orders differ: engine {open_engine} venue {at_venue['open']}")
    for cid, filled in at_venue["filled"].items():
        order = state.orders.get(cid)
        if order is not None and order.filled_qty != filled:
            problems.append(f"{cid}: engine filled {order.filled_qty}, venue {filled}")
    engine_fills = sorted(
        (r.client_order_id, r.last_price, r.last_qty, r.fee) for r in records if isinstance(r, OrderFilled)
    )
    if engine_fills != at_venue["fills"]:
        missing = sorted(set(at_venue["fills"]) - set(engine_fills))
        extra = sorted(set(engine_fills) - set(at_venue["fills"]))
        problems.append(f"fills differ: missing {missing[:5]} extra {extra[:5]}")
    for ccy in (inst.base, inst.quote):
        engine_total = state.portfolio.balance(VENUE, ccy)
        if engine_total != at_venue["balances"].get(ccy, 0):
            problems.append(f"{ccy} balance: engine {engine_total}, venue {at_venue['balances'].get(ccy, 0)}")
    if state.portfolio.position_qty(inst.id) != at_venue["balances"].get(inst.base, 0):
        problems.append(f"position {state.portfolio.position_qty(inst.id)} != venue {inst.base} balance")
    return problems


def _run_crash_rounds(journal_url: str, tmp_path: Path, venue: Venue, seed: int) -> None:
    config = tmp_path / "live.toml"
    _config(config, journal_url)
    rng = random.Random(seed)
    report: list[str] = []
    failures = 0
    for n in range(ROUNDS):
        kill = KILLS[n % len(KILLS)]
        how = _crash_round(rng, kill, config, venue)
        recovered = _reconcile(config, venue)
        problems = _compare(journal_url, venue)
        fills = len(venue.state()["fills"])
        line = f"round {n + 1:2d}: {how}; {recovered or 'nothing to recover'}; venue fills so far {fills}: " + (
            "EQUAL" if not problems else "DIFFERENT: " + "; ".join(problems)
        )
        print(line, flush=True)
        report.append(line)
        failures += bool(problems)
    assert failures == 0, "\n".join(report)
    total_fills = len(venue.state()["fills"])
    assert total_fills > 0, "the market maker was never filled: the rounds proved nothing about fills\n" + "\n".join(
        report
    )
    assert len(venue.accepted()) > ROUNDS, "too few orders reached the venue to prove anything"


def test_crash_recovery_on_sqlite(tmp_path: Path, venue: Venue) -> None:
    _run_crash_rounds(str(tmp_path / "journal.sqlite"), tmp_path, venue, seed=1)


def test_crash_recovery_on_postgresql(tmp_path: Path, venue: Venue) -> None:
    base = require_postgres()
    name = unique_name("crash")
    url = f"{base}?journal={name}"
    try:
        _run_crash_rounds(url, tmp_path, venue, seed=2)
    finally:
        _drop_postgres_journal(base, name)


def _drop_postgres_journal(base: str, name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def drop() -> None:
        conn = await asyncpg.connect(base)
        try:
            for (table,) in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE $1", f"{name}%"
            ):
                await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        finally:
            await conn.close()

    asyncio.run(drop())
