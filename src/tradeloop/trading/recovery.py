"""Recovery, step one: the node's state from its journal (the newest snapshot, then the records after it).

:func:`load_state` gives a :class:`RecoveredState`: orders, portfolio and every client order id
already handed out, exactly as the node had them when its last journaled record was written. Step
two, bringing that state in line with each venue, is :mod:`tradeloop.trading.reconcile`.

The fold (:class:`StateFold`) is the one the running node applies: an ``OrderInitialized`` creates
an order, every order event goes through the order's state machine, fills move the portfolio, and a
``BalanceCorrected`` (written by a reconciliation) sets a balance to what the venue reported.

A damaged record in the middle of the journal stops recovery with
:class:`~tradeloop.persistence.codec.JournalCorruptError` naming its seq: the node must not trade on
a state it cannot read. A torn last record is dropped by the journal itself when it is opened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tradeloop.core.logging import get_logger
from tradeloop.model.events import (
    AccountSnapshot,
    BalanceCorrected,
    InstrumentAdded,
    MarkPrice,
    OrderEventBase,
    OrderFilled,
    OrderInitialized,
    OrderTransitionRefused,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.order import IllegalTransition, Order
from tradeloop.persistence.codec import JournalRecord
from tradeloop.persistence.journal import Journal
from tradeloop.trading.portfolio import Portfolio
from tradeloop.trading.state import (
    STATE_VERSION,
    EngineState,
    capture_order,
    capture_portfolio,
    decode_state,
    restore_order,
    restore_portfolio,
)

__all__ = ["RecoveredState", "RecoveryError", "StateFold", "capture_state", "load_state"]

log = get_logger("tradeloop.recovery")


class RecoveryError(RuntimeError):
    """The journal cannot be turned into a state to trade on (the message says why and where)."""


@dataclass
class StateFold:
    """Folds journal records into orders and a portfolio, as the live node built them."""

    valuation: str = "USDT"
    instruments: dict[InstrumentId, Instrument] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    portfolio: Portfolio | None = None
    client_order_ids: list[str] = field(default_factory=list)
    records: int = 0
    seq: int = 0
    _balances: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: EngineState) -> StateFold:
        fold = cls(valuation=state.portfolio.valuation, seq=state.seq)
        fold.instruments = {i.id: i for i in state.instruments}
        portfolio = Portfolio(fold.instruments.values(), {}, valuation=fold.valuation)
        restore_portfolio(portfolio, state.portfolio)
        fold.portfolio = portfolio
        fold.orders = {o.client_order_id: restore_order(o) for o in state.orders}
        fold.client_order_ids = list(state.client_order_ids)
        return fold

    def apply(self, seq: int, record: JournalRecord) -> None:
        """Fold one record (``seq`` is its place in the journal)."""
        self.records += 1
        self.seq = seq
        if self.portfolio is None:
            if isinstance(record, InstrumentAdded):
                self.instruments[record.instrument.id] = record.instrument
                return
            if isinstance(record, AccountSnapshot) and record.venue not in self._balances:
                self._balances[record.venue] = {b.currency: b.total for b in record.balances}
                return
            self.portfolio = Portfolio(self.instruments.values(), self._balances, valuation=self.valuation)
        portfolio = self.portfolio
        if isinstance(record, InstrumentAdded):
            if record.instrument.id not in self.instruments:
                # A later session added an instrument: it starts flat.
                self.instruments[record.instrument.id] = record.instrument
                portfolio.add_instrument(record.instrument)
        elif isinstance(record, MarkPrice):
            if record.instrument_id in portfolio.instruments:
                portfolio.update_mark(record.instrument_id, record.price)
        elif isinstance(record, BalanceCorrected):
            portfolio.correct_balance(record.venue, record.currency, record.venue_total)
        elif isinstance(record, OrderInitialized):
            if record.client_order_id in self.orders:
                raise RecoveryError(f"journal seq {seq}: order {record.client_order_id} initialized twice")
            self.orders[record.client_order_id] = Order(record)
            self.client_order_ids.append(record.client_order_id)
        elif isinstance(record, OrderEventBase) and not isinstance(record, OrderTransitionRefused):
            order = self.orders.get(record.client_order_id)
            if order is None:
                return  # reports about orders this node does not know are journaled for audit only
            try:
                order.apply(record)
            except IllegalTransition as exc:
                raise RecoveryError(
                    f"journal seq {seq}: {exc.event_name} for order {record.client_order_id} in status "
                    f"{exc.status.value} (the node never journals a refused transition as applied)"
                ) from None
            if isinstance(record, OrderFilled):
                portfolio.apply_fill(record)

    def apply_all(self, rows: Iterable[tuple[int, int, JournalRecord]]) -> None:
        for seq, _ts, record in rows:
            self.apply(seq, record)

    def finish(self) -> Portfolio:
        if self.portfolio is None:
            self.portfolio = Portfolio(self.instruments.values(), self._balances, valuation=self.valuation)
        return self.portfolio


@dataclass
class RecoveredState:
    """A node's state as its journal left it."""

    instruments: dict[InstrumentId, Instrument]
    portfolio: Portfolio
    orders: dict[str, Order]
    """Orders that were not terminal at the last record (the only ones that can still change)."""
    client_order_ids: list[str]
    """Every client order id the journal shows handed out since the snapshot (and the snapshot's last ones)."""
    seq: int
    snapshot_seq: int | None
    replayed: int

    def describe(self) -> str:
        start = f"snapshot at seq {self.snapshot_seq}" if self.snapshot_seq is not None else "the journal's start"
        return (
            f"recovered to seq {self.seq} from {start} + {self.replayed} records: "
            f"{len(self.orders)} order(s) not terminal"
        )


