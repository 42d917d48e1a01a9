"""Encrypted key store for exchange API credentials.

The store is one JSON file (default ``~/.tradeloop/keys.json``, or ``TRADELOOP_KEYSTORE``), mode 0600:

* ``kdf``: scrypt parameters and a random per-store salt; the master passphrase
  (:mod:`tradeloop.security.master_key`) is stretched into a 256-bit AES key.
* ``check``: a fixed marker sealed with that key, with the KDF parameters as associated data, so a
  wrong master key is told apart from a damaged entry.
* ``entries``: per entry the venue, name, API-key fingerprint and creation time in clear, and the
  credentials sealed with AES-256-GCM under a fresh random 96-bit nonce. The clear fields are the
  associated data, so an entry moved to another name, or a changed fingerprint, fails authentication.

Every change is written to a temporary file, fsynced and renamed over the store (and the directory
fsynced) while holding an exclusive lock on ``<store>.lock``: a crash leaves the old or the new
store, never a mix. Errors name the entry and the problem, never a secret.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tradeloop.core.config import Secret
from tradeloop.core.logging import get_logger
from tradeloop.security.audit import AuditLog
from tradeloop.security.credentials import FIELDS, Credentials
from tradeloop.security.fingerprint import fingerprint
from tradeloop.security.master_key import KeyStoreError, MasterKey, check_private_file, load_master_key

__all__ = ["Credentials", "KeyInfo", "KeyStore", "KeyStoreError", "default_store_path", "resolve_keystore_ref"]

log = get_logger("tradeloop.keystore")

KEYSTORE_ENV = "TRADELOOP_KEYSTORE"
FORMAT = "tradeloop-keystore"
VERSION = 1
DEFAULT_SCRYPT_LOG_N = 17
"""scrypt cost N = 2**17 with r=8, p=1 (128 MiB, a few tenths of a second): the default for real stores."""
MIN_SCRYPT_LOG_N = 10
"""Lowest accepted cost, for tests only: a store records its own cost, so test stores open fast."""
MAX_SCRYPT_LOG_N = 22
_CHECK_MARKER = b"tradeloop-keystore check v1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VENUE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class KdfParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    salt: str
    log_n: int
    r: int
    p: int


class Sealed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    nonce: str
    ciphertext: str


class StoredEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    venue: str
    name: str
    fingerprint: str
    created_ns: int
    nonce: str
    ciphertext: str


class StoreFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    version: int
    kdf: KdfParams
    check: Sealed
    entries: list[StoredEntry]


class _Plain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    api_key: str
    secret: str | None = None
    passphrase: str | None = None
    private_key: str | None = None


class KeyInfo(msgspec.Struct, frozen=True):
    """What may be shown about an entry: no secret, only the API key's fingerprint."""

    venue: str
    name: str
    fingerprint: str
    created_ns: int
    fields: tuple[str, ...]


_json = msgspec.json.Encoder()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyStoreError(f"key store damaged: {what} is not valid base64") from None


def _check_ad(kdf: KdfParams) -> bytes:
    return b"tradeloop-keystore/v1/check\0" + _json.encode(kdf)


def _entry_ad(venue: str, name: str, fp: str, created_ns: int) -> bytes:
    return b"tradeloop-keystore/v1/entry\0" + _json.encode([venue, name, fp, created_ns])


def _derive_key(master: MasterKey, kdf: KdfParams) -> bytes:
    if kdf.name != "scrypt" or not MIN_SCRYPT_LOG_N <= kdf.log_n <= MAX_SCRYPT_LOG_N or kdf.r < 1 or kdf.p < 1:
        raise KeyStoreError(f"key store uses unsupported key derivation parameters ({kdf.name}, log_n={kdf.log_n})")
    salt = _unb64(kdf.salt, "the salt")
    return Scrypt(salt=salt, length=32, n=2**kdf.log_n, r=kdf.r, p=kdf.p).derive(master.material())


