"""The master key that opens the key store: a passphrase from the environment or from a private file.

Sources, first match wins:

1. an explicit file (``--master-key-file PATH``),
2. ``TRADELOOP_MASTER_KEY_FILE`` (a path),
3. ``TRADELOOP_MASTER_KEY`` (the passphrase itself).

A master key file must be a regular file owned by the current user with no group or other
permissions (mode 0600 or 0400); anything looser is refused, because a readable master key
makes the encryption pointless. The passphrase is stretched with scrypt (per-store salt) into the
256-bit key that encrypts the entries; a random 32-byte value (``openssl rand -base64 32``) makes
a good passphrase.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

MASTER_KEY_ENV = "TRADELOOP_MASTER_KEY"
MASTER_KEY_FILE_ENV = "TRADELOOP_MASTER_KEY_FILE"
MIN_PASSPHRASE_CHARS = 12


class KeyStoreError(Exception):
    """The key store cannot be opened, read or changed; the message says why (never a secret)."""


class MasterKey:
    """A master passphrase and where it came from; never shows the passphrase in repr or str."""

    __slots__ = ("_passphrase", "source")

    def __init__(self, passphrase: str, source: str) -> None:
        if not passphrase:
            raise KeyStoreError(f"master key from {source} is empty")
        self._passphrase = passphrase.encode()
        self.source = source

    def material(self) -> bytes:
        """The passphrase bytes (input to the key derivation)."""
        return self._passphrase

    def check_strength(self) -> None:
        """Refuse passphrases too short to protect a new or re-keyed store."""
        if len(self._passphrase) < MIN_PASSPHRASE_CHARS:
            raise KeyStoreError(
                f"master key from {self.source} is too short: use at least {MIN_PASSPHRASE_CHARS} characters"
            )

    def __repr__(self) -> str:
        return f"MasterKey(source={self.source!r})"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("a master key cannot be pickled")


def check_private_file(path: Path, what: str) -> os.stat_result:
    """Refuse ``path`` unless it is a regular file owned by this user with no group/other access."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyStoreError(f"{what} not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyStoreError(f"{what} {path} is not a regular file")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise KeyStoreError(f"{what} {path} is owned by uid {st.st_uid}, not by the current user")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyStoreError(
            f"{what} {path} has permissions {mode:04o}, open to group or others; run `chmod 600 {path}`"
        )
    return st


def read_master_key_file(path: str | Path) -> MasterKey:
    """Read a master key file after checking its owner and permissions (one trailing newline is dropped)."""
    p = Path(path)
    check_private_file(p, "master key file")
    text = p.read_text()
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return MasterKey(text, f"file {p}")


def load_master_key(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> MasterKey:
    """The master key from ``path``, else ``TRADELOOP_MASTER_KEY_FILE``, else ``TRADELOOP_MASTER_KEY``."""
    env = os.environ if environ is None else environ
    if path is not None:
        return read_master_key_file(path)
    file_from_env = env.get(MASTER_KEY_FILE_ENV)
    if file_from_env:
        return read_master_key_file(file_from_env)
    value = env.get(MASTER_KEY_ENV)
    if value:
        return MasterKey(value, f"environment variable {MASTER_KEY_ENV}")
    raise KeyStoreError(
        f"no master key: set {MASTER_KEY_ENV}, or {MASTER_KEY_FILE_ENV} / --master-key-file to a file with mode 0600"
    )