def load_state(journal: Journal, valuation: str) -> RecoveredState | None:
    """The state in ``journal`` (``None`` when it has no records).

    Uses the newest snapshot the journal holds, if its state is readable, and folds the records after
    it; a snapshot that cannot be read is skipped (with a warning) for a fold from the start.
    """
    if journal.last_seq() == 0:
        return None
    fold: StateFold | None = None
    snapshot_seq: int | None = None
    snap = journal.latest_snapshot()
    if snap is not None:
        try:
            state = decode_state(snap.payload)
            if state.portfolio.valuation != valuation:
                raise ValueError(f"snapshot valued in {state.portfolio.valuation}, the node in {valuation}")
            fold = StateFold.from_state(state)
            snapshot_seq = state.seq
        except ValueError as exc:
            log.warning("snapshot not used; recovering from the journal's start", seq=snap.seq, error=str(exc))
    if fold is None:
        fold = StateFold(valuation=valuation)
    fold.apply_all(journal.read(fold.seq + 1))
    portfolio = fold.finish()
    orders = {cid: o for cid, o in fold.orders.items() if not o.is_terminal}
    return RecoveredState(
        instruments=dict(fold.instruments),
        portfolio=portfolio,
        orders=orders,
        client_order_ids=fold.client_order_ids,
        seq=journal.last_seq(),
        snapshot_seq=snapshot_seq,
        replayed=fold.records,
    )


def capture_state(
    seq: int,
    ts: int,
    instruments: Iterable[Instrument],
    portfolio: Portfolio,
    orders: Iterable[Order],
    last_client_order_id: str | None,
) -> EngineState:
    """The snapshot of a running node (``seq``: the last journal record the state includes)."""
    return EngineState(
        version=STATE_VERSION,
        seq=seq,
        ts=ts,
        instruments=sorted(instruments, key=lambda i: (i.id.venue, i.id.symbol)),
        portfolio=capture_portfolio(portfolio),
        orders=[capture_order(o) for o in orders if not o.is_terminal],
        client_order_ids=[last_client_order_id] if last_client_order_id else [],
    )
