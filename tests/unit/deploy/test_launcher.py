"""``tradeloop split``'s supervision: services started in their own sessions, a service that dies stops the
others (named in the outcome), the others stop in order, one that ignores SIGTERM is killed; and the
command line refuses bad input before starting anything."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.services import require_nats, unique_name
from tradeloop.cli import app
from tradeloop.deploy.launcher import STOP_ORDER, SplitLauncher
from tradeloop.deploy.nats_link import NatsLink
from tradeloop.deploy.subjects import ServiceName

# A stand-in service: records its start and how it was stopped, then behaves as told.
STUB = """
import os, signal, sys, time
name, mode, log = sys.argv[1], sys.argv[2], sys.argv[3]
def note(text):
    with open(log, "a") as f:
        f.write(f"{name} {text}\\n")
def on_term(signum, frame):
    note("SIGTERM")
    if mode != "stubborn":
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
note(f"started parent={os.environ.get('TRADELOOP_SPLIT_PARENT')} session={os.getsid(0) == os.getpid()}")
if mode == "crash":
    time.sleep(0.5)
    note("crashing")
    sys.exit(3)
while True:
    time.sleep(0.05)
"""


class StubLauncher(SplitLauncher):
    def __init__(self, modes: dict[str, str], log: Path, script: Path, **kwargs: object) -> None:
        super().__init__([], nats_url=require_nats(), deployment=unique_name("tlsplit"), **kwargs)  # type: ignore[arg-type]
        self.modes = modes
        self.log = log
        self.script = script

    def command(self, service: ServiceName) -> list[str]:
        return [sys.executable, str(self.script), service, self.modes.get(service, "run"), str(self.log)]


def delete_streams(launcher: SplitLauncher) -> None:
    async def main() -> None:
        link = NatsLink(launcher.link.url, launcher.link.subjects, "cleanup")
        await link.connect()
        await link.delete_streams()
        await link.close()

    asyncio.run(main())


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    script = tmp_path / "stub.py"
    script.write_text(STUB)
    return script


def test_a_service_that_dies_stops_the_others_and_is_named(tmp_path: Path, stub: Path) -> None:
    log = tmp_path / "log"
    said: list[str] = []
    launcher = StubLauncher({"execution": "crash"}, log, stub, say=said.append, stop_timeout_s=5.0)
    try:
        outcome = launcher.run()
    finally:
        delete_streams(launcher)
    assert outcome.failed == "execution" and outcome.exit_code == 1
    assert outcome.reason == "execution exited with code 3"
    assert outcome.codes == {"strategy": 0, "execution": 3, "market-data": 0}
    assert any("execution exited on its own with code 3" in s for s in said)
    events = lines(log)
    started = [e for e in events if " started " in e]
    assert len(started) == 3
    assert all(f"parent={os.getpid()}" in e and "session=True" in e for e in started)
    terms = [e.split()[0] for e in events if e.endswith("SIGTERM")]
    assert terms == ["strategy", "market-data"]  # the stop order, less the one already gone


def test_the_duration_stops_every_service_in_order_and_a_stubborn_one_is_killed(tmp_path: Path, stub: Path) -> None:
    log = tmp_path / "log"
    said: list[str] = []
    launcher = StubLauncher({"market-data": "stubborn"}, log, stub, duration_s=1.0, stop_timeout_s=1.0, say=said.append)
    started = time.monotonic()
    try:
        outcome = launcher.run()
    finally:
        delete_streams(launcher)
    assert time.monotonic() - started < 8
    assert outcome.reason == "duration reached" and outcome.failed is None
    assert outcome.codes["strategy"] == 0 and outcome.codes["execution"] == 0
    assert outcome.codes["market-data"] < 0 and outcome.exit_code == 1  # killed: it did not stop cleanly
    terms = [e.split()[0] for e in lines(log) if e.endswith("SIGTERM")]
    assert terms == list(STOP_ORDER)
    assert any("market-data did not stop within 1s; killed" in s for s in said)


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(app, ["split", *args])


def test_the_command_refuses_bad_input_before_starting_anything(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[live.venues.okx]\nsymbols = ["BTC-USDT"]\n')
    bad_service = run_cli("--config", str(config), "--service", "risk")
    assert bad_service.exit_code == 2 and "unknown service 'risk'" in bad_service.output
    bad_name = run_cli("--config", str(config), "--deployment", "a.b", "--service", "market-data")
    assert bad_name.exit_code == 2 and "deployment name" in bad_name.output
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[live]\nnope = 1\n")
    refused = run_cli("--config", str(bad_config))
    assert refused.exit_code == 2 and "config error" in refused.output
    no_nats = run_cli("--config", str(config), "--nats", "nats://127.0.0.1:1", "--service", "market-data")
    assert no_nats.exit_code == 1 and "NATS at nats://127.0.0.1:1 did not answer" in no_nats.output
    no_nats_split = run_cli("--config", str(config), "--nats", "nats://127.0.0.1:1")
    assert no_nats_split.exit_code == 1 and "did not answer" in no_nats_split.output
