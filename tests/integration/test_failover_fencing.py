"""Fencing at the local venue simulator: a submit carrying a failover token lower than the
highest accepted is refused (the rule, the simulator core, and over OKX's wire through its own client);
per-token accept windows show whether two primaries ever traded at once."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest

from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.core.ids import ClientOrderIdGenerator
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.enums import RejectReason, Side
from tradeloop.model.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
)
from tradeloop.model.instrument import Instrument
from tradeloop.venues.connectors import get_connector
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.fencing import Fencing
from tradeloop.venues.simulator.local import build_simulator

TAG = "FO"


def cid(token: int, n: int = 1, tag: str = TAG) -> str:
    return ClientOrderIdGenerator(tag, 0, counter=n - 1, epoch=token).next()


# -- the rule --------------------------------------------------------------------------------------


def test_tokens_parse_from_the_id_layout_and_other_prefixes_are_not_fenced() -> None:
    fence = Fencing(TAG)
    assert fence.token_of(cid(1)) == 1
    assert fence.token_of(cid(36**6 - 1, 99)) == 36**6 - 1
    assert fence.token_of(cid(5, tag="XY")) is None
    for bad in ("FO", "FO00001", "FO0000!x1", "FO00 0011"):
        with pytest.raises(ValueError, match="carries no fencing token"):
            fence.token_of(bad)
    for tag in ("", "TOOLONG", "a-b"):
        with pytest.raises(ValueError, match="fence tag"):
            Fencing(tag)


def test_a_lower_token_is_refused_once_a_higher_one_was_accepted() -> None:
    fence = Fencing(TAG)
    assert fence.check(cid(3)) is None  # nothing accepted yet
    fence.accepted(cid(3), 100)
    assert fence.check(cid(2)) is not None  # an older primary
    assert fence.check(cid(3, 2)) is None  # the same primary goes on
    assert fence.check(cid(4)) is None  # a newer one takes over
    fence.accepted(cid(4), 200)
    why = fence.check(cid(3, 3))
    assert why == "fencing: stale token 3 (a newer primary holds token 4)"
    assert fence.check("FO12") is not None and "no fencing token" in fence.last_refusal
    assert fence.check(cid(1, tag="XY")) is None
    snap = fence.snapshot()
    assert snap["highest_token"] == 4 and snap["refused"] == 3
    assert snap["refused_by_token"] == {"-1": 1, "2": 1, "3": 1}
    assert [(w["token"], w["accepted"]) for w in snap["windows"]] == [(3, 1), (4, 1)]
    assert snap["overlaps"] == [] and snap["stale_accepted"] == 0


def test_observing_only_counts_stale_accepts_and_overlapping_windows() -> None:
    """What an unfenced venue lets through is visible: the checks the failover test makes have teeth."""
    fence = Fencing(TAG, enforce=False)
    fence.accepted(cid(1), 100)
    fence.accepted(cid(2), 150)
    assert fence.check(cid(1, 2)) is None and fence.check("FO1") is None  # observe: never refuses
    fence.accepted(cid(1, 2), 180)  # the old primary still trading
    fence.accepted(cid(2, 2), 250)
    assert fence.stale_accepted == 1 and fence.refused == 0
    assert fence.overlaps() == [(1, 2)]
    assert fence.snapshot()["windows"][0] == {"token": 1, "first_ns": 100, "last_ns": 180, "accepted": 2}


# -- the simulator core ----------------------------------------------------------------------------


def _order(inst: Instrument, client_order_id: str, price: str) -> SubmitOrder:
    return SubmitOrder(
        ts=0,
        strategy_id="t",
        instrument_id=inst.id,
        client_order_id=client_order_id,
        side=Side.BUY,
        qty=max(inst.min_qty, inst.lot_size) * 10,
        price=fixed.parse(price),
        post_only=True,
    )


def test_the_core_refuses_stale_submits_but_lets_amends_and_cancels_through() -> None:
    inst = get_connector("okx").instruments()[0]
    core = SimulatorCore("okx", [inst], balances={inst.quote: 10**6 * fixed.SCALE}, fence=Fencing(TAG))
    published: list[Event] = []
    core.add_private_listener(published.append)
    first = core.submit(_order(inst, cid(1), "100"))
    assert isinstance(first[0], OrderAccepted)
    untagged = core.submit(_order(inst, "other00001", "101"))
    assert isinstance(untagged[0], OrderAccepted)
    assert isinstance(core.submit(_order(inst, cid(2), "102"))[0], OrderAccepted)
    stale = core.submit(_order(inst, cid(1, 2), "103"))
    assert len(stale) == 1 and isinstance(stale[0], OrderRejected)
    assert stale[0].reason is RejectReason.OTHER and "stale token 1" in stale[0].message
    assert stale[0] in published  # the private stream says so too, as for any refusal
    # A new primary amends the orders it recovered from the old one: amends name the placing node's token.
    recovered = core.amend(
        AmendOrder(ts=0, strategy_id="t", instrument_id=inst.id, client_order_id=cid(1), price=fixed.parse("99"))
    )
    assert isinstance(recovered[0], OrderAmended)
    fresh = core.amend(
        AmendOrder(ts=0, strategy_id="t", instrument_id=inst.id, client_order_id=cid(2), price=fixed.parse("98"))
    )
    assert isinstance(fresh[0], OrderAmended)
    canceled = core.cancel(CancelOrder(ts=0, strategy_id="t", instrument_id=inst.id, client_order_id=cid(1)))
    assert isinstance(canceled[0], OrderCanceled)
    assert core.order(cid(1, 2)) is None  # never entered the book
    assert core.fence is not None
    snap = core.fence.snapshot()
    assert snap["refused"] == 1 and snap["highest_token"] == 2
    assert [(w["token"], w["accepted"]) for w in snap["windows"]] == [(1, 1), (2, 1)]
    assert snap["overlaps"] == []


# -- over the venue's wire -------------------------------------------------------------------------


def test_okx_client_sees_the_refusal_and_the_state_route_reports_it() -> None:
    connector = get_connector("okx")
    inst = connector.instruments()[0]

    async def scenario() -> tuple[list[Event], dict[str, Any]]:
        sim = build_simulator(connector)
        sim.core.fence = Fencing(TAG)
        await sim.start()
        events: list[Event] = []
        client: Any = connector.execution(
            connector.test_credentials(),
            {inst.id: inst},
            LiveClock(),
            events.append,
            connector.local_urls(sim.base_url),
            order_entry="rest",
        )
        try:
            await client.start()
            for order in (_order(inst, cid(7), "30000"), _order(inst, cid(6), "30001")):
                client.submit(order)
                for _ in range(300):
                    if any(getattr(e, "client_order_id", "") == order.client_order_id for e in events):
                        break
                    await asyncio.sleep(0.01)
            state = await asyncio.to_thread(_get_json, f"{sim.base_url}/__sim/state")
        finally:
            await client.stop()
            await sim.stop()
        return events, state

    events, state = asyncio.run(scenario())
    accepted = [e for e in events if isinstance(e, OrderAccepted)]
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [e.client_order_id for e in accepted] == [cid(7)]
    assert [e.client_order_id for e in rejected] == [cid(6)]
    assert "stale token 6" in rejected[0].message  # OKX's sMsg carries the simulator's reason
    fencing = state["fencing"]
    assert fencing["tag"] == TAG and fencing["highest_token"] == 7 and fencing["refused"] == 1
    assert [w["token"] for w in fencing["windows"]] == [7]
    assert time.time_ns() >= fencing["windows"][0]["last_ns"] > 0


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def test_simulate_refuses_a_bad_fence_tag() -> None:
    from typer.testing import CliRunner

    from tradeloop.cli import app

    result = CliRunner().invoke(app, ["simulate", "--venue", "okx", "--fence-tag", "a-b", "--seconds", "0.1"])
    assert result.exit_code == 2 and "fence tag must be 1-4 ASCII letters or digits" in result.output
