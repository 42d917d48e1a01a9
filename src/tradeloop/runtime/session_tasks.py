"""Background work every live-clock session (paper, live) runs beside the engine."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

from tradeloop.ops.metrics import EngineMetrics

__all__ = ["install_stop_signals", "refresh_metrics", "watch_loop_lag"]


async def watch_loop_lag(metrics: EngineMetrics, interval_s: float) -> None:
    """Observe how late the event loop wakes a sleeper (scheduled vs actual), every ``interval_s``."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        metrics.observe_loop_lag(loop.time() - start - interval_s)


async def refresh_metrics(metrics: EngineMetrics, interval_s: float = 1.0) -> None:
    """Push the engine's state gauges (positions, PnL, staleness) to the metrics every ``interval_s``."""
    while True:
        await asyncio.sleep(interval_s)
        metrics.refresh()


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[str], None]) -> list[signal.Signals]:
    """SIGINT and SIGTERM call ``stop("signal NAME")``; only on the main thread (returns what was installed)."""
    if threading.current_thread() is not threading.main_thread():
        return []
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop, f"signal {sig.name}")
        except (NotImplementedError, RuntimeError):
            continue
        installed.append(sig)
    return installed
