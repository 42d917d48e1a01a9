"""OKX v5 request signing: pure functions of (credentials, time, request) -> headers.

REST: ``OK-ACCESS-SIGN = Base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath + body))`` with
an ISO-8601 millisecond UTC timestamp; ``requestPath`` includes the query string and ``body`` is the
exact JSON sent (empty for GET). WebSocket login signs ``unix_seconds + "GET" + "/users/self/verify"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

__all__ = ["iso_timestamp", "rest_headers", "sign", "ws_login_args"]

_WS_VERIFY_PATH = "/users/self/verify"


def sign(secret: str, prehash: str) -> str:
    """Base64 HMAC-SHA256 of ``prehash`` under ``secret``."""
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def iso_timestamp(unix_ns: int) -> str:
    """``2020-12-08T09:08:57.715Z`` for a time in ns (truncated to milliseconds)."""
    ms = unix_ns // 1_000_000
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def rest_headers(
    api_key: str, secret: str, passphrase: str, unix_ns: int, method: str, request_path: str, body: str = ""
) -> dict[str, str]:
    """Headers of a signed REST request (``request_path`` with its query string, ``body`` as sent)."""
    ts = iso_timestamp(unix_ns)
    return {
        "OK-ACCESS-KEY": api_key,
        "OK-ACCESS-SIGN": sign(secret, ts + method.upper() + request_path + body),
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-PASSPHRASE": passphrase,
        "Content-Type": "application/json",
    }


def ws_login_args(api_key: str, secret: str, passphrase: str, unix_seconds: int) -> dict[str, str]:
    """The ``args[0]`` of the private WebSocket ``login`` op."""
    ts = str(unix_seconds)
    return {
        "apiKey": api_key,
        "passphrase": passphrase,
        "timestamp": ts,
        "sign": sign(secret, ts + "GET" + _WS_VERIFY_PATH),
    }
