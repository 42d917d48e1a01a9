"""How the Binance simulator checks a signed request, as the venue does (pure).

REST: ``X-MBX-APIKEY`` must be the simulator's key; the ``signature`` must sign the query string
(without ``&signature=...``) followed by the body; ``timestamp`` must be within ``recvWindow`` of the
server clock and not more than 1 s ahead. WebSocket API: the same over the sorted parameters.
HMAC keys sign in hex, Ed25519 keys in base64.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from tradeloop.security.credentials import Credentials
from tradeloop.venues.binance.auth import sign
from tradeloop.venues.binance.spec import ERROR_MESSAGES, RECV_WINDOW_MS

__all__ = ["AuthError", "check_rest", "check_ws_api"]

_MAX_RECV_WINDOW_MS = 60_000


class AuthError(Exception):
    """A refused signed request: Binance's code and message."""

    def __init__(self, code: int) -> None:
        super().__init__(ERROR_MESSAGES[code])
        self.code = code
        self.msg = ERROR_MESSAGES[code]


def _verify(credentials: Credentials, payload: str, signature: str) -> bool:
    if credentials.private_key_pem is None:
        return hmac.compare_digest(sign(credentials.secret.reveal(), payload), signature)
    key = credentials.load_private_key()
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        return False
    try:
        key.public_key().verify(base64.b64decode(signature, validate=True), payload.encode())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _check_time(params: Mapping[str, str], server_ms: int) -> None:
    try:
        timestamp = int(params.get("timestamp", ""))
        window = int(params.get("recvWindow") or RECV_WINDOW_MS)
    except ValueError:
        raise AuthError(-1102) from None
    if not 0 < window <= _MAX_RECV_WINDOW_MS or timestamp >= server_ms + 1000 or server_ms - timestamp > window:
        raise AuthError(-1021)


def check_rest(credentials: Credentials, api_key: str | None, query: str, body: str, server_ms: int) -> None:
    """Raise :class:`AuthError` unless this is a valid SIGNED request for ``credentials``."""
    if api_key != credentials.api_key.reveal():
        raise AuthError(-2015 if api_key else -2014)
    payload, sep, signature = query.rpartition("&signature=")
    if not sep:
        if "signature=" in body:
            payload, _, signature = (query + body).rpartition("&signature=")
        else:
            raise AuthError(-1102)
    if not _verify(credentials, payload + (body if sep else ""), unquote(signature)):
        raise AuthError(-1022)
    _check_time(dict(parse_qsl(payload, keep_blank_values=True)), server_ms)


def check_ws_api(credentials: Credentials, params: Mapping[str, str], server_ms: int) -> None:
    """Raise :class:`AuthError` unless ``params`` (with ``apiKey``, ``timestamp``, ``signature``) is valid."""
    if params.get("apiKey") != credentials.api_key.reveal():
        raise AuthError(-2015)
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    if not _verify(credentials, payload, params.get("signature", "")):
        raise AuthError(-1022)
    _check_time(params, server_ms)
