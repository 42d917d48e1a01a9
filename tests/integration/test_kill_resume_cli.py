"""``tradeloop kill`` / ``tradeloop resume`` against the real admin API of a two-venue node over HTTP.

The admin server runs on this test's event loop; the command runs in a worker thread (it blocks on
urllib), so the engine is only touched on the loop, as in a paper session. The engine's clock is
moved by hand between commands.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from typer.testing import CliRunner, Result

from tradeloop.cli import app
from tradeloop.model.enums import OrderStatus, Side, TradingState
from tradeloop.ops.admin import AdminServer, AdminSettings, EngineAdmin
from tradeloop.ops.metrics import EngineMetrics
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import AuditSection
from tradeloop.security.audit import AuditLog
from tradeloop.trading.risk_config import RiskConfig

from .helpers import START, feed, settle
from .test_breakers_on_sim import SEC, A, B, make, rest_orders_on_both_venues, snap, status, submit

TOKEN = "cli-test-admin-token-0123456789"


def build(tmp_path: Path) -> tuple[BacktestEngine, Path]:
    audit_path = tmp_path / "audit.jsonl"
    engine = make(RiskConfig(), audit_path)
    assert engine.config.audit == AuditSection(path=str(audit_path))
    feed(engine, [snap(A, START, 1, "100.00", "100.10"), snap(B, START, 1, "100.00", "100.10")])
    return engine, audit_path


def serve(engine: BacktestEngine, scenario: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        server = AdminServer(EngineAdmin(engine, EngineMetrics(), "backtest"), AdminSettings(token=TOKEN, port=0))
        await server.start()
        try:
            await scenario(server.url)
        finally:
            await server.stop()

    asyncio.run(main())


async def cli(*args: str, token: str | None = TOKEN) -> Result:
    env = {"TRADELOOP_ADMIN_TOKEN": token, "TRADELOOP_ADMIN_URL": None, "COLUMNS": "300"}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def test_kill_and_resume_through_the_cli(tmp_path: Path) -> None:
    engine, audit_path = build(tmp_path)
    cids = rest_orders_on_both_venues(engine)

    async def scenario(url: str) -> None:
        refused = await cli("kill", "--url", url, "--reason", "x", token="wrong-token-wrong-token")
        assert refused.exit_code == 4
        assert "refused the admin token (403: invalid admin token)" in refused.stderr
        assert "wrong-token" not in refused.stderr + refused.stdout
        assert engine.risk.state is TradingState.ACTIVE

        done = await cli("kill", "--url", url + "/", "--reason", "runaway quoting")
        assert done.exit_code == 0, done.stderr
        assert json.loads(done.stdout) == {"state": "HALTED"}
        assert "trading is now HALTED" in done.stderr and TOKEN not in done.stderr + done.stdout
        settle(engine, engine.clock.now_ns() + SEC)
        assert engine.venues["simA"].open_orders() == [] and engine.venues["simB"].open_orders() == []
        assert all(status(engine, c) is OrderStatus.CANCELED for c in cids)
        assert status(engine, submit(engine, B, Side.BUY, "0.1", "99.00")) is OrderStatus.DENIED

        blank = await cli("resume", "--url", url, "--reason", "  ")
        assert blank.exit_code == 1 and "resume: a reason is required" in blank.stderr
        assert engine.risk.state is TradingState.HALTED

        back = await cli("resume", "--url", url, "--reason", "quotes fixed")
        assert back.exit_code == 0, back.stderr
        assert json.loads(back.stdout) == {"state": "ACTIVE"}
        assert engine.risk.state is TradingState.ACTIVE

    serve(engine, scenario)
    entries = AuditLog(audit_path).entries()
    assert [(e.actor, e.action, e.detail["reason"], e.detail["previous_state"]) for e in entries] == [
        ("admin-api", "kill_switch", "runaway quoting", "ACTIVE"),
        ("admin-api", "resume", "quotes fixed", "HALTED"),
    ]


def test_unreachable_node_missing_token_and_bad_url_are_clear_errors(tmp_path: Path) -> None:
    engine, _ = build(tmp_path)
    urls: list[str] = []

    async def scenario(url: str) -> None:
        urls.append(url)

    serve(engine, scenario)  # the server has stopped: its port is closed now

    async def after() -> None:
        gone = await cli("kill", "--url", urls[0], "--reason", "x")
        assert gone.exit_code == 3
        assert f"cannot reach the node at {urls[0]}" in " ".join(gone.stderr.split())
        no_token = await cli("kill", "--url", urls[0], token=None)
        assert no_token.exit_code == 2
        assert "set the environment variable TRADELOOP_ADMIN_TOKEN" in " ".join(no_token.stderr.split())
        bad = await cli("resume", "--url", "127.0.0.1:8080", "--reason", "x")
        assert bad.exit_code == 2 and "must be an http(s) URL" in bad.stderr
        missing = await cli("resume", "--url", urls[0])  # --reason is required
        assert missing.exit_code == 2

    asyncio.run(after())
    assert engine.risk.state is TradingState.ACTIVE
