"""The C accelerator (``tradeloop.core._fastparse``) against the pure-Python reference.

Every C entry point must give the same result, or raise the same exception type with the same
message, as the Python code it replaces: ``parse_fixed`` == ``fixed.parse``, ``parse_levels`` ==
the Python loop, ``parse_levels_json`` == ``parse_levels(json.loads(...))`` and ``apply_side`` ==
``tradeloop.model.book._apply_side_py`` (on a list and on a ``PriceLadder``).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import pickle
from collections.abc import Callable
from types import ModuleType
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tradeloop.core import fastparse, fixed
from tradeloop.core.fastparse import _parse_levels_json_py, _parse_levels_py
from tradeloop.model.book import OrderBook, SequenceRule, _apply_side_py
from tradeloop.model.data import BookDeltas, Level
from tradeloop.model.identifiers import InstrumentId

INT64_MAX = 2**63 - 1


def _load_c() -> ModuleType | None:
    try:
        return importlib.import_module("tradeloop.core._fastparse")
    except ImportError:
        return None


C = _load_c()


def _need_c() -> ModuleType:
    """The extension; skips (fails under CI=true) when it was not built."""
    if C is None:
        message = "tradeloop.core._fastparse is not built (no C compiler at install time?)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return C


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", (exception type, message))`` for comparing two implementations."""
    try:
        return "ok", fn(*args)
    except Exception as exc:  # any exception must match the reference
        return "error", (type(exc), str(exc))


# -- the extension is there -----------------------------------------------------------------------


def test_extension_is_built_and_used() -> None:
    c = _need_c()
    assert c.__name__ == "tradeloop.core._fastparse"
    forced_pure = os.environ.get(fastparse.FORCE_PURE_ENV, "").strip().lower() in ("1", "true", "yes")
    assert fastparse.ACCELERATED is (not forced_pure)
    if fastparse.ACCELERATED:
        assert fastparse.parse_fixed is c.parse_fixed
        assert fastparse.parse_levels is c.parse_levels
        assert fastparse.book_apply_side is c.apply_side
        assert type(fastparse.new_price_keys([1, 2])) is c.PriceLadder


# -- parse_fixed ----------------------------------------------------------------------------------

