"""``tradeloop simulate``: a venue's simulator standalone, here the conformance suite's toy venue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT
from tests.venues.conformance import toy_venue
from tradeloop.cli import app
from tradeloop.core import fixed
from tradeloop.venues.connectors import CONNECTORS
from tradeloop.venues.simulator.local import default_balances, parse_balances

TOY = "tests.venues.conformance.toy_venue:CONNECTOR"

LAUNCH = f"""
import sys
from tradeloop.venues.connectors import CONNECTORS
CONNECTORS["toy"] = {TOY!r}
from tradeloop.cli import app
sys.exit(app(sys.argv[1:]))
"""


def test_parse_balances_accepts_decimals_and_refuses_bad_parts() -> None:
    assert parse_balances("usdt=100000, BTC=1.5") == {"USDT": fixed.parse("100000"), "BTC": fixed.parse("1.5")}
    for bad, match in [
        ("USDT", "must look like CCY=AMOUNT"),
        ("USDT=abc", "USDT=abc"),
        ("USDT=-1", "must not be negative"),
        ("BTC=1,BTC=2", "BTC given twice"),
        ("", "no balances"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_balances(bad)
    assert default_balances([toy_venue.instrument()]) == {"BTC": fixed.SCALE, "USDT": 100_000 * fixed.SCALE}


def test_unknown_venue_and_bad_balances_exit_2_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CONNECTORS, "toy", TOY)
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--venue", "nowhere"])
    assert result.exit_code == 2 and "no connector for venue 'nowhere'" in result.output and "toy" in result.output
    result = runner.invoke(app, ["simulate", "--venue", "toy", "--balances", "USDT=lots"])
    assert result.exit_code == 2 and "USDT=lots" in result.output


def test_simulate_serves_the_venue_until_interrupted() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "simulate", "--venue", "toy", "--speed", "5", "--balances", "USDT=2500,BTC=0.5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        state: dict[str, Any] = {}
        for _ in range(100):  # the synthetic market starts moving the book right away
            with urllib.request.urlopen(f"{base_url}/__sim/state", timeout=5) as resp:
                state = json.loads(resp.read())
            if state["market_items"] > 10:
                break
            time.sleep(0.05)
        assert state["market_items"] > 10
        assert state["venue"] == "toy"
        assert {b["currency"]: b["total"] for b in state["balances"]} == {
            "BTC": fixed.parse("0.5"),
            "USDT": fixed.parse("2500"),
        }
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert base_url in err and "toy/sim" in err and "simulator stopped" in err
    assert toy_venue.SECRET not in err and toy_venue.KEY not in err
