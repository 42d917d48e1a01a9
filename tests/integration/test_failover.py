"""Failover acceptance: a venue simulator with fencing (its own process), two ``tradeloop live --failover``
processes sharing a lease in the real Redis and one journal, a market maker trading.

* ``kill -9`` of the primary: the secondary has an order accepted at the simulator within 5 s.
* ``SIGSTOP`` of the primary (hung): the secondary takes over within 5 s; after ``SIGCONT`` the old
  primary gets nothing accepted (it fences itself; the simulator would refuse its stale token) and
  exits with the lease-lost code, while the new primary trades on.

* The lease key vanishes while the primary is cut off from Redis (two nodes believe they hold it):
  the fences (shared journal, venue token check) keep them from trading at once.

All check, from the simulator's own records, that no order carrying a stale token was accepted and
that the accept windows of two tokens never overlap (never two primaries at once). Journals: one
SQLite file shared by both processes, or one PostgreSQL journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import pytest
import redis

from tests.conftest import ROOT
from tests.integration.test_live_session import key_fields, quote_qty
from tests.secret_scan import record_output
from tests.services import require_postgres, require_redis, unique_name
from tests.unit.coordination.test_lease import StallingProxy
from tradeloop.coordination.lease import lease_keys
from tradeloop.core import fixed
from tradeloop.runtime.failover import EXIT_FAILED, EXIT_LEASE_LOST
from tradeloop.venues.connectors import get_connector

VENUE: Final = "okx"
TAG: Final = "FO"
TAKEOVER_S: Final = 5.0
"""The issue's bound: the secondary trades within this long of the primary's loss."""


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Pair:
    """The simulator process, the config, the journal and the nodes of one test."""

    def __init__(self, tmp_path: Path, redis_url: str, journal: str) -> None:
        self.tmp = tmp_path
        self.files: list[Any] = []
        self.redis_url = redis_url
        self.lease = unique_name("tltest_failover")
        inst = get_connector(VENUE).instruments()[0]
        fields = key_fields(VENUE)
        self.env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TRADELOOP_TEST_REDIS")},
            "PYTHONPATH": str(ROOT / "src"),
            "COLUMNS": "200",
            **{f"TL_FO_{field.upper()}": value for field, value in fields.items()},
        }
        refs = ", ".join(f'{field} = "env:TL_FO_{field.upper()}"' for field in fields)
        qty = fixed.to_str(quote_qty(inst))
        self.journal = journal
        self.config = tmp_path / "failover.toml"
        self.config.write_text(
            f"""
node_tag = "{TAG}"
valuation = "{inst.quote}"

[journal]
path = "{self.journal}"

[strategy]
name = "market_making"

[strategy.params]
instruments = ["{inst.id}"]
order_qty = "{qty}"
max_inventory = "{fixed.to_str(quote_qty(inst) * 20)}"
refresh_threshold_ticks = 2

[risk]
order_rate_max = 200

[live]
stop_timeout_s = 3.0

