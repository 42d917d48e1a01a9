"""Coinbase messages as msgspec structs: public WebSocket, private REST replies and the ``user`` channel
(lenient: unused fields are ignored)."""

from __future__ import annotations

import msgspec

__all__ = [
    "AccountRecord",
    "AccountsPage",
    "AdvancedEnvelope",
    "Amount",
    "BatchCancelReply",
    "CancelResult",
    "CreateOrderReply",
    "EditError",
    "EditReply",
    "ErrorResponse",
    "ExchangeL2Update",
    "ExchangeMatch",
    "ExchangeSnapshot",
    "L2Event",
    "L2Level",
    "LimitConfig",
    "OrderConfiguration",
    "OrderRecord",
    "OrderReply",
    "OrdersPage",
    "SuccessResponse",
    "TradeEvent",
    "TradeItem",
    "UserEvent",
    "UserOrder",
]


class L2Level(msgspec.Struct, frozen=True):
    side: str
    price_level: str
    new_quantity: str
    event_time: str = ""


class L2Event(msgspec.Struct, frozen=True):
    type: str
    product_id: str
    updates: list[L2Level]


class TradeItem(msgspec.Struct, frozen=True):
    trade_id: str
    product_id: str
    price: str
    size: str
    side: str
    time: str


class TradeEvent(msgspec.Struct, frozen=True):
    type: str
    trades: list[TradeItem]


class AdvancedEnvelope(msgspec.Struct, frozen=True):
    channel: str
    sequence_num: int
    timestamp: str = ""
    events: list[msgspec.Raw] = []


class ExchangeSnapshot(msgspec.Struct, frozen=True):
    product_id: str
    bids: list[list[str]]
    asks: list[list[str]]


class ExchangeL2Update(msgspec.Struct, frozen=True):
    product_id: str
    changes: list[list[str]]
    time: str = ""


class ExchangeMatch(msgspec.Struct, frozen=True):
    trade_id: int
    product_id: str
    side: str
    size: str
    price: str
    sequence: int
    time: str


# ---- private: REST replies and the user channel (lenient: unknown fields ignored, most fields optional) ----


class ErrorResponse(msgspec.Struct, frozen=True):
    error: str = ""
    message: str = ""
    error_details: str = ""
    preview_failure_reason: str = ""
    new_order_failure_reason: str = ""


class SuccessResponse(msgspec.Struct, frozen=True):
    order_id: str = ""
    product_id: str = ""
    side: str = ""
    client_order_id: str = ""


class CreateOrderReply(msgspec.Struct, frozen=True):
    """``POST /orders``: HTTP 200 with ``success`` true (``success_response``) or false (``error_response``)."""

    success: bool = False
    failure_reason: str = ""
    order_id: str = ""
    success_response: SuccessResponse | None = None
    error_response: ErrorResponse | None = None


class CancelResult(msgspec.Struct, frozen=True):
    success: bool = False
    failure_reason: str = ""
    order_id: str = ""


class BatchCancelReply(msgspec.Struct, frozen=True):
    results: list[CancelResult] = []


class EditError(msgspec.Struct, frozen=True):
    edit_failure_reason: str = ""
    preview_failure_reason: str = ""


class EditReply(msgspec.Struct, frozen=True):
    success: bool = False
    errors: list[EditError] = []


class LimitConfig(msgspec.Struct, frozen=True):
    base_size: str = ""
    quote_size: str = ""
    limit_price: str = ""
    post_only: bool = False


class OrderConfiguration(msgspec.Struct, frozen=True):
    market_market_ioc: LimitConfig | None = None
    sor_limit_ioc: LimitConfig | None = None
    limit_limit_gtc: LimitConfig | None = None
    limit_limit_gtd: LimitConfig | None = None
    limit_limit_fok: LimitConfig | None = None

    def limit(self) -> LimitConfig | None:
        """The one configuration that is set."""
        for cfg in (
            self.limit_limit_gtc,
            self.sor_limit_ioc,
            self.limit_limit_fok,
            self.limit_limit_gtd,
            self.market_market_ioc,
        ):
            if cfg is not None:
                return cfg
        return None


class OrderRecord(msgspec.Struct, frozen=True):
    """One order from ``GET /orders/historical/{id}`` or ``/orders/historical/batch``."""

    order_id: str
    product_id: str
    side: str
    status: str
    client_order_id: str = ""
    order_configuration: OrderConfiguration | None = None
    time_in_force: str = ""
    order_type: str = ""
    filled_size: str = "0"
    average_filled_price: str = "0"
    total_fees: str = "0"
    number_of_fills: str = "0"
    reject_reason: str = ""
    cancel_message: str = ""


class OrderReply(msgspec.Struct, frozen=True):
    order: OrderRecord


class OrdersPage(msgspec.Struct, frozen=True):
    orders: list[OrderRecord] = []
    has_next: bool = False
    cursor: str = ""


class Amount(msgspec.Struct, frozen=True):
    value: str = "0"
    currency: str = ""


class AccountRecord(msgspec.Struct, frozen=True):
    currency: str
    available_balance: Amount = Amount()
    hold: Amount = Amount()


class AccountsPage(msgspec.Struct, frozen=True):
    accounts: list[AccountRecord] = []
    has_next: bool = False
    cursor: str = ""


class UserOrder(msgspec.Struct, frozen=True):
    """One order in a ``user`` channel event (snapshot or update)."""

    order_id: str
    status: str
    client_order_id: str = ""
    product_id: str = ""
    order_side: str = ""
    order_type: str = ""
    time_in_force: str = ""
    cumulative_quantity: str = "0"
    leaves_quantity: str = "0"
    avg_price: str = "0"
    total_fees: str = "0"
    cancel_reason: str = ""
    reject_reason: str = ""
    creation_time: str = ""


class UserEvent(msgspec.Struct, frozen=True):
    type: str
    orders: list[UserOrder] = []
