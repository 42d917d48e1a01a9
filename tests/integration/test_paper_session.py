"""Paper sessions on the synthetic market in real time: metrics scraped over HTTP while the session
runs, the snapshot against the engine, the kill switch and resume, how a session ends, and the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.secret_scan import record_output, register_test_secret
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.core.config import ConfigError
from tradeloop.data.synthetic import SyntheticConfig, SyntheticMarket
from tradeloop.model.book import OrderBook
from tradeloop.model.data import Trade
from tradeloop.model.enums import Side
from tradeloop.model.events import OrderAccepted, OrderEvent
from tradeloop.model.identifiers import InstrumentId
from tradeloop.ops.admin import AdminSettings
from tradeloop.runtime.config import AuditSection, BacktestConfig, JournalSection
from tradeloop.runtime.paper import PacedReplay, PaperSession
from tradeloop.security.audit import AuditLog
from tradeloop.strategies.base import Strategy, StrategyConfig
from tradeloop.trading.rebuild import rebuild_state

TOKEN = "paper-session-admin-token-4567"
register_test_secret(TOKEN)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def until(condition: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics", headers=AUTH) as r:
        assert r.status == 200
        text = await r.text()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_paper_session_serves_live_metrics_snapshot_kill_and_resume(tmp_path: Path) -> None:
    config = BacktestConfig(
        journal=JournalSection(path=str(tmp_path / "journal.sqlite")),
        audit=AuditSection(path=str(tmp_path / "audit.log")),
    )
    session = PaperSession(config, speed=20, admin=AdminSettings(token=TOKEN, port=0), handle_signals=False)
    engine = session.engine
    venues = list(engine.venues.values())

    async def scenario() -> Any:
        run = asyncio.create_task(session.run())
        await until(lambda: session.admin_url is not None, 5, "the admin API")
        url = session.admin_url
        assert url is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/snapshot") as r:
                assert r.status == 401
            # 1. Metrics scraped over HTTP while the session runs.
            samples: dict[str, float] = {}

            async def populated() -> bool:
                samples.update(await scrape(http, url))
                return (
                    samples["tradeloop_tick_to_trade_seconds_count"] > 0
                    and samples["tradeloop_order_round_trip_seconds_count"] > 0
                    and samples["tradeloop_event_loop_lag_seconds_count"] > 0
                    and len(engine.series.ts) > 0  # an equity sample (every second) for the curve
                )

            await until(populated, 10, "populated latency histograms")
            assert samples["tradeloop_order_round_trip_seconds_sum"] > 0
            # Round trips include the simulated venue's order and response latencies (1 ms each).
            rt_mean = (
                samples["tradeloop_order_round_trip_seconds_sum"] / samples["tradeloop_order_round_trip_seconds_count"]
            )
            assert rt_mean >= 0.002
            assert not run.done()

            # 2. The snapshot equals the engine's state (the feed is paused so the state holds still).
            session.pause_feed()
            await asyncio.sleep(0.2)  # in-flight replies land
            async with http.get(url + "/api/snapshot", headers=AUTH) as r:
                snap = await r.json()
            p = engine.portfolio
            assert snap["mode"] == "paper"
            assert snap["positions"] == [
                {"instrument": str(iid), "qty": fixed.to_str(pos.qty), "mark": fixed.to_str(p.marks[iid])}
                for iid, pos in sorted(p.positions.items())
            ]
            assert snap["pnl"] == {
                "equity": fixed.to_str(p.equity()),
                "realized": fixed.to_str(p.realized_pnl()),
                "unrealized": fixed.to_str(p.unrealized_pnl()),
                "fees": fixed.to_str(p.fees()),
                "total": fixed.to_str(p.pnl()),
            }
            # Independently: the journal folded from scratch gives the same positions and fees.
            engine.journal.flush()
            rebuilt = rebuild_state(r for _, _, r in engine.journal.read())
            assert rebuilt.portfolio is not None
            assert {str(i): fixed.to_str(q.qty) for i, q in rebuilt.portfolio.positions.items()} == {
                pos["instrument"]: pos["qty"] for pos in snap["positions"]
            }
            assert fixed.to_str(rebuilt.portfolio.fees()) == snap["pnl"]["fees"]
            assert {o["client_order_id"] for o in snap["orders"]} == {
                o.client_order_id for o in engine.oms.open_orders()
            }
            assert all(v["connected"] for v in snap["venues"])
            assert snap["latency"]["tick_to_trade_us"]["count"] > 0 and snap["latency"]["tick_to_trade_us"]["p50"] > 0
            assert snap["equity_curve"][-1] == [engine.series.ts[-1], fixed.to_str(engine.series.equity[-1])]
            assert [b["instrument"] for b in snap["books"]] == [str(i) for i in sorted(engine.book_manager.books())]
            session.resume_feed()

            # 3. Kill switch: halted, every venue order canceled, audited; resume brings quoting back.
            await until(lambda: any(v.open_orders() for v in venues), 5, "the strategy to quote")
            async with http.post(url + "/api/kill", headers=AUTH, json={"reason": "test kill"}) as r:
                assert r.status == 200 and await r.json() == {"state": "HALTED"}
            await until(lambda: not any(v.open_orders() for v in venues), 2, "the venues to cancel everything")
            await asyncio.sleep(0.3)
            assert not any(v.open_orders() for v in venues) and engine.risk.state.value == "HALTED"
            samples = await scrape(http, url)
            assert samples["tradeloop_risk_state"] == 2
            async with http.post(url + "/api/resume", headers=AUTH, json={"reason": "test over"}) as r:
                assert r.status == 200 and await r.json() == {"state": "ACTIVE"}
            await until(lambda: any(v.open_orders() for v in venues), 5, "quotes after resume")
        session.stop("test done")
        return await run

    summary = asyncio.run(scenario())
    assert session.stop_reason == "test done"
    assert summary.events_processed == session.items > 0
    assert not any(v.open_orders() for v in venues)  # on_stop canceled the quotes, replies were let in
    actions = [(e.actor, e.action) for e in AuditLog(tmp_path / "audit.log").entries()]
    assert actions == [("admin-api", "kill_switch"), ("admin-api", "resume")]
    engine.journal.close()


def short_market(duration_s: float) -> BacktestConfig:
    return BacktestConfig(synthetic=SyntheticConfig(duration_s=duration_s))


def test_session_ends_with_the_data_or_the_duration() -> None:
    ended = PaperSession(short_market(2.0), speed=10, handle_signals=False)
    started = time.monotonic()
    summary = asyncio.run(ended.run())
    assert ended.stop_reason == "market data ended"
    assert 0.15 <= time.monotonic() - started < 5  # 2 s of market at 10x
    assert summary.events_processed == ended.items == sum(1 for _ in SyntheticMarket(ended.config.synthetic))

    timed = PaperSession(short_market(300.0), speed=1, duration_s=0.5, handle_signals=False)
    started = time.monotonic()
    asyncio.run(timed.run())
    assert timed.stop_reason == "duration reached"
    assert 0.5 <= time.monotonic() - started < 3


def test_live_clock_runs_scheduled_calls_in_time_then_scheduling_order() -> None:
    """Simulated venue latencies on the wall clock: same-time replies (an accept and its fill) must
    arrive in the order they were sent, as on the SimClock."""

    async def scenario() -> list[tuple[int, int]]:
        clock = LiveClock()
        ran: list[tuple[int, int]] = []
        at = clock.now_ns() + 20_000_000
        for i in range(300):  # many handles at one instant: asyncio alone would not keep their order
            clock.call_at(at, partial(ran.append, (1, i)))
        clock.call_at(at - 5_000_000, partial(ran.append, (0, 0)))
        clock.call_at(at, lambda: clock.call_at(0, partial(ran.append, (1, 999))))  # due at once: runs next
        await asyncio.sleep(0.06)
        return ran

    ran = asyncio.run(scenario())
    assert ran == [(0, 0), *((1, i) for i in range(300)), (1, 999)]


def test_paced_replay_keeps_time_and_restamps_items() -> None:
    iid = InstrumentId("simA", "BTCUSDT")
    base = 1_000_000_000_000
    items = [
        (base + i * 50_000_000, Trade(iid, base + i * 50_000_000 - 5_000_000, base + i * 50_000_000, 1, 1, Side.BUY))
        for i in range(10)
    ]

    async def collect() -> tuple[list[tuple[int, Any]], float]:
        replay = PacedReplay(items, speed=5.0, offset_ns=300)
        start = time.monotonic()
        out = [x async for x in replay]
        return out, time.monotonic() - start

    out, elapsed = asyncio.run(collect())
    assert elapsed >= 9 * 0.010 * 0.95  # 450 ms of source time at 5x
    stamps = [ts for ts, _ in out]
    assert stamps == sorted(stamps)
    for (ts, item), (_, original) in zip(out, items, strict=True):
        assert item.ts_recv == ts and (item.price, item.qty) == (original.price, original.qty)
        assert item.ts_recv - item.ts_event == 1_000_000  # 5 ms event-to-receive, at 5x
    # Item i is due 10 ms x i after the first (50 ms of source time at 5x) and never delivered early.
    assert all(ts - stamps[0] >= i * 10_000_000 for i, ts in enumerate(stamps))
    with pytest.raises(ConfigError):
        PacedReplay(items, speed=0)


class FailsOnAccept(Strategy[StrategyConfig]):
    """Quotes once, then fails when the venue's accept comes back (a venue-reply callback)."""

    def on_book(self, book: OrderBook) -> None:
        if not self.ctx.open_orders() and book.best_bid() is not None:
            self.ctx.submit(book.instrument_id, Side.BUY, fixed.parse("0.01"), book.best_bid())

    def on_order(self, event: OrderEvent) -> None:
        if isinstance(event, OrderAccepted):
            raise RuntimeError("strategy bug")


