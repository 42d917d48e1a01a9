"""Coinbase public WebSocket messages as msgspec structs (lenient: unused fields are ignored)."""

from __future__ import annotations

import msgspec

__all__ = [
    "AdvancedEnvelope",
    "ExchangeL2Update",
    "ExchangeMatch",
    "ExchangeSnapshot",
    "L2Event",
    "L2Level",
    "TradeEvent",
    "TradeItem",
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
