"""The Coinbase simulator's order database (venue-side order records and their JSON, as Coinbase
writes it) and its JWT check.

The matching happens in the :class:`~tradeloop.venues.simulator.core.SimulatorCore`; this keeps what
Coinbase's order API shows on top of it (venue order ids, ``order_configuration``, ``status``,
cumulative fills and fees) and renders REST order records, ``user`` channel orders, failure replies
and the mapping of engine reject reasons to Coinbase failure codes.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tradeloop.core import fixed
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.instrument import Instrument
from tradeloop.venues.coinbase.spec import ERRORS, JWT_LIFETIME_S

__all__ = [
    "CREATE_FAILURE",
    "EDIT_FAILURE",
    "RequestRefused",
    "SimRecord",
    "command_from_body",
    "failure_for",
    "jwt_problem",
    "ns_to_rfc3339",
]

CREATE_FAILURE: Final[dict[RejectReason, str]] = {
    RejectReason.INSUFFICIENT_BALANCE: "INSUFFICIENT_FUND",
    RejectReason.POST_ONLY_WOULD_CROSS: "INVALID_LIMIT_PRICE_POST_ONLY",
    RejectReason.DUPLICATE_CLIENT_ID: "DUPLICATE_CLIENT_ORDER_ID",
    RejectReason.NO_LIQUIDITY: "INVALID_NO_LIQUIDITY",
    RejectReason.INVALID_ORDER: "INVALID_ORDER_CONFIGURATION",
    RejectReason.UNKNOWN_ORDER: "UNKNOWN_ORDER",
    RejectReason.RATE_LIMITED: "rate_limit_exceeded",
}
"""Engine reason of the simulated venue -> the code Coinbase would send."""

EDIT_FAILURE: Final[dict[RejectReason, tuple[str, str]]] = {
    RejectReason.INSUFFICIENT_BALANCE: ("", "PREVIEW_INSUFFICIENT_FUND"),
    RejectReason.POST_ONLY_WOULD_CROSS: ("", "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"),
    RejectReason.UNKNOWN_ORDER: ("ONLY_OPEN_ORDERS_CAN_BE_EDITED", ""),
    RejectReason.INVALID_ORDER: ("INVALID_EDITED_PRICE", ""),
}
"""Engine reason -> (``edit_failure_reason``, ``preview_failure_reason``)."""

_TIF: Final = {
    "market_market_ioc": "IMMEDIATE_OR_CANCEL",
    "sor_limit_ioc": "IMMEDIATE_OR_CANCEL",
    "limit_limit_fok": "FILL_OR_KILL",
    "limit_limit_gtc": "GOOD_UNTIL_CANCELLED",
}


class RequestRefused(ValueError):
    """A create request the venue refuses before matching: ``code`` is the failure reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def ns_to_rfc3339(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac // 1000:06d}Z"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def jwt_problem(token: str, public: object, key_name: str, now_s: int, leeway_s: int, uri: str | None) -> str | None:
    """Why the venue would refuse ``token`` (``None``: it would not): signature by ``public``, key name,
    issuer, a ``nbf``/``exp`` window of at most 120 s containing ``now_s`` (give or take ``leeway_s``),
    and for REST the ``uri`` claim of the request. Texts name no secret."""
    try:
        head_b64, claims_b64, sig_b64 = token.split(".")
        head = json.loads(_b64decode(head_b64))
        claims = json.loads(_b64decode(claims_b64))
        sig = _b64decode(sig_b64)
    except ValueError:
        return "malformed jwt"
    if head.get("kid") != key_name or claims.get("sub") != key_name or claims.get("iss") != "cdp":
        return "unknown key"
    signing_input = f"{head_b64}.{claims_b64}".encode()
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(sig, signing_input)
        elif isinstance(public, ec.EllipticCurvePublicKey) and len(sig) == 64:
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            return "bad signature"
    except InvalidSignature:
        return "bad signature"
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if not isinstance(nbf, int) or not isinstance(exp, int) or exp - nbf > JWT_LIFETIME_S:
        return "bad validity window"
    if now_s + leeway_s < nbf or now_s > exp + leeway_s:
        return "request timestamp expired"
    if uri is not None and claims.get("uri") != uri:
        return "uri claim does not match the request"
    return None


def failure_for(error: str) -> tuple[str, str]:
    """(``error``, ``preview_failure_reason``) for an injected error code (``PREVIEW_`` codes go second)."""
    if error.startswith("PREVIEW_"):
        return error.removeprefix("PREVIEW_"), error
    return error, ("PREVIEW_" + error if error in ERRORS else "")


def _amount(value: object, what: str) -> int:
    if not isinstance(value, str):
        raise RequestRefused("INVALID_ARGUMENT", f"{what} must be a decimal string")
    try:
        return fixed.parse(value)
    except fixed.FixedPointError:
        raise RequestRefused("INVALID_ARGUMENT", f"{what} is not a decimal number") from None


def command_from_body(body: dict[str, Any], inst: Instrument, ts: int) -> tuple[SubmitOrder, str]:
    """The engine command for a ``POST /orders`` body, and its configuration key."""
    configs = body.get("order_configuration")
    if not isinstance(configs, dict) or len(configs) != 1:
        raise RequestRefused("INVALID_ARGUMENT", "order_configuration needs exactly one configuration")
    ((kind, cfg),) = configs.items()
    if kind not in _TIF or not isinstance(cfg, dict):
        raise RequestRefused("UNSUPPORTED_ORDER_CONFIGURATION", f"{kind} is not simulated")
    if "base_size" not in cfg:
        raise RequestRefused("UNSUPPORTED_ORDER_CONFIGURATION", "only base_size orders are simulated")
    side = body.get("side")
    if side not in ("BUY", "SELL"):
        raise RequestRefused("INVALID_SIDE", f"side {side!r}")
    qty = _amount(cfg["base_size"], "base_size")
    if qty <= 0 or qty % inst.lot_size:
        raise RequestRefused("INVALID_SIZE_PRECISION", "base_size off the product's base_increment")
    price: int | None = None
    if kind != "market_market_ioc":
        price = _amount(cfg.get("limit_price"), "limit_price")
        if price <= 0 or price % inst.tick_size:
            raise RequestRefused("INVALID_PRICE_PRECISION", "limit_price off the product's price_increment")
    cid = body.get("client_order_id")
    if not isinstance(cid, str) or not cid:
        raise RequestRefused("INVALID_ARGUMENT", "client_order_id is required")
    tif = {"IMMEDIATE_OR_CANCEL": TimeInForce.IOC, "FILL_OR_KILL": TimeInForce.FOK}.get(_TIF[kind], TimeInForce.GTC)
    cmd = SubmitOrder(
        ts=ts,
        strategy_id="coinbase-api",
        instrument_id=inst.id,
        side=Side(side),
        qty=qty,
        price=price,
        order_type=OrderType.MARKET if kind == "market_market_ioc" else OrderType.LIMIT,
        time_in_force=TimeInForce.IOC if kind == "market_market_ioc" else tif,
        post_only=bool(cfg.get("post_only", False)) if kind == "limit_limit_gtc" else False,
        client_order_id=cid,
    )
    return cmd, kind


class SimRecord:
    """One order as Coinbase's order API shows it."""

    __slots__ = (
        "cancel_reason",
        "cmd",
        "created_ns",
        "cum",
        "fees",
        "kind",
        "order_id",
        "price",
        "qty",
        "status",
        "value",
    )

    def __init__(self, order_id: str, cmd: SubmitOrder, kind: str, created_ns: int) -> None:
        self.order_id = order_id
        self.cmd = cmd
        self.kind = kind
        self.created_ns = created_ns
        self.price = cmd.price
        self.qty = cmd.qty
        self.status = "OPEN"
        self.cum = 0
        self.value = 0  # sum of price x qty, 10^-18 units
        self.fees = 0
        self.cancel_reason = ""

    @property
    def client_order_id(self) -> str:
        return self.cmd.client_order_id

    @property
    def product_id(self) -> str:
        return self.cmd.instrument_id.symbol

    def avg_price(self) -> str:
        """The average fill price written to 15 decimals (the venue's own strings are long too)."""
        if not self.cum:
            return "0"
        scaled = fixed.div_round(self.value * 10**15, self.cum * fixed.SCALE)
        whole, frac = divmod(scaled, 10**15)
        text = f"{whole}.{frac:015d}".rstrip("0")
        return text.rstrip(".")

    def configuration(self) -> dict[str, dict[str, object]]:
        cfg: dict[str, object] = {"base_size": fixed.to_str(self.qty)}
        if self.price is not None:
            cfg["limit_price"] = fixed.to_str(self.price)
        if self.kind == "limit_limit_gtc":
            cfg["post_only"] = self.cmd.post_only
        return {self.kind: cfg}

    def rest(self) -> dict[str, object]:
        """The ``historical`` order record."""
        return {
            "order_id": self.order_id,
            "product_id": self.product_id,
            "user_id": "sim-user",
            "order_configuration": self.configuration(),
            "side": self.cmd.side.value,
            "client_order_id": self.client_order_id,
            "status": self.status,
            "time_in_force": _TIF[self.kind],
            "created_time": ns_to_rfc3339(self.created_ns),
            "filled_size": fixed.to_str(self.cum),
            "average_filled_price": self.avg_price(),
            "number_of_fills": "0",
            "filled_value": fixed.to_str(fixed.div_round(self.value, fixed.SCALE)),
            "total_fees": fixed.to_str(self.fees),
            "order_type": "MARKET" if self.kind == "market_market_ioc" else "LIMIT",
            "reject_reason": "",
            "cancel_message": self.cancel_reason,
            "product_type": "SPOT",
        }

    def user(self) -> dict[str, object]:
        """The order in a ``user`` channel event."""
        return {
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "cumulative_quantity": fixed.to_str(self.cum),
            "leaves_quantity": fixed.to_str(max(self.qty - self.cum, 0) if self.status == "OPEN" else 0),
            "avg_price": self.avg_price(),
            "total_fees": fixed.to_str(self.fees),
            "status": self.status,
            "product_id": self.product_id,
            "creation_time": ns_to_rfc3339(self.created_ns),
            "order_side": self.cmd.side.value,
            "order_type": "Market" if self.kind == "market_market_ioc" else "Limit",
            "cancel_reason": self.cancel_reason,
            "reject_reason": "",
            "time_in_force": _TIF[self.kind],
            "product_type": "SPOT",
        }
