"""Configuration: TOML files decoded strictly into frozen structs, with environment overrides.

* Unknown keys are errors that name the key (``$.risk.max_ordr_qty``), so a typo never silently
  falls back to a default.
* ``TRADELOOP__SECTION__KEY=value`` in the environment overrides ``[section] key``; values are
  parsed as TOML scalars when they can be (``10``, ``true``, ``"x"``) and taken as strings otherwise.
* Secrets never sit in config: a :data:`SecretRef` is a reference such as ``env:BINANCE_SECRET``
  or ``keystore:binance-main/secret``, resolved only when a venue client is built.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from tradeloop.core.logging import register_secret

T = TypeVar("T")

ENV_PREFIX = "TRADELOOP__"
_SECRET_REF = re.compile(r"^(env|keystore|file):[A-Za-z0-9_./-]+$")


class ConfigError(ValueError):
    """Invalid configuration; the message names the offending key."""


class Secret:
    """A resolved secret value that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def check_secret_ref(ref: str, key: str) -> str:
    """Validate a secret reference (``env:NAME``, ``keystore:NAME/FIELD``, ``file:PATH``)."""
    if not _SECRET_REF.match(ref):
        raise ConfigError(f"{key}: secrets must be given by reference (env:NAME, keystore:NAME/FIELD, file:PATH)")
    return ref


def resolve_secret(ref: str) -> Secret:
    """Resolve ``env:NAME``, ``file:PATH`` or ``keystore:<name>/<field>``.

    Key store references open the store at ``TRADELOOP_KEYSTORE`` (default ``~/.tradeloop/keys.json``)
    with the master key from ``TRADELOOP_MASTER_KEY`` / ``TRADELOOP_MASTER_KEY_FILE``; ``field`` is
    ``api_key``, ``secret``, ``passphrase`` or ``private_key``. Resolved values are registered with
    the log redactor, so they are masked should they ever reach a log line.
    """
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"secret reference {ref}: environment variable {name} is not set")
        secret = Secret(value)
    elif kind == "file":
        try:
            secret = Secret(Path(name).read_text().strip())
        except OSError as exc:
            raise ConfigError(f"secret reference {ref}: cannot read the file ({exc.strerror})") from None
    elif kind == "keystore":
        from tradeloop.security.keystore import KeyStoreError, resolve_keystore_ref

        try:
            secret = resolve_keystore_ref(name)
        except KeyStoreError as exc:
            raise ConfigError(f"secret reference {ref}: {exc}") from None
    else:
        raise ConfigError(f"secret reference {ref}: unknown kind {kind!r} (env, file or keystore)")
    register_secret(secret.reveal())
    return secret


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return ``data`` with ``TRADELOOP__A__B=value`` overrides applied (keys lower-cased)."""
    env = os.environ if environ is None else environ
    out = dict(data)
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[path[-1]] = _parse_env_value(raw)
    return out


def decode_config(data: Mapping[str, Any], config_type: type[T]) -> T:
    """Convert a mapping to ``config_type`` strictly (unknown keys and wrong types are errors)."""
    try:
        return msgspec.convert(dict(data), type=config_type, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config: {exc}") from None


def load_config(
    path: str | Path | None,
    config_type: type[T],
    environ: Mapping[str, str] | None = None,
) -> T:
    """Load TOML from ``path`` (or start from defaults when ``None``), apply env overrides, decode."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return decode_config(apply_env_overrides(data, environ), config_type)
