"""Rebuild trading state from a journal: orders and portfolio are a fold over its events.

A journal starts with ``InstrumentAdded`` and ``AccountSnapshot`` records (what is traded and the
starting balances), so it is self-contained: nothing but the journal is needed to rebuild. The fold
is :class:`~tradeloop.trading.recovery.StateFold`, the one recovery uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tradeloop.model.order import Order
from tradeloop.persistence.codec import JournalRecord
from tradeloop.trading.portfolio import Portfolio
from tradeloop.trading.recovery import RecoveryError, StateFold


class RebuildError(RecoveryError):
    pass


@dataclass
class RebuiltState:
    orders: dict[str, Order] = field(default_factory=dict)
    portfolio: Portfolio | None = None
    records: int = 0


def rebuild_state(records: Iterable[JournalRecord], valuation: str = "USDT") -> RebuiltState:
    """Fold journal records into orders (all of them, terminal ones too) and a portfolio."""
    fold = StateFold(valuation=valuation)
    try:
        for seq, record in enumerate(records, 1):
            fold.apply(seq, record)
    except RebuildError:
        raise
    except RecoveryError as exc:
        raise RebuildError(str(exc)) from None
    portfolio = fold.finish()
    return RebuiltState(orders=fold.orders, portfolio=portfolio, records=fold.records)