def _new_kdf(log_n: int) -> KdfParams:
    if not MIN_SCRYPT_LOG_N <= log_n <= MAX_SCRYPT_LOG_N:
        raise KeyStoreError(f"scrypt cost log_n must be within {MIN_SCRYPT_LOG_N}..{MAX_SCRYPT_LOG_N}, got {log_n}")
    return KdfParams(name="scrypt", salt=_b64(secrets.token_bytes(16)), log_n=log_n, r=8, p=1)


def _seal(key: bytes, plaintext: bytes, ad: bytes) -> Sealed:
    nonce = secrets.token_bytes(12)
    return Sealed(nonce=_b64(nonce), ciphertext=_b64(AESGCM(key).encrypt(nonce, plaintext, ad)))


def _open_sealed(key: bytes, nonce: str, ciphertext: str, ad: bytes, what: str) -> bytes:
    """Decrypt and authenticate; raises :class:`InvalidTag` when the key or any byte is wrong."""
    n = _unb64(nonce, f"{what} nonce")
    if len(n) != 12:
        raise InvalidTag()
    return AESGCM(key).decrypt(n, _unb64(ciphertext, f"{what} ciphertext"), ad)


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """``TRADELOOP_KEYSTORE`` if set, else ``~/.tradeloop/keys.json``."""
    env = os.environ if environ is None else environ
    configured = env.get(KEYSTORE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".tradeloop" / "keys.json"


def _read_store_file(path: Path) -> StoreFile:
    check_private_file(path, "key store")
    try:
        store = msgspec.json.decode(path.read_bytes(), type=StoreFile, strict=True)
    except msgspec.DecodeError as exc:
        raise KeyStoreError(f"{path} is not a readable tradeloop key store: {exc}") from None
    if store.format != FORMAT:
        raise KeyStoreError(f"{path} is not a tradeloop key store (format {store.format!r})")
    if store.version != VERSION:
        raise KeyStoreError(f"{path}: key store version {store.version} is not supported (expected {VERSION})")
    return store


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, store: StoreFile) -> None:
    data = msgspec.json.format(msgspec.json.encode(store), indent=2) + b"\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a crashed writer with our pid; we hold the store lock
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class KeyStore:
    """An opened (unlocked) key store. Build with :meth:`create` or :meth:`open`."""

    def __init__(
        self, path: Path, store: StoreFile, key: bytes, audit: AuditLog | None, actor: str, clock: Callable[[], int]
    ) -> None:
        self.path = path
        self._store = store
        self._key = key
        self._audit = audit
        self._actor = actor
        self._clock = clock

    def __repr__(self) -> str:
        return f"KeyStore(path={str(self.path)!r}, entries={len(self._store.entries)})"

    def __reduce__(self) -> str:
        raise TypeError("an unlocked key store cannot be pickled")

    @classmethod
    def create(
        cls,
        path: str | Path,
        master: MasterKey,
        *,
        scrypt_log_n: int = DEFAULT_SCRYPT_LOG_N,
        audit: AuditLog | None = None,
        actor: str = "tradeloop",
        clock: Callable[[], int] = time.time_ns,
    ) -> KeyStore:
        """Create an empty store at ``path`` (refuses to overwrite one)."""
        p = Path(path)
        master.check_strength()
        kdf = _new_kdf(scrypt_log_n)
        key = _derive_key(master, kdf)
        store = StoreFile(FORMAT, VERSION, kdf, _seal(key, _CHECK_MARKER, _check_ad(kdf)), [])
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(p):
            if p.exists():
                raise KeyStoreError(f"a key store already exists at {p}")
            _write_atomically(p, store)
        log.info("key store created", store=str(p), scrypt_log_n=scrypt_log_n)
        ks = cls(p, store, key, audit, actor, clock)
        ks._record("keys.init", {"store": str(p)})
        return ks

    @classmethod
    def open(
        cls,
        path: str | Path,
        master: MasterKey,
        *,
        audit: AuditLog | None = None,
        actor: str = "tradeloop",
        clock: Callable[[], int] = time.time_ns,
    ) -> KeyStore:
        """Open the store at ``path`` with ``master``; a clear error when the key does not fit."""
        p = Path(path)
        if not p.exists():
            raise KeyStoreError(f"no key store at {p} (create one with `tradeloop keys init` or `keys add`)")
        store = _read_store_file(p)
        key = cls._unlock(store, master)
        log.info("key store opened", store=str(p), entries=len(store.entries))
        return cls(p, store, key, audit, actor, clock)

    @staticmethod
    def _unlock(store: StoreFile, master: MasterKey) -> bytes:
        key = _derive_key(master, store.kdf)
        try:
            marker = _open_sealed(key, store.check.nonce, store.check.ciphertext, _check_ad(store.kdf), "check")
        except InvalidTag:
            marker = b""
        if marker != _CHECK_MARKER:
            raise KeyStoreError(
                f"master key does not open this key store (master key from {master.source}; "
                "wrong key, or the store's header was altered)"
            )
        return key

    def list(self) -> list[KeyInfo]:
        """Every entry (venue, name, fingerprint, creation time, fields set), each one authenticated."""
        return [self._info(e, self._decrypt(e)) for e in self._store.entries]

    def get(self, name: str) -> Credentials:
        """The credentials stored under ``name``."""
        entry = self._find(self._store, name)
        plain = self._decrypt(entry)
        return Credentials(entry.venue, entry.name, plain.api_key, plain.secret, plain.passphrase, plain.private_key)

    def add(self, creds: Credentials, *, replace: bool = False) -> KeyInfo:
        """Store ``creds`` under ``creds.name`` (an existing name is an error unless ``replace``)."""
        if not _NAME.match(creds.name):
            raise KeyStoreError(f"invalid entry name {creds.name!r}: letters, digits, '.', '_', '-' (at most 64)")
        if not _VENUE.match(creds.venue):
            raise KeyStoreError(f"invalid venue {creds.venue!r}: lowercase letters, digits, '_', '-'")
        api_key, secret, passphrase, private_key = creds.reveal_all()
        plain = _Plain(api_key, secret, passphrase, private_key)
        created = self._clock()
        fp = creds.fingerprint
        sealed = _seal(self._key, msgspec.json.encode(plain), _entry_ad(creds.venue, creds.name, fp, created))
        new = StoredEntry(creds.venue, creds.name, fp, created, sealed.nonce, sealed.ciphertext)
        with _locked(self.path):
            current = self._reload()
            exists = any(e.name == creds.name for e in current.entries)
            if exists and not replace:
                raise KeyStoreError(f"an entry named {creds.name!r} already exists (remove it first, or replace it)")
            entries = [e for e in current.entries if e.name != creds.name] + [new]
            entries.sort(key=lambda e: (e.venue, e.name))
            self._save(msgspec.structs.replace(current, entries=entries))
        log.info("key added", venue=creds.venue, name=creds.name, fingerprint=fp, replaced=exists)
        self._record(
            "keys.replace" if exists else "keys.add", {"venue": creds.venue, "name": creds.name, "fingerprint": fp}
        )
        return self._info(new, plain)

    def remove(self, name: str) -> KeyInfo:
        """Delete the entry ``name``; returns what it was."""
        with _locked(self.path):
            current = self._reload()
            entry = self._find(current, name)
            info = self._info(entry, self._decrypt(entry))
            self._save(msgspec.structs.replace(current, entries=[e for e in current.entries if e.name != name]))
        log.info("key removed", venue=entry.venue, name=name, fingerprint=entry.fingerprint)
        self._record("keys.remove", {"venue": entry.venue, "name": name, "fingerprint": entry.fingerprint})
        return info

    def rotate_master(self, new_master: MasterKey, *, scrypt_log_n: int | None = None) -> None:
        """Re-encrypt every entry under ``new_master`` (new salt, new nonces) in one atomic replace."""
        new_master.check_strength()
        with _locked(self.path):
            current = self._reload()
            kdf = _new_kdf(current.kdf.log_n if scrypt_log_n is None else scrypt_log_n)
            key = _derive_key(new_master, kdf)
            entries: list[StoredEntry] = []
            for e in current.entries:
                plain = msgspec.json.encode(self._decrypt(e))
                sealed = _seal(key, plain, _entry_ad(e.venue, e.name, e.fingerprint, e.created_ns))
                entries.append(msgspec.structs.replace(e, nonce=sealed.nonce, ciphertext=sealed.ciphertext))
            store = StoreFile(FORMAT, VERSION, kdf, _seal(key, _CHECK_MARKER, _check_ad(kdf)), entries)
            self._save(store)
            self._key = key
        log.info("master key rotated", store=str(self.path), entries=len(entries), source=new_master.source)
        self._record("keys.rotate_master", {"store": str(self.path), "entries": str(len(entries))})

    def _reload(self) -> StoreFile:
        """The store as on disk now (another process may have changed it since we opened it)."""
        current = _read_store_file(self.path)
        if current.kdf != self._store.kdf or current.check != self._store.check:
            raise KeyStoreError(f"{self.path}: the master key was rotated by someone else; open the store again")
        return current

    def _save(self, store: StoreFile) -> None:
        _write_atomically(self.path, store)
        self._store = store

    @staticmethod
    def _find(store: StoreFile, name: str) -> StoredEntry:
        for e in store.entries:
            if e.name == name:
                return e
        known = ", ".join(e.name for e in store.entries) or "none"
        raise KeyStoreError(f"no key store entry named {name!r} (entries: {known})")

    def _decrypt(self, entry: StoredEntry) -> _Plain:
        what = f"entry {entry.name!r} ({entry.venue})"
        ad = _entry_ad(entry.venue, entry.name, entry.fingerprint, entry.created_ns)
        try:
            data = _open_sealed(self._key, entry.nonce, entry.ciphertext, ad, what)
        except InvalidTag:
            raise KeyStoreError(
                f"key store {what} failed authentication: its ciphertext or clear fields were altered"
            ) from None
        try:
            plain = msgspec.json.decode(data, type=_Plain, strict=True)
        except msgspec.DecodeError:
            raise KeyStoreError(f"key store {what} decrypted to an unreadable record") from None
        if fingerprint(plain.api_key) != entry.fingerprint:
            raise KeyStoreError(f"key store {what}: fingerprint does not match the stored API key")
        return plain

    @staticmethod
    def _info(entry: StoredEntry, plain: _Plain) -> KeyInfo:
        values = (plain.api_key, plain.secret, plain.passphrase, plain.private_key)
        fields = tuple(f for f, v in zip(FIELDS, values, strict=True) if v)
        return KeyInfo(entry.venue, entry.name, entry.fingerprint, entry.created_ns, fields)

    def _record(self, action: str, detail: dict[str, str]) -> None:
        if self._audit is not None:
            self._audit.append(self._actor, action, detail)


def resolve_keystore_ref(ref: str, environ: Mapping[str, str] | None = None) -> Secret:
    """Resolve ``<name>/<field>`` (the part after ``keystore:``) through the store and master key in env."""
    name, sep, field = ref.partition("/")
    if not sep or not name or not field:
        raise KeyStoreError(f"keystore reference {ref!r} must be <name>/<field>, field one of {', '.join(FIELDS)}")
    if field not in FIELDS:
        raise KeyStoreError(f"keystore reference {ref!r}: unknown field {field!r} ({', '.join(FIELDS)})")
    store = KeyStore.open(default_store_path(environ), load_master_key(environ=environ))
    return store.get(name).field(field)
