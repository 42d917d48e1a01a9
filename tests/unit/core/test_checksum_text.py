"""The accelerator's checksum writers and string-levels parser against independent Python references.

``checksum_text_interleaved`` must write exactly OKX's ``bidPx:bidSz:askPx:askSz:...`` text and
``checksum_text_digits`` Kraken's digits text (both computed here with ``fixed.to_str`` and plain
string operations), or give ``None`` where the Python formatting must decide. ``levels_json_strings``
must equal ``parse_levels(json.loads(data))`` whenever it answers, and answer for every array of
plain-string levels.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core import fixed
from tradeloop.core.fastparse import new_price_keys, parse_levels
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, Level
from tradeloop.model.identifiers import InstrumentId

IID = InstrumentId("x", "Y")
INT64_MAX = 2**63 - 1


def _need(name: str) -> Any:
    """The extension's function ``name`` (tested even when ``TRADELOOP_PURE_PYTHON`` keeps it unused);
    skips (fails under CI=true) when the extension was not built."""
    try:
        module = importlib.import_module("tradeloop.core._fastparse")
    except ImportError:
        message = "tradeloop.core._fastparse is not built (no C compiler at install time?)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return getattr(module, name)


def _book(bids: list[Level], asks: list[Level]) -> OrderBook:
    book = OrderBook(IID, check_crossed=False)
    book.apply_snapshot(BookDeltas(IID, 0, 0, 1, 1, bids, asks, snapshot=True))
    return book


def okx_text(book: OrderBook, depth: int) -> bytes:
    """OKX's checksum string, independently: interleave ``px:sz`` of the best ``depth`` levels."""
    s = fixed.to_str
    bids = [f"{s(p)}:{s(q)}" for p, q in book.top_bids(depth)]
    asks = [f"{s(p)}:{s(q)}" for p, q in book.top_asks(depth)]
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        parts += bids[i : i + 1] + asks[i : i + 1]
    return ":".join(parts).encode()


def kraken_text(book: OrderBook, depth: int, pdp: int, qdp: int) -> bytes | None:
    """Kraken's checksum string, independently; ``None`` when a value cannot be written with its decimals."""

    def part(v: int, d: int) -> str:
        return fixed.to_str(v, d).replace(".", "").lstrip("0")

    try:
        asks = "".join(part(p, pdp) + part(q, qdp) for p, q in book.top_asks(depth))
        bids = "".join(part(p, pdp) + part(q, qdp) for p, q in book.top_bids(depth))
    except fixed.FixedPointError:
        return None
    return (asks + bids).encode()


