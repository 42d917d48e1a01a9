"""Exchange credentials held in memory: every field is a :class:`Secret`, the object shows only a fingerprint.

``repr``/``str`` name the venue, the entry and the API key's fingerprint; pickling is refused; a
JSON or msgpack encoder that falls back to ``str`` gets the same redacted text. Signing code asks for
the values explicitly (``creds.secret.reveal()``, ``creds.load_private_key()``).
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tradeloop.core.config import Secret
from tradeloop.core.logging import register_secret
from tradeloop.security.fingerprint import fingerprint
from tradeloop.security.master_key import KeyStoreError

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
FIELDS = ("api_key", "secret", "passphrase", "private_key")
"""Field names a ``keystore:<name>/<field>`` reference may ask for."""

MIN_RSA_BITS = 2048


def load_private_key_pem(pem: str, what: str) -> PrivateKey:
    """Load an unencrypted PEM private key (Ed25519, ECDSA or RSA >= 2048 bits) or raise a clear error."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise KeyStoreError(
            f"{what}: the private key is encrypted; store it unencrypted (the key store encrypts it)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyStoreError(f"{what}: not a PEM private key (Ed25519, ECDSA or RSA expected)") from None
    if isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyStoreError(f"{what}: RSA key of {key.key_size} bits is too small (at least {MIN_RSA_BITS})")
        return key
    raise KeyStoreError(f"{what}: unsupported private key type {type(key).__name__} (Ed25519, ECDSA or RSA expected)")


def public_key_fingerprint(key: PrivateKey) -> str:
    """Fingerprint of the key's public half (DER SubjectPublicKeyInfo): matches what the venue was given."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return fingerprint(der)


class Credentials:
    """One venue account's API credentials. Shows only venue, name and fingerprint."""

    __slots__ = ("_api_key", "_passphrase", "_private_key", "_secret", "name", "venue")

    def __init__(
        self,
        venue: str,
        name: str,
        api_key: str,
        secret: str | None = None,
        passphrase: str | None = None,
        private_key_pem: str | None = None,
    ) -> None:
        if not api_key:
            raise KeyStoreError(f"{venue}/{name}: the API key is empty")
        if not secret and not private_key_pem:
            raise KeyStoreError(f"{venue}/{name}: give an API secret, a private key, or both")
        if private_key_pem:
            load_private_key_pem(private_key_pem, f"{venue}/{name}")
        self.venue = venue
        self.name = name
        self._api_key = Secret(api_key)
        self._secret = Secret(secret) if secret else None
        self._passphrase = Secret(passphrase) if passphrase else None
        self._private_key = Secret(private_key_pem) if private_key_pem else None
        for value in (api_key, secret, passphrase, private_key_pem):
            if value:
                register_secret(value)

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the API key (what ``tradeloop keys list`` shows)."""
        return fingerprint(self._api_key.reveal())

    @property
    def api_key(self) -> Secret:
        return self._api_key

    @property
    def secret(self) -> Secret:
        """The API secret (HMAC key); raises :class:`KeyStoreError` when this entry has none."""
        if self._secret is None:
            raise KeyStoreError(f"{self.venue}/{self.name} has no API secret (it signs with a private key)")
        return self._secret

    @property
    def passphrase(self) -> Secret | None:
        return self._passphrase

    @property
    def private_key_pem(self) -> Secret | None:
        return self._private_key

    def field(self, field: str) -> Secret:
        """One field by name (see :data:`FIELDS`); a clear error when it is unknown or not set."""
        if field not in FIELDS:
            raise KeyStoreError(f"unknown key store field {field!r}: expected one of {', '.join(FIELDS)}")
        value = {
            "api_key": self._api_key,
            "secret": self._secret,
            "passphrase": self._passphrase,
            "private_key": self._private_key,
        }[field]
        if value is None:
            raise KeyStoreError(f"{self.venue}/{self.name} has no {field}")
        return value

    def reveal_all(self) -> tuple[str, str | None, str | None, str | None]:
        """``(api_key, secret, passphrase, private_key_pem)`` in clear: for the key store's encryption only."""
        return (
            self._api_key.reveal(),
            self._secret.reveal() if self._secret else None,
            self._passphrase.reveal() if self._passphrase else None,
            self._private_key.reveal() if self._private_key else None,
        )

    def load_private_key(self) -> PrivateKey:
        """The private key object for signing; raises when this entry has none."""
        if self._private_key is None:
            raise KeyStoreError(f"{self.venue}/{self.name} has no private key")
        return load_private_key_pem(self._private_key.reveal(), f"{self.venue}/{self.name}")

    def __repr__(self) -> str:
        return f"Credentials(venue={self.venue!r}, name={self.name!r}, fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("credentials cannot be pickled")
