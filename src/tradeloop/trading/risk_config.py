"""Risk engine configuration.

:class:`RiskConfig` is the ``[risk]`` section of the node config: a frozen msgspec struct that refuses
unknown keys. Amounts (sizes, notionals, losses) are decimal **strings** such as ``"50000"`` so TOML
never carries a float; they are parsed exactly with :func:`tradeloop.core.fixed.parse` when the
config is built (a bad amount fails there, naming the key) and again by :meth:`RiskConfig.resolve`,
which the engine calls once. Basis points and counts are plain ints.

A limit left unset (``None``) is not enforced. A whole check is switched off by naming it in
``disabled_checks``; ``trading_state`` and ``instrument`` cannot be switched off (the kill switch
and every other check depend on them).

Example::

    [risk]
    max_order_notional = "50000"
    max_exposure = "250000"
    price_band_bps = 300
    max_daily_loss = "5000"
    drawdown_action = "reducing"
    max_drawdown_bps = 1000

    [risk.instruments."binance:BTCUSDT"]
    max_position = "2"
    max_order_qty = "0.5"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import msgspec

from tradeloop.core import fixed
from tradeloop.model.enums import TradingState
from tradeloop.model.identifiers import InstrumentId

# Names of the checks: the prefix of every denial reason and the keys of the denial counters.
TRADING_STATE: Final = "trading_state"
INSTRUMENT: Final = "instrument"
PRECISION: Final = "precision"
MAX_ORDER_QTY: Final = "max_order_qty"
MAX_ORDER_NOTIONAL: Final = "max_order_notional"
PRICE_BAND: Final = "price_band"
NO_VALID_BOOK: Final = "no_valid_book"
"""Reason (and counter) of the price band check when the book is missing or invalid."""
MAX_POSITION: Final = "max_position"
MAX_EXPOSURE: Final = "max_exposure"
MAX_OPEN_ORDERS: Final = "max_open_orders"
ORDER_RATE: Final = "order_rate"
SELF_TRADE: Final = "self_trade"
DAILY_LOSS: Final = "daily_loss"
DRAWDOWN: Final = "drawdown"
KILL_SWITCH: Final = "kill_switch"
REJECT_RATE: Final = "reject_rate"
VOLATILITY: Final = "volatility"
STALE_DATA: Final = "stale_data"

DISABLEABLE_CHECKS: Final[frozenset[str]] = frozenset(
    {
        PRECISION,
        MAX_ORDER_QTY,
        MAX_ORDER_NOTIONAL,
        PRICE_BAND,
        MAX_POSITION,
        MAX_EXPOSURE,
        MAX_OPEN_ORDERS,
        ORDER_RATE,
        SELF_TRADE,
        DAILY_LOSS,
        DRAWDOWN,
    }
)
"""Checks that ``disabled_checks`` may name."""

BreachAction = Literal["reducing", "halted"]
"""What a post-trade breach does to the trading state."""

BPS_ONE: Final = 10_000
"""One in basis points."""

_ACTION_STATE: Final[dict[str, TradingState]] = {"reducing": TradingState.REDUCING, "halted": TradingState.HALTED}


class InstrumentRiskConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Per-instrument overrides of the default limits (``None``: use the default)."""

    max_order_qty: str | None = None
    """Largest order size, base units (decimal string)."""
    max_order_notional: str | None = None
    """Largest order value, quote units (decimal string)."""
    max_position: str | None = None
    """Largest absolute position including open orders on the same side, base units."""
    price_band_bps: int | None = None
    """Largest distance of a limit price from the book mid, in basis points."""
    max_open_orders: int | None = None
    """Most open orders on this instrument."""


class RejectRateBreakerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Trip when a venue rejects too large a share of our submits within a sliding window.

    Every submit the venue answers counts once: ``OrderAccepted`` as an order, ``OrderRejected`` as
    an order and a reject (risk denials never reach the venue and do not count).
    """

    max_reject_bps: int = 5000
    """Largest share of rejected submits, basis points (5000 = half)."""
    min_orders: int = 10
    """Answered submits needed in the window before the share is judged."""
    window_ms: int = 60_000
    action: BreachAction = "halted"

    def __post_init__(self) -> None:
        _check_bps("risk.breakers.reject_rate.max_reject_bps", self.max_reject_bps)
        if self.max_reject_bps > BPS_ONE:
            raise ValueError(f"risk.breakers.reject_rate.max_reject_bps: at most {BPS_ONE}, got {self.max_reject_bps}")
        _check_positive("risk.breakers.reject_rate.min_orders", self.min_orders)
        _check_positive("risk.breakers.reject_rate.window_ms", self.window_ms)


class VolatilityBreakerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Trip when an instrument's mid moves more than ``max_move_bps`` (absolute log-return) within
    ``window_ms``: ``ln(highest mid / lowest mid)`` over the window, compared exactly in integers."""

    max_move_bps: int = 500
    window_ms: int = 60_000
    action: BreachAction = "reducing"

    def __post_init__(self) -> None:
        _check_bps("risk.breakers.volatility.max_move_bps", self.max_move_bps)
        _check_positive("risk.breakers.volatility.window_ms", self.window_ms)


class StaleDataBreakerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Trip when a book of a traded instrument has had no valid update for longer than ``max_age_ms``
    (never updated, or invalid since a gap), checked every ``check_interval_ms``."""

    max_age_ms: int = 5000
    check_interval_ms: int = 1000
    action: BreachAction = "halted"

    def __post_init__(self) -> None:
        _check_positive("risk.breakers.stale_data.max_age_ms", self.max_age_ms)
        _check_positive("risk.breakers.stale_data.check_interval_ms", self.check_interval_ms)


class BreakersConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Circuit breakers (``[risk.breakers.*]``); each is off unless its table is present.

    Example::

        [risk.breakers.reject_rate]      # defaults: 50 % of >= 10 submits in 60 s -> halted
        [risk.breakers.volatility]
        max_move_bps = 300
        window_ms = 10000
        [risk.breakers.stale_data]
        max_age_ms = 3000
        action = "reducing"
    """

    reject_rate: RejectRateBreakerConfig | None = None
    volatility: VolatilityBreakerConfig | None = None
    stale_data: StaleDataBreakerConfig | None = None

    @property
    def any_enabled(self) -> bool:
        """Whether at least one breaker is configured."""
        return self.reject_rate is not None or self.volatility is not None or self.stale_data is not None


def breach_state(action: BreachAction) -> TradingState:
    """The trading state a breach with ``action`` moves to."""
    return _ACTION_STATE[action]


class RiskConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Pre-trade and post-trade risk limits. See the module docstring for the conventions."""

    disabled_checks: tuple[str, ...] = ()
    """Checks to skip entirely, by name (see :data:`DISABLEABLE_CHECKS`)."""

    # -- per order (defaults for every instrument; overridden per instrument) ---------------------
    max_order_qty: str | None = None
    """Default largest order size, base units."""
    max_order_notional: str | None = None
    """Default largest order value, quote units."""
    price_band_bps: int = 500
    """Default largest distance of a limit price from the book mid, basis points."""
    require_valid_book: bool = True
    """Deny limit and market orders (``no_valid_book``) when the book is missing or invalid. When
    false such orders skip the price band check."""

    # -- positions and exposure -------------------------------------------------------------------
    max_position: str | None = None
    """Default largest absolute position per instrument, counting open orders on the same side, base units."""
    max_exposure: str | None = None
    """Largest gross exposure across all instruments and venues after this order, quote units."""

    # -- order counts and rates ------------------------------------------------------------------
    max_open_orders_per_instrument: int | None = 50
    max_open_orders_total: int | None = 200
    order_rate_max: int = 20
    """Default most accepted submits per venue within ``order_rate_window_ms``."""
    order_rate_window_ms: int = 1000
    venue_order_rate_max: dict[str, int] = {}
    """Per-venue override of ``order_rate_max`` (venue name, lower case)."""

    instruments: dict[str, InstrumentRiskConfig] = {}
    """Per-instrument overrides, keyed ``"venue:SYMBOL"``."""

    # -- post-trade ------------------------------------------------------------------------------
    max_daily_loss: str | None = None
    """Largest loss since the start of the UTC day, quote units."""
    max_daily_loss_bps: int | None = None
    """Largest loss since the start of the UTC day, basis points of the day's starting equity."""
    daily_loss_action: BreachAction = "halted"
    max_drawdown: str | None = None
    """Largest fall of equity from its running peak, quote units."""
    max_drawdown_bps: int | None = None
    """Largest fall of equity from its running peak, basis points of the peak."""
    drawdown_action: BreachAction = "halted"

    breakers: BreakersConfig = msgspec.field(default_factory=BreakersConfig)
    """Circuit breakers on venue rejects, volatility and stale market data (see :mod:`tradeloop.trading.breakers`)."""

    def __post_init__(self) -> None:
        self.resolve()  # validates every field; raises ValueError naming the key

    def resolve(self) -> ResolvedRiskConfig:
        """Parse and validate every amount into nanos (raises ``ValueError`` naming the bad key)."""
        for name in self.disabled_checks:
            if name not in DISABLEABLE_CHECKS:
                known = ", ".join(sorted(DISABLEABLE_CHECKS))
                raise ValueError(f"risk.disabled_checks: {name!r} cannot be disabled (one of {known})")
        _check_bps("risk.price_band_bps", self.price_band_bps)
        _check_count("risk.max_open_orders_per_instrument", self.max_open_orders_per_instrument)
        _check_count("risk.max_open_orders_total", self.max_open_orders_total)
        _check_count("risk.order_rate_max", self.order_rate_max)
        if self.order_rate_window_ms <= 0:
            raise ValueError("risk.order_rate_window_ms: must be positive")
        venue_rates: dict[str, int] = {}
        for venue, limit in self.venue_order_rate_max.items():
            _check_count(f"risk.venue_order_rate_max.{venue}", limit)
            venue_rates[venue.lower()] = limit
        _check_bps("risk.max_daily_loss_bps", self.max_daily_loss_bps)
        _check_bps("risk.max_drawdown_bps", self.max_drawdown_bps)
        defaults = InstrumentLimits(
            max_order_qty=_amount("risk.max_order_qty", self.max_order_qty),
            max_order_notional=_amount("risk.max_order_notional", self.max_order_notional),
            max_position=_amount("risk.max_position", self.max_position),
            price_band_bps=self.price_band_bps,
            max_open_orders=self.max_open_orders_per_instrument,
        )
        overrides: dict[InstrumentId, InstrumentLimits] = {}
        for key, ov in self.instruments.items():
            where = f"risk.instruments.{key!r}"
            try:
                iid = InstrumentId.parse(key)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            _check_bps(f"{where}.price_band_bps", ov.price_band_bps)
            _check_count(f"{where}.max_open_orders", ov.max_open_orders)
            overrides[iid] = InstrumentLimits(
                max_order_qty=_override(_amount(f"{where}.max_order_qty", ov.max_order_qty), defaults.max_order_qty),
                max_order_notional=_override(
                    _amount(f"{where}.max_order_notional", ov.max_order_notional), defaults.max_order_notional
                ),
                max_position=_override(_amount(f"{where}.max_position", ov.max_position), defaults.max_position),
                price_band_bps=ov.price_band_bps if ov.price_band_bps is not None else defaults.price_band_bps,
                max_open_orders=_override(ov.max_open_orders, defaults.max_open_orders),
            )
        return ResolvedRiskConfig(
            disabled=frozenset(self.disabled_checks),
            defaults=defaults,
            overrides=overrides,
            require_valid_book=self.require_valid_book,
            max_exposure=_amount("risk.max_exposure", self.max_exposure),
            max_open_orders_total=self.max_open_orders_total,
            order_rate_max=self.order_rate_max,
            order_rate_window_ns=self.order_rate_window_ms * 1_000_000,
            venue_order_rate_max=venue_rates,
            max_daily_loss=_amount("risk.max_daily_loss", self.max_daily_loss),
            max_daily_loss_bps=self.max_daily_loss_bps,
            daily_loss_state=_ACTION_STATE[self.daily_loss_action],
            max_drawdown=_amount("risk.max_drawdown", self.max_drawdown),
            max_drawdown_bps=self.max_drawdown_bps,
            drawdown_state=_ACTION_STATE[self.drawdown_action],
        )


