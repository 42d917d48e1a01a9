"""The Bybit simulator's wire format: pure encoders of v5 messages and the state they are built from.

* :class:`BookTopic`: one ``orderbook.{depth}.{symbol}`` topic: the top-``depth`` view last published
  and its update id ``u`` (one counter per topic, as Bybit's); :meth:`BookTopic.update` diffs the
  simulator's book against the view (levels that left the top ``depth`` are deleted with size 0).
* :class:`SimOrderRow`: an order as the dialect mirrors it from the simulator's events, encoded as
  the ``order`` topic / ``order/realtime`` row; fills become ``execution`` rows.
* ``*_message`` functions: the JSON frames (``topic`` first, as Bybit sends them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, NamedTuple

import msgspec

from tradeloop.core import fixed
from tradeloop.model.book import OrderBook
from tradeloop.model.data import Level, Trade
from tradeloop.model.enums import LiquiditySide, OrderType, Side, TimeInForce
from tradeloop.model.events import Balance, OrderFilled
from tradeloop.model.instrument import Instrument

__all__ = [
    "MESSAGES",
    "Answer",
    "BookTopic",
    "SimOrderRow",
    "book_message",
    "encode",
    "execution_row",
    "instrument_rows",
    "reply",
    "topic_message",
    "trade_message",
    "wallet_rows",
]

_ENC: Final = msgspec.json.Encoder()
_SIDES: Final = {Side.BUY: "Buy", Side.SELL: "Sell"}


def encode(obj: object) -> str:
    return _ENC.encode(obj).decode()


def _s(value: int) -> str:
    return fixed.to_str(value)


def reply(ret_code: int, ret_msg: str, result: object, now_ms: int) -> dict[str, Any]:
    return {"retCode": ret_code, "retMsg": ret_msg, "result": result, "retExtInfo": {}, "time": now_ms}


MESSAGES: Final = {
    10001: "params error",
    10002: "invalid request, please check your server timestamp or recv_window param",
    10003: "API key is invalid.",
    10004: "error sign!",
    10006: "Too many visits!",
    10404: "op type is not found",
    20006: "reqId is duplicated",
    110001: "order not exists or too late to cancel",
    110007: "ab not enough for new order",
    110072: "OrderLinkedID is duplicate",
    170131: "Insufficient balance.",
    170141: "Duplicate clientOrderId.",
    170213: "Order does not exist.",
}
"""``retMsg`` of the codes the simulator answers."""


class Answer(NamedTuple):
    """A request's outcome as the dialect decided it, before it is put on REST or the trade socket."""

    code: int
    result: object
    msg: str


def instrument_rows(instruments: Iterable[Instrument], category: str) -> list[dict[str, Any]]:
    """``/v5/market/instruments-info`` rows of the simulator's instruments."""
    rows = []
    for inst in instruments:
        price = {"tickSize": _s(inst.tick_size)}
        if category == "spot":
            lot = {
                "basePrecision": _s(inst.lot_size),
                "minOrderQty": _s(inst.min_qty),
                "minOrderAmt": _s(inst.min_notional),
                "maxOrderQty": _s(inst.max_qty),
            }
            extra = {}
        else:
            lot = {
                "qtyStep": _s(inst.lot_size),
                "minOrderQty": _s(inst.min_qty),
                "maxOrderQty": _s(inst.max_qty),
                "minNotionalValue": _s(inst.min_notional),
            }
            extra = {"contractType": "LinearPerpetual", "settleCoin": inst.quote}
        rows.append(
            {
                "symbol": inst.id.symbol,
                "baseCoin": inst.base,
                "quoteCoin": inst.quote,
                "status": "Trading",
                "lotSizeFilter": lot,
                "priceFilter": price,
                **extra,
            }
        )
    return rows


