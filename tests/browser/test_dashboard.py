"""The dashboard in headless Chromium against a running paper session (synthetic market, 30x).

The page must show the engine's positions and PnL exactly, update without a reload, halt the node
with its kill switch button and resume it with its resume button, refuse a wrong token with a
banner and say so when the node goes away. The main test writes ``test-artifacts/dashboard.png``.

Exact comparison despite a live market: the feed is paused, and the engine's state is read before
and after the page shows a snapshot newer than the first read; when both reads agree (same fills,
orders, marks), the snapshot on screen was taken from that very state, so every string must match.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import LiveSession
from tradeloop.core import fixed
from tradeloop.model.enums import TradingState
from tradeloop.runtime.backtest import BacktestEngine

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

PAGE_STATE = """() => {
  const q = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);
  const text = (node) => (node ? node.textContent : null);
  return {
    status: document.body.dataset.status,
    ts: document.body.dataset.snapshotTs,
    updates: Number(document.body.dataset.updates),
    risk: text(q("risk-state")),
    reason: text(q("risk-reason")),
    banner: q("banner").hidden ? null : text(q("banner-text")),
    positions: Array.from(document.querySelectorAll('[data-testid="position-row"]')).map((row) => [
      row.dataset.instrument, text(q("position-qty", row)), text(q("position-mark", row)),
    ]),
    pnl: Object.fromEntries(
      ["equity", "realized", "unrealized", "fees", "total"].map((k) => [k, text(q("pnl-" + k))]),
    ),
    orders: Array.from(document.querySelectorAll('[data-testid="order-row"]')).map((r) => r.dataset.clientOrderId),
    orderCount: text(q("order-count")),
    books: document.querySelectorAll('[data-testid="book"]').length,
    venues: Array.from(document.querySelectorAll('[data-testid="venue-row"]')).map((r) => r.dataset.venue),
    curvePoints: Number(q("equity-chart").dataset.points || 0),
    controlResult: text(q("control-result")),
  };
}"""

NO_VALUE = "—"  # what the page shows for a null (a mark before the first book)


@dataclass(frozen=True)
class EngineView:
    """The engine's state in the API's terms (decimal strings), read on the engine's thread."""

    ts: int
    risk: str
    positions: list[list[str | None]]
    pnl: dict[str, str]
    orders: list[str]
    fills: int

    def same_state(self, other: EngineView) -> bool:
        return (self.risk, self.positions, self.pnl, self.orders, self.fills) == (
            other.risk,
            other.positions,
            other.pnl,
            other.orders,
            other.fills,
        )


def read_engine(engine: BacktestEngine) -> EngineView:
    p = engine.portfolio
    return EngineView(
        ts=engine.clock.now_ns(),
        risk=engine.risk.state.value,
        positions=[
            [str(iid), fixed.to_str(pos.qty), fixed.to_str(p.marks[iid]) if iid in p.marks else NO_VALUE]
            for iid, pos in sorted(p.positions.items())
        ],
        pnl={
            "equity": fixed.to_str(p.equity()),
            "realized": fixed.to_str(p.realized_pnl()),
            "unrealized": fixed.to_str(p.unrealized_pnl()),
            "fees": fixed.to_str(p.fees()),
            "total": fixed.to_str(p.pnl()),
        },
        orders=sorted(o.client_order_id for o in engine.oms.open_orders()),
        fills=p.fill_count,
    )


def engine_view(live: LiveSession) -> EngineView:
    engine = live.session.engine
    return live.call(lambda: read_engine(engine))


