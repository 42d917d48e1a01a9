"""What the OKX simulator writes: the venue's JSON for book frames, order details and replies (pure).

Sizes go out in OKX units (contracts for swaps) and every number as OKX writes it (no trailing
zeros), so a client computes the same CRC32 over the simulator's book as the simulator did.
"""

from __future__ import annotations

from typing import Any, Final

from tradeloop.core import fixed
from tradeloop.model.book import OrderBook
from tradeloop.model.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradeloop.venues.okx.instruments import OkxInstrument, SizeError, plain_decimal
from tradeloop.venues.okx.parse import checksum_of_levels
from tradeloop.venues.okx.spec import CANCEL_FOK, CANCEL_IOC, CHECKSUM_DEPTH

__all__ = [
    "ERROR_MESSAGES",
    "REJECT_CODES",
    "SimOrderInfo",
    "ack_item",
    "book_checksum_of",
    "book_levels",
    "delta_levels",
    "error_code_and_message",
    "ord_type_fields",
    "order_data",
    "size_text",
]

REJECT_CODES: Final[dict[RejectReason, str]] = {
    RejectReason.INSUFFICIENT_BALANCE: "51008",
    RejectReason.DUPLICATE_CLIENT_ID: "51016",
    RejectReason.INVALID_ORDER: "51000",
    RejectReason.NO_LIQUIDITY: "51000",
    RejectReason.RATE_LIMITED: "50011",
    RejectReason.TIMESTAMP_OUTSIDE_WINDOW: "50102",
    RejectReason.UNKNOWN_ORDER: "51603",
    RejectReason.OTHER: "50000",
}
"""The ``sCode`` the simulator answers a refused place request with, by the core's reason."""

ERROR_MESSAGES: Final[dict[str, str]] = {
    "50011": "Too Many Requests",
    "50102": "Timestamp request expired",
    "50105": 'Request header "OK-ACCESS-PASSPHRASE" incorrect.',
    "50111": "Invalid OK-ACCESS-KEY",
    "50113": "Invalid Sign",
    "51000": "Parameter error",
    "51001": "Instrument ID does not exist",
    "51008": "Order failed. Insufficient balance",
    "51016": "Duplicated clOrdId",
    "51019": "Post-only order would take liquidity",
    "51400": "Order cancellation failed as the order has been filled, canceled or does not exist",
    "51503": "Order modification failed as the order has been filled, canceled or does not exist",
    "51603": "Order does not exist",
}


def error_code_and_message(error: str) -> tuple[str, str]:
    """A fault's ``error`` (an OKX code such as ``"51008"``, or free text) as ``(sCode, sMsg)``."""
    code = error.partition(" ")[0]
    if code.partition("_")[0].isdigit():
        return code, error.partition(" ")[2] or ERROR_MESSAGES.get(code.partition("_")[0], "Operation failed")
    return "51000", error


