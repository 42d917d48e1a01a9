"""A live node restarted on its journal continues where it stopped, in line with the venue.

Session 1 trades on the local simulator and ends keeping its orders at the venue (as a crash would
leave them). While the node is down the market moves on and fills some of them. Session 2 recovers
(snapshot + journal tail), reconciles with the venue and exits (``reconcile_only``): its state equals
the simulator's. Session 3 trades again from there and stops clean. Client order ids are never
handed out twice across the sessions.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from tests.integration.test_live_session import (
    START_PRICE,
    balances_of,
    first_instrument,
    live_config,
    quote_qty,
    running_simulator,
)
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.core.config import ConfigError
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import OrderType, Side
from tradeloop.model.events import BalanceCorrected, Event, NodeRecovered, OrderAccepted, OrderFilled
from tradeloop.persistence import open_journal
from tradeloop.runtime.config import JournalSection
from tradeloop.runtime.live import LiveSession, LiveStartError
from tradeloop.runtime.live_config import LiveConfig
from tradeloop.runtime.venue_feed import connector_urls
from tradeloop.trading.rebuild import rebuild_state
from tradeloop.venues.connectors import get_connector

VENUE = "okx"


def _config(monkeypatch: pytest.MonkeyPatch, journal: Path, **live: object) -> LiveConfig:
    config = live_config(monkeypatch, VENUE, **live)
    return msgspec.structs.replace(config, journal=JournalSection(path=str(journal), snapshot_interval_s=0.5))


def _journal_state(path: Path, valuation: str) -> tuple[list[object], object]:
    journal = open_journal(path)
    try:
        records = [r for _, _, r in journal.read()]
    finally:
        journal.close()
    return records, rebuild_state(records, valuation=valuation)  # type: ignore[arg-type]


def test_restart_recovers_reconciles_and_trades_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    config = _config(monkeypatch, journal)
    inst = first_instrument(VENUE)

    async def scenario() -> None:
        async with running_simulator(VENUE, speed=16.0) as sim:
            first = LiveSession(config, endpoint=sim.base_url, duration_s=2.0, keep_orders=True, handle_signals=False)
            await first.run()
            assert first.journal is not None
            first.journal.close()
            left = {o.client_order_id for o in sim.core.open_orders()}
            assert left, "session 1 left no order at the venue: nothing to recover"
            await asyncio.sleep(1.5)  # the market moves on while the node is down
            sim.core.simulated.transfer(inst.quote, fixed.parse("1000"))  # and someone deposits

            second = LiveSession(config, endpoint=sim.base_url, reconcile_only=True, handle_signals=False)
            await second.run()
            assert second.journal is not None
            second.journal.close()
            assert second.recovered is not None and second.reconciled is not None
            assert set(second.recovered.orders) >= left
            engine = second.engine
            assert engine is not None
            open_engine = {o.client_order_id: (o.qty, o.filled_qty) for o in engine.oms.open_orders()}
            assert open_engine == {o.client_order_id: (o.qty, o.filled_qty) for o in sim.core.open_orders()}
            assert {c: engine.portfolio.balance(VENUE, c) for c in (inst.base, inst.quote)} == {
                c: balances_of(sim)[c] for c in (inst.base, inst.quote)
            }

            third = LiveSession(config, endpoint=sim.base_url, duration_s=1.5, handle_signals=False)
            await third.run()
            assert third.journal is not None
            third.journal.close()
            assert sim.core.open_orders() == []
            assert third.orders_left == {VENUE: 0}

            records, state = _journal_state(journal, inst.quote)
            fills = sorted(
                (r.client_order_id, r.last_price, r.last_qty, r.fee) for r in records if isinstance(r, OrderFilled)
            )
            assert state.portfolio.balance(VENUE, inst.quote) == balances_of(sim)[inst.quote]  # type: ignore[attr-defined]
            assert state.portfolio.balance(VENUE, inst.base) == balances_of(sim)[inst.base]  # type: ignore[attr-defined]
            assert fills, "no fill in three sessions"
            recovered = [r for r in records if isinstance(r, NodeRecovered)]
            assert len(recovered) == 2  # sessions 2 and 3
            corrections = [r for r in records if isinstance(r, BalanceCorrected)]
            assert [(c.currency, c.venue_total - c.engine_total) for c in corrections] == [
                (inst.quote, fixed.parse("1000"))
            ], "fills explain every other change"

    asyncio.run(scenario())


def test_an_unknown_open_order_at_the_venue_is_refused_or_canceled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"

    async def scenario() -> None:
        async with running_simulator(VENUE) as sim:
            first = LiveSession(
                _config(monkeypatch, journal), endpoint=sim.base_url, duration_s=1.0, handle_signals=False
            )
            await first.run()
            assert first.journal is not None
            first.journal.close()
            await _place_through_the_venue_api(sim.base_url, "stranger1")
            assert [o.client_order_id for o in sim.core.open_orders()] == ["stranger1"]
            refusing = LiveSession(
                _config(monkeypatch, journal), endpoint=sim.base_url, reconcile_only=True, handle_signals=False
            )
            with pytest.raises(LiveStartError, match="already at the venue"):
                await refusing.run()
            assert refusing.journal is not None
            refusing.journal.close()
            canceling = LiveSession(
                _config(monkeypatch, journal, existing_orders="cancel"),
                endpoint=sim.base_url,
                reconcile_only=True,
                handle_signals=False,
            )
            await canceling.run()
            assert canceling.journal is not None
            canceling.journal.close()
            assert sim.core.open_orders() == []

    asyncio.run(scenario())


async def _place_through_the_venue_api(base_url: str, client_order_id: str) -> None:
    """Another program on the same account places an order (through the venue's API, as it would)."""
    inst = first_instrument(VENUE)
    connector = get_connector(VENUE)
    events: list[Event] = []
    client = connector.execution(
        connector.test_credentials(), {inst.id: inst}, LiveClock(), events.append, connector_urls(connector, base_url)
    )
    await client.start()  # type: ignore[attr-defined]
    try:
        client.submit(
            SubmitOrder(
                ts=0,
                strategy_id="someone",
                instrument_id=inst.id,
                client_order_id=client_order_id,
                side=Side.BUY,
                qty=quote_qty(inst),
                price=START_PRICE // 2 // inst.tick_size * inst.tick_size,
                order_type=OrderType.LIMIT,
            )
        )
        for _ in range(200):
            if any(isinstance(e, OrderAccepted) for e in events):
                break
            await asyncio.sleep(0.01)
        assert any(isinstance(e, OrderAccepted) for e in events), events
    finally:
        await client.stop()  # type: ignore[attr-defined]


def test_recover_off_refuses_a_journal_with_records(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"

    async def scenario() -> None:
        async with running_simulator(VENUE) as sim:
            first = LiveSession(
                _config(monkeypatch, journal), endpoint=sim.base_url, duration_s=0.5, handle_signals=False
            )
            await first.run()
            assert first.journal is not None
            first.journal.close()
            config = _config(monkeypatch, journal)
            config = msgspec.structs.replace(config, journal=msgspec.structs.replace(config.journal, recover=False))
            with pytest.raises(ConfigError, match=r"journal\.recover is off"):
                await LiveSession(config, endpoint=sim.base_url, duration_s=0.5, handle_signals=False).run()

    asyncio.run(scenario())