def orders_anywhere(live: LiveSession) -> int:
    """Open orders known to the OMS plus those resting at any simulated venue."""
    engine = live.session.engine
    return live.call(lambda: len(engine.oms.open_orders()) + sum(len(v.open_orders()) for v in engine.venues.values()))


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Dashboard:
    page: Page
    origin: str
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate(PAGE_STATE)
        return result

    def snapshot_ts(self) -> int:
        ts = self.state()["ts"]
        return int(ts) if ts else 0

    def wait_rendered(self, timeout: float = 10.0) -> dict[str, Any]:
        def rendered() -> dict[str, Any] | None:
            s = self.state()
            ok = s["status"] == "ok" and s["positions"] and s["pnl"]["equity"] != NO_VALUE
            return s if ok else None

        state: dict[str, Any] = wait_until(rendered, timeout, "the dashboard to render a snapshot")
        return state

    def wait_snapshot_after(self, ts: int, timeout: float = 5.0) -> dict[str, Any]:
        """The page's state once it shows a snapshot taken after engine time ``ts``."""

        def newer() -> dict[str, Any] | None:
            s = self.state()
            return s if s["ts"] and int(s["ts"]) > ts else None

        state: dict[str, Any] = wait_until(newer, timeout, f"a snapshot newer than {ts}")
        return state

    def click_confirmed(self, testid: str) -> str:
        """Click a button that asks for confirmation, accept the dialog; returns its message."""
        messages: list[str] = []

        def accept(dialog: Dialog) -> None:
            messages.append(dialog.message)
            dialog.accept()

        self.page.once("dialog", accept)
        self.page.click(f'[data-testid="{testid}"]')
        wait_until(lambda: messages, 5, f"the confirmation dialog of {testid}")
        return messages[0]


@pytest.fixture
def open_dashboard(browser: Browser) -> Iterator[Callable[[LiveSession, str | None], Dashboard]]:
    contexts = []

    def open_(live: LiveSession, token: str | None) -> Dashboard:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        dash = Dashboard(page, live.url)
        page.on("pageerror", lambda exc: dash.page_errors.append(str(exc)))
        page.on("request", lambda request: dash.requests.append(request.url))
        page.goto(f"{live.url}/" if token is None else f"{live.url}/#token={token}")
        return dash

    yield open_
    for context in contexts:
        context.close()


def assert_clean(dash: Dashboard) -> None:
    assert dash.page_errors == []
    foreign = [url for url in dash.requests if not url.startswith(dash.origin + "/")]
    assert foreign == [], "the dashboard loaded something from elsewhere"


@pytest.mark.slow
def test_dashboard_matches_the_engine_updates_live_and_kill_switch_halts(
    live_session: LiveSession, open_dashboard: Callable[[LiveSession, str | None], Dashboard]
) -> None:
    live = live_session
    dash = open_dashboard(live, live.token)
    page = dash.page
    first = dash.wait_rendered()

    # The token left the address bar for the tab's session storage.
    assert page.url == live.url + "/"
    assert page.evaluate("() => sessionStorage.getItem('tradeloop.adminToken')") == live.token
    assert first["venues"] == ["simA", "simB"]
    assert first["books"] == 2

    # Live updates without a reload: the snapshot and the update counter move on, the window stays.
    page.evaluate("() => { window.__loadedOnce = 'marker'; }")
    later = wait_until(
        lambda: (s := dash.state())["updates"] >= first["updates"] + 4 and int(s["ts"]) > int(first["ts"]) and s,
        10,
        "four more snapshots rendered",
    )
    assert page.evaluate("() => window.__loadedOnce") == "marker"
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    assert later["curvePoints"] > first["curvePoints"] >= 0

    # Let the strategy trade, so PnL has realized, fee and unrealized parts.
    wait_until(lambda: engine_view(live).fills >= 2, 10, "fills in the paper session")

    # Positions and PnL on screen equal the engine's, string for string.
    live.call(live.session.pause_feed)
    for _ in range(10):
        before = engine_view(live)
        shown = dash.wait_snapshot_after(before.ts)
        after = engine_view(live)
        if before.same_state(after):
            break
    else:
        pytest.fail("the engine's state kept changing with the market data paused")
    assert shown["positions"] == before.positions
    assert shown["pnl"] == before.pnl
    assert shown["orders"] == before.orders
    assert shown["risk"] == "ACTIVE"
    assert fixed.parse(shown["pnl"]["fees"]) > 0
    p = {k: fixed.parse(v) for k, v in shown["pnl"].items()}
    assert p["total"] == p["realized"] + p["unrealized"] - p["fees"]
    live.call(live.session.resume_feed)

    # The kill switch button: confirm, then the node is HALTED with no order left anywhere.
    page.fill('[data-testid="control-reason"]', "browser test kill")
    question = dash.click_confirmed("kill-button")
    assert "KILL SWITCH" in question and "browser test kill" in question
    halted = wait_until(lambda: (s := dash.state())["risk"] == "HALTED" and s, 5, "HALTED on the page")
    assert "browser test kill" in halted["reason"]
    assert live.call(lambda: live.session.engine.risk.state) is TradingState.HALTED
    wait_until(lambda: orders_anywhere(live) == 0, 5, "every order cancelled at the OMS and the venues")
    quiet = engine_view(live)
    shown = dash.wait_snapshot_after(quiet.ts)
    assert shown["orders"] == [] and shown["orderCount"] == "(0)"
    assert shown["risk"] == "HALTED"
    assert "HALTED" in shown["controlResult"]

    # Trading stays halted while the market moves on.
    items = live.session.items
    wait_until(lambda: live.session.items > items + 1000, 5, "more market data")
    assert orders_anywhere(live) == 0
    assert engine_view(live).fills == quiet.fills

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    assert_clean(dash)


