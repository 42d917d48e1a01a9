"""Venue timestamp formats -> integer nanoseconds since the epoch, exactly (no float on the way)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

__all__ = ["rfc3339_to_ns"]


def rfc3339_to_ns(text: str) -> int:
    """``2021-04-17T16:43:37.089723Z`` (any fraction up to ns, ``Z`` or an offset) -> ns."""
    if text[19:20] == "." and text[-1:] == "Z":
        # The usual shape, whose second was seen before: only a second seen by the general path below
        # is found, so the result is the one that path gives.
        seconds = _SECONDS.get(text[:19] + "+00:00")
        frac = text[20:-1]
        if seconds is not None and frac.isdigit():
            return seconds * 1_000_000_000 + int((frac + "000000000")[:9])
    body = text.strip()
    offset = "+00:00"
    if body.endswith(("Z", "z")):
        body = body[:-1]
    elif len(body) > 6 and body[-6] in "+-" and body[-3] == ":":
        body, offset = body[:-6], body[-6:]
    head, dot, frac = body.partition(".")
    if dot and not frac.isdigit():
        raise ValueError(f"bad fraction in timestamp {text!r}")
    whole = head + offset
    seconds = _SECONDS.get(whole)
    if seconds is None:
        seconds = int(datetime.fromisoformat(whole).timestamp())
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        _SECONDS[whole] = seconds
    return seconds * 1_000_000_000 + (int((frac + "000000000")[:9]) if dot else 0)


_SECONDS: dict[str, int] = {}
"""Whole-second texts already converted: a feed's timestamps share their second for many messages."""
_SECONDS_KEPT: Final = 4096
