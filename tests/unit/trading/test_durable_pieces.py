"""Small pieces of durable state: failpoints, id epochs, balance corrections."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tradeloop.core import fixed
from tradeloop.core.ids import MAX_EPOCH, ClientOrderIdGenerator
from tradeloop.model.enums import InstrumentKind
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.trading.portfolio import Portfolio

P = fixed.parse
IID = InstrumentId("v", "BTCUSDT")


def _spot() -> Instrument:
    return Instrument(
        id=IID, base="BTC", quote="USDT", kind=InstrumentKind.SPOT, tick_size=P("0.01"), lot_size=P("0.0001")
    )


def test_an_armed_failpoint_kills_the_process_at_its_nth_pass() -> None:
    code = (
        "from tradeloop.core.failpoints import failpoint\n"
        "for i in range(5):\n"
        "    print(i, flush=True)\n"
        "    failpoint('here')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env={"TRADELOOP_FAILPOINT": "here:3"}, capture_output=True, text=True
    )
    assert run.returncode == -signal.SIGKILL
    assert run.stdout.split() == ["0", "1", "2"]
    untouched = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert untouched.returncode == 0 and untouched.stdout.split() == ["0", "1", "2", "3", "4"]


def test_a_bad_failpoint_setting_is_refused_with_its_value() -> None:
    run = subprocess.run(
        [sys.executable, "-c", "import tradeloop.core.failpoints"],
        env={"TRADELOOP_FAILPOINT": "here:0"},
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "TRADELOOP_FAILPOINT='here:0'" in run.stderr


def test_an_id_epoch_replaces_the_start_second_and_ids_continue_after_a_restart() -> None:
    gen = ClientOrderIdGenerator("TL", 1_700_000_000_000_000_000, epoch=42)
    assert gen.prefix == "TL" + "000016"
    first, second = gen.next(), gen.next()
    assert gen.last() == second
    again = ClientOrderIdGenerator("TL", 0, epoch=42)
    again.observe(second)
    assert again.next() not in (first, second)
    with pytest.raises(ValueError, match="epoch"):
        ClientOrderIdGenerator("TL", 0, epoch=MAX_EPOCH + 1)


def test_a_balance_correction_moves_a_spot_position_and_keeps_pnl_what_trading_made() -> None:
    p = Portfolio([_spot()], {"v": {"USDT": P("1000"), "BTC": P("1")}}, valuation="USDT")
    p.update_mark(IID, P("100"))
    pnl = p.pnl()
    p.correct_balance("v", "BTC", P("1.5"))
    p.correct_balance("v", "USDT", P("900"))
    assert p.position_qty(IID) == P("1.5")
    assert p.balance("v", "USDT") == P("900")
    assert p.pnl() == pnl
    assert p.initial_equity is not None and p.equity() - p.initial_equity == p.pnl()


def test_durable_state_settings_are_checked() -> None:
    from tradeloop.core.config import ConfigError, decode_config
    from tradeloop.runtime.config import JournalSection, RedisSection

    section = decode_config({"path": "postgresql://u@h/db?journal=j", "snapshot_interval_s": 5}, JournalSection)
    assert section.recover and section.snapshot_interval_s == 5
    for bad in ({"snapshot_interval_s": 0}, {"flush_interval_s": 2}, {"recover": "yes"}, {"snapshots": 1}):
        with pytest.raises(ConfigError):
            decode_config(bad, JournalSection)
    assert decode_config({"url": "env:REDIS_URL", "mirror": True}, RedisSection).mirror
    for bad in ({"mirror": True}, {"shared_budgets": True}, {"url": "redis://h", "mirror_interval_ms": 0}, {"x": 1}):
        with pytest.raises(ConfigError):
            decode_config(bad, RedisSection)