[live.venues.{VENUE}]
symbols = ["{inst.id.symbol}"]
credentials = {{ {refs} }}
"""
        )
        self.sim_log = tmp_path / "simulator.log"
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "tradeloop.cli", "simulate", "--venue", VENUE, "--fence-tag", TAG, "--speed", "8"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self._file(self.sim_log),
        )
        assert self.sim.stdout is not None
        self.base_url = self.sim.stdout.readline().decode().strip()
        assert self.base_url.startswith("http://127.0.0.1:"), self.sim_log.read_text()
        self.nodes: list[Node] = []

    def start(self, name: str, *extra: str, redis_url: str | None = None) -> Node:
        log = self.tmp / f"node-{name}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeloop.cli", "live", "--config", str(self.config), "--endpoint", self.base_url,
             "--failover", redis_url or self.redis_url, "--node-id", name, "--lease-name", self.lease, *extra],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._file(log),
        )  # fmt: skip
        node = Node(name, proc, log)
        self.nodes.append(node)
        return node

    def _file(self, path: Path) -> Any:
        handle = path.open("wb")
        self.files.append(handle)
        return handle

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/__sim/state", timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def fencing(self) -> dict[str, Any]:
        fencing: dict[str, Any] = self.state()["fencing"]
        return fencing

    def close(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.kill()  # also ends a stopped one
            node.proc.wait(10)
            record_output(f"failover node {node.name}", node.output())
        self.sim.send_signal(signal.SIGINT)
        try:
            self.sim.wait(10)
        except subprocess.TimeoutExpired:
            self.sim.kill()
            self.sim.wait()
        record_output("failover simulator", self.sim_log.read_text(errors="replace"))
        for handle in self.files:
            handle.close()
        client = redis.Redis.from_url(self.redis_url)
        keys = list(client.scan_iter(match=f"tradeloop:lease:{{{self.lease}}}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    """Both journal backends: one SQLite file the two nodes share, or one PostgreSQL journal."""
    redis_url = require_redis()
    name = unique_name("tltest_failover")
    if request.param == "sqlite":
        journal = str(tmp_path / "pair.journal")
    else:
        journal = f"{require_postgres()}?journal={name}"
    p = Pair(tmp_path, redis_url, journal)
    try:
        yield p
    finally:
        p.close()
        if request.param == "postgres":
            asyncio.run(_drop_tables(require_postgres(), name))


async def _drop_tables(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {name}_records, {name}_snapshots")
    finally:
        await conn.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float, *nodes: Node) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    logs = "\n".join(f"--- {n.name} (exit {n.proc.poll()})\n{n.output()[-3000:]}" for n in nodes)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{logs}")


def window(fencing: dict[str, Any], token: int) -> dict[str, Any] | None:
    return next((w for w in fencing["windows"] if w["token"] == token), None)


def primary_trading(pair: Pair, node: Node, *, newer_than: int = 0) -> int:
    """The token of the primary once the simulator accepted an order carrying it (and ``node`` is alive)."""

    def check() -> int | None:
        assert node.proc.poll() is None, f"{node.name} exited with {node.proc.returncode}:\n{node.output()[-3000:]}"
        fencing = pair.fencing()
        top = fencing["highest_token"]
        return top if top > newer_than else None

    token: int = wait_for(f"{node.name} trading as primary", check, 30, node)
    return token


def assert_fenced_history(fencing: dict[str, Any]) -> None:
    """From the simulator's records: no stale token ever accepted, no two tokens' windows overlapping."""
    assert fencing["stale_accepted"] == 0
    assert fencing["overlaps"] == []
    windows = sorted(fencing["windows"], key=lambda w: w["token"])
    for older, newer in itertools.pairwise(windows):
        assert older["last_ns"] < newer["first_ns"], (older, newer)


def secondary_waiting(node: Node) -> bool:
    assert node.proc.poll() is None, node.output()
    return "waiting for the lease" in node.output()


def test_kill_9_of_the_primary_hands_over_within_5_seconds(pair: Pair) -> None:
    a = pair.start("a")
    first = primary_trading(pair, a)
    b = pair.start("b")
    wait_for("b waiting as secondary", lambda: secondary_waiting(b), 20, b)
    time.sleep(1.0)  # a trades on while b waits hot
    assert b.proc.poll() is None and "primary" not in b.output()
    killed_ns = time.time_ns()
    a.proc.kill()  # kill -9
    a.proc.wait(5)
    second = primary_trading(pair, b, newer_than=first)
    taken_over = window(pair.fencing(), second)
    assert taken_over is not None
    delay_s = (taken_over["first_ns"] - killed_ns) / 1e9
    print(f"kill -9 -> first order accepted under token {second} after {delay_s:.2f}s")
    assert 0 < delay_s < TAKEOVER_S
    assert f"primary with fencing token {second}" in b.output()
    time.sleep(1.0)  # b trades on
    fencing = pair.fencing()
    assert window(fencing, first) is not None and window(fencing, first)["last_ns"] < killed_ns  # type: ignore[index]
    assert_fenced_history(fencing)
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(20) == 0, b.output()[-3000:]
    assert pair.state()["open_orders"] == []  # a deliberate stop by the holder cancels everything
    assert_fenced_history(pair.fencing())


def test_a_hung_primary_is_replaced_and_gets_nothing_accepted_when_it_wakes(pair: Pair) -> None:
    a = pair.start("a")
    first = primary_trading(pair, a)
    b = pair.start("b")
    wait_for("b waiting as secondary", lambda: secondary_waiting(b), 20, b)
    time.sleep(0.5)
    stopped_ns = time.time_ns()
    os.kill(a.proc.pid, signal.SIGSTOP)
    second = primary_trading(pair, b, newer_than=first)
    taken_over = window(pair.fencing(), second)
    assert taken_over is not None
    delay_s = (taken_over["first_ns"] - stopped_ns) / 1e9
    print(f"SIGSTOP -> first order accepted under token {second} after {delay_s:.2f}s")
    assert 0 < delay_s < TAKEOVER_S
    time.sleep(0.5)
    resumed_ns = time.time_ns()
    os.kill(a.proc.pid, signal.SIGCONT)
    code = a.proc.wait(15)
    assert code == EXIT_LEASE_LOST, a.output()[-3000:]
    assert "lease lost" in a.output()
    time.sleep(0.5)  # b still trading after a woke up and gave up
    fencing = pair.fencing()
    old = window(fencing, first)
    assert old is not None and old["last_ns"] < stopped_ns  # nothing of a's accepted after it hung
    new = window(fencing, second)
    assert new is not None and new["last_ns"] > resumed_ns
    assert fencing["highest_token"] == second
    assert_fenced_history(fencing)
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(20) == 0, b.output()[-3000:]
    assert pair.state()["open_orders"] == []


@contextlib.contextmanager
def redis_proxy(redis_url: str) -> Iterator[tuple[str, Callable[[], None]]]:
    """A TCP proxy to Redis on its own thread: ``(url, stall)``; after ``stall()`` requests through it hang."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            proxy = StallingProxy(redis_url)
            box["url"] = await proxy.start()
            box["loop"], box["proxy"], box["done"] = asyncio.get_running_loop(), proxy, asyncio.Event()
            ready.set()
            await box["done"].wait()
            proxy.flowing.set()
            await proxy.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="redis-proxy", daemon=True)
    thread.start()
    assert ready.wait(10), "proxy did not start"
    try:
        yield box["url"], lambda: box["loop"].call_soon_threadsafe(box["proxy"].flowing.clear)
    finally:
        box["loop"].call_soon_threadsafe(box["done"].set)
        thread.join(10)


