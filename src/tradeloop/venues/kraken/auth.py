"""Kraken REST signing: a pure function of (secret, path, nonce, body) -> ``API-Sign``.

``API-Sign = Base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + body)))`` where ``path``
is ``/0/private/<Method>`` and ``body`` the exact url-encoded form (which itself contains ``nonce``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

__all__ = ["NonceSource", "nonce_source", "private_request", "sign"]


def sign(secret_b64: str, path: str, nonce: int | str, body: str) -> str:
    """The ``API-Sign`` header value."""
    digest = hashlib.sha256((str(nonce) + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret_b64), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def private_request(
    api_key: str, secret_b64: str, method: str, nonce: int, params: Mapping[str, str]
) -> tuple[str, dict[str, str], str]:
    """``(path, headers, body)`` of a private REST call; ``nonce`` goes first in the body."""
    path = f"/0/private/{method}"
    body = urlencode({"nonce": str(nonce), **params})
    headers = {
        "API-Key": api_key,
        "API-Sign": sign(secret_b64, path, nonce, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return path, headers, body


class NonceSource:
    """Strictly increasing nonces for one API key: microseconds of the injected clock, bumped past the last.

    Kraken refuses a nonce not above the last one it saw for the key (``EAPI:Invalid nonce``), so every
    client signing with one key must draw from one source (:func:`nonce_source`).
    """

    __slots__ = ("_last", "_now_ns")

    def __init__(self, now_ns: Callable[[], int]) -> None:
        self._now_ns = now_ns
        self._last = 0

    def next(self) -> int:
        nonce = max(self._now_ns() // 1000, self._last + 1)
        self._last = nonce
        return nonce


_SOURCES: dict[str, NonceSource] = {}


def nonce_source(key_fingerprint: str, now_ns: Callable[[], int]) -> NonceSource:
    """The process-wide nonce source of one API key (by its fingerprint, never the key itself)."""
    source = _SOURCES.get(key_fingerprint)
    if source is None:
        source = _SOURCES[key_fingerprint] = NonceSource(now_ns)
    return source
