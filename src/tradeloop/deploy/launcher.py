"""``tradeloop split``: the three services as processes on this machine, supervised.

The launcher empties the deployment's streams (a fresh start: commands of an earlier run must not be
executed now), then starts ``tradeloop split --service X`` for the market-data, execution and strategy
services, each in its own session (a Ctrl-C at the terminal reaches the launcher alone, which then stops
the services in order) and with :data:`~tradeloop.deploy.service.PARENT_ENV` set, so a service stops by
itself if the launcher is killed.

* One service exits on its own (a crash, a venue that refused it): the others are stopped and the
  launcher exits 1 naming it.
* Ctrl-C, SIGTERM or the duration: the strategy is stopped first (its ``on_stop`` sends its final
  cancels), then the execution node (it handles those, cancels what is left and checks the venues),
  then market data. A service that does not exit within ``stop_timeout_s`` is killed (and the split
  exits 1: it did not stop cleanly).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from tradeloop.deploy.nats_link import NatsLink
from tradeloop.deploy.service import PARENT_ENV
from tradeloop.deploy.subjects import ServiceName, Subjects

__all__ = ["START_ORDER", "STOP_ORDER", "SplitLauncher", "SplitOutcome"]

START_ORDER: Final[tuple[ServiceName, ...]] = ("market-data", "execution", "strategy")
STOP_ORDER: Final[tuple[ServiceName, ...]] = ("strategy", "execution", "market-data")
_POLL_S: Final = 0.1


@dataclass
class SplitOutcome:
    """How the split ended: ``reason`` and each service's exit code."""

    reason: str
    codes: dict[str, int] = field(default_factory=dict)
    failed: str | None = None
    """The service that ended on its own (and so ended the split), if one did."""

    @property
    def exit_code(self) -> int:
        """0 when every service stopped cleanly; 1 when one died, or had to be killed, or failed."""
        if self.failed is not None or any(c < 0 for c in self.codes.values()):
            return 1
        return max(self.codes.values(), default=0)


class SplitLauncher:
    """Starts and supervises the services; ``service_args`` are the ``tradeloop split`` options every
    service gets (``--config``, ``--nats``, ``--deployment``, ...)."""

    def __init__(
        self,
        service_args: Sequence[str],
        *,
        nats_url: str,
        deployment: str,
        duration_s: float | None = None,
        stop_timeout_s: float = 30.0,
        say: Callable[[str], None] = print,
        python: str = sys.executable,
    ) -> None:
        self.service_args = list(service_args)
        self.link = NatsLink(nats_url, Subjects(deployment), "launcher")
        self.duration_s = duration_s
        self.stop_timeout_s = stop_timeout_s
        self.say = say
        self.python = python
        self.procs: dict[ServiceName, subprocess.Popen[bytes]] = {}
        self._stop_reason = ""

    def stop(self, reason: str) -> None:
        if not self._stop_reason:
            self._stop_reason = reason

    def command(self, service: ServiceName) -> list[str]:
        return [self.python, "-m", "tradeloop.cli", "split", "--service", service, *self.service_args]

    def run(self) -> SplitOutcome:
        asyncio.run(self._fresh_streams())
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def _fresh_streams(self) -> None:
        await self.link.connect()
        try:
            await self.link.ensure_streams()
            await self.link.purge_streams()
        finally:
            await self.link.close()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop(f"signal {signal.Signals(signum).name}")

    def _supervise(self) -> SplitOutcome:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        for service in START_ORDER:
            proc = subprocess.Popen(self.command(service), env=env, start_new_session=True)
            self.procs[service] = proc
            self.say(f"started {service} (pid {proc.pid})")
        deadline = None if self.duration_s is None else time.monotonic() + self.duration_s
        failed: str | None = None
        while not self._stop_reason:
            for service, proc in self.procs.items():
                code = proc.poll()
                if code is not None:
                    failed = service
                    self.stop(f"{service} exited with code {code}")
                    self.say(f"{service} exited on its own with code {code}; stopping the other services")
                    break
            if deadline is not None and time.monotonic() >= deadline:
                self.stop("duration reached")
            if not self._stop_reason:
                time.sleep(_POLL_S)
        outcome = SplitOutcome(reason=self._stop_reason, failed=failed)
        for service in STOP_ORDER:
            outcome.codes[service] = self._stop_one(service)
        return outcome

    def _stop_one(self, service: ServiceName) -> int:
        proc = self.procs[service]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.say(f"{service} did not stop within {self.stop_timeout_s:g}s; killed")
                proc.kill()
                proc.wait()
        code = proc.returncode
        self.say(f"{service} stopped (exit code {code})")
        return code
