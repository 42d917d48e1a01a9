"""Kraken REST signing: a pure function of (secret, path, nonce, body) -> ``API-Sign``.

``API-Sign = Base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + body)))`` where ``path``
is ``/0/private/<Method>`` and ``body`` the exact url-encoded form (which itself contains ``nonce``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode

__all__ = ["private_request", "sign"]


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
