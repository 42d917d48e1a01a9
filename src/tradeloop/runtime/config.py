"""Node configuration for backtests: one TOML file, decoded strictly.

Every section has defaults, so ``tradeloop backtest`` runs with no file at all (the synthetic
market, two simulated venues, the market-making demo). Amounts are decimal strings (``"100000"``)
turned into exact fixed point, never TOML floats.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import msgspec

from tradeloop.core import fixed
from tradeloop.core.config import ConfigError, load_config
from tradeloop.data.synthetic import SyntheticConfig
from tradeloop.trading.execution import ThrottleConfig
from tradeloop.trading.risk_config import RiskConfig
from tradeloop.venues.sim.config import QueueModel, SimVenueConfig


class SimSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The simulated venue's matching, latency and fee model, as configured (``[venues.<name>.sim]``).

    Fees are decimal fractions of the fill notional (``"0.0002"`` = 0.02 % = 2 bp; a negative
    ``maker_fee`` is a rebate); ``perp_initial_margin`` is the fraction of a linear-perp order's
    notional locked as initial margin (``"0.1"`` = 10x leverage). Latencies are nanoseconds.
    """

    order_latency_ns: int = 1_000_000
    """Engine -> venue delay of every request."""
    response_latency_ns: int = 1_000_000
    """Venue -> engine delay of every event."""
    maker_fee: str = "0.0002"
    taker_fee: str = "0.0004"
    queue_model: QueueModel = "proportional"
    perp_initial_margin: str = "0.1"
    supports_amend: bool = True

    def __post_init__(self) -> None:
        sim_venue_config(self)  # every value checked when the file is read

    def venue_config(self) -> SimVenueConfig:
        """The simulated venue's own configuration (rates in nanos)."""
        return sim_venue_config(self)


@functools.cache
def sim_venue_config(section: SimSection) -> SimVenueConfig:
    """``section`` with its rates parsed (decimal strings -> exact nanos); ``ValueError`` names the key."""
    rates: dict[str, int] = {}
    for key in ("maker_fee", "taker_fee", "perp_initial_margin"):
        text = getattr(section, key)
        try:
            rates[key] = fixed.parse(text)
        except fixed.FixedPointError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return SimVenueConfig(
        order_latency_ns=section.order_latency_ns,
        response_latency_ns=section.response_latency_ns,
        queue_model=section.queue_model,
        supports_amend=section.supports_amend,
        **rates,
    )


class VenueSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A simulated venue account: starting balances, matching/latency model, order-entry budget."""

    balances: dict[str, str] = msgspec.field(default_factory=lambda: {"USDT": "100000", "BTC": "1"})
    sim: SimSection = msgspec.field(default_factory=SimSection)
    throttle: ThrottleConfig = msgspec.field(default_factory=ThrottleConfig)

    def balances_fixed(self) -> dict[str, int]:
        try:
            return {ccy: fixed.parse(amount) for ccy, amount in self.balances.items()}
        except fixed.FixedPointError as exc:
            raise ConfigError(f"venues.*.balances: {exc}") from None


class StrategySection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``name`` is a built-in name, ``module:Class`` or ``path.py:Class``; ``params`` its config."""

    name: str = "market_making"
    id: str = "S1"
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class DataSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    files: list[str] = msgspec.field(default_factory=list)
    """Recordings to replay instead of the synthetic market."""
    strict: bool = False
    """Stop at the first malformed line instead of reporting and skipping it."""


class JournalSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    path: str | None = None
    """SQLite file (or ``sqlite:///path``), a PostgreSQL URL (``postgresql://user@host:5432/db?journal=name``);
    ``None`` keeps the journal in memory."""
    recover: bool = True
    """Live and paper: a journal that already has records is continued. The node loads its newest
    snapshot and the records after it, then reconciles with each venue before it trades. ``false``
    refuses such a journal instead."""
    snapshot_interval_s: float = 60.0
    """Live and paper: seconds between snapshots of the node's state in the journal (recovery then
    replays only the records after the newest one)."""
    flush_interval_s: float = 0.25
    """Live and paper: buffered records are committed at least this often (never more than 1 s)."""
    durability: Literal["intent", "batched"] = "intent"
    """With orders going to a real venue (a live node): ``intent`` commits and syncs the journal before
    every submit or amend leaves (``append_durable``, ``synchronous=FULL``: an fsync, about 0.3 ms
    and up to a few ms on a shared disk); ``batched`` commits in batches only (faster, but a crash
    can lose the latest intents). Backtests and paper sessions trade nothing real: always batched.
    Nothing to sync for a journal in memory."""

    def __post_init__(self) -> None:
        if not self.snapshot_interval_s > 0:
            raise ValueError(f"journal.snapshot_interval_s must be positive, got {self.snapshot_interval_s}")
        if not 0 < self.flush_interval_s <= 1.0:
            raise ValueError(f"journal.flush_interval_s must be in (0, 1], got {self.flush_interval_s}")


class RedisSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Redis for processes that share an account or want to read a node's state (off by default)."""

    url: str | None = None
    """``redis://host:6379/0``, or a secret reference holding one (``env:NAME``, ``file:PATH``) when
    the URL carries a password."""
    prefix: str = "tradeloop"
    """Prefix of every key this node writes."""
    mirror: bool = False
    """Live and paper: mirror positions, open orders and balances to ``<prefix>:<node_tag>:*``."""
    mirror_interval_ms: int = 100
    shared_budgets: bool = False
    """Live: every venue's rate budget is shared in Redis with the other processes on the same account
    (and IP), so together they never exceed the venue's limits."""
    ip_scope: str | None = None
    """Name of the IP the IP-scoped limits count against (default: this host's name)."""

    def __post_init__(self) -> None:
        if (self.mirror or self.shared_budgets) and not self.url:
            raise ValueError("redis.url is required for redis.mirror or redis.shared_budgets")
        if self.mirror_interval_ms <= 0:
            raise ValueError(f"redis.mirror_interval_ms must be positive, got {self.mirror_interval_ms}")


class ReportSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    path: str | None = None
    sample_interval_ms: int = 1000


class AuditSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    path: str | None = None
    """Audit log file (operator kill/resume and other actions); ``None``: no audit log."""


class BacktestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    seed: int = 7
    node_tag: str = "BT"
    valuation: str = "USDT"
    feed_latency_us: int = 0
    """Delay between the venue seeing market data and the strategy seeing it (simulated)."""
    request_timeout_ms: int = 5000
    synthetic: SyntheticConfig = msgspec.field(default_factory=SyntheticConfig)
    data: DataSection = msgspec.field(default_factory=DataSection)
    venues: dict[str, VenueSection] = msgspec.field(default_factory=dict)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    strategy: StrategySection = msgspec.field(default_factory=StrategySection)
    journal: JournalSection = msgspec.field(default_factory=JournalSection)
    redis: RedisSection = msgspec.field(default_factory=RedisSection)
    report: ReportSection = msgspec.field(default_factory=ReportSection)
    audit: AuditSection = msgspec.field(default_factory=AuditSection)

    def venue(self, name: str) -> VenueSection:
        return self.venues.get(name) or VenueSection()


def load_backtest_config(path: str | Path | None) -> BacktestConfig:
    """Load and validate a backtest config (``None``: defaults plus environment overrides)."""
    return load_config(path, BacktestConfig)
