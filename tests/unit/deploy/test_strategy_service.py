"""The strategy service's side of the event stream: each event applied once, in order; the state
snapshot's events skipped; a restarted execution node's events make it take that node's state first;
and a submit, cancel or amend seen by the strategy at once, as in one process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from tradeloop.core.config import ConfigError
from tradeloop.deploy.codec import DecodeFailed, encode, headers_for
from tradeloop.deploy.nats_link import NatsLink
from tradeloop.deploy.strategy_service import StrategyService, durable_name, strategy_id_tag
from tradeloop.deploy.subjects import Subjects
from tradeloop.model.enums import OrderStatus, Side
from tradeloop.model.events import OrderAccepted, OrderEvent, OrderInitialized, OrderSubmitted
from tradeloop.model.identifiers import InstrumentId
from tradeloop.runtime.config import StrategySection
from tradeloop.runtime.live_config import LiveConfig, LiveSection, LiveVenueSection
from tradeloop.strategies.base import Strategy, StrategyConfig

IID = InstrumentId("okx", "BTC-USDT")


class Recorder(Strategy[StrategyConfig]):
    """Records what it is told; submits and cancels when asked to by the test."""

    def __init__(self, strategy_id: str, config: StrategyConfig, ctx: Any) -> None:
        super().__init__(strategy_id, config, ctx)
        self.seen: list[str] = []

    def on_order(self, event: OrderEvent) -> None:
        order = self.ctx.order(event.client_order_id)
        self.seen.append(f"{type(event).__name__}:{order.status.name if order else '-'}")


def service() -> StrategyService:
    config = LiveConfig(
        node_tag="SP",
        valuation="USDT",
        strategy=StrategySection(name=f"{__name__}:Recorder", id="mm"),
        live=LiveSection(venues={"okx": LiveVenueSection(symbols=["BTC-USDT"])}),
    )
    return StrategyService(
        config, NatsLink("nats://127.0.0.1:4222", Subjects("unit"), "strategy"), handle_signals=False
    )


@dataclass
class FakeMsg:
    data: bytes
    headers: dict[str, str] | None
    subject: str = "tl.unit.evt"
    reply: str = ""
    acked: list[bool] = field(default_factory=list)


def event_msg(origin: str, seq: int, event: object) -> Any:
    return FakeMsg(encode(event), headers_for(origin, seq, getattr(event, "client_order_id", "")))


def init(cid: str) -> OrderInitialized:
    return OrderInitialized(
        ts=1,
        instrument_id=IID,
        client_order_id=cid,
        strategy_id="mm",
        side=Side.BUY,
        qty=10,
        price=100,
        order_type="LIMIT",  # type: ignore[arg-type]
        time_in_force="GTC",  # type: ignore[arg-type]
        post_only=False,
        reduce_only=False,
    )


def test_events_apply_once_after_the_snapshot_and_a_newer_node_brings_its_state() -> None:
    svc = service()
    strategy = svc.strategy
    assert isinstance(strategy, Recorder)
    old, node, newer = "execution-100-1", "execution-200-2", "execution-300-3"
    svc.state_origin, svc.applied[node] = node, 2  # the snapshot covered this node's events 1 and 2
    loads: list[str] = []

    async def load_state(timeout_s: float) -> None:
        loads.append("load")
        svc.state_origin = newer
        svc.applied[newer] = 1

    svc._load_state = load_state  # type: ignore[method-assign]

    async def scenario() -> None:
        await svc._on_event_msg(event_msg(node, 2, init("X1")))  # in the snapshot
        await svc._on_event_msg(event_msg(old, 9, init("X0")))  # an earlier node's: in the snapshot too
        await svc._on_event_msg(event_msg(node, 3, init("A1")))
        await svc._on_event_msg(event_msg(node, 3, init("A1")))  # delivered again
        await svc._on_event_msg(event_msg(node, 4, OrderSubmitted(ts=2, instrument_id=IID, client_order_id="A1")))
        await svc._on_event_msg(event_msg(newer, 1, init("B0")))  # covered by the newer node's state
        await svc._on_event_msg(event_msg(newer, 2, init("B1")))
        with pytest.raises(DecodeFailed):
            await svc._on_event_msg(FakeMsg(b"junk", headers_for(newer, 3)))
        with pytest.raises(DecodeFailed):
            await svc._on_event_msg(FakeMsg(encode(init("C1")), None))

    asyncio.run(scenario())
    assert sorted(svc.orders.orders) == ["A1", "B1"]
    order = svc.orders.order("A1")
    assert order is not None and order.status is OrderStatus.SUBMITTED
    assert loads == ["load"]
    assert svc.applied == {node: 4, newer: 2}
    assert strategy.seen == ["OrderInitialized:INITIALIZED", "OrderSubmitted:SUBMITTED", "OrderInitialized:INITIALIZED"]


def test_a_submit_and_a_cancel_are_seen_at_once_and_sent_in_order() -> None:
    svc = service()
    strategy = svc.strategy
    assert isinstance(strategy, Recorder)
    published: list[tuple[object, str]] = []
    svc.commands.publish = lambda message, cid="": published.append((message, cid)) or len(published)  # type: ignore[method-assign]
    cid = svc.ctx.submit(IID, Side.BUY, 10, 100)
    assert cid.startswith("SPs")
    assert strategy.seen == ["OrderInitialized:INITIALIZED"]
    # The OMS reports it working; then the strategy cancels: PENDING_CANCEL before the call returns.
    svc._apply(init(cid))
    svc._apply(OrderSubmitted(ts=2, instrument_id=IID, client_order_id=cid))
    svc._apply(OrderAccepted(ts=3, instrument_id=IID, client_order_id=cid, venue_order_id="V"))
    svc.ctx.cancel(cid)
    assert strategy.seen[-1] == "OrderPendingCancel:PENDING_CANCEL"
    assert [type(m).__name__ for m, _ in published] == ["SubmitOrder", "CancelOrder"]
    assert {c for _, c in published} == {cid}


def test_names_and_config_checks() -> None:
    assert strategy_id_tag("SP") == "SPs" and strategy_id_tag("ABCD") == "ABCs"
    assert durable_name("strategy", "mm.1 x") == "strategy-mm_1_x"
    bad = LiveConfig(strategy=StrategySection(name=f"{__name__}:Recorder"), live=LiveSection())
    with pytest.raises(ConfigError, match="no venues"):
        StrategyService(bad, NatsLink("nats://127.0.0.1:4222", Subjects("unit"), "strategy"))