@dataclass(frozen=True, slots=True)
class InstrumentLimits:
    """Effective per-order limits of one instrument, in nanos (``None``: not enforced)."""

    max_order_qty: int | None
    max_order_notional: int | None
    max_position: int | None
    price_band_bps: int
    max_open_orders: int | None


@dataclass(frozen=True, slots=True)
class ResolvedRiskConfig:
    """:class:`RiskConfig` with every amount parsed to nanos; built by :meth:`RiskConfig.resolve`."""

    disabled: frozenset[str]
    defaults: InstrumentLimits
    overrides: dict[InstrumentId, InstrumentLimits]
    require_valid_book: bool
    max_exposure: int | None
    max_open_orders_total: int | None
    order_rate_max: int
    order_rate_window_ns: int
    venue_order_rate_max: dict[str, int] = field(default_factory=dict)
    max_daily_loss: int | None = None
    max_daily_loss_bps: int | None = None
    daily_loss_state: TradingState = TradingState.HALTED
    max_drawdown: int | None = None
    max_drawdown_bps: int | None = None
    drawdown_state: TradingState = TradingState.HALTED

    def enabled(self, check: str) -> bool:
        """Whether ``check`` is switched on."""
        return check not in self.disabled

    def limits_for(self, instrument_id: InstrumentId) -> InstrumentLimits:
        """The instrument's override if configured, else the defaults."""
        return self.overrides.get(instrument_id, self.defaults)

    def order_rate_for(self, venue: str) -> int:
        """Most accepted submits per window on ``venue`` (venue names in config match case-insensitively)."""
        return self.venue_order_rate_max.get(venue.lower(), self.order_rate_max)


def _amount(key: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = fixed.parse(text)
    except fixed.FixedPointError as exc:
        raise ValueError(f"{key}: {exc}") from None
    if value < 0:
        raise ValueError(f"{key}: must not be negative, got {text!r}")
    return value


def _override(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


def _check_bps(key: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{key}: must be a positive number of basis points, got {value}")


def _check_positive(key: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{key}: must be positive, got {value}")


def _check_count(key: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{key}: must not be negative, got {value}")