nanos = st.integers(min_value=1, max_value=INT64_MAX)
grid_nanos = st.builds(lambda m, d: m * 10**d, st.integers(1, 10**9), st.integers(0, 9))  # < 10**18: int64
levels = st.lists(st.tuples(st.one_of(grid_nanos, nanos), st.one_of(grid_nanos, nanos)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(levels, levels, st.integers(0, 30), st.booleans())
def test_interleaved_text_is_okx_layout(bids: list[Level], asks: list[Level], depth: int, as_list: bool) -> None:
    write = _need("checksum_text_interleaved")
    book = _book(bids, asks)
    bid_keys, bid_sizes, ask_keys, ask_sizes = book.sorted_sides()
    if as_list:  # a side whose keys fell back to a plain list reads the same
        bid_keys, ask_keys = list(bid_keys[:]), list(ask_keys[:])
    assert write(bid_keys, bid_sizes, ask_keys, ask_sizes, depth) == okx_text(book, depth)


@settings(max_examples=300, deadline=None)
@given(levels, levels, st.integers(0, 12), st.integers(0, 12), st.integers(0, 12))
def test_digits_text_is_kraken_layout(bids: list[Level], asks: list[Level], depth: int, pdp: int, qdp: int) -> None:
    write = _need("checksum_text_digits")
    book = _book(bids, asks)
    bid_keys, bid_sizes, ask_keys, ask_sizes = book.sorted_sides()
    assert write(ask_keys, ask_sizes, bid_keys, bid_sizes, depth, pdp, qdp) == kraken_text(book, depth, pdp, qdp)


def test_checksum_writers_edge_values() -> None:
    interleaved = _need("checksum_text_interleaved")
    digits = _need("checksum_text_digits")
    for v in (1, 9, 10, 99, 100, 10**9, 5 * 10**8, 123_456_789, 10**18, INT64_MAX, 1_000_000_001):
        keys = new_price_keys([v])
        assert interleaved(keys, {v: v}, new_price_keys([]), {}, 25) == f"{fixed.to_str(v)}:{fixed.to_str(v)}".encode()
        for d in range(19):
            try:
                want: bytes | None = (fixed.to_str(v, d).replace(".", "").lstrip("0") * 2).encode()
            except fixed.FixedPointError:
                want = None
            assert digits(new_price_keys([]), {}, keys, {v: v}, 10, d, d) == want, (v, d)
    # Anything but int64 values, and decimals beyond 18, are left to the Python formatting.
    big = 2**70
    assert interleaved([big], {big: 1}, [], {}, 5) is None
    assert interleaved([1], {1: big}, [], {}, 5) is None
    assert digits([], {}, [1], {1: 1}, 5, 19, 2) is None
    assert digits([], {}, [1], {1: 1}, 5, -1, 2) is None
    assert interleaved([], {}, [], {}, 25) == b""


# -- levels of plain strings straight from JSON ----------------------------------------------------

decimal_text = st.one_of(
    st.builds(lambda w, f: f"{w}.{f}", st.integers(0, 10**8), st.integers(0, 10**9)),
    st.integers(0, 10**12).map(str),
    st.sampled_from(["1e5", "-3", " 1", "1.0000000001", "", "abc", "1.", ".5", "+2", "0.000000001"]),
)
item = st.one_of(decimal_text, decimal_text, st.integers(0, 9), st.none(), st.just("é"), st.just('a"b'))
level = st.lists(item, max_size=5)


@settings(max_examples=500, deadline=None)
@given(st.lists(level, max_size=6), st.booleans())
def test_levels_json_strings_is_the_typed_two_step(doc: list[list[Any]], spaced: bool) -> None:
    parse = _need("levels_json_strings")
    text = json.dumps(doc, separators=(", ", ": ") if spaced else (",", ":")).encode()
    only_strings = all(len(lv) >= 2 and all(isinstance(x, str) for x in lv) for lv in doc)
    try:
        reference: Any = ("ok", parse_levels(doc)) if only_strings else ("shape", None)
    except (ValueError, TypeError) as exc:
        reference = ("error", type(exc))
    try:
        got: Any = ("ok", parse(text))
    except (ValueError, TypeError) as exc:
        got = ("error", type(exc))
    if got[0] == "error":
        # Only for a decimal the parser refuses (before the shape is known to be wrong, at worst).
        assert reference[0] in ("error", "shape")
    elif got[1] is None:
        plain = only_strings and all(x.isascii() and '"' not in x and "\\" not in x for lv in doc for x in lv)
        assert not plain, "a plain-string array must be answered"
    else:
        assert reference == got


def test_levels_json_strings_okx_shape_and_refusals() -> None:
    parse = _need("levels_json_strings")
    assert parse(b'[["60000.1","0.5","0","3"],["59999","2","0","1"]]') == [
        (60000_100_000_000, 500_000_000),
        (59999_000_000_000, 2_000_000_000),
    ]
    assert parse(b" [ ] ") == []
    for other in (
        b'[["1","2",0]]',
        b'[["1"]]',
        b'[["1","2"]',
        b"[1]",
        b'{"a":1}',
        b'[["1","2"]] x',
        b'[["1","2\\u0030"]]',
    ):
        assert parse(other) is None, other
    with pytest.raises(fixed.FixedPointError):
        parse(b'[["abc","1"]]')
