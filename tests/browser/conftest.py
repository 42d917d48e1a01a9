"""Fixtures for the dashboard's browser tests: headless Chromium (Debian's, driven by Playwright)
and a paper session on the synthetic market serving the admin API from a background thread.

Without ``/usr/bin/chromium`` (or ``$TRADELOOP_CHROMIUM``) or the ``playwright`` package the tests
skip with the reason, except under ``CI=true``, where that fails the run (as missing data does).
Playwright is used only as a driver of that system browser: ``playwright install`` is never needed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from tests.secret_scan import register_test_secret
from tradeloop.data.synthetic import SyntheticConfig
from tradeloop.ops.admin import AdminSettings
from tradeloop.runtime.config import BacktestConfig, ReportSection
from tradeloop.runtime.paper import PaperSession

if TYPE_CHECKING:
    from playwright.sync_api import Browser

T = TypeVar("T")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> Path:
    """The system Chromium; skips (or fails under CI=true) when it is not installed."""
    path = Path(os.environ.get("TRADELOOP_CHROMIUM", "/usr/bin/chromium"))
    if not path.exists():
        _unavailable(f"chromium not found at {path}: apt-get install chromium (or set TRADELOOP_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed: pip install -e '.[dev]'")
        raise  # not reached: _unavailable raises
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class LiveSession:
    """A running :class:`PaperSession` whose asyncio loop runs in a background thread."""

    session: PaperSession
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    token: str
    url: str

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` on the session's loop (the engine's thread) and return its result."""
        result: Future[T] = Future()

        def run() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return result.result(timeout)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.session.stop, "test finished")
            self.thread.join(15)


def paper_config() -> BacktestConfig:
    """Default node (two simulated venues, market-making demo) on an hour of synthetic market;
    equity sampled every 100 ms so the curve fills during a short test."""
    return BacktestConfig(
        node_tag="DASH",
        synthetic=SyntheticConfig(duration_s=3600.0),
        report=ReportSection(sample_interval_ms=100),
    )


@pytest.fixture
def live_session() -> Iterator[LiveSession]:
    """A paper session at 30x real time with its admin API on a free port of 127.0.0.1."""
    token = secrets.token_urlsafe(24)
    register_test_secret(token)
    started: Future[tuple[PaperSession, asyncio.AbstractEventLoop]] = Future()
    errors: list[BaseException] = []

    async def main() -> None:
        try:
            session = PaperSession(
                paper_config(),
                speed=30.0,
                admin=AdminSettings(token=token, host="127.0.0.1", port=0),
                handle_signals=False,
            )
        except BaseException as exc:
            started.set_exception(exc)
            raise
        started.set_result((session, asyncio.get_running_loop()))
        await session.run()

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=thread_main, name="paper-session", daemon=True)
    thread.start()
    session, loop = started.result(10)
    deadline = time.monotonic() + 10
    while session.admin_url is None:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the paper session did not start its admin API: {errors}")
        time.sleep(0.02)
    live = LiveSession(session, loop, thread, token, session.admin_url)
    try:
        yield live
    finally:
        live.stop()
    assert not thread.is_alive(), "the paper session did not stop"
    assert not errors, f"the paper session failed: {errors!r}"
