"""Coinbase ``user`` channel: order updates, and fills derived from them with exact arithmetic.

The channel sends order states, not executions: each update carries the order's
``cumulative_quantity``, ``avg_price`` and ``total_fees``. :class:`FillTracker` turns an increase of
the cumulative quantity into one fill:

* quantity = ``cum_now - cum_prev``;
* price = ``(avg_now x cum_now - avg_prev x cum_prev) / quantity`` in exact fractions of the venue's
  decimal strings; since ``avg_price`` is rounded by the venue, the one tick price within the rounding
  bound is taken when there is one (an increase traded at one price), otherwise the average of the
  increase rounded to nanos (an increase that swept several prices);
* fee = ``total_fees_now - total_fees_prev`` (quote currency, nanos: the fees of an order add up to
  its reported total exactly);
* trade id = ``<order id>-<cum_now in nanos>``: the same fill replayed after a reconnect (or seen
  again in a REST order record) gets the same id and is not counted twice, and an update whose
  cumulative quantity did not rise yields nothing.

Liquidity is not in the update; it is inferred: post-only orders are makers, IOC/FOK/market orders
takers, and a GTC limit is a maker if the channel showed it working without a fill before this fill
(it rested on the book), a taker otherwise.
"""

from __future__ import annotations

from collections import OrderedDict
from fractions import Fraction
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.venues.coinbase.parse import ConnectionSequence, ParseError
from tradeloop.venues.coinbase.schemas import AdvancedEnvelope, UserEvent, UserOrder

__all__ = [
    "FillDelta",
    "FillTracker",
    "UserChannelParser",
    "UserMessage",
    "UserUpdate",
    "decimal_fraction",
    "rounded_nanos",
]

USER_CHANNEL: Final = "user"
_ENVELOPE: Final = msgspec.json.Decoder(AdvancedEnvelope)
_EVENT: Final = msgspec.json.Decoder(UserEvent)


class UserUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """One order's state in a user-channel event, amounts in nanos."""

    order_id: str
    client_order_id: str
    product_id: str
    status: str
    cumulative_qty: int
    leaves_qty: int
    avg_price: str
    """As the venue wrote it (any precision; see :class:`FillTracker`)."""
    total_fees: int
    reason: str = ""
    """``cancel_reason`` or ``reject_reason`` when the venue gives one."""


class UserMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A ``user`` channel message: ``snapshot`` (open orders, possibly split over messages) or ``update``."""

    snapshot: bool
    updates: list[UserUpdate]


def _amount(text: str, field: str) -> int:
    try:
        return fixed.parse(text) if text else 0
    except fixed.FixedPointError as exc:
        raise ParseError(f"coinbase user order {field}: {exc}") from None


def _update(o: UserOrder) -> UserUpdate:
    return UserUpdate(
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        product_id=o.product_id,
        status=o.status,
        cumulative_qty=_amount(o.cumulative_quantity, "cumulative_quantity"),
        leaves_qty=_amount(o.leaves_quantity, "leaves_quantity"),
        avg_price=o.avg_price,
        total_fees=rounded_nanos(o.total_fees),
        reason=o.cancel_reason or o.reject_reason,
    )


class UserChannelParser:
    """Parses frames of the user socket; checks the connection's ``sequence_num`` like the market feed."""

    __slots__ = ("sequence",)

    def __init__(self) -> None:
        self.sequence = ConnectionSequence()

    def parse(self, payload: bytes) -> list[UserMessage]:
        """The user-channel messages in one frame (``[]`` for heartbeats and subscription acks).

        Raises :class:`ParseError` for anything malformed, and for the venue's ``error`` messages."""
        try:
            env = _ENVELOPE.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if b'"error"' in payload[:64]:
                raise ParseError(f"coinbase user socket error: {payload[:200]!r}") from None
            raise ParseError(f"coinbase user socket: not a channel message: {exc}") from None
        self.sequence.check(env.sequence_num)
        if env.channel != USER_CHANNEL:
            return []
        out: list[UserMessage] = []
        try:
            for raw in env.events:
                event = _EVENT.decode(raw)
                out.append(UserMessage(snapshot=event.type == "snapshot", updates=[_update(o) for o in event.orders]))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"coinbase user message: {exc}") from None
        return out


