"""Venue timestamp formats -> integer nanoseconds since the epoch, exactly (no float on the way)."""

from __future__ import annotations

from datetime import datetime

__all__ = ["rfc3339_to_ns"]


def rfc3339_to_ns(text: str) -> int:
    """``2021-04-17T16:43:37.089723Z`` (any fraction up to ns, ``Z`` or an offset) -> ns."""
    body = text.strip()
    offset = "+00:00"
    if body.endswith(("Z", "z")):
        body = body[:-1]
    elif len(body) > 6 and body[-6] in "+-" and body[-3] == ":":
        body, offset = body[:-6], body[-6:]
    head, dot, frac = body.partition(".")
    if dot and not frac.isdigit():
        raise ValueError(f"bad fraction in timestamp {text!r}")
    seconds = int(datetime.fromisoformat(head + offset).timestamp())
    return seconds * 1_000_000_000 + (int((frac + "000000000")[:9]) if dot else 0)
