"""The admin API over real HTTP on 127.0.0.1: token checks, snapshot, metrics, kill switch and resume.

The engine here runs on a SimClock and is moved by hand between requests, so its state is fixed
while a request is served and the answers can be compared with the engine exactly.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.secret_scan import register_test_secret
from tradeloop.core import fixed
from tradeloop.core.logging import configure_logging
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import Side
from tradeloop.ops.admin import AdminConfigError, AdminServer, AdminSettings, EngineAdmin
from tradeloop.ops.metrics import EngineMetrics
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, VenueSection
from tradeloop.security.audit import AuditLog, verify_audit_log

from .helpers import IID, START, P, book_snapshot, feed, instrument

TOKEN = "s3cret-admin-token-for-tests-0123"
WRONG_TOKENS = (TOKEN[:-1] + "X", TOKEN[:-1], TOKEN + "0", "x" * 40)  # same length, prefix, longer, other
register_test_secret(TOKEN, *WRONG_TOKENS)


@pytest.fixture
def tradeloop_log() -> Iterator[io.StringIO]:
    """tradeloop's JSON log lines during the test (the logger's setup is restored after)."""
    logger = logging.getLogger("tradeloop")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    yield stream
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def build_engine(audit: AuditLog | None = None) -> tuple[BacktestEngine, EngineMetrics]:
    metrics = EngineMetrics()
    config = BacktestConfig(venues={"simA": VenueSection(balances={"USDT": "100000", "BTC": "2"})})
    engine = BacktestEngine(
        config,
        [instrument()],
        START,
        sequence_rules={"simA": SequenceRule.RANGE},
        journal=MemoryJournal(),
        strategy_spec="tests.integration.helpers:Idle",
        metrics=metrics,
        audit=audit,
    )
    feed(engine, [book_snapshot(START, bid="100.00", ask="100.10")])
    # Two resting orders and one that trades at once (a position and a fill to report).
    engine.ctx.submit(IID, Side.BUY, P("0.5"), P("99.50"))
    engine.ctx.submit(IID, Side.SELL, P("0.25"), P("101.00"))
    engine.ctx.submit(IID, Side.BUY, P("0.1"), P("100.10"))
    engine.clock.advance_to(engine.clock.now_ns() + 50_000_000)
    return engine, metrics


Scenario = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


def serve(engine: BacktestEngine, metrics: EngineMetrics, scenario: Scenario) -> None:
    async def main() -> None:
        server = AdminServer(EngineAdmin(engine, metrics, "backtest"), AdminSettings(token=TOKEN, port=0))
        await server.start()
        try:
            assert server.port and server.port > 0
            async with aiohttp.ClientSession() as http:
                await scenario(http, server.url)
        finally:
            await server.stop()

    asyncio.run(main())


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PROTECTED = [("GET", "/api/snapshot"), ("GET", "/metrics"), ("POST", "/api/kill"), ("POST", "/api/resume")]


def test_requests_without_the_token_get_401_and_with_a_wrong_one_403(tradeloop_log: io.StringIO) -> None:
    engine, metrics = build_engine()

    async def scenario(http: aiohttp.ClientSession, url: str) -> None:
        for method, path in PROTECTED:
            async with http.request(method, url + path, json={"reason": "r"}) as r:
                assert r.status == 401, path
                assert r.headers["WWW-Authenticate"] == "Bearer"
                assert "error" in await r.json()
            for header in (f"Basic {TOKEN}", "Bearer", "Bearer ", TOKEN):
                async with http.request(method, url + path, headers={"Authorization": header}) as r:
                    assert r.status == 401, (path, header)
            for token in WRONG_TOKENS:
                async with http.request(method, url + path, headers=auth(token), json={"reason": "r"}) as r:
                    assert r.status == 403, (path, token)
                    text = await r.text()
                    assert TOKEN not in text and token not in text
        # Refused requests changed nothing.
        assert engine.risk.state.value == "ACTIVE"
        async with http.get(url + "/api/unknown", headers=auth("nope" * 5)) as r:
            assert r.status == 403  # unknown routes are not a way around the token
        async with http.get(url + "/api/unknown", headers=auth()) as r:
            assert r.status == 404

    serve(engine, metrics, scenario)
    lines = tradeloop_log.getvalue()
    assert lines.count("wrong token refused") == len(PROTECTED) * len(WRONG_TOKENS) + 1
    assert not any(token in lines for token in (TOKEN, *WRONG_TOKENS))


def test_dashboard_page_loads_without_the_token() -> None:
    engine, metrics = build_engine()

    async def scenario(http: aiohttp.ClientSession, url: str) -> None:
        async with http.get(url + "/") as r:
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
        assert TOKEN not in page
        for asset in ("dashboard.js", "dashboard.css"):
            if asset in page:
                async with http.get(f"{url}/{asset}") as r:
                    assert r.status == 200
        async with http.get(url + "/../pyproject.toml") as r:
            assert r.status in (401, 404)

    serve(engine, metrics, scenario)


def test_snapshot_reports_the_engine_state_exactly() -> None:
    engine, metrics = build_engine()

    async def scenario(http: aiohttp.ClientSession, url: str) -> None:
        async with http.get(url + "/api/snapshot", headers=auth()) as r:
            assert r.status == 200 and r.content_type == "application/json"
            snap: dict[str, Any] = await r.json()
        p = engine.portfolio
        assert snap["mode"] == "backtest" and snap["node"] == engine.config.node_tag
        assert snap["ts"] == engine.clock.now_ns()
        assert snap["risk"] == {"state": "ACTIVE", "reason": ""}
        # Spot BTC held from the start (2) plus the 0.1 bought.
        assert snap["positions"] == [{"instrument": "simA:BTCUSDT", "qty": "2.1", "mark": "100.05"}]
        assert p.positions[IID].qty == P("2.1")
        assert snap["pnl"] == {
            "equity": fixed.to_str(p.equity()),
            "realized": fixed.to_str(p.realized_pnl()),
            "unrealized": fixed.to_str(p.unrealized_pnl()),
            "fees": fixed.to_str(p.fees()),
            "total": fixed.to_str(p.pnl()),
        }
        # Taker fee 0.04% of 0.1 x 100.10 = 0.004004.
        assert snap["pnl"]["fees"] == "0.004004"
        orders = {o["client_order_id"]: o for o in snap["orders"]}
        assert sorted((o["side"], o["price"], o["qty"], o["status"]) for o in orders.values()) == [
            ("BUY", "99.5", "0.5", "ACCEPTED"),
            ("SELL", "101", "0.25", "ACCEPTED"),
        ]
        assert set(orders) == {o.client_order_id for o in engine.oms.open_orders()}
        assert snap["venues"] == [
            {"venue": "simA", "connected": True, "books": 1, "last_data_ts": START},
        ]
        (book,) = snap["books"]
        assert book["instrument"] == "simA:BTCUSDT" and book["valid"] is True
        assert book["bids"] == [["100", "5"], ["99.99", "5"]]
        assert book["asks"] == [["100.1", "5"], ["100.11", "5"]]  # the engine's book is the market's
        latency = snap["latency"]["tick_to_trade_us"]
        assert latency["count"] == 0 and latency["p50"] is None  # no order was triggered by a tick
        assert all(count == 0 for _, count in latency["buckets"])

    serve(engine, metrics, scenario)


def test_metrics_endpoint_serves_prometheus_text() -> None:
    engine, metrics = build_engine()

    async def scenario(http: aiohttp.ClientSession, url: str) -> None:
        async with http.get(url + "/metrics", headers=auth()) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await r.text()
        samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}
        assert samples["tradeloop_order_round_trip_seconds_count"].value == engine.execution.sent == 3

    serve(engine, metrics, scenario)


def test_kill_cancels_everything_at_the_venue_and_resume_needs_a_reason(tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.log"
    engine, metrics = build_engine(AuditLog(audit_path))
    venue = engine.venues["simA"]
    assert len(venue.open_orders()) == 2

    async def scenario(http: aiohttp.ClientSession, url: str) -> None:
        async with http.post(url + "/api/kill", headers=auth(), json={"reason": "fat finger"}) as r:
            assert r.status == 200
            assert await r.json() == {"state": "HALTED"}
        assert engine.risk.state.value == "HALTED"
        engine.clock.advance_to(engine.clock.now_ns() + 50_000_000)  # the cancels reach the venue and come back
        assert venue.open_orders() == [] and engine.oms.open_orders() == []
        async with http.get(url + "/api/snapshot", headers=auth()) as r:
            snap = await r.json()
        assert snap["risk"]["state"] == "HALTED" and "fat finger" in snap["risk"]["reason"]
        assert snap["orders"] == []
        for body in ({}, {"reason": "   "}):
            async with http.post(url + "/api/resume", headers=auth(), json=body) as r:
                assert r.status == 400
        async with http.post(url + "/api/resume", headers=auth(), data=b"{not json") as r:
            assert r.status == 400
        async with http.post(url + "/api/resume", headers=auth(), json={"reason": 5}) as r:
            assert r.status == 400
        assert engine.risk.state.value == "HALTED"
        async with http.post(url + "/api/resume", headers=auth(), json={"reason": "checked the book"}) as r:
            assert r.status == 200
            assert await r.json() == {"state": "ACTIVE"}

    serve(engine, metrics, scenario)
    entries = AuditLog(audit_path).entries()
    assert [(e.actor, e.action) for e in entries] == [("admin-api", "kill_switch"), ("admin-api", "resume")]
    assert entries[0].detail["reason"] == "fat finger" and entries[1].detail["reason"] == "checked the book"
    assert verify_audit_log(audit_path) == []
    assert TOKEN not in audit_path.read_text()


def test_admin_settings_refuse_weak_or_missing_tokens_and_hide_the_token() -> None:
    with pytest.raises(AdminConfigError, match="at least 16"):
        AdminSettings(token="short")
    with pytest.raises(AdminConfigError, match="printable ASCII"):
        AdminSettings(token="has a space in it!!")
    with pytest.raises(AdminConfigError, match="TRADELOOP_ADMIN_TOKEN"):
        AdminSettings.from_env("TRADELOOP_ADMIN_TOKEN", environ={})
    settings = AdminSettings.from_env("MY_TOKEN", port=0, environ={"MY_TOKEN": TOKEN})
    assert settings.token == TOKEN and TOKEN not in repr(settings)
    with pytest.raises(AdminConfigError, match=r"not in 0\.\.65535"):
        AdminSettings(token=TOKEN, port=70000)


def test_a_port_in_use_is_a_clear_error() -> None:
    engine, metrics = build_engine()

    async def main() -> None:
        first = AdminServer(EngineAdmin(engine, metrics, "backtest"), AdminSettings(token=TOKEN, port=0))
        await first.start()
        try:
            assert first.port is not None
            second = AdminServer(EngineAdmin(engine, metrics, "backtest"), AdminSettings(token=TOKEN, port=first.port))
            with pytest.raises(AdminConfigError, match="cannot listen"):
                await second.start()
        finally:
            await first.stop()

    asyncio.run(main())
