"""What a live or paper session shares through Redis when ``[redis]`` asks for it: the rate budgets of
the accounts it trades (with other processes on them) and a mirror of its hot state (for other
processes to read). See ``docs/durability.md``."""

from __future__ import annotations

from tradeloop.coordination.mirror import StateMirror
from tradeloop.coordination.redis_keys import resolve_redis_url
from tradeloop.coordination.shared_budget import SharedBudgetFactory, SharedBudgetUnavailable
from tradeloop.core.config import ConfigError
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import RedisSection

__all__ = ["SharedBudgetUnavailable", "open_shared_budgets", "redis_url", "start_mirror"]


def redis_url(section: RedisSection) -> str:
    """The section's URL, resolved when it is a secret reference."""
    if not section.url:
        raise ConfigError("redis.url is not set")
    return resolve_redis_url(section.url, "redis.url")


async def open_shared_budgets(section: RedisSection) -> SharedBudgetFactory | None:
    """Started shared budgets when ``redis.shared_budgets`` is on (``SharedBudgetUnavailable`` if
    Redis does not answer), else ``None``."""
    if not section.shared_budgets:
        return None
    budgets = SharedBudgetFactory(redis_url(section), section.prefix, ip_scope=section.ip_scope)
    await budgets.start()
    return budgets


async def start_mirror(engine: BacktestEngine, section: RedisSection) -> StateMirror | None:
    """The engine's state mirror, started, when ``redis.mirror`` is on (else ``None``)."""
    if not section.mirror:
        return None
    mirror = StateMirror(
        engine, redis_url(section), section.prefix, engine.config.node_tag, interval_s=section.mirror_interval_ms / 1000
    )
    await mirror.start()
    return mirror