class FailsOnTrade(Strategy[StrategyConfig]):
    """Fails on the first public trade (inside the market data feed)."""

    def on_trade(self, trade: Trade) -> None:
        raise ValueError("feed-side bug")


@pytest.mark.parametrize(
    ("strategy", "error", "message"),
    [("FailsOnAccept", RuntimeError, "strategy bug"), ("FailsOnTrade", ValueError, "feed-side bug")],
)
def test_an_error_in_the_engine_ends_the_session_with_that_error(
    strategy: str, error: type[Exception], message: str
) -> None:
    session = PaperSession(
        short_market(60.0),
        speed=5,
        strategy_spec=f"tests.integration.test_paper_session:{strategy}",
        handle_signals=False,
    )
    started = time.monotonic()
    with pytest.raises(error, match=message):
        asyncio.run(session.run())
    assert session.stop_reason == f"error: {error.__name__}"
    assert time.monotonic() - started < 5


def test_bad_session_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="speed"):
        PaperSession(short_market(1.0), speed=-1)
    with pytest.raises(ConfigError, match="duration"):
        PaperSession(short_market(1.0), duration_s=0)


def test_feed_items_are_restamped_to_wall_time() -> None:
    session = PaperSession(short_market(1.0), speed=20, handle_signals=False)
    before = time.time_ns()
    asyncio.run(session.run())
    for book in session.engine.book_manager.books().values():
        assert before <= book.ts_recv <= time.time_ns()


