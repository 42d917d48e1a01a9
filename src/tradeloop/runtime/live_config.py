"""Configuration of a live node: the backtest config plus a ``[live]`` section, decoded strictly.

```toml
[live]
keep_orders = false            # true: leave working orders at the venues on the way out
existing_orders = "refuse"     # open orders already at a venue at start: refuse | cancel | ignore

[live.venues.binance]
symbols = ["BTCUSDT"]
credentials = { api_key = "env:BINANCE_API_KEY", secret = "env:BINANCE_API_SECRET" }
# endpoint = "http://127.0.0.1:8765"   # a local simulator instead of the exchange

[live.venues.okx]
symbols = ["BTC-USDT"]

[live.venues.okx.credentials]   # the same as an inline table, one key per line
api_key = "keystore:okx-main/api_key"
secret = "keystore:okx-main/secret"
passphrase = "keystore:okx-main/passphrase"
```

Every credential field is a secret *reference* (``env:NAME``, ``file:PATH``,
``keystore:<name>/<field>``), never the secret itself: a literal is refused when the file is read.
References are resolved only when the node starts; the resolved values are registered with the log
redactor and live in :class:`~tradeloop.security.credentials.Credentials` objects, whose reprs show
a fingerprint only. The rest of the file is the backtest config (strategy, risk, ``[venues.<v>]``
throttles); starting balances come from the venues themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from tradeloop.core.config import ConfigError, check_secret_ref, load_config, resolve_secret
from tradeloop.runtime.config import BacktestConfig
from tradeloop.security.credentials import Credentials
from tradeloop.security.master_key import KeyStoreError
from tradeloop.venues.transport.order_entry import OrderEntry
from tradeloop.venues.transport.rest import RestConfig

__all__ = [
    "CredentialRefs",
    "LiveConfig",
    "LiveSection",
    "LiveVenueSection",
    "check_live_venues",
    "load_live_config",
]

ExistingOrders = Literal["refuse", "cancel", "ignore"]


class CredentialRefs(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``credentials = {api_key = "env:...", secret = "env:...", passphrase = "...", private_key = "..."}``.

    ``api_key`` and one of ``secret`` / ``private_key`` are required (``passphrase`` where the venue
    has one: OKX, Coinbase Exchange). ``name`` labels the key in logs next to its fingerprint.
    """

    api_key: str
    secret: str | None = None
    passphrase: str | None = None
    private_key: str | None = None
    name: str = "config"

    def __post_init__(self) -> None:
        for field in ("api_key", "secret", "passphrase", "private_key"):
            ref = getattr(self, field)
            if ref is not None:
                check_secret_ref(ref, f"credentials.{field}")
        if self.secret is None and self.private_key is None:
            raise ValueError("credentials need a secret or a private_key reference besides the api_key")

    def resolve(self, venue: str) -> Credentials:
        """Read every referenced secret now; a :class:`ConfigError` naming the reference (never a value)."""

        def value(ref: str | None) -> str | None:
            return resolve_secret(ref).reveal() if ref is not None else None

        api_key = value(self.api_key)
        assert api_key is not None
        try:
            return Credentials(
                venue,
                self.name,
                api_key,
                secret=value(self.secret),
                passphrase=value(self.passphrase),
                private_key_pem=value(self.private_key),
            )
        except KeyStoreError as exc:
            raise ConfigError(f"live.venues.{venue}.credentials: {exc}") from None


class LiveVenueSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[live.venues.<venue>]``: what to trade there and with which key."""

    symbols: list[str]
    """The venue's own symbols (``BTCUSDT``, ``BTC-USDT``); each must be one the connector lists."""
    credentials: CredentialRefs | None = None
    """Required: a live node refuses to start without a key for every venue."""
    endpoint: str | None = None
    """Base URL of a local simulator (``http://127.0.0.1:PORT``) instead of the exchange."""
    rest: RestConfig | None = None
    """Timeouts and retries of the execution client's REST calls (default: the transport's)."""
    order_entry: OrderEntry | None = None
    """``websocket``: place / amend / cancel on the venue's WebSocket order API (the default where the
    venue has one: OKX, Binance spot, Bybit, Kraken), REST while that socket is down; ``rest``: always
    REST. Coinbase has no WebSocket order API and refuses ``websocket``; Binance USD-M always uses REST."""


class LiveSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    venues: dict[str, LiveVenueSection] = msgspec.field(default_factory=dict)
    keep_orders: bool = False
    """Leave working orders at the venues when the node stops (default: cancel all of them)."""
    existing_orders: ExistingOrders = "refuse"
    """Open orders already at a venue when the node starts: ``refuse`` to start, ``cancel`` them
    first (venue-native cancel-all per symbol), or ``ignore`` them (they are not the node's)."""
    start_timeout_s: float = 15.0
    """Connecting, logging in and the first account snapshot must take less than this, per venue."""
    stop_timeout_s: float = 10.0
    """How long the final cancels may take to be confirmed."""

    def __post_init__(self) -> None:
        if not self.start_timeout_s > 0 or not self.stop_timeout_s > 0:
            raise ValueError("live.start_timeout_s and live.stop_timeout_s must be positive")


class LiveConfig(BacktestConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A backtest config plus ``[live]``."""

    live: LiveSection = msgspec.field(default_factory=LiveSection)


def check_live_venues(config: LiveConfig, endpoint: str | None) -> None:
    """Refuse a config without venues, or ``--endpoint`` (one local simulator) with several venues."""
    venues = config.live.venues
    if not venues:
        raise ConfigError("live: no venues configured; add a [live.venues.<venue>] section")
    if endpoint is not None and len(venues) > 1:
        raise ConfigError("--endpoint needs a single-venue config; set live.venues.<venue>.endpoint instead")


def load_live_config(path: str | Path) -> LiveConfig:
    """Load a live node's TOML (unknown keys and literal secrets are errors naming the key)."""
    config = load_config(path, LiveConfig)
    if not config.live.venues:
        raise ConfigError(
            "live: no venues configured; add a [live.venues.<venue>] section with symbols and credentials"
        )
    for venue, section in config.live.venues.items():
        if not section.symbols:
            raise ConfigError(f"live.venues.{venue}.symbols: give at least one symbol")
    return config
