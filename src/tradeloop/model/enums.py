"""Enumerations shared by commands, events and state."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class InstrumentKind(StrEnum):
    SPOT = "SPOT"
    LINEAR_PERP = "LINEAR_PERP"


class OrderStatus(StrEnum):
    INITIALIZED = "INITIALIZED"
    DENIED = "DENIED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PENDING_AMEND = "PENDING_AMEND"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """Working (or possibly working) at the venue."""
        return self in _OPEN


_TERMINAL = frozenset(
    {OrderStatus.DENIED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
_OPEN = frozenset(
    {
        OrderStatus.SUBMITTED,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_AMEND,
    }
)


class LiquiditySide(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class RejectReason(StrEnum):
    """Why a venue (or the simulated venue) refused a request, normalized across venues."""

    RATE_LIMITED = "RATE_LIMITED"
    TIMESTAMP_OUTSIDE_WINDOW = "TIMESTAMP_OUTSIDE_WINDOW"
    DUPLICATE_CLIENT_ID = "DUPLICATE_CLIENT_ID"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    POST_ONLY_WOULD_CROSS = "POST_ONLY_WOULD_CROSS"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    INVALID_ORDER = "INVALID_ORDER"
    NO_LIQUIDITY = "NO_LIQUIDITY"
    OTHER = "OTHER"


class TradingState(StrEnum):
    """Risk engine state: ACTIVE trades normally, REDUCING only lets risk-reducing orders
    through, HALTED lets nothing through."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"