@pytest.mark.parametrize("pair", ["postgres"], indirect=True)  # the pair across hosts; both fences are backend-neutral
def test_two_nodes_both_believing_they_hold_the_lease_never_trade_at_once(pair: Pair) -> None:
    """The lease key vanishes (evicted, deleted by hand) while the primary is cut off from Redis: the
    secondary takes the lease with a higher token while the old primary still believes in its own
    (long) validity and goes on trading. Only fences stand between them: the old primary's next durable
    order intent finds the shared journal's next seq taken by the new primary (the send is aborted),
    or the simulator refuses its stale token. Nothing of it may be accepted once the new primary
    trades, and the accept windows never overlap.

    The new primary claims the shared journal with its token before it recovers
    (``Journal.claim``), so the old primary's next commit is refused (``JournalFenced``) and it stops;
    the new primary keeps trading.
    """
    with redis_proxy(pair.redis_url) as (proxy_url, stall):
        a = pair.start("a", "--lease-ttl-ms", "8000", redis_url=proxy_url)  # believes for 6 s after a renewal
        first = primary_trading(pair, a)
        b = pair.start("b")
        wait_for("b waiting as secondary", lambda: secondary_waiting(b), 20, b)
        stall()  # a's renewals hang from here on
        client = redis.Redis.from_url(pair.redis_url)
        try:
            assert client.delete(lease_keys("tradeloop:lease", pair.lease)[0]) == 1
        finally:
            client.close()

        def b_outcome() -> str | None:
            if b.proc.poll() is not None:
                return "exited"
            return "trading" if pair.fencing()["highest_token"] > first else None

        outcome = wait_for("b trading or gone", b_outcome, 30, a, b)
        code = a.proc.wait(15)
    output = a.output()
    fencing = pair.fencing()
    assert_fenced_history(fencing)  # safety, whoever won
    assert outcome == "trading", f"the new primary did not take over:\n{b.output()[-3000:]}"
    second = fencing["highest_token"]
    by_venue = fencing["refused_by_token"].get(str(first), 0)
    by_journal = "JournalFenced" in output or "claimed by a newer owner" in output
    print(f"old primary stopped: {by_venue} order(s) refused by the venue, journal fence hit: {by_journal}")
    assert code in (EXIT_FAILED, EXIT_LEASE_LOST), output[-3000:]
    assert by_venue or by_journal, "the old primary stopped before either fence was tested"
    time.sleep(0.5)
    later = pair.fencing()
    assert_fenced_history(later)
    assert window(later, second)["last_ns"] > window(later, first)["last_ns"]  # type: ignore[index]
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(20) == 0, b.output()[-3000:]
    assert pair.state()["open_orders"] == []
