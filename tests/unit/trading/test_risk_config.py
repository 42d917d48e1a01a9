"""RiskConfig: strict TOML decoding, exact amounts, validation that names the key."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from tradeloop.core.config import ConfigError, decode_config
from tradeloop.core.fixed import parse as P
from tradeloop.model.enums import TradingState
from tradeloop.model.identifiers import InstrumentId
from tradeloop.trading.risk_config import InstrumentRiskConfig, RiskConfig

BTC = InstrumentId("binance", "BTCUSDT")

TOML = """
max_order_notional = "50000"
max_exposure = "250000.5"
price_band_bps = 300
max_open_orders_total = 40
venue_order_rate_max = { Bybit = 5 }
max_daily_loss = "5000"
drawdown_action = "reducing"
max_drawdown_bps = 1000
disabled_checks = ["self_trade"]

[instruments."binance:BTCUSDT"]
max_position = "2"
max_order_qty = "0.5"
price_band_bps = 100
"""


def test_toml_decodes_and_resolves_to_nanos() -> None:
    config = decode_config(tomllib.loads(TOML), RiskConfig)
    r = config.resolve()
    assert r.max_exposure == P("250000.5")
    assert r.max_daily_loss == P("5000")
    assert r.drawdown_state is TradingState.REDUCING
    assert r.daily_loss_state is TradingState.HALTED
    assert not r.enabled("self_trade") and r.enabled("price_band")
    assert r.order_rate_for("bybit") == 5 and r.order_rate_for("binance") == 20
    btc = r.limits_for(BTC)
    assert (btc.max_position, btc.max_order_qty, btc.price_band_bps) == (P("2"), P("0.5"), 100)
    assert btc.max_order_notional == P("50000")  # inherited default
    assert btc.max_open_orders == 50
    other = r.limits_for(InstrumentId("binance", "ETHUSDT"))
    assert (other.max_position, other.price_band_bps) == (None, 300)


def test_defaults() -> None:
    r = RiskConfig().resolve()
    assert r.defaults.price_band_bps == 500 and r.require_valid_book
    assert r.max_open_orders_total == 200 and r.order_rate_max == 20 and r.order_rate_window_ns == 10**9
    assert r.max_exposure is None and r.max_daily_loss is None and r.max_drawdown is None


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"max_ordr_qty": "1"}, "max_ordr_qty"),
        ({"max_order_qty": 1.5}, "$.max_order_qty"),
        ({"max_order_qty": "1.0000000001"}, "risk.max_order_qty"),
        ({"max_exposure": "-1"}, "risk.max_exposure: must not be negative"),
        ({"max_exposure": "lots"}, "risk.max_exposure"),
        ({"price_band_bps": 0}, "risk.price_band_bps"),
        ({"order_rate_window_ms": 0}, "risk.order_rate_window_ms"),
        ({"daily_loss_action": "panic"}, "daily_loss_action"),
        ({"disabled_checks": ["trading_state"]}, "cannot be disabled"),
        ({"disabled_checks": ["nonsense"]}, "cannot be disabled"),
        ({"instruments": {"BTCUSDT": {}}}, "venue:SYMBOL"),
        ({"instruments": {"binance:BTCUSDT": {"max_postion": "1"}}}, "max_postion"),
        ({"instruments": {"binance:BTCUSDT": {"max_position": "x"}}}, "risk.instruments.'binance:BTCUSDT'"),
    ],
)
def test_invalid_config_names_the_key(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode_config(data, RiskConfig)
    assert fragment in str(info.value)


def test_direct_construction_validates() -> None:
    with pytest.raises(ValueError, match=r"risk\.max_position"):
        RiskConfig(max_position="1e-10")
    with pytest.raises(ValueError, match="max_open_orders"):
        RiskConfig(instruments={"binance:BTCUSDT": InstrumentRiskConfig(max_open_orders=-1)})