def test_resume_button_returns_the_node_to_active(
    live_session: LiveSession, open_dashboard: Callable[[LiveSession, str | None], Dashboard]
) -> None:
    live = live_session
    engine = live.session.engine
    live.call(lambda: engine.control.kill("test", "halted before the page opens"))
    dash = open_dashboard(live, live.token)
    shown = dash.wait_rendered()
    assert shown["risk"] == "HALTED"
    assert dash.page.is_enabled('[data-testid="resume-button"]')

    question = dash.click_confirmed("resume-button")
    assert "Resume trading" in question
    wait_until(lambda: dash.state()["risk"] == "ACTIVE", 5, "ACTIVE on the page")
    assert live.call(lambda: engine.risk.state) is TradingState.ACTIVE
    # Resume is refused by the button while already active.
    wait_until(lambda: not dash.page.is_enabled('[data-testid="resume-button"]'), 5, "resume disabled")
    # The strategy quotes again.
    wait_until(lambda: orders_anywhere(live) > 0, 5, "new orders after resume")
    assert_clean(dash)


def test_missing_or_wrong_token_shows_a_banner_until_the_right_one_is_entered(
    live_session: LiveSession, open_dashboard: Callable[[LiveSession, str | None], Dashboard]
) -> None:
    live = live_session
    bare = open_dashboard(live, None)
    asked = wait_until(lambda: (s := bare.state())["status"] == "no-token" and s, 5, "the no-token banner")
    assert "#token=" in asked["banner"]
    assert not [url for url in bare.requests if "/api/" in url], "the page called the API without a token"

    dash = open_dashboard(live, "not-the-token-" + "x" * 16)
    refused = wait_until(lambda: (s := dash.state())["status"] == "forbidden" and s, 5, "the 403 banner")
    assert "403" in refused["banner"]
    assert refused["positions"] == [] and refused["updates"] == 0
    assert dash.page.is_visible('[data-testid="token-form"]')

    dash.page.fill('[data-testid="token-input"]', live.token)
    dash.page.click('[data-testid="token-form"] button')
    shown = dash.wait_rendered()
    assert shown["banner"] is None
    assert [row[0] for row in shown["positions"]] == ["simA:BTCUSDT", "simB:BTCUSDT"]
    assert_clean(dash)


def test_banner_when_the_node_goes_away_keeps_the_last_data(
    live_session: LiveSession, open_dashboard: Callable[[LiveSession, str | None], Dashboard]
) -> None:
    live = live_session
    dash = open_dashboard(live, live.token)
    shown = dash.wait_rendered()
    live.stop()
    gone = wait_until(lambda: (s := dash.state())["status"] == "unreachable" and s, 10, "the unreachable banner")
    assert "unreachable" in gone["banner"]
    assert gone["positions"] and gone["updates"] >= shown["updates"]
    assert dash.page.evaluate("() => document.body.classList.contains('stale')")
