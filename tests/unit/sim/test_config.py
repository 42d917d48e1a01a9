"""SimVenueConfig decoding and validation."""

from __future__ import annotations

import msgspec
import pytest

from tradeloop.venues.sim.config import SimVenueConfig


def test_defaults() -> None:
    cfg = SimVenueConfig()
    assert (cfg.order_latency_ns, cfg.response_latency_ns) == (1_000_000, 1_000_000)
    assert cfg.queue_model == "proportional"
    assert cfg.perp_initial_margin == 100_000_000
    assert cfg.supports_amend is True


def test_decode_with_rebate() -> None:
    cfg = msgspec.json.decode(
        b'{"maker_fee": -50000, "taker_fee": 400000, "queue_model": "optimistic"}', type=SimVenueConfig
    )
    assert (cfg.maker_fee, cfg.taker_fee, cfg.queue_model) == (-50_000, 400_000, "optimistic")
    assert cfg.fee_reserve_rate == 400_000


@pytest.mark.parametrize(
    "raw",
    [
        b'{"order_latency": 5}',  # unknown field
        b'{"queue_model": "fifo"}',
        b'{"order_latency_ns": -1}',
        b'{"perp_initial_margin": 0}',
        b'{"taker_fee": -1}',
    ],
)
def test_invalid_configs_are_refused(raw: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(raw, type=SimVenueConfig)
