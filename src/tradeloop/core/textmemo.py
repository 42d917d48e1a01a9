"""Remembered number formatting for hot paths that write the same numbers again and again.

Venue book checksums (OKX, Kraken) are CRC32s of the top levels written back as decimal text, on
every update. Between two updates nearly all of those prices and sizes are the same ints as before,
so formatting them once and looking them up afterwards removes most of the cost. A
:class:`TextMemo` is exactly its formatting function (same text for the same int, whatever it held
before), bounded by emptying itself when full, so it never changes a result, only its cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

__all__ = ["DEFAULT_MAX_ENTRIES", "TextMemo"]

DEFAULT_MAX_ENTRIES: Final = 1 << 16
"""Values a memo holds before it starts over (a few MB at most)."""


class TextMemo:
    """``format(value)`` per int ``value``, computed once and then looked up.

    The hot-path form skips the method call::

        get, fill = memo.texts.get, memo.fill
        text = get(value) or fill(value)

    (only for a ``format`` that never returns an empty string; otherwise call the memo).
    """

    __slots__ = ("_format", "_max", "texts")

    def __init__(self, format: Callable[[int], str], max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._format = format
        self._max = max_entries
        self.texts: dict[int, str] = {}
        """value -> text of the values formatted so far (read-only for callers)."""

    def __call__(self, value: int) -> str:
        text = self.texts.get(value)
        return text if text is not None else self.fill(value)

    def fill(self, value: int) -> str:
        """Format ``value`` and remember it (starting over when the memo is full)."""
        texts = self.texts
        if len(texts) >= self._max:
            texts.clear()
        text = texts[value] = self._format(value)
        return text

    def __len__(self) -> int:
        return len(self.texts)
