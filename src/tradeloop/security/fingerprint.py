"""Fingerprints: short, stable names for secrets that are safe to show, log and audit.

A fingerprint is the first 12 hex digits of a SHA-256, so it identifies a key among a user's keys
(and matches what ``tradeloop keys list`` prints) without revealing anything usable about it.
"""

from __future__ import annotations

import hashlib

FINGERPRINT_HEX_DIGITS = 12


def fingerprint(value: str | bytes) -> str:
    """The fingerprint of an API key (or any secret): 12 lowercase hex digits of its SHA-256."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:FINGERPRINT_HEX_DIGITS]
