"""The simulator's REST depth snapshot links to its diff stream exactly by each market's documented rule
(``/work/shared/docs/venues/binance.md``), read off the raw wire (a plain socket and REST client):

* USD-M: the first diff after a snapshot has ``U <= lastUpdateId <= u``, diffs sent before it end
  below ``lastUpdateId``, and each diff's ``pu`` is the previous diff's ``u``;
* spot: the first diff after a snapshot has ``U == lastUpdateId + 1``, diffs chain by ``U == u + 1``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.model.data import BookDeltas
from tradeloop.venues.binance.connector import CONNECTOR, CONNECTOR_USDM
from tradeloop.venues.connector import VenueConnector
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator

P = fixed.parse


async def _diff(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.receive(), 3.0)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frame = orjson.loads(msg.data)
        data = frame.get("data") if isinstance(frame, dict) else None
        if isinstance(data, dict) and data.get("e") == "depthUpdate":
            return data


async def _wire_ids(connector: VenueConnector) -> tuple[dict[str, Any], int, dict[str, Any], dict[str, Any]]:
    """(a diff sent before the snapshot, the snapshot's lastUpdateId, the first two diffs after it);
    the snapshot is taken while the book is quiet, the case where no diff before it can reach it."""
    inst = connector.instruments()[0]
    iid, tick, mid = inst.id, inst.tick_size, inst.round_price(P("60000"))
    clock = LiveClock()
    core = SimulatorCore(connector.venue, [inst], balances={inst.quote: P("100000")}, clock=clock)
    ts = clock.now_ns()
    bids = [(mid - k * tick, P("0.5") * (k + 1)) for k in range(10)]
    asks = [(mid + (k + 1) * tick, P("0.5") * (k + 1)) for k in range(10)]
    core.apply_market(BookDeltas(iid, ts, ts, 1, 1, bids, asks, snapshot=True))
    sim = VenueSimulator(core, connector.dialect(), connector.test_credentials())
    await sim.start()
    urls = connector.local_urls(sim.base_url)
    depth_path = "/fapi/v1/depth" if connector is CONNECTOR_USDM else "/api/v3/depth"

    def change(n: int) -> None:
        now = clock.now_ns()
        core.apply_market(BookDeltas(iid, now, now, n, n, [(mid - (20 + n) * tick, P("1"))], [(mid + n * tick, 0)]))

    try:
        async with aiohttp.ClientSession() as http:
            stream = f"{urls.ws_public}?streams={inst.id.symbol.lower()}@depth@100ms"
            async with http.ws_connect(stream) as ws:
                await asyncio.sleep(0.05)
                change(2)
                before = await _diff(ws)
                async with http.get(f"{urls.rest}{depth_path}", params={"symbol": iid.symbol}) as reply:
                    assert reply.status == 200
                    snapshot = orjson.loads(await reply.read())
                change(3)
                first = await _diff(ws)
                change(4)
                second = await _diff(ws)
    finally:
        await sim.stop()
    return before, int(snapshot["lastUpdateId"]), first, second


def test_usdm_snapshot_lies_inside_the_first_diff_after_it() -> None:
    before, last_update_id, first, second = asyncio.run(_wire_ids(CONNECTOR_USDM))
    assert before["u"] < last_update_id, "a diff sent before the snapshot is dropped (u < lastUpdateId)"
    assert first["U"] <= last_update_id <= first["u"], (first, last_update_id)
    assert first["pu"] == before["u"]
    assert second["pu"] == first["u"]
    changed = len(first["b"]) + len(first["a"])
    assert first["u"] - first["U"] == changed, "U opens the window; each changed level takes one id after it"


def test_spot_snapshot_is_followed_by_the_next_id() -> None:
    before, last_update_id, first, second = asyncio.run(_wire_ids(CONNECTOR))
    assert before["u"] == last_update_id
    assert first["U"] == last_update_id + 1
    assert second["U"] == first["u"] + 1
    assert "pu" not in first