EDGE_CASES = [
    "0",
    "-0",
    "+0",
    "0.000000001",
    "-0.000000001",
    "0.0000000001",
    "0.0000000010",
    "0.00000000100000",
    "1.5",
    "-1.5",
    "+1.5",
    "123.",
    "-123.",
    ".5",
    "-.5",
    ".",
    "-",
    "+",
    "-.",
    "",
    " ",
    " 1",
    "1 ",
    "\t1.5\n",
    "1e-8",
    "1E-8",
    "1e-10",
    "1.5e3",
    "1e",
    "e5",
    "1e1_0",
    "00012.3400",
    "000000000000000000000000001",
    "65432.10000000",
    "61837.63000000",
    "1.0000000000",
    "1.0000000001",
    "1.23456789",
    "1.234567891",
    "9223372036.854775807",
    "9223372036.854775808",
    "-9223372036.854775807",
    "-9223372036.854775808",
    "9223372036",
    "9223372037",
    "9223372036854775807",
    "92233720368547758070",
    "18446744073709551616",
    "99999999999999999999.999999999",
    "1.2.3",
    "1..2",
    "--1",
    "+-1",
    "1-",
    "1_000",
    "0x10",
    "١٢٣",
    "١٢٣.٥",
    "²",
    "１２３",
    "1\x00",
    "nan",
    "inf",
    "12\u00e9",
    "\U0001f600",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_parse_fixed_edge_cases_match_python(text: str) -> None:
    c = _need_c()
    assert outcome(c.parse_fixed, text) == outcome(fixed.parse, text)


def test_parse_fixed_values() -> None:
    c = _need_c()
    assert c.parse_fixed("0.000000001") == 1
    assert c.parse_fixed("-1.5") == -1_500_000_000
    assert c.parse_fixed("9223372036.854775807") == INT64_MAX
    assert c.parse_fixed("9223372036.854775808") == INT64_MAX + 1  # beyond int64: exact, via Python
    assert c.parse_fixed("-9223372036.854775808") == -(2**63)
    assert c.parse_fixed("99999999999999999999.999999999") == 10**29 - 1


def test_parse_fixed_non_str_and_subclasses_match_python() -> None:
    c = _need_c()

    class Text(str):
        pass

    for value in (Text("1.5"), Text("x"), 5, 1.5, None, b"1.5", ["1"]):
        assert outcome(c.parse_fixed, value) == outcome(fixed.parse, value)


def _small_exponent(text: str | bytes) -> bool:
    # fixed.parse computes 10**exponent: keep generated exponents small ("1e99999999" would hang).
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    epos = min((i for i in (text.find("e"), text.find("E")) if i >= 0), default=-1)
    return epos < 0 or sum(ch.isdigit() for ch in text[epos + 1 :]) < 4


DECIMAL = st.from_regex(r"[+-]?[0-9]{0,21}(\.[0-9]{0,13})?([eE][+-]?[0-9]{1,2})?", fullmatch=True)
TEXT = st.text(alphabet="0123456789.-+eE _١²\u00a0\t", max_size=24).filter(_small_exponent)


@settings(max_examples=600)
@given(st.one_of(DECIMAL, TEXT, st.text(max_size=12).filter(_small_exponent)))
def test_parse_fixed_matches_python_on_any_text(text: str) -> None:
    c = _need_c()
    assert outcome(c.parse_fixed, text) == outcome(fixed.parse, text)


@settings(max_examples=400)
@given(st.integers(min_value=-(2**70), max_value=2**70), st.integers(min_value=0, max_value=12))
def test_parse_fixed_round_trips_nanos(nanos: int, extra_zeros: int) -> None:
    c = _need_c()
    text = fixed.to_str(nanos) + ("" if nanos % fixed.SCALE == 0 else "0" * extra_zeros)
    assert c.parse_fixed(text) == fixed.parse(text) == nanos


@settings(max_examples=200)
@given(st.integers(min_value=-(2**64), max_value=2**64), st.integers(min_value=0, max_value=9))
@example(INT64_MAX, 9)
@example(INT64_MAX + 1, 9)
@example(-(2**63), 9)
@example(INT64_MAX // 10**9, 0)
@example(INT64_MAX // 10**9 + 1, 0)
def test_parse_fixed_around_int64(mantissa: int, decimals: int) -> None:
    c = _need_c()
    sign = "-" if mantissa < 0 else ""
    digits = str(abs(mantissa)).rjust(decimals + 1, "0")
    text = sign + (f"{digits[:-decimals]}.{digits[-decimals:]}" if decimals else digits)
    assert outcome(c.parse_fixed, text) == outcome(fixed.parse, text)


# -- parse_levels ---------------------------------------------------------------------------------

PLAIN = st.from_regex(r"[0-9]{1,8}(\.[0-9]{1,9})?", fullmatch=True)
ANY_DECIMAL = st.one_of(PLAIN, PLAIN, DECIMAL, TEXT)
LEVEL = st.one_of(
    st.lists(ANY_DECIMAL, min_size=2, max_size=4),
    st.tuples(ANY_DECIMAL, ANY_DECIMAL),
)
MALFORMED_LEVEL = st.one_of(
    st.lists(ANY_DECIMAL, max_size=1),
    st.tuples(),
    st.tuples(ANY_DECIMAL),
    st.just("12"),
    st.just("1"),
    st.just({0: "1", 1: "2"}),
    st.just({"a": 1, "b": 2}),
    st.lists(st.one_of(st.integers(), st.none(), st.floats(allow_nan=False)), min_size=2, max_size=2),
    st.integers(),
    st.none(),
)


@settings(max_examples=400)
@given(st.lists(LEVEL, max_size=12))
def test_parse_levels_matches_python(levels: list[Any]) -> None:
    c = _need_c()
    assert outcome(c.parse_levels, levels) == outcome(_parse_levels_py, levels)
    assert outcome(c.parse_levels, tuple(levels)) == outcome(_parse_levels_py, tuple(levels))


@settings(max_examples=300)
@given(st.lists(st.one_of(LEVEL, MALFORMED_LEVEL), max_size=6))
def test_parse_levels_malformed_matches_python(levels: list[Any]) -> None:
    c = _need_c()
    assert outcome(c.parse_levels, levels) == outcome(_parse_levels_py, levels)


@pytest.mark.parametrize(
    "make",
    [
        lambda: [],
        lambda: (),
        lambda: [["1", "2"]],
        lambda: [("1", "2", "3")],
        lambda: [["1"]],
        lambda: [[]],
        lambda: ["12"],
        lambda: [["1", 2]],
        lambda: [["1e-8", "0.0000000001"]],
        lambda: 5,
        lambda: None,
        lambda: "ab",
        lambda: iter([["1", "2"], ["3", "4"]]),
        lambda: ({"1": 0} for _ in range(1)),
        lambda: ({0: "1", 1: "2"} for _ in range(2)),
    ],
)
def test_parse_levels_shapes(make: Callable[[], Any]) -> None:
    c = _need_c()
    assert outcome(c.parse_levels, make()) == outcome(_parse_levels_py, make())


def test_parse_levels_binance_shape() -> None:
    c = _need_c()
    levels = [["61837.63000000", "3.78826000"], ["61830.17000000", "0.00000000"]]
    assert c.parse_levels(levels) == [(61_837_630_000_000, 3_788_260_000), (61_830_170_000_000, 0)]


# -- parse_levels_json ----------------------------------------------------------------------------

JSON_LEVELS = st.lists(st.tuples(st.one_of(PLAIN, PLAIN, DECIMAL), st.one_of(PLAIN, DECIMAL)), max_size=10)


def _variants(levels: list[tuple[str, str]]) -> list[bytes]:
    compact = json.dumps(levels, separators=(",", ":")).encode()
    return [
        compact,
        json.dumps(levels).encode(),
        json.dumps(levels, indent=1).encode(),
        b" \r\n\t" + compact + b"\n ",
    ]


@settings(max_examples=300)
@given(JSON_LEVELS)
def test_parse_levels_json_matches_two_step(levels: list[tuple[str, str]]) -> None:
    c = _need_c()
    for data in _variants(levels):
        expected = outcome(_parse_levels_json_py, data)
        assert outcome(c.parse_levels_json, data) == expected
        assert outcome(c.parse_levels_json, bytearray(data)) == expected
        assert outcome(c.parse_levels_json, memoryview(data)) == expected
        assert outcome(c.parse_levels_json, data.decode()) == expected


@settings(max_examples=300)
@given(
    (st.binary(max_size=40) | st.text(alphabet='[]",. 0123456789e-\\u', max_size=40).map(str.encode)).filter(
        _small_exponent
    )
)
def test_parse_levels_json_garbage_matches_two_step(data: bytes) -> None:
    c = _need_c()
    assert outcome(c.parse_levels_json, data) == outcome(_parse_levels_json_py, data)


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b" [ ] ",
        b'[["1","2"]]',
        b'[["1","2","3"]]',
        b'[["1"]]',
        b"[[1,2]]",
        b'[["1","2"]] x',
        b'[["1","2"],]',
        b'[["1" "2"]]',
        b'[["\\u0031","2"]]',
        b'[["1\\n","2"]]',
        '[["١","2"]]'.encode(),
        b'[["1e-8","1"]]',
        b'[["0.0000000001","1"]]',
        b'[["0.0000000001","1"]] x',
        b'[["x","1"], 5]',
        b"\xef\xbb\xbf[]",
        b"",
        b"[",
        b"null",
        b'{"a": 1}',
    ],
)
def test_parse_levels_json_edge_cases(data: bytes) -> None:
    c = _need_c()
    assert outcome(c.parse_levels_json, data) == outcome(_parse_levels_json_py, data)


def test_parse_levels_json_from_msgspec_raw() -> None:
    c = _need_c()

    class Depth(msgspec.Struct):
        b: msgspec.Raw

    raw = msgspec.json.decode(b'{"b": [["61837.63000000", "3.78826000"], ["1", "0"]]}', type=Depth).b
    assert c.parse_levels_json(raw) == [(61_837_630_000_000, 3_788_260_000), (1_000_000_000, 0)]
    assert fastparse.parse_levels_json(raw) == _parse_levels_json_py(raw)


def test_parse_levels_json_non_buffer() -> None:
    c = _need_c()
    for value in (5, None, ["1", "2"]):
        assert outcome(c.parse_levels_json, value)[1][0] is TypeError
        assert outcome(_parse_levels_json_py, value)[1][0] is TypeError


# -- PriceLadder ----------------------------------------------------------------------------------


def test_price_ladder_reads_like_a_list() -> None:
    c = _need_c()
    items = [-5, 1, 2, 3, 10]
    ladder = c.PriceLadder(items)
    assert len(ladder) == 5 and ladder and not c.PriceLadder()
    assert [ladder[i] for i in range(-5, 5)] == [items[i] for i in range(-5, 5)]
    for sl in (slice(None), slice(-2, None), slice(1, 3), slice(None, None, -1), slice(4, 0, -2), slice(-100, 100)):
        assert ladder[sl] == items[sl]
    assert list(ladder) == items and list(reversed(ladder)) == items[::-1]
    assert ladder == items and ladder == c.PriceLadder(items) and ladder != [1]
    assert repr(ladder) == "PriceLadder([-5, 1, 2, 3, 10])"
    assert pickle.loads(pickle.dumps(ladder)) == items
    assert copy.deepcopy(ladder) == items
    assert ladder.tolist() == items
    with pytest.raises(IndexError):
        ladder[5]
    with pytest.raises(IndexError):
        ladder[-6]
    with pytest.raises(TypeError):
        ladder["a"]
    with pytest.raises(TypeError):
        hash(ladder)
    ladder.clear()
    assert len(ladder) == 0 and ladder == []


def test_price_ladder_rejects_what_it_cannot_hold() -> None:
    c = _need_c()
    assert c.PriceLadder([INT64_MAX, -(2**63)]).tolist() == [INT64_MAX, -(2**63)]
    with pytest.raises(OverflowError):
        c.PriceLadder([INT64_MAX + 1])
    with pytest.raises(TypeError):
        c.PriceLadder(["1"])
    with pytest.raises(TypeError):
        c.PriceLadder([1.5])


# -- apply_side -----------------------------------------------------------------------------------

PRICE = st.integers(min_value=1, max_value=40).map(lambda p: p * 10_000_000)
QTY = st.one_of(st.just(0), st.just(0), st.integers(min_value=-3, max_value=5).map(lambda q: q * 1_000))
BATCHES = st.lists(st.lists(st.tuples(PRICE, QTY), max_size=12), max_size=12)


INITIAL = st.lists(st.tuples(PRICE, st.integers(min_value=1, max_value=9)), max_size=20)


@settings(max_examples=300)
@given(INITIAL, BATCHES, st.sampled_from([1, -1]))
def test_apply_side_matches_python(initial: list[Level], batches: list[list[Level]], sign: int) -> None:
    c = _need_c()
    ref_side = dict(initial)
    ref_keys = sorted(sign * p for p in ref_side)
    sides = [(dict(ref_side), list(ref_keys)), (dict(ref_side), c.PriceLadder(ref_keys))]
    for batch in batches:
        _apply_side_py(batch, ref_side, ref_keys, sign)
        for side, keys in sides:
            c.apply_side(batch, side, keys, sign)
            assert side == ref_side
            assert list(keys) == ref_keys


def test_apply_side_errors_match_python() -> None:
    c = _need_c()
    cases: list[Any] = [
        [(1,)],
        [(1, 2, 3)],
        [5],
        [None],
        [("1", 2)],
        [(1, "x")],
        [(1, None)],
        [[10, 1], [20, 2]],  # lists unpack like tuples
        iter([(10, 1), (10, 0)]),
    ]
    for levels in cases:
        batch = list(levels)
        ref_side: dict[int, int] = {5: 1}
        ref_keys = [5]
        expected = outcome(_apply_side_py, batch, ref_side, ref_keys, 1)
        side: dict[int, int] = {5: 1}
        keys = [5]
        assert outcome(c.apply_side, batch, side, keys, 1) == expected
        assert side == ref_side and keys == ref_keys


def test_apply_side_generic_sign_and_bad_containers() -> None:
    c = _need_c()
    side: dict[int, int] = {}
    keys: list[int] = []
    c.apply_side([(3, 1), (1, 1)], side, keys, 2)  # any sign works on a list, as in Python
    assert keys == [2, 6]
    with pytest.raises(TypeError):
        c.apply_side([(1, 1)], side, c.PriceLadder(), 2)
    with pytest.raises(TypeError):
        c.apply_side([(1, 1)], [], keys, 1)
    with pytest.raises(TypeError):
        c.apply_side([(1, 1)], side, (), 1)
    with pytest.raises(TypeError):
        c.apply_side([(1, 1)], side, keys)


def test_apply_side_ladder_overflow_leaves_ladder_intact() -> None:
    c = _need_c()
    side = {10: 1}
    ladder = c.PriceLadder([10])
    with pytest.raises(OverflowError):
        c.apply_side([(20, 1), (2**63, 1)], side, ladder, 1)
    assert side == {10: 1, 20: 1} and ladder == [10, 20]  # levels before the bad one were applied


# -- the book on top of it ------------------------------------------------------------------------

IID = InstrumentId("binance", "BTCUSDT")


def _deltas(first: int, last: int, bids: list[Level], asks: list[Level], snap: bool = False) -> BookDeltas:
    return BookDeltas(IID, 0, 0, first, last, bids, asks, snapshot=snap)


def test_book_falls_back_to_lists_for_prices_beyond_int64() -> None:
    book = OrderBook(IID, SequenceRule.RANGE)
    book.apply_deltas(_deltas(1, 1, [(100, 1), (99, 1)], [(2**64, 1)], snap=True))
    assert book.best_ask() == 2**64 and book.best_bid() == 100
    book.apply_deltas(_deltas(2, 2, [(101, 1), (100, 0)], [(2**65, 1), (2**70, 2)]))
    assert book.best_bid() == 101 and book.best_ask() == 2**64
    assert book.top_asks(3) == [(2**64, 1), (2**65, 1), (2**70, 2)]
    assert book.top_bids(3) == [(101, 1), (99, 1)]


def test_book_switches_to_lists_mid_stream() -> None:
    book = OrderBook(IID, SequenceRule.RANGE)
    book.apply_deltas(_deltas(1, 1, [(100, 1)], [(200, 1), (300, 1)], snap=True))
    if fastparse.ACCELERATED:
        assert type(book._ask_px) is _need_c().PriceLadder
    # The batch fails on the ladder half-way (2**64) and is applied again on lists.
    book.apply_deltas(_deltas(2, 2, [(150, 2), (100, 0)], [(200, 0), (2**64, 5), (250, 1)]))
    assert book.valid
    assert book.top_bids(5) == [(150, 2)]
    assert book.top_asks(5) == [(250, 1), (300, 1), (2**64, 5)]
    assert isinstance(book._ask_px, list) and isinstance(book._bid_px, list)
    # A new snapshot goes back to ladders.
    book.apply_deltas(_deltas(3, 3, [(100, 1)], [(200, 1)], snap=True))
    assert book.best_bid() == 100 and book.best_ask() == 200
