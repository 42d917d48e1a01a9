"""Binance venue metadata."""

from __future__ import annotations

import pytest

from tradeloop.core.fixed import parse as px
from tradeloop.model.book import SequenceRule
from tradeloop.model.enums import InstrumentKind
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.binance import spec


def test_instrument_specs() -> None:
    spot = spec.get_instrument(InstrumentId("binance", "BTCUSDT"))
    assert (spot.tick_size, spot.lot_size, spot.min_notional) == (px("0.01"), px("0.00001"), px("5"))
    assert spot.kind is InstrumentKind.SPOT
    perp = spec.get_instrument(InstrumentId("binance_usdm", "BTCUSDT"))
    assert (perp.tick_size, perp.lot_size, perp.min_notional) == (px("0.1"), px("0.001"), px("100"))
    assert perp.kind is InstrumentKind.LINEAR_PERP
    assert InstrumentId("binance", "ETHUSDT") in {i.id for i in spec.INSTRUMENTS}
    assert InstrumentId("binance_usdm", "ETHUSDT") in {i.id for i in spec.INSTRUMENTS}
    with pytest.raises(KeyError, match="binance:DOGEUSDT"):
        spec.get_instrument(InstrumentId("binance", "DOGEUSDT"))


def test_sequence_rules_and_venues() -> None:
    rules = spec.sequence_rules()
    assert rules["binance"] is SequenceRule.RANGE
    assert rules["binance_usdm"] is SequenceRule.PREV_LINK
    assert spec.market_of_venue("binance_usdm") is spec.BinanceMarket.USDM
    with pytest.raises(KeyError):
        spec.market_of_venue("kraken")


def test_urls_are_data() -> None:
    spot = spec.MARKETS[spec.BinanceMarket.SPOT]
    assert spot.rest_url == "https://api.binance.com" and spot.ws_url.startswith("wss://stream.binance.com")
    assert spot.depth_channel.format(symbol="btcusdt") == "btcusdt@depth@100ms"
    usdm = spec.MARKETS[spec.BinanceMarket.USDM]
    assert usdm.rest_url == "https://fapi.binance.com" and usdm.depth_snapshot_path == "/fapi/v1/depth"
