"""Coinbase Advanced Trade authentication: a CDP API key signs a short-lived JWT (ES256 or EdDSA).

Pure: the JWT is a function of (key name, private key, time, nonce, request). REST requests put a
fresh JWT with a ``uri`` claim (``"GET api.coinbase.com/api/v3/brokerage/accounts"``) in
``Authorization: Bearer``; WebSocket subscriptions carry one without ``uri`` in their ``jwt`` field.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tradeloop.venues.coinbase.spec import JWT_LIFETIME_S, URLS

__all__ = ["b64url", "build_jwt", "load_private_key", "rest_uri"]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_private_key(secret: str) -> PrivateKey:
    """A CDP key's private part: an EC P-256 PEM, or Ed25519 as base64 of 32 (seed) or 64 bytes."""
    text = secret.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            return key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key
        raise ValueError("Coinbase keys are EC P-256 or Ed25519")
    raw = base64.b64decode(text)
    if len(raw) not in (32, 64):
        raise ValueError("an Ed25519 key is 32 or 64 bytes of base64")
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])


def rest_uri(method: str, path: str, host: str | None = None) -> str:
    """The ``uri`` claim: method, host (``api.coinbase.com`` unless given) and path without the query string."""
    return f"{method.upper()} {host or URLS.rest_host}{path.partition('?')[0]}"


def build_jwt(key_name: str, private_key: PrivateKey, now_s: int, nonce: str, uri: str | None = None) -> str:
    """A JWT valid for 120 s from ``now_s``; ``nonce`` is random hex chosen by the caller."""
    alg = "EdDSA" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "ES256"
    header = {"alg": alg, "kid": key_name, "nonce": nonce, "typ": "JWT"}
    claims: dict[str, Any] = {"sub": key_name, "iss": "cdp", "nbf": now_s, "exp": now_s + JWT_LIFETIME_S}
    if uri is not None:
        claims["uri"] = uri
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(signing_input.encode())
    else:
        r, s = decode_dss_signature(private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants raw r || s, not DER
    return signing_input + "." + b64url(signature)
