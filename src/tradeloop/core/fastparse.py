"""Hot-path conversion of venue decimal strings into fixed-point nanos.

``parse_levels`` turns a venue's ``[[price, size], ...]`` string pairs into ``[(price, size), ...]``
integer pairs; ``parse_fixed`` converts one string. A C accelerator (``tradeloop.core._fastparse``)
is used when it was built at install time; otherwise the pure-Python implementation below runs,
with identical results and exceptions (the accelerator hands every string it does not handle
itself to :func:`tradeloop.core.fixed.parse`).

``parse_levels_json`` does ``parse_levels(json.loads(data))`` in one step straight from the JSON
text of a levels array (e.g. a ``msgspec.Raw`` field), skipping the intermediate str objects.

For ``tradeloop.model.book`` the accelerator also carries ``apply_side`` (the C form of
``OrderBook._apply_side``, exported as :data:`book_apply_side`, ``None`` without the accelerator)
and ``PriceLadder``, an int64 array for a side's sorted price keys (see :func:`new_price_keys`).

``levels_json_strings`` (``None`` without the accelerator) is ``parse_levels_json`` for levels made
only of plain strings, any number after price and size (OKX's ``[px, sz, "0", orders]``), and returns
``None`` for any other shape, so a caller can keep its typed decoder's strictness.

``checksum_text_interleaved`` and ``checksum_text_digits`` (``None`` without the accelerator) write
the text venues compute book checksums over (OKX, Kraken) straight from a book's sides
(``OrderBook.sorted_sides()``); they return ``None`` for anything but int64 values, and the venue
code then formats in Python.

``ACCELERATED`` tells which one is in use. Setting ``TRADELOOP_PURE_PYTHON=1`` in the environment
before the first import forces the pure-Python implementation (benchmarks, debugging).
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Final, Protocol, SupportsIndex, cast, overload

import msgspec

from tradeloop.core.fixed import parse as _parse_fixed_py

__all__ = [
    "ACCELERATED",
    "FORCE_PURE_ENV",
    "PriceKeys",
    "book_apply_side",
    "checksum_text_digits",
    "checksum_text_interleaved",
    "levels_json_strings",
    "new_price_keys",
    "parse_fixed",
    "parse_levels",
    "parse_levels_json",
]

FORCE_PURE_ENV: Final[str] = "TRADELOOP_PURE_PYTHON"


class PriceKeys(Protocol):
    """What the order book reads from a side's sorted price keys: a ``list[int]`` or a ``PriceLadder``."""

    def __len__(self) -> int: ...

    @overload
    def __getitem__(self, index: SupportsIndex, /) -> int: ...

    @overload
    def __getitem__(self, index: slice, /) -> list[int]: ...

    def clear(self) -> None: ...


JsonText = str | bytes | bytearray | memoryview | msgspec.Raw
ParseFixed = Callable[[str], int]
ParseLevels = Callable[[Sequence[Sequence[str]]], list[tuple[int, int]]]
ParseLevelsJson = Callable[[JsonText], list[tuple[int, int]]]
ApplySide = Callable[[list[tuple[int, int]], dict[int, int], PriceKeys, int], None]
NewPriceKeys = Callable[[list[int]], PriceKeys]
LevelsJsonStrings = Callable[[JsonText], list[tuple[int, int]] | None]
ChecksumTextInterleaved = Callable[[PriceKeys, dict[int, int], PriceKeys, dict[int, int], int], bytes | None]
ChecksumTextDigits = Callable[[PriceKeys, dict[int, int], PriceKeys, dict[int, int], int, int, int], bytes | None]


