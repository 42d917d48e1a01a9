"""Conformance, offline: every registered venue has a market-data adapter in the registry, and the live
recordings of it replay through that adapter with valid books (the code that runs live)."""

from __future__ import annotations

from typing import Final

import pytest

from tests.conftest import sample_path
from tradeloop.data.venue_replay import replay_venue
from tradeloop.venues.registry import VENUES, market_data_adapter

from .harness import venue_params

pytestmark = pytest.mark.parametrize("venue", venue_params())

RECORDINGS: Final[dict[str, list[str]]] = {
    "binance": [
        "binance/ws_recording/cryptofeed_BINANCE.ws.1.0",
        "binance/ws_recording/cryptofeed_BINANCE.http.0.0",
    ],
    "binance_usdm": [
        "binance/ws_recording/cryptofeed_BINANCE_FUTURES.ws.1.0",
        "binance/ws_recording/cryptofeed_BINANCE_FUTURES.http.0.0",
    ],
    "okx": ["okx/ws_recording/cryptofeed_OKX.ws.1.0"],
    "kraken": ["kraken/ws_recording/cryptofeed_KRAKEN.ws.50.0"],
    "bybit": ["bybit/ws_book/xrpusdt-ob500.data.zip"],
    "bybit_linear": ["bybit/ws_book/xrpusdt-ob500.data.zip"],
    "coinbase": ["coinbase/ws_recording/cryptofeed_COINBASE.ws.28.0"],
}
"""Live captures (shared data, see MANIFEST.md) per venue; a newly registered venue must add its own."""


def test_the_venue_has_a_registry_adapter(venue: str) -> None:
    assert venue in VENUES, f"{venue} has a connector but no market-data adapter in tradeloop.venues.registry.VENUES"


def test_live_recordings_replay_with_valid_books(venue: str) -> None:
    files = RECORDINGS.get(venue)
    if files is None:
        pytest.fail(f"no live recording listed for {venue}: add one to RECORDINGS in {__name__}")
    report = replay_venue(venue, [sample_path(f) for f in files])
    assert report.frames > 0 and report.symbols
    assert [str(m) for m in report.malformed] == []
    assert report.all_books_valid, {s: r.invalid_reason for s, r in report.symbols.items() if not r.valid_at_end}
    assert sum(r.gaps for r in report.symbols.values()) == 0
    if market_data_adapter(venue).checksum_fn is not None:
        assert sum(r.checksums_verified for r in report.symbols.values()) > 0
        assert sum(r.checksum_failures for r in report.symbols.values()) == 0