class BookTopic:
    """The published top-``depth`` view of one book and its update id."""

    __slots__ = ("asks", "bids", "depth", "symbol", "u")

    def __init__(self, symbol: str, depth: int, book: OrderBook, first_u: int = 1000) -> None:
        self.symbol = symbol
        self.depth = depth
        self.u = first_u
        self.bids: dict[int, int] = dict(book.top_bids(depth))
        self.asks: dict[int, int] = dict(book.top_asks(depth))

    @property
    def topic(self) -> str:
        return f"orderbook.{self.depth}.{self.symbol}"

    def update(self, book: OrderBook) -> tuple[list[Level], list[Level]] | None:
        """Move the view to ``book``'s top levels; the changed levels (size 0: removed), or ``None``."""
        bids, asks = dict(book.top_bids(self.depth)), dict(book.top_asks(self.depth))
        db, da = _diff(self.bids, bids, reverse=True), _diff(self.asks, asks, reverse=False)
        if not db and not da:
            return None
        self.bids, self.asks = bids, asks
        self.u += 1
        return db, da

    def snapshot(self) -> tuple[list[Level], list[Level]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


def _diff(old: dict[int, int], new: dict[int, int], *, reverse: bool) -> list[Level]:
    out = [(p, q) for p, q in new.items() if old.get(p) != q]
    out += [(p, 0) for p in old if p not in new]
    return sorted(out, reverse=reverse)


def book_message(topic: BookTopic, kind: str, levels: tuple[list[Level], list[Level]], now_ms: int) -> str:
    bids, asks = levels
    data = {
        "s": topic.symbol,
        "b": [[_s(p), _s(q)] for p, q in bids],
        "a": [[_s(p), _s(q)] for p, q in asks],
        "u": topic.u,
        "seq": topic.u * 10,
    }
    return encode({"topic": topic.topic, "type": kind, "ts": now_ms, "data": data, "cts": now_ms})


def trade_message(trade: Trade, trade_id: str, now_ms: int) -> str:
    row = {
        "T": trade.ts_event // 1_000_000 or now_ms,
        "s": trade.instrument_id.symbol,
        "S": _SIDES[trade.aggressor],
        "v": _s(trade.qty),
        "p": _s(trade.price),
        "i": trade_id,
        "BT": False,
    }
    return encode(
        {"topic": f"publicTrade.{trade.instrument_id.symbol}", "type": "snapshot", "ts": now_ms, "data": [row]}
    )


def topic_message(topic: str, rows: list[dict[str, Any]], n: int, now_ms: int) -> str:
    return encode({"topic": topic, "id": f"sim-{n}", "creationTime": now_ms, "data": rows})


class SimOrderRow:
    """One order as Bybit reports it, kept up to date from the simulator's events."""

    __slots__ = (
        "cancel_type",
        "category",
        "client_order_id",
        "created_ms",
        "cum_fee",
        "cum_qty",
        "cum_value",
        "executions",
        "inst",
        "order_id",
        "order_type",
        "price",
        "qty",
        "reduce_only",
        "reject_reason",
        "side",
        "status",
        "tif",
        "updated_ms",
    )

    def __init__(
        self,
        inst: Instrument,
        category: str,
        client_order_id: str,
        side: Side,
        order_type: OrderType,
        tif: str,
        price: int | None,
        qty: int,
        reduce_only: bool,
        now_ms: int,
    ) -> None:
        self.inst = inst
        self.category = category
        self.client_order_id = client_order_id
        self.side = side
        self.order_type = order_type
        self.tif = tif
        self.price = price
        self.qty = qty
        self.reduce_only = reduce_only
        self.order_id = ""
        self.status = "New"
        self.cancel_type = "UNKNOWN"
        self.reject_reason = "EC_NoError"
        self.cum_qty = 0
        self.cum_value = 0
        self.cum_fee = 0
        self.created_ms = self.updated_ms = now_ms
        self.executions: list[dict[str, Any]] = []

    @property
    def is_open(self) -> bool:
        return self.status in ("New", "PartiallyFilled")

    @staticmethod
    def tif_of(time_in_force: TimeInForce, post_only: bool, order_type: OrderType) -> str:
        if order_type is OrderType.MARKET:
            return "IOC"
        return "PostOnly" if post_only else time_in_force.value

    def fill(self, event: OrderFilled, exec_seq: int, now_ms: int) -> dict[str, Any]:
        """Book a fill; its ``execution`` row."""
        self.cum_qty += event.last_qty
        value = self.inst.notional(event.last_price, event.last_qty)
        self.cum_value += value
        self.cum_fee += event.fee
        self.status = "Filled" if self.cum_qty >= self.qty else "PartiallyFilled"
        self.updated_ms = now_ms
        row = execution_row(self, event, value, exec_seq, now_ms)
        self.executions.append(row)
        return row

    def row(self) -> dict[str, Any]:
        avg = fixed.div(self.cum_value, self.cum_qty) if self.cum_qty else 0
        return {
            "category": self.category,
            "symbol": self.inst.id.symbol,
            "orderId": self.order_id,
            "orderLinkId": self.client_order_id,
            "side": _SIDES[self.side],
            "orderType": "Market" if self.order_type is OrderType.MARKET else "Limit",
            "price": _s(self.price) if self.price is not None else "0",
            "qty": _s(self.qty),
            "timeInForce": self.tif,
            "orderStatus": self.status,
            "cancelType": self.cancel_type,
            "rejectReason": self.reject_reason,
            "avgPrice": _s(self.inst.round_price(avg)) if self.cum_qty else "0",
            "leavesQty": _s(max(self.qty - self.cum_qty, 0)) if self.is_open else "0",
            "cumExecQty": _s(self.cum_qty),
            "cumExecValue": _s(self.cum_value),
            "cumExecFee": _s(self.cum_fee),
            "feeCurrency": self.inst.quote,
            "reduceOnly": self.reduce_only,
            "positionIdx": 0,
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms),
        }


def execution_row(order: SimOrderRow, event: OrderFilled, value: int, seq: int, now_ms: int) -> dict[str, Any]:
    return {
        "category": order.category,
        "symbol": order.inst.id.symbol,
        "orderId": order.order_id,
        "orderLinkId": order.client_order_id,
        "side": _SIDES[event.side],
        "execId": event.trade_id,
        "execPrice": _s(event.last_price),
        "execQty": _s(event.last_qty),
        "execValue": _s(value),
        "execFee": _s(event.fee),
        "feeCurrency": event.fee_currency,
        "execType": "Trade",
        "execTime": str(now_ms),
        "isMaker": event.liquidity is LiquiditySide.MAKER,
        "leavesQty": _s(max(order.qty - order.cum_qty, 0)),
        "orderPrice": _s(order.price) if order.price is not None else "0",
        "orderQty": _s(order.qty),
        "orderType": "Market" if order.order_type is OrderType.MARKET else "Limit",
        "seq": seq,
    }


def wallet_rows(balances: list[Balance]) -> list[dict[str, Any]]:
    coins = [
        {
            "coin": b.currency,
            "walletBalance": _s(b.total),
            "equity": _s(b.total),
            "locked": _s(b.locked),
            "totalOrderIM": "0",
            "availableToWithdraw": _s(b.total - b.locked),
        }
        for b in balances
    ]
    return [{"accountType": "UNIFIED", "coin": coins}]