def _parse_levels_py(levels: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    parse = _parse_fixed_py
    out = []
    for level in levels:
        if len(level) < 2:
            raise ValueError(f"book level needs price and size, got {level!r}")
        out.append((parse(level[0]), parse(level[1])))
    return out


def _parse_levels_json_py(data: JsonText) -> list[tuple[int, int]]:
    doc: str | bytes | bytearray
    if isinstance(data, str) or type(data) in (bytes, bytearray):
        doc = cast(str | bytes | bytearray, data)
    else:
        doc = bytes(memoryview(data))  # as the C version: any other buffer is read as bytes
    return _parse_levels_py(json.loads(doc))


def _new_price_keys_py(sorted_keys: list[int]) -> PriceKeys:
    return sorted_keys


class _Accelerator:
    __slots__ = (
        "apply_side",
        "checksum_text_digits",
        "checksum_text_interleaved",
        "levels_json_strings",
        "new_price_keys",
        "parse_fixed",
        "parse_levels",
        "parse_levels_json",
    )

    def __init__(self, module: object) -> None:
        self.parse_fixed = cast(ParseFixed, getattr(module, "parse_fixed"))  # noqa: B009
        self.parse_levels = cast(ParseLevels, getattr(module, "parse_levels"))  # noqa: B009
        self.parse_levels_json = cast(ParseLevelsJson, getattr(module, "parse_levels_json"))  # noqa: B009
        self.apply_side = cast(ApplySide, getattr(module, "apply_side"))  # noqa: B009
        # Optional: a build of an older source without them still accelerates the rest.
        self.checksum_text_interleaved = cast(
            ChecksumTextInterleaved | None, getattr(module, "checksum_text_interleaved", None)
        )
        self.checksum_text_digits = cast(ChecksumTextDigits | None, getattr(module, "checksum_text_digits", None))
        self.levels_json_strings = cast(LevelsJsonStrings | None, getattr(module, "levels_json_strings", None))
        ladder = cast(Callable[[list[int]], PriceKeys], getattr(module, "PriceLadder"))  # noqa: B009

        def new_price_keys(sorted_keys: list[int]) -> PriceKeys:
            try:
                return ladder(sorted_keys)
            except (OverflowError, TypeError):  # a key beyond int64 (or not an int): keep the list
                return sorted_keys

        self.new_price_keys: NewPriceKeys = new_price_keys


def _load_accelerator() -> _Accelerator | None:
    if os.environ.get(FORCE_PURE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return None
    try:
        module = importlib.import_module("tradeloop.core._fastparse")
    except ImportError:  # not built (no compiler at install time): pure Python
        return None
    try:
        return _Accelerator(module)
    except AttributeError as exc:  # a build left over from an older version of the C source
        warnings.warn(
            f"ignoring stale tradeloop.core._fastparse ({exc}); rebuild it with `pip install -e .`",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


_accelerator = _load_accelerator()

ACCELERATED: Final[bool] = _accelerator is not None
"""True when the C accelerator is in use."""

parse_fixed: ParseFixed
"""Decimal string -> nanos; identical to :func:`tradeloop.core.fixed.parse`."""
parse_levels: ParseLevels
"""``[[price, size], ...]`` decimal strings -> ``[(price, size), ...]`` nanos."""
parse_levels_json: ParseLevelsJson
"""``parse_levels(json.loads(data))`` in one step, straight from the JSON text of the levels array
(bytes, bytearray, memoryview, ``msgspec.Raw``, str). Results and exception types are those of the
two-step form; the C version builds no intermediate strings or lists."""
book_apply_side: ApplySide | None
"""C form of ``OrderBook._apply_side`` (list or ``PriceLadder`` keys), ``None`` without the accelerator."""
new_price_keys: NewPriceKeys
"""Container for a book side's sorted keys: a C ``PriceLadder`` (int64 array) when accelerated and
every key fits, else the list itself."""
levels_json_strings: LevelsJsonStrings | None
"""``parse_levels(json.loads(data))`` when every level is made only of plain strings (at least two, the
rest ignored), else ``None``; a decimal the parser rejects raises as it would. ``None`` without the
accelerator."""
checksum_text_interleaved: ChecksumTextInterleaved | None
"""``(bid_keys, bids, ask_keys, asks, depth) -> bytes | None``: ``bidPx:bidSz:askPx:askSz:...`` over the
best ``depth`` levels per side (the longer side's rest continues alone), numbers as
:func:`tradeloop.core.fixed.to_str` writes them; ``None`` without the accelerator."""
checksum_text_digits: ChecksumTextDigits | None
"""``(ask_keys, asks, bid_keys, bids, depth, price_decimals, qty_decimals) -> bytes | None``: the best
``depth`` asks then bids, each price and size as ``fixed.to_str(v, decimals)`` with the dot removed
and leading zeros stripped, nothing between; ``None`` without the accelerator."""

if _accelerator is not None:
    parse_fixed = _accelerator.parse_fixed
    parse_levels = _accelerator.parse_levels
    parse_levels_json = _accelerator.parse_levels_json
    book_apply_side = _accelerator.apply_side
    new_price_keys = _accelerator.new_price_keys
    checksum_text_interleaved = _accelerator.checksum_text_interleaved
    checksum_text_digits = _accelerator.checksum_text_digits
    levels_json_strings = _accelerator.levels_json_strings
else:
    parse_fixed = _parse_fixed_py
    parse_levels = _parse_levels_py
    parse_levels_json = _parse_levels_json_py
    book_apply_side = None
    new_price_keys = _new_price_keys_py
    checksum_text_interleaved = None
    checksum_text_digits = None
    levels_json_strings = None
