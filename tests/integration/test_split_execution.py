"""The execution service on its own, against a local OKX simulator and the real NATS server: commands from
the command stream reach the venue through the OMS, each applied once; its events come out on the event
stream in the OMS's order; its state answers a strategy; and a submit that waited too long in the stream
is denied on the record instead of being sent."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from nats.aio.msg import Msg

from tests.integration.test_live_session import credential_refs
from tests.services import require_nats, unique_name
from tradeloop.core import fixed
from tradeloop.deploy.codec import (
    Progress,
    StateReply,
    StateRequest,
    decode,
    decode_event,
    encode,
    envelope_of,
    headers_for,
    new_origin,
)
from tradeloop.deploy.execution_service import ExecutionService
from tradeloop.deploy.market_data_service import MarketDataService
from tradeloop.deploy.nats_link import DurableConsumer, NatsLink
from tradeloop.deploy.subjects import Subjects
from tradeloop.model.commands import CancelOrder, SubmitOrder
from tradeloop.model.data import BookDeltas
from tradeloop.model.enums import OrderStatus, Side
from tradeloop.model.events import Event, OrderDenied, OrderEventBase
from tradeloop.runtime.live_config import LiveConfig, LiveSection, LiveVenueSection
from tradeloop.venues.connectors import get_connector
from tradeloop.venues.simulator.local import build_simulator

VENUE = "okx"


def test_commands_in_events_out_once_each_and_a_stale_submit_is_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    nats_url = require_nats()
    connector = get_connector(VENUE)
    inst = connector.instruments()[0]
    iid = inst.id
    subjects = Subjects(unique_name("tlexec"))
    config = LiveConfig(
        node_tag="EX",
        valuation=inst.quote,
        live=LiveSection(
            venues={VENUE: LiveVenueSection(symbols=[iid.symbol], credentials=credential_refs(monkeypatch, VENUE))},
            stop_timeout_s=3.0,
        ),
    )
    mid = 60_000 * fixed.SCALE
    qty = max(inst.min_qty, inst.lot_size)

    def submit(cid: str, ts: int) -> SubmitOrder:
        return SubmitOrder(
            ts=ts,
            strategy_id="mm",
            instrument_id=iid,
            side=Side.BUY,
            qty=qty,
            price=mid - 100 * inst.tick_size,
            post_only=True,
            client_order_id=cid,
        )

    async def scenario() -> tuple[ExecutionService, list[tuple[int, Event]], Any]:
        sim = build_simulator(connector, instruments=[inst])
        sim.core.apply_market(
            BookDeltas(iid, 1, 1, 1, 1, [(mid, fixed.SCALE)], [(mid + inst.tick_size, fixed.SCALE)], True)
        )
        await sim.start()
        test = NatsLink(nats_url, subjects, "test")
        await test.connect()
        await test.ensure_streams()
        market = MarketDataService(
            config, NatsLink(nats_url, subjects, "market-data"), endpoint=sim.base_url, handle_signals=False
        )
        service = ExecutionService(
            config,
            NatsLink(nats_url, subjects, "execution"),
            endpoint=sim.base_url,
            handle_signals=False,
            max_command_age_s=5.0,
        )
        md_task = asyncio.create_task(market.run())
        ex_task = asyncio.create_task(service.run())
        events: list[tuple[int, Event]] = []

        async def on_event(msg: Msg) -> None:
            events.append((envelope_of(msg.headers, msg.subject).seq, decode_event(msg.data, msg.subject)))

        consumer = DurableConsumer(test, subjects.event_stream, subjects.events, "test", on_event)
        try:
            while True:  # until the node trades and has its book
                try:
                    reply = await test.nc.request(subjects.status("execution"), b"", timeout=1)
                    progress = decode(reply.data, Progress, reply.subject)
                    if progress.ready and progress.books:
                        break
                except Exception:
                    pass
                assert not ex_task.done(), "the execution service ended early"
                await asyncio.sleep(0.05)
            reply = await test.nc.request(
                subjects.state, encode(StateRequest(strategy_id="mm", requester="t")), timeout=2
            )
            state = decode(reply.data, StateReply, reply.subject)
            assert state.origin == service.origin and state.state.orders == []
            venue_balances = {b.currency: b.total for b in sim.core.balances().balances}
            assert {ccy: amt for v, ccy, amt in state.state.portfolio.balances if v == VENUE} == venue_balances
            origin = new_origin("strategy")
            now = time.time_ns()
            sends = [
                (1, "EXsOLD1", submit("EXsOLD1", now - 60 * 1_000_000_000), "a"),
                (2, "EXsNEW1", submit("EXsNEW1", now), "a"),
                (2, "EXsNEW1", submit("EXsNEW1", now), "b"),  # same Tl-Seq, another message id: stored, skipped
                (
                    3,
                    "EXsNEW1",
                    CancelOrder(ts=now, strategy_id="mm", instrument_id=iid, client_order_id="EXsNEW1"),
                    "a",
                ),
            ]
            for seq, cid, cmd, variant in sends:
                headers = headers_for(origin, seq, cid)
                headers["Nats-Msg-Id"] += variant
                await test.js.publish(subjects.commands, encode(cmd), headers=headers)
            await consumer.subscribe()
            deadline = asyncio.get_running_loop().time() + 10
            while not any(type(e).__name__ == "OrderCanceled" for _, e in events):
                assert asyncio.get_running_loop().time() < deadline, f"no cancel among {events}"
                await consumer.fetch_once(0.2)
            at_venue = sim.core.order("EXsNEW1")
            assert sim.core.order("EXsOLD1") is None and at_venue is not None
            assert at_venue.status is OrderStatus.CANCELED
            return service, events, service.engine
        finally:
            await consumer.unsubscribe()
            service.stop("test done")
            await asyncio.wait_for(ex_task, 15)
            market.stop()
            await asyncio.wait_for(md_task, 10)
            await test.delete_streams()
            await test.close()
            await sim.stop()

    service, events, engine = asyncio.run(scenario())
    seqs = [s for s, _ in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stale = [e for _, e in events if isinstance(e, OrderEventBase) and e.client_order_id == "EXsOLD1"]
    assert len(stale) == 1 and isinstance(stale[0], OrderDenied) and "old when it reached the node" in stale[0].reason
    new = [type(e).__name__ for _, e in events if isinstance(e, OrderEventBase) and e.client_order_id == "EXsNEW1"]
    # The cancel came right behind the submit: the venue's acceptance may come before or after it is marked.
    assert new[:2] == ["OrderInitialized", "OrderSubmitted"] and new[-1] == "OrderCanceled"
    assert sorted(new[2:-1]) == ["OrderAccepted", "OrderPendingCancel"]
    assert service.commands_done == {next(iter(service.commands_done)): 3} and service.stale_submits == 1
    journaled = [
        type(r).__name__ for _, _, r in engine.journal.read() if getattr(r, "client_order_id", "") == "EXsOLD1"
    ]
    assert journaled == ["SubmitOrder", "OrderDenied"]
    assert service.orders_left == {VENUE: 0}
