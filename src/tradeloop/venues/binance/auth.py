"""Binance request signing: pure functions of (credentials, time, parameters) -> signed request parts.

REST (HMAC keys): the payload is the url-encoded query string followed by the form body, and
``signature = hex(HMAC-SHA256(secret, payload))`` is appended as the last parameter. WebSocket API:
every parameter except ``signature`` sorted by name and joined as ``k=v&...`` (not url-encoded).
Ed25519 and RSA keys sign the same payload; their signature is base64 (percent-encoded in a query).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

if TYPE_CHECKING:
    from tradeloop.security.credentials import Credentials

__all__ = ["sign", "sign_payload", "signed_query", "signed_query_for", "ws_api_params", "ws_api_params_for"]


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


def sign_payload(credentials: Credentials, payload: str) -> str:
    """The signature of ``payload`` with this key: hex HMAC-SHA256 for an API secret, base64 for an
    Ed25519 or RSA (PKCS#1 v1.5, SHA-256) private key."""
    if credentials.private_key_pem is None:
        return sign(credentials.secret.reveal(), payload)
    key = credentials.load_private_key()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.sign(payload.encode())
    elif isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())
    else:
        raise ValueError("Binance accepts HMAC, Ed25519 or RSA keys, not ECDSA")
    return base64.b64encode(raw).decode()


def signed_query_for(
    credentials: Credentials, params: Mapping[str, str], timestamp_ms: int, recv_window_ms: int | None = None
) -> str:
    """:func:`signed_query` with whatever key ``credentials`` holds (the signature percent-encoded)."""
    fields = dict(params)
    if recv_window_ms is not None:
        fields["recvWindow"] = str(recv_window_ms)
    fields["timestamp"] = str(timestamp_ms)
    query = urlencode(fields, quote_via=quote)
    return f"{query}&signature={quote(sign_payload(credentials, query), safe='')}"


def ws_api_params_for(credentials: Credentials, params: Mapping[str, str], timestamp_ms: int) -> dict[str, str]:
    """:func:`ws_api_params` with whatever key ``credentials`` holds."""
    fields = {**params, "apiKey": credentials.api_key.reveal(), "timestamp": str(timestamp_ms)}
    payload = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    return {**fields, "signature": sign_payload(credentials, payload)}
