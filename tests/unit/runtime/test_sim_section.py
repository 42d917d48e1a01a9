"""``[venues.<name>.sim]``: rates as decimal strings, checked when the file is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.core.config import ConfigError
from tradeloop.runtime.config import SimSection, load_backtest_config

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _write(tmp_path: Path, sim: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f"[venues.simA.sim]\n{sim}\n")
    return path


def test_rates_are_decimal_strings_turned_into_exact_nanos(tmp_path: Path) -> None:
    cfg = load_backtest_config(_write(tmp_path, 'maker_fee = "-0.00005"\ntaker_fee = "0.00017"'))
    venue = cfg.venue("simA").sim.venue_config()
    assert (venue.maker_fee, venue.taker_fee) == (-50_000, 170_000)
    assert venue.perp_initial_margin == 100_000_000 and venue.fee_reserve_rate == 170_000


def test_every_example_config_reads_its_rates(tmp_path: Path) -> None:
    seen = 0
    for path in sorted(EXAMPLES.glob("*.toml")):
        text = path.read_text()
        if ".sim]" not in text or "[live" in text:
            continue
        cfg = load_backtest_config(path)
        for name in cfg.venues:
            sim = cfg.venue(name).sim.venue_config()
            assert 0 <= sim.taker_fee < 10**7, (path.name, name, sim.taker_fee)  # below 1 %
            seen += 1
    assert seen >= 10


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ('maker_fee = "2bp"', "maker_fee"),
        ("taker_fee = 400000", "taker_fee"),  # the old nanos form is refused, not misread as 40,000 %
        ('taker_fee = "1.5"', "taker_fee"),
        ('perp_initial_margin = "0"', "perp_initial_margin"),
        ('maker_fee = "0.0001"\nmakr_fee = "0.0002"', "makr_fee"),
    ],
)
def test_a_bad_rate_is_refused_with_its_key(tmp_path: Path, line: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_backtest_config(_write(tmp_path, line))


def test_the_venue_config_is_built_once_per_section() -> None:
    section = SimSection(maker_fee="0.0001")
    assert section.venue_config() is section.venue_config()