# -- the command line -------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    full_env = {**os.environ, "TRADELOOP__SYNTHETIC__DURATION_S": "300", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "tradeloop.cli", "paper", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def test_cli_refuses_to_serve_the_admin_api_without_a_good_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRADELOOP_ADMIN_TOKEN"}
    missing = subprocess.run(
        [sys.executable, "-m", "tradeloop.cli", "paper", "--duration", "1", "--admin-port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    record_output("tradeloop paper", missing.stderr)
    assert missing.returncode == 2 and "TRADELOOP_ADMIN_TOKEN" in missing.stderr
    weak = subprocess.run(
        [sys.executable, "-m", "tradeloop.cli", "paper", "--admin-port", "0", "--admin-token-env", "MY_TOKEN"],
        capture_output=True,
        text=True,
        env={**env, "MY_TOKEN": "tooshort"},
        timeout=60,
        check=False,
    )
    assert weak.returncode == 2 and "at least 16" in weak.stderr and "tooshort" not in weak.stderr


def test_cli_runs_until_sigint_and_prints_the_summary(tmp_path: Path) -> None:
    proc = run_cli(
        "--speed",
        "5",
        "--admin-port",
        "0",
        "--journal",
        str(tmp_path / "j.sqlite"),
        env={"TRADELOOP_ADMIN_TOKEN": TOKEN},
    )
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    record_output("tradeloop paper", out + err)
    assert proc.returncode == 0, err
    assert "session ended: signal SIGINT" in err and "Fills" in err and "admin API: http://127.0.0.1:" in err
    assert TOKEN not in err + out
    assert (tmp_path / "j.sqlite").stat().st_size > 0
