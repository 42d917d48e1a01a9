from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeloop.core import fixed
from tradeloop.core.fixed import SCALE, FixedPointError


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("65432.10000000", 65432_100000000),
        ("0.00000001", 10),
        ("0.000000001", 1),
        ("1e-8", 10),
        ("1.2E3", 1200 * SCALE),
        ("-1.5", -1_500_000_000),
        ("+2", 2 * SCALE),
        ("100", 100 * SCALE),
        ("0.1000000000000", 100_000_000),  # trailing zeros beyond 9 decimals are exact
        (".5", 500_000_000),
        ("5.", 5 * SCALE),
    ],
)
def test_parse_exact(text: str, nanos: int) -> None:
    assert fixed.parse(text) == nanos


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1.2.3", "0.0000000001", "1e-10", "--1", "1,5", "nan", "inf", " ", "١٢٣", "²", "1e999999999", "1e-101"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(FixedPointError):
        fixed.parse(text)


def test_format_round_trip_venue_strings() -> None:
    for text in ["65432.10000000", "0.00001000", "61837.63000000", "0.00000000"]:
        assert fixed.to_str(fixed.parse(text), 8) == text
    assert fixed.to_str(fixed.parse("61800.20"), 2) == "61800.20"
    assert fixed.to_str(fixed.parse("0.5")) == "0.5"
    assert fixed.to_str(fixed.parse("-3")) == "-3"
    with pytest.raises(FixedPointError):
        fixed.to_str(fixed.parse("0.001"), 2)


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_to_str_parse_round_trip(nanos: int) -> None:
    assert fixed.parse(fixed.to_str(nanos)) == nanos
    assert fixed.parse(fixed.to_str(nanos, 9)) == nanos


def test_mul_div_rounding() -> None:
    price, qty = fixed.parse("61837.63"), fixed.parse("0.00012")
    assert fixed.mul(price, qty) == fixed.parse("7.4205156")
    assert fixed.div_round(5, 2) == 2 and fixed.div_round(7, 2) == 4  # half to even
    assert fixed.div_round(-5, 2) == -2 and fixed.div_round(-7, 2) == -4
    assert fixed.div_round(5, 2, "ceil") == 3 and fixed.div_round(-5, 2, "ceil") == -2
    assert fixed.div_round(5, 2, "floor") == 2 and fixed.div_round(-5, 2, "floor") == -3
    assert fixed.div_round(-5, 2, "down") == -2 and fixed.div_round(5, 2, "down") == 2
    assert fixed.div(fixed.parse("1"), fixed.parse("3")) == 333_333_333
    with pytest.raises(ZeroDivisionError):
        fixed.div(1, 0)


def test_round_to_step_and_decimals() -> None:
    tick = fixed.parse("0.01")
    assert fixed.round_to_step(fixed.parse("100.005"), tick) == fixed.parse("100.00")  # half-even
    assert fixed.round_to_step(fixed.parse("100.015"), tick) == fixed.parse("100.02")
    assert fixed.round_to_step(fixed.parse("100.011"), tick, "ceil") == fixed.parse("100.02")
    assert fixed.decimals_of(tick) == 2
    assert fixed.decimals_of(fixed.parse("0.00001")) == 5
    assert fixed.decimals_of(fixed.parse("5")) == 0


def test_float_signal_only_enters_on_the_grid() -> None:
    tick = fixed.parse("0.01")
    assert fixed.from_float_for_signal(61837.634999, tick, "floor") == fixed.parse("61837.63")
    assert fixed.from_float_for_signal(61837.631, tick, "ceil") == fixed.parse("61837.64")
    assert fixed.from_float_for_signal(0.1 + 0.2, tick) == fixed.parse("0.30")
    assert fixed.from_float_for_signal(1e-7, fixed.parse("0.00000001")) == 100
    with pytest.raises(FixedPointError):
        fixed.from_float_for_signal(float("nan"), tick)
