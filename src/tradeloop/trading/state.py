"""The node's durable state as data: orders, portfolio and the client order id counter.

A snapshot is :class:`EngineState` encoded as msgpack and stored by the journal
(``Journal.save_snapshot``) together with the seq of the last record it covers. Recovery loads the
newest snapshot and folds the journal records after it (:mod:`tradeloop.trading.recovery`), which
gives the same state as folding the whole journal: the fold is the one the live node ran.

Only orders that are not terminal are kept: a terminal order can change no more, and late reports
about it are journaled for audit like any report about an order the node does not know.
"""

from __future__ import annotations

import msgspec

from tradeloop.model.enums import OrderStatus, OrderType, Side, TimeInForce
from tradeloop.model.events import OrderInitialized
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.order import Order
from tradeloop.model.position import Position
from tradeloop.trading.portfolio import Portfolio

__all__ = [
    "STATE_VERSION",
    "EngineState",
    "OrderState",
    "PortfolioState",
    "PositionState",
    "capture_order",
    "capture_portfolio",
    "decode_state",
    "encode_state",
    "restore_order",
    "restore_portfolio",
]

STATE_VERSION = 1


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    """Every field of an :class:`~tradeloop.model.order.Order`."""

    client_order_id: str
    instrument_id: InstrumentId
    strategy_id: str
    side: Side
    qty: int
    price: int | None
    order_type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    reduce_only: bool
    status: OrderStatus
    resume_status: OrderStatus
    venue_order_id: str | None
    filled_qty: int
    filled_notional: str
    """Sum of qty x price over the fills (nanos squared: can exceed 64 bits, so a decimal integer string)."""
    fee_total: int
    trade_ids: list[str]
    outcome_unknown: bool
    ts_last: int
    events: int


class PositionState(msgspec.Struct, frozen=True, kw_only=True):
    instrument_id: InstrumentId
    qty: int
    cost: int
    realized: int
    fees: int
    volume: int
    last_mark: int | None


class PortfolioState(msgspec.Struct, frozen=True, kw_only=True):
    valuation: str
    balances: list[tuple[str, str, int]]
    """``(venue, currency, amount)`` in nanos, sorted."""
    positions: list[PositionState]
    marks: list[tuple[InstrumentId, int]]
    unopened: list[tuple[InstrumentId, int]]
    initial_equity: int | None
    fill_count: int


class EngineState(msgspec.Struct, frozen=True, kw_only=True):
    """What a node needs to continue where it stopped (see the module docstring)."""

    version: int
    seq: int
    """The last journal record this state includes."""
    ts: int
    instruments: list[Instrument]
    portfolio: PortfolioState
    orders: list[OrderState]
    """Orders that are not terminal, in creation order."""
    client_order_ids: list[str]
    """The last client order id handed out under each id prefix (so none is handed out twice)."""


def capture_order(order: Order) -> OrderState:
    return OrderState(
        client_order_id=order.client_order_id,
        instrument_id=order.instrument_id,
        strategy_id=order.strategy_id,
        side=order.side,
        qty=order.qty,
        price=order.price,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        post_only=order.post_only,
        reduce_only=order.reduce_only,
        status=order.status,
        resume_status=order._resume_status,
        venue_order_id=order.venue_order_id,
        filled_qty=order.filled_qty,
        filled_notional=str(order.filled_notional),
        fee_total=order.fee_total,
        trade_ids=sorted(order.trade_ids),
        outcome_unknown=order.outcome_unknown,
        ts_last=order.ts_last,
        events=order.events,
    )


def restore_order(state: OrderState) -> Order:
    order = Order(
        OrderInitialized(
            ts=state.ts_last,
            instrument_id=state.instrument_id,
            client_order_id=state.client_order_id,
            strategy_id=state.strategy_id,
            side=state.side,
            qty=state.qty,
            price=state.price,
            order_type=state.order_type,
            time_in_force=state.time_in_force,
            post_only=state.post_only,
            reduce_only=state.reduce_only,
        )
    )
    order.status = state.status
    order._resume_status = state.resume_status
    order.venue_order_id = state.venue_order_id
    order.filled_qty = state.filled_qty
    order.filled_notional = int(state.filled_notional)
    order.fee_total = state.fee_total
    order.trade_ids = set(state.trade_ids)
    order.outcome_unknown = state.outcome_unknown
    order.events = state.events
    return order


def capture_portfolio(portfolio: Portfolio) -> PortfolioState:
    return PortfolioState(
        valuation=portfolio.valuation,
        balances=[(venue, ccy, amount) for (venue, ccy), amount in sorted(portfolio.balances.items())],
        positions=[
            PositionState(
                instrument_id=iid,
                qty=p.qty,
                cost=p.cost,
                realized=p.realized,
                fees=p.fees,
                volume=p.volume,
                last_mark=p.last_mark,
            )
            for iid, p in sorted(portfolio.positions.items())
        ],
        marks=sorted(portfolio.marks.items()),
        unopened=sorted(portfolio._unopened.items()),
        initial_equity=portfolio.initial_equity,
        fill_count=portfolio.fill_count,
    )


def restore_portfolio(portfolio: Portfolio, state: PortfolioState) -> None:
    """Make ``portfolio`` (built on the node's instruments) equal to the captured one, in place: the
    risk engine and the strategy context hold it. Its instruments the state lacks stay flat."""
    if state.valuation != portfolio.valuation:
        raise ValueError(f"snapshot valued in {state.valuation}, the node in {portfolio.valuation}")
    portfolio.balances = {(venue, ccy): amount for venue, ccy, amount in state.balances}
    for iid in portfolio.positions:
        portfolio.positions[iid] = Position(iid)
    for ps in state.positions:
        if ps.instrument_id not in portfolio.instruments:
            continue
        pos = Position(ps.instrument_id)
        pos.qty, pos.cost, pos.realized, pos.fees, pos.volume = ps.qty, ps.cost, ps.realized, ps.fees, ps.volume
        pos.last_mark = ps.last_mark
        portfolio.positions[ps.instrument_id] = pos
    portfolio.marks = {iid: price for iid, price in state.marks if iid in portfolio.instruments}
    portfolio._unopened = {iid: held for iid, held in state.unopened if iid in portfolio.instruments}
    portfolio.initial_equity = state.initial_equity
    portfolio.fill_count = state.fill_count


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(EngineState)


def encode_state(state: EngineState) -> bytes:
    return _ENCODER.encode(state)


def decode_state(payload: bytes) -> EngineState:
    """Decode a snapshot payload; ``ValueError`` when it is not a state this version reads."""
    try:
        state = _DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"snapshot is not a readable engine state: {exc}") from None
    if state.version != STATE_VERSION:
        raise ValueError(f"snapshot state version {state.version}, this tradeloop reads {STATE_VERSION}")
    return state
