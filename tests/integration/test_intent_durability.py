"""``journal.durability``: with orders going to a real venue, every intent is committed to the SQLite
journal before the request reaches the venue's client (``intent``, the default), or only in batches
(``batched``). A node on simulated venues never syncs per order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import msgspec
import pytest

from tests.integration.helpers import IID, START, P, book_snapshot, instrument
from tradeloop.core.clock import LiveClock, SimClock
from tradeloop.core.config import ConfigError, decode_config
from tradeloop.model.book import SequenceRule
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import Side
from tradeloop.model.events import OrderAccepted, OrderPendingAmend, OrderSubmitted
from tradeloop.persistence import SQLiteJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, JournalSection, VenueSection
from tradeloop.venues.base import EmitEvent, ExecutionClient


class RecordingClient:
    """A venue client that notes, for every request, what the journal had committed at that moment."""

    venue = IID.venue
    supports_amend = True

    def __init__(self, journal: SQLiteJournal) -> None:
        self.journal = journal
        self.emit: EmitEvent | None = None
        self.seen: list[tuple[str, int, int]] = []
        """(request, committed seq, last seq) when the request arrived."""

    def _note(self, what: str) -> None:
        self.seen.append((what, self.journal.committed_seq(), self.journal.last_seq()))

    def submit(self, cmd: SubmitOrder) -> None:
        self._note("submit")

    def amend(self, cmd: AmendOrder) -> None:
        self._note("amend")

    def cancel(self, cmd: CancelOrder) -> None:
        self._note("cancel")

    def cancel_all(self, cmd: CancelAllOrders) -> None:
        self._note("cancel_all")

    def query(self, cmd: QueryOrder) -> None:
        self._note("query")


def engine_with(
    tmp_path: Path, durability: Literal["intent", "batched"], *, real_venue: bool = True
) -> tuple[BacktestEngine, SQLiteJournal]:
    journal = SQLiteJournal(tmp_path / "j.db")
    config = msgspec.structs.replace(
        BacktestConfig(venues={IID.venue: VenueSection(balances={"USDT": "100000", "BTC": "2"})}),
        journal=JournalSection(durability=durability),
    )
    clients: dict[str, object] = {}

    def factory(emit: EmitEvent) -> ExecutionClient:
        client = RecordingClient(journal)
        client.emit = emit
        clients["client"] = client
        return client

    engine = BacktestEngine(
        config,
        [instrument()],
        START,
        sequence_rules={IID.venue: SequenceRule.RANGE},
        journal=journal,
        strategy_spec="tests.integration.helpers:Idle",
        execution_clients={IID.venue: factory} if real_venue else None,
    )
    clock = engine.clock
    assert isinstance(clock, SimClock)
    clock.advance_to(START + 1)
    engine.hub.on_data(book_snapshot(START + 1))
    return engine, journal


def submit_and_amend(engine: BacktestEngine, journal: SQLiteJournal) -> str:
    cid = engine.ctx.submit(IID, Side.BUY, P("0.1"), P("100.00"), post_only=True)
    order = engine.oms.order(cid)
    assert order is not None
    client = engine.execution.client(IID.venue)
    if isinstance(client, RecordingClient):
        assert client.emit is not None
        client.emit(
            OrderAccepted(ts=engine.clock.now_ns(), instrument_id=IID, client_order_id=cid, venue_order_id="v1")
        )
    else:
        clock = engine.clock
        assert isinstance(clock, SimClock)
        clock.advance_to(clock.now_ns() + 1_000_000_000)
    engine.ctx.amend(cid, price=P("99.99"))
    return cid


def test_intents_are_committed_before_each_request_leaves(tmp_path: Path) -> None:
    engine, journal = engine_with(tmp_path, "intent")
    submit_and_amend(engine, journal)
    client = engine.execution.client(IID.venue)
    assert isinstance(client, RecordingClient)
    assert [what for what, _, _ in client.seen] == ["submit", "amend"]
    for what, committed, last in client.seen:
        assert committed == last, f"{what}: records {committed + 1}..{last} were not committed before it left"
    kinds = [type(r).__name__ for _, _, r in journal.read()]
    # The submit's OrderSubmitted and the amend's OrderPendingAmend are among what was committed.
    submitted = kinds.index(OrderSubmitted.__name__) + 1
    pending = kinds.index(OrderPendingAmend.__name__) + 1
    assert client.seen[0][1] >= submitted and client.seen[1][1] >= pending
    journal.close()


def test_batched_durability_commits_only_in_batches(tmp_path: Path) -> None:
    engine, journal = engine_with(tmp_path, "batched")
    submit_and_amend(engine, journal)
    client = engine.execution.client(IID.venue)
    assert isinstance(client, RecordingClient)
    assert [what for what, _, _ in client.seen] == ["submit", "amend"]
    assert all(committed == 0 and last > 0 for _, committed, last in client.seen)
    journal.close()


def test_simulated_venues_never_sync_per_order(tmp_path: Path) -> None:
    engine, journal = engine_with(tmp_path, "intent", real_venue=False)
    cid = submit_and_amend(engine, journal)
    order = engine.oms.order(cid)
    assert order is not None and engine.execution.sent >= 1
    assert journal.committed_seq() == 0 < journal.last_seq()
    journal.close()


def test_durability_setting_is_checked() -> None:
    assert decode_config({"durability": "batched"}, JournalSection).durability == "batched"
    with pytest.raises(ConfigError):
        decode_config({"durability": "sometimes"}, JournalSection)


def test_on_a_live_loop_requests_wait_for_a_group_sync_and_keep_their_order(tmp_path: Path) -> None:
    """The intent barrier: no blocking sync per order, yet every request leaves only once its intent is
    durable, and a cancel never overtakes the submit it cancels."""

    class DurableNotingClient(RecordingClient):
        def _note(self, what: str) -> None:
            self.seen.append((what, self.journal.durable_seq(), self.journal.last_seq()))

    async def scenario() -> None:
        journal = SQLiteJournal(tmp_path / "j.db")
        config = msgspec.structs.replace(
            BacktestConfig(venues={IID.venue: VenueSection(balances={"USDT": "100000", "BTC": "2"})}),
            journal=JournalSection(durability="intent"),
        )
        box: dict[str, DurableNotingClient] = {}

        def factory(emit: EmitEvent) -> ExecutionClient:
            box["client"] = DurableNotingClient(journal)
            box["client"].emit = emit
            return box["client"]

        clock = LiveClock()
        engine = BacktestEngine(
            config,
            [instrument()],
            clock.now_ns(),
            sequence_rules={IID.venue: SequenceRule.RANGE},
            journal=journal,
            strategy_spec="tests.integration.helpers:Idle",
            clock=clock,
            execution_clients={IID.venue: factory},
        )
        assert engine.intent_barrier is not None and not engine.oms._durable
        engine.hub.on_data(book_snapshot(clock.now_ns()))
        cids = [engine.ctx.submit(IID, Side.BUY, P("0.1"), P("99.00") - P("0.01") * i) for i in range(5)]
        engine.ctx.cancel(cids[0])
        client = box["client"]
        for _ in range(200):
            if len(client.seen) == 6:
                break
            await asyncio.sleep(0.005)
        assert [what for what, _, _ in client.seen] == ["submit"] * 5 + ["cancel"]
        submitted = [seq for seq, _, r in journal.read() if isinstance(r, OrderSubmitted)]
        for (what, durable, _), seq in zip(client.seen, submitted, strict=False):
            assert durable >= seq, f"{what} left before its intent (seq {seq}) was durable ({durable})"
        assert engine.intent_barrier.held_total >= 1
        engine.intent_barrier.close()
        journal.close()

    asyncio.run(scenario())
