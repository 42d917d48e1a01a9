"""Recovery, step two: bring a recovered node in line with each venue before it trades again.

After :meth:`~tradeloop.runtime.backtest.BacktestEngine.restore`:

1. **Orders.** Every recovered order that is not terminal is queried by client order id
   (:meth:`~tradeloop.trading.oms.OrderManager.reconcile`). The venue client answers with the fills
   the journal missed, then the order's status; the OMS applies them as it does after a timeout. An
   order whose intent was journaled but never sent is canceled locally. Until its order is answered,
   no new order goes to that instrument, and the node does not start trading before every recovered
   order is answered: no order is sent twice and none is forgotten.
2. **Orders the node does not know.** Open orders at the venue that are not the node's open orders
   (left over from before its journal, or sent by a node that crashed before journaling them, which
   the intent-before-send rule excludes) are canceled at the venue and counted.
3. **Balances.** Each venue's balances are compared with the portfolio's for the currencies the node
   trades; a difference that stays the same over two reads (so not a fill still on its way) becomes
   a ``BalanceCorrected`` event: the node takes the venue's number.

Every correction is an event in the journal, and a ``NodeRecovered`` record sums them up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tradeloop.core.logging import get_logger
from tradeloop.model.commands import CancelOrder
from tradeloop.model.events import AccountSnapshot, BalanceCorrected, NodeRecovered, OrderStatusReport
from tradeloop.trading.oms import OrderManager, RecordSink
from tradeloop.trading.portfolio import Portfolio
from tradeloop.trading.recovery import RecoveredState, RecoveryError

__all__ = ["NodeParts", "ReconcileReport", "VenueAccount", "reconcile_with_venues"]

log = get_logger("tradeloop.reconcile")

_POLL_S = 0.02
_SETTLE_S = 0.5
"""Pause between two balance reads that disagree with the portfolio (lets a fill on its way arrive)."""


class VenueAccount(Protocol):
    """What reconciliation asks of a venue's execution client."""

    venue: str

    def cancel(self, cmd: CancelOrder) -> None: ...

    async def fetch_open_orders(self) -> list[OrderStatusReport]: ...

    async def fetch_balances(self) -> AccountSnapshot: ...


@dataclass(frozen=True)
class NodeParts:
    """The parts of the node reconciliation drives (all of a :class:`~tradeloop.runtime.backtest.BacktestEngine`)."""

    oms: OrderManager
    portfolio: Portfolio
    journal: RecordSink
    now_ns: Callable[[], int]


@dataclass
class ReconcileReport:
    """What reconciling changed (also journaled as ``NodeRecovered``)."""

    orders_recovered: int = 0
    orders_resolved: int = 0
    fills_recovered: int = 0
    orders_canceled_at_venue: int = 0
    balances_corrected: list[BalanceCorrected] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.orders_recovered} order(s) confirmed with the venue, {self.fills_recovered} missed fill(s) "
            f"applied, {self.orders_canceled_at_venue} unknown open order(s) canceled at the venue, "
            f"{len(self.balances_corrected)} balance(s) corrected"
        )


async def reconcile_with_venues(
    engine: NodeParts,
    clients: Mapping[str, VenueAccount],
    recovered: RecoveredState,
    currencies: Mapping[str, set[str]],
    *,
    timeout_s: float,
) -> ReconcileReport:
    """Reconcile a restored node (see the module docstring); raises :class:`RecoveryError` when a
    venue does not answer for every recovered order within ``timeout_s``.

    ``currencies`` lists, per venue, the currencies whose balances are compared.
    """
    report = ReconcileReport(orders_recovered=len(recovered.orders))
    oms = engine.oms
    fills_before = engine.portfolio.fill_count
    for cid in sorted(recovered.orders):
        order = oms.order(cid)
        if order is not None:
            oms.reconcile(order)
    deadline = time.monotonic() + timeout_s
    while oms.recovering():
        if time.monotonic() >= deadline:
            left = oms.recovering()
            raise RecoveryError(
                f"the venue did not confirm {len(left)} recovered order(s) within {timeout_s:g}s "
                f"({', '.join(left[:5])}{', ...' if len(left) > 5 else ''}); not trading on an unknown state"
            )
        await asyncio.sleep(_POLL_S)
    report.orders_resolved = report.orders_recovered
    report.fills_recovered = engine.portfolio.fill_count - fills_before
    for venue in sorted(clients):
        client = clients[venue]
        report.orders_canceled_at_venue += await _cancel_unknown(engine, client)
        report.balances_corrected.extend(await _correct_balances(engine, client, currencies.get(venue, set())))
    engine.journal.append(
        NodeRecovered(
            ts=engine.now_ns(),
            snapshot_seq=recovered.snapshot_seq,
            replayed=recovered.replayed,
            orders_recovered=report.orders_recovered,
            orders_resolved=report.orders_resolved,
            fills_recovered=report.fills_recovered,
            orders_canceled_at_venue=report.orders_canceled_at_venue,
            balances_corrected=len(report.balances_corrected),
        )
    )
    log.info("reconciled with the venues", detail=report.describe())
    return report


async def _cancel_unknown(engine: NodeParts, client: VenueAccount) -> int:
    """Cancel the venue's open orders that are not the node's open orders; returns how many."""
    canceled = 0
    for found in await client.fetch_open_orders():
        order = engine.oms.order(found.client_order_id)
        if order is not None and order.is_open:
            continue
        log.warning(
            "open order at the venue the node does not hold open; canceling it",
            venue=client.venue,
            client_order_id=found.client_order_id,
            known=order is not None,
        )
        client.cancel(
            CancelOrder(
                ts=engine.now_ns(),
                strategy_id="recovery",
                instrument_id=found.instrument_id,
                client_order_id=found.client_order_id,
            )
        )
        canceled += 1
    return canceled


async def _correct_balances(
    engine: NodeParts, client: VenueAccount, currencies: set[str]
) -> list[BalanceCorrected]:
    portfolio = engine.portfolio
    venue = client.venue

    async def differences() -> dict[str, int]:
        snapshot = await client.fetch_balances()
        totals = {b.currency: b.total for b in snapshot.balances}
        # As the venue reports them: a perp's open cost is part of the wallet, not spent cash.
        return {
            ccy: totals.get(ccy, 0) - portfolio.wallet_balance(venue, ccy)
            for ccy in sorted(currencies)
            if totals.get(ccy, 0) != portfolio.wallet_balance(venue, ccy)
        }

    for _ in range(5):
        fills = portfolio.fill_count
        first = await differences()
        if not first:
            return []
        await asyncio.sleep(_SETTLE_S)
        second = await differences()
        if first == second and portfolio.fill_count == fills:
            break
    else:
        raise RecoveryError(f"{venue}: balances kept changing while reconciling; not trading on an unknown state")
    out = []
    for ccy, delta in second.items():
        event = BalanceCorrected(
            ts=engine.now_ns(),
            venue=venue,
            currency=ccy,
            engine_total=portfolio.balance(venue, ccy),
            venue_total=portfolio.balance(venue, ccy) + delta,
            reason="reconciliation after restart",
        )
        log.warning(
            "balance differs from the venue's; taking the venue's",
            venue=venue,
            currency=ccy,
            engine=event.engine_total,
            venue_total=event.venue_total,
        )
        engine.journal.append(event)
        portfolio.correct_balance(venue, ccy, event.venue_total)
        out.append(event)
    return out