def size_text(spec: OkxInstrument, qty: int) -> str:
    """A base quantity in OKX units (contracts for swaps; rounded down when not whole nanos)."""
    try:
        return plain_decimal(spec.sz_from_qty(qty))
    except SizeError:
        return plain_decimal(qty * fixed.SCALE // spec.ct_val)


def book_levels(book: OrderBook, spec: OkxInstrument, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    """``(bids, asks)`` of the top ``depth`` levels as OKX writes them: ``[px, sz, "0", orders]``."""
    bids = [[plain_decimal(p), size_text(spec, q), "0", "1"] for p, q in book.top_bids(depth)]
    asks = [[plain_decimal(p), size_text(spec, q), "0", "1"] for p, q in book.top_asks(depth)]
    return bids, asks


def book_checksum_of(book: OrderBook, spec: OkxInstrument) -> int:
    """OKX's CRC32 of ``book`` as the simulator sends it."""
    bids, asks = book_levels(book, spec, CHECKSUM_DEPTH)
    return checksum_of_levels([(b[0], b[1]) for b in bids], [(a[0], a[1]) for a in asks])


def delta_levels(levels: list[tuple[int, int]], spec: OkxInstrument) -> list[list[str]]:
    """Changed levels of an update (size 0 deletes)."""
    return [[plain_decimal(p), size_text(spec, q), "0", "1" if q else "0"] for p, q in levels]


def ord_type_fields(ord_type: str) -> tuple[OrderType, TimeInForce, bool] | None:
    """OKX ``ordType`` -> (order type, time in force, post-only); ``None`` for types the simulator refuses."""
    return {
        "limit": (OrderType.LIMIT, TimeInForce.GTC, False),
        "post_only": (OrderType.LIMIT, TimeInForce.GTC, True),
        "ioc": (OrderType.LIMIT, TimeInForce.IOC, False),
        "fok": (OrderType.LIMIT, TimeInForce.FOK, False),
        "market": (OrderType.MARKET, TimeInForce.IOC, False),
    }.get(ord_type)


class SimOrderInfo:
    """What the simulator remembers of an order to describe it the way OKX does."""

    __slots__ = (
        "c_time",
        "cancel_source",
        "cid",
        "filled",
        "notional",
        "ord_id",
        "ord_type",
        "price",
        "qty",
        "side",
        "spec",
        "state",
        "td_mode",
    )

    def __init__(
        self,
        spec: OkxInstrument,
        cid: str,
        side: Side,
        ord_type: str,
        price: int | None,
        qty: int,
        td_mode: str,
        c_time: int,
    ) -> None:
        self.spec = spec
        self.cid = cid
        self.side = side
        self.ord_type = ord_type
        self.price = price
        self.qty = qty
        self.td_mode = td_mode
        self.c_time = c_time
        self.ord_id = ""
        self.filled = 0
        self.notional = 0
        self.state = "live"
        self.cancel_source = ""

    def apply_status(self, status: OrderStatus | None) -> None:
        if status is OrderStatus.PARTIALLY_FILLED:
            self.state = "partially_filled"
        elif status is OrderStatus.FILLED:
            self.state = "filled"
        elif status in (OrderStatus.CANCELED, OrderStatus.REJECTED):
            self.state = "canceled"
        elif status is OrderStatus.EXPIRED:
            self.state = "canceled"
            self.cancel_source = CANCEL_FOK if self.ord_type == "fok" else CANCEL_IOC


def order_data(info: SimOrderInfo, u_time: int, **extra: str) -> dict[str, Any]:
    """An order as OKX's order endpoints and the ``orders`` channel describe it (``extra`` overrides)."""
    spec = info.spec
    avg = fixed.div(info.notional, info.filled) if info.filled else 0
    data: dict[str, Any] = {
        "instType": spec.inst_type,
        "instId": spec.inst_id,
        "ordId": info.ord_id,
        "clOrdId": info.cid,
        "px": plain_decimal(info.price) if info.price is not None else "",
        "sz": size_text(spec, info.qty),
        "ordType": info.ord_type,
        "side": "buy" if info.side is Side.BUY else "sell",
        "tdMode": info.td_mode,
        "state": info.state,
        "accFillSz": size_text(spec, info.filled),
        "avgPx": plain_decimal(avg),
        "fillPx": "",
        "fillSz": "0",
        "tradeId": "",
        "fillFee": "0",
        "fillFeeCcy": "",
        "fillTime": "",
        "execType": "",
        "cancelSource": info.cancel_source,
        "amendResult": "",
        "reqId": "",
        "code": "0",
        "msg": "",
        "cTime": str(info.c_time),
        "uTime": str(u_time),
    }
    data.update(extra)
    return data


def ack_item(cid: str, ord_id: str, code: str = "0", msg: str = "") -> dict[str, str]:
    """One item of an order reply."""
    return {"clOrdId": cid, "ordId": ord_id, "tag": "", "ts": "", "sCode": code, "sMsg": msg}
