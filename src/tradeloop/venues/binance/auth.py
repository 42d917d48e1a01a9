"""Binance request signing: pure functions of (credentials, time, parameters) -> signed request parts.

REST (HMAC keys): the payload is the url-encoded query string followed by the form body, and
``signature = hex(HMAC-SHA256(secret, payload))`` is appended as the last parameter. WebSocket API:
every parameter except ``signature`` sorted by name and joined as ``k=v&...`` (not url-encoded).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote, urlencode

__all__ = ["sign", "signed_query", "ws_api_params"]


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(secret: str, params: Mapping[str, str], timestamp_ms: int, recv_window_ms: int | None = None) -> str:
    """``k=v&...&recvWindow=..&timestamp=..&signature=..`` for a SIGNED endpoint (parameters in the given order)."""
    fields = dict(params)
    if recv_window_ms is not None:
        fields["recvWindow"] = str(recv_window_ms)
    fields["timestamp"] = str(timestamp_ms)
    query = urlencode(fields, quote_via=quote)
    return f"{query}&signature={sign(secret, query)}"


def ws_api_params(api_key: str, secret: str, params: Mapping[str, str], timestamp_ms: int) -> dict[str, str]:
    """``params`` of a signed WebSocket API request, with ``apiKey``, ``timestamp`` and ``signature`` added."""
    fields = {**params, "apiKey": api_key, "timestamp": str(timestamp_ms)}
    payload = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    return {**fields, "signature": sign(secret, payload)}