class FillDelta(msgspec.Struct, frozen=True, kw_only=True):
    """A fill derived from a cumulative-quantity increase."""

    trade_id: str
    qty: int
    price: int
    fee: int
    rested: bool
    """The order was seen working without a fill before this fill (a maker, for a plain GTC limit)."""
    exact: bool
    """The price is the one tick price the reported totals allow (else the nano-rounded average of the increase)."""


def decimal_fraction(text: str) -> tuple[Fraction, Fraction]:
    """A decimal string exactly, and half a unit of its last written digit (how far it may be from the truth)."""
    body = text.strip()
    if "/" in body or "_" in body:
        raise ParseError(f"coinbase: not a decimal number: {text[:40]!r}")
    try:
        value = Fraction(body)
    except (ValueError, ZeroDivisionError):
        raise ParseError(f"coinbase: not a decimal number: {text[:40]!r}") from None
    mantissa, _, exponent = body.lower().partition("e")
    decimals = len(mantissa.partition(".")[2]) - (int(exponent) if exponent else 0)
    return value, Fraction(1, 2 * 10**decimals) if decimals >= 0 else Fraction(10 ** (-decimals), 2)


def rounded_nanos(text: str) -> int:
    """A decimal string of any precision as nanos, rounded half-even (fees; never order sizes)."""
    value, _ = decimal_fraction(text or "0")
    return fixed.div_round(value.numerator * fixed.SCALE, value.denominator)


class _OrderFills:
    __slots__ = ("cum", "fees", "rested", "slack", "value")

    def __init__(self) -> None:
        self.cum = 0
        self.value = Fraction(0)  # avg_price x cumulative quantity, quote units
        self.slack = Fraction(0)  # how far ``value`` may be off, from the rounding of avg_price
        self.fees = 0
        self.rested = False


class FillTracker:
    """Per venue order: the cumulative quantity, value and fees already turned into fills.

    The fill price is ``(value_now - value_prev) / qty``. ``avg_price`` is rounded by the venue, so the
    values are known only within ``cum x half a unit of avg_price's last digit``; when exactly one tick
    price lies within that distance of the estimate (an increase traded at one price, the usual
    case) the fill gets that price, otherwise the estimate rounded to nanos (an increase that swept
    several prices). Keeps the last ``capacity`` orders, so replays after a reconnect are recognized
    without growing without bound."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._orders: OrderedDict[str, _OrderFills] = OrderedDict()
        self._capacity = capacity

    def filled(self, order_id: str) -> int:
        """Quantity already reported as fills for ``order_id``."""
        state = self._orders.get(order_id)
        return state.cum if state is not None else 0

    def observe(
        self, order_id: str, cum: int, avg_price: str, total_fees: int, tick: int, *, working: bool
    ) -> FillDelta | None:
        """The fill behind this state of the order, or ``None`` when its cumulative quantity did not rise.

        ``cum`` and ``total_fees`` are nanos, ``avg_price`` the venue's text, ``tick`` the price step;
        ``working``: the order is still open after this update (it may rest on the book)."""
        state = self._orders.get(order_id)
        if state is None:
            state = self._orders[order_id] = _OrderFills()
            if len(self._orders) > self._capacity:
                self._orders.popitem(last=False)
        else:
            self._orders.move_to_end(order_id)
        if cum <= state.cum:
            if working and cum == state.cum:
                state.rested = True
            return None
        avg, half_unit = decimal_fraction(avg_price or "0")
        qty = cum - state.cum
        value = avg * Fraction(cum, fixed.SCALE)
        slack = half_unit * Fraction(cum, fixed.SCALE)
        estimate = (value - state.value) / Fraction(qty, fixed.SCALE)  # quote per base unit
        margin = (slack + state.slack) / Fraction(qty, fixed.SCALE)
        tick_units = Fraction(tick, fixed.SCALE)
        nearest = round(estimate / tick_units) * tick_units
        off = abs(nearest - estimate)
        exact = off == 0 or (off <= margin and margin < tick_units / 2)
        chosen = nearest if exact else estimate
        price = fixed.div_round(chosen.numerator * fixed.SCALE, chosen.denominator)
        fill = FillDelta(
            trade_id=f"{order_id}-{cum}",
            qty=qty,
            price=price,
            fee=total_fees - state.fees,
            rested=state.rested,
            exact=exact,
        )
        state.cum, state.value, state.slack, state.fees = cum, value, slack, total_fees
        return fill
