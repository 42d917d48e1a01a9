"""What every split service shares: its stop conditions and its status endpoint.

A service stops on :meth:`ServiceControl.stop`, SIGINT/SIGTERM, its ``duration_s``, or, when the
launcher started it (``TRADELOOP_SPLIT_PARENT`` names the launcher's pid), when that launcher is gone:
a service must not trade on after its supervisor died.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Final

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradeloop.core.config import ConfigError
from tradeloop.core.logging import get_logger
from tradeloop.deploy.codec import Progress, encode
from tradeloop.deploy.nats_link import NatsLink
from tradeloop.deploy.subjects import ServiceName
from tradeloop.runtime.session_tasks import install_stop_signals

__all__ = ["PARENT_ENV", "ServiceControl", "serve_status"]

log = get_logger("tradeloop.deploy.service")

PARENT_ENV: Final = "TRADELOOP_SPLIT_PARENT"
"""Set by the launcher to its pid: a service it started stops when that process is gone."""
_PARENT_POLL_S: Final = 0.5


class ServiceControl:
    """Stop conditions of one service run (see the module docstring)."""

    def __init__(self, name: ServiceName, duration_s: float | None, handle_signals: bool) -> None:
        if duration_s is not None and not duration_s > 0:
            raise ConfigError(f"duration must be positive, got {duration_s}")
        self.name = name
        self.duration_s = duration_s
        self.handle_signals = handle_signals
        self.stop_reason = ""
        self._stop = asyncio.Event()
        self._signals: list[int] = []
        self._parent_task: asyncio.Task[None] | None = None

    def stop(self, reason: str = "stopped") -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            self._signals = list(install_stop_signals(loop, self.stop))
        parent = os.environ.get(PARENT_ENV, "")
        if parent.isdigit():
            self._parent_task = loop.create_task(self._watch_parent(int(parent)), name=f"{self.name}.parent")

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals = []
        if self._parent_task is not None:
            self._parent_task.cancel()
            self._parent_task = None

    async def wait(self) -> None:
        """Until a stop condition; the duration's end stops with ``duration reached``."""
        try:
            await asyncio.wait_for(self._stop.wait(), self.duration_s)
        except TimeoutError:
            self.stop("duration reached")

    async def _watch_parent(self, pid: int) -> None:
        while True:
            await asyncio.sleep(_PARENT_POLL_S)
            if os.getppid() != pid:
                log.error("the split launcher is gone; stopping", service=self.name)
                self.stop("launcher gone")
                return


async def serve_status(link: NatsLink, service: ServiceName, progress: Callable[[], Progress]) -> Subscription:
    """Answer requests on ``tl.<d>.ctl.status.<service>`` with ``progress()``."""

    async def answer(msg: Msg) -> None:
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(encode(progress()))

    return await link.nc.subscribe(link.subjects.status(service), cb=answer)
