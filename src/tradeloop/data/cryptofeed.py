"""Reader for cryptofeed's raw session recordings (``*.ws.N.M`` and REST ``*.N`` files).

Line formats (one frame per line):

* received WebSocket frame: ``<unix_ts>: <payload>``
* sent frame: ``<url> <- <unix_ts>: <payload>``
* connection opened: ``<url> <-> <unix_ts>``
* REST response: ``<url> -> <unix_ts>: <body>``

Timestamps are decimal seconds; they are turned into integer nanoseconds exactly (no float).
Payloads are returned as bytes, untouched (HTX's are Python bytes literals of gzip data; decoding
them is the HTX parser's job).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path

import msgspec

from tradeloop.core import fixed

__all__ = ["Direction", "RecordedFrame", "read_cryptofeed"]


class Direction(StrEnum):
    RECEIVED = "received"
    SENT = "sent"
    CONNECTED = "connected"
    REST = "rest"


class RecordedFrame(msgspec.Struct, frozen=True):
    line: int
    ts_recv: int
    """Receive (or send) time, ns since the epoch."""
    direction: Direction
    url: str
    payload: bytes


def _ts_ns(text: str) -> int:
    return fixed.parse(text.strip())  # nanos of seconds == ns since the epoch


def read_cryptofeed(
    path: str | Path, on_error: Callable[[int, str], None] | None = None
) -> Iterator[RecordedFrame]:
    """Every frame of a recording, in file order.

    A bad line raises ``ValueError`` naming the file and line, or, with ``on_error``, is reported
    to it as ``(line, message)`` and skipped.
    """
    with Path(path).open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.rstrip(b"\r\n")
            if not line:
                continue
            try:
                yield _parse_line(n, line)
            except (ValueError, UnicodeDecodeError) as exc:
                message = f"{path}:{n}: not a cryptofeed recording line: {exc}"
                if on_error is None:
                    raise ValueError(message) from None
                on_error(n, message)


def _parse_line(n: int, line: bytes) -> RecordedFrame:
    head, sep, payload = line.partition(b": ")
    if head.endswith(b"}") or not sep:
        head, payload = line, b""
    text = head.decode()
    for marker, direction in ((" <-> ", Direction.CONNECTED), (" <- ", Direction.SENT), (" -> ", Direction.REST)):
        if marker in text:
            url, _, ts = text.partition(marker)
            return RecordedFrame(n, _ts_ns(ts), direction, url, payload)
    if not sep:
        raise ValueError("no timestamp")
    return RecordedFrame(n, _ts_ns(text), Direction.RECEIVED, "", payload)
