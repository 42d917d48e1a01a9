"""Bybit v5 signing: pure functions of (credentials, time, request) -> headers or auth args.

REST: ``X-BAPI-SIGN = hex(HMAC-SHA256(secret, timestamp + apiKey + recvWindow + payload))`` where the
payload is the query string (GET) or the exact JSON body (POST). WebSocket auth signs
``"GET/realtime" + expires_ms``.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["rest_headers", "sign", "ws_auth_args"]


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_headers(api_key: str, secret: str, timestamp_ms: int, recv_window_ms: int, payload: str) -> dict[str, str]:
    """Headers of a signed REST call; ``payload`` is the query string (GET) or the body (POST)."""
    ts = str(timestamp_ms)
    window = str(recv_window_ms)
    return {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": window,
        "X-BAPI-SIGN": sign(secret, ts + api_key + window + payload),
        "Content-Type": "application/json",
    }


def ws_auth_args(api_key: str, secret: str, expires_ms: int) -> list[str | int]:
    """``args`` of the private WebSocket ``auth`` op."""
    return [api_key, expires_ms, sign(secret, f"GET/realtime{expires_ms}")]
