"""Redis names and connections shared by the coordination modules: key layout, name checks, URL redaction.

Every key starts with a caller-chosen ``prefix`` so several deployments (and test runs) can share one
Redis. Names that go into keys are checked against a small alphabet: no spaces, no braces (Redis
Cluster hash tags are ours to place), nothing that could smuggle a separator. No secret ever goes
into a key: accounts are named by their credentials' fingerprint.

Layout::

    <prefix>:rl:{<venue>}:account:<fingerprint>:<window>   sorted set: a rate window's log
    <prefix>:rl:{<venue>}:ip:<ip scope>:<window>           (the same for an IP-scoped window)
    ... each followed by ":m"                              hash: used, blocked (the window's meta)
    <prefix>:rl:penalties                                  pub/sub channel: 429 penalties
    <prefix>:<node>:positions | :orders | :balances        hashes: a node's mirrored state
    <prefix>:<node>:meta                                   hash: seq, updated_ns, written_unix_ns

A venue's keys share the hash tag ``{<venue>}``, so one Lua script may touch all windows of a budget
even on a cluster.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = [
    "REDIS_ERRORS",
    "MirrorKeys",
    "WindowKeys",
    "check_name",
    "connect",
    "mirror_keys",
    "penalty_channel",
    "safe_url",
    "window_keys",
]

_NAME: Final = re.compile(r"[A-Za-z0-9_.\-@]{1,128}")
_SCOPED: Final = re.compile(r"[A-Za-z0-9_.\-@:]{1,128}")
_WINDOW: Final = re.compile(r"[A-Za-z0-9_.\-/:@]{1,128}")

REDIS_ERRORS: Final = (RedisError, OSError, TimeoutError)
"""What an unreachable or failing Redis raises through redis.asyncio."""
DEFAULT_TIMEOUT_S: Final = 1.0
"""Connect and socket timeout of the coordination clients: a dead Redis must not hang a caller long."""


def check_name(value: str, what: str, *, colons: bool = False) -> str:
    """``value`` if it may be part of a key (letters, digits, ``_ . - @``, and ``:`` when ``colons``;
    1-128 chars), else ``ValueError``."""
    pattern = _SCOPED if colons else _NAME
    if not isinstance(value, str) or not pattern.fullmatch(value):
        allowed = "letters, digits, _ . - @" + (" :" if colons else "")
        raise ValueError(f"{what} {value!r} cannot be part of a Redis key (use {allowed})")
    return value


def safe_url(url: str) -> str:
    """``url`` without its password (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def connect(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Redis:
    """A client for ``url`` (``redis://host:port/db``); connects lazily, on the first command."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"not a Redis URL: {safe_url(url)!r} (expected redis://host:port/db)")
    return Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)


class WindowKeys(msgspec.Struct, frozen=True):
    """The two keys of one shared rate window."""

    log: str
    """Sorted set of grants: member ``<grant id>:<weight>``, score = last instant (µs) it may be spent."""
    meta: str
    """Hash: ``used`` (weight still counted), ``blocked`` (µs until which the window refuses everything)."""


def window_keys(prefix: str, venue: str, scope: str, scope_id: str, window: str) -> WindowKeys:
    """Keys of ``window`` of ``venue`` for one account (``scope="account"``, id = fingerprint) or IP."""
    check_name(prefix, "prefix", colons=True)
    check_name(venue, "venue")
    check_name(scope_id, f"{scope} scope id", colons=True)
    if scope not in ("account", "ip"):
        raise ValueError(f"rate window scope must be 'account' or 'ip', got {scope!r}")
    if not _WINDOW.fullmatch(window):
        raise ValueError(f"rate window name {window!r} cannot be part of a Redis key")
    log = f"{prefix}:rl:{{{venue}}}:{scope}:{scope_id}:{window}"
    return WindowKeys(log=log, meta=log + ":m")


def penalty_channel(prefix: str) -> str:
    """The pub/sub channel on which a 429 penalty is announced to every process."""
    return f"{check_name(prefix, 'prefix', colons=True)}:rl:penalties"


class MirrorKeys(msgspec.Struct, frozen=True):
    """The hashes of one node's mirrored state."""

    positions: str
    orders: str
    balances: str
    meta: str

    def all(self) -> tuple[str, str, str, str]:
        return (self.positions, self.orders, self.balances, self.meta)


def mirror_keys(prefix: str, node: str) -> MirrorKeys:
    """Keys of ``node``'s mirror under ``prefix``."""
    base = f"{check_name(prefix, 'prefix', colons=True)}:{check_name(node, 'node')}"
    return MirrorKeys(
        positions=f"{base}:positions", orders=f"{base}:orders", balances=f"{base}:balances", meta=f"{base}:meta"
    )


def resolve_redis_url(value: str, key: str = "redis.url") -> str:
    """A ``redis://`` / ``rediss://`` / ``unix://`` URL, or a secret reference (``env:NAME``,
    ``file:PATH``, ``keystore:...``) holding one, for a URL with a password (kept out of configs,
    ``ps`` and logs). ``key`` names the setting in errors."""
    from tradeloop.core.config import ConfigError, check_secret_ref, resolve_secret

    if value.partition(":")[0] in ("env", "file", "keystore"):
        url = resolve_secret(check_secret_ref(value, key)).reveal()
    else:
        url = value
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{key}: expected a redis:// URL (or env:NAME / file:PATH holding one)")
    return url
