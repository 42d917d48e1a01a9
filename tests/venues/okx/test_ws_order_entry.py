"""OKX order entry over the private WebSocket (picows) against the OKX simulator dialect (loopback).

Place / amend / cancel go out as WebSocket order ops and come back through the same event mapping
as REST; venue refusals (``reject_next``), rate limits (``rate_limit_next``) and an unknown outcome
(50004); a socket lost before the reply emits nothing and the query resolves it with one order at
the venue; orders fall back to REST while the socket is down; the rate budget holds an op and a
timer sends it; the frame is written before ``submit`` returns (the simulator runs on its own
thread while the client's loop is blocked); instruments named by ``instIdCode`` or ``instId``; the
dialect answers raw order ops the OKX way. Each test runs its own simulator; the file takes seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.venues import ws_order_entry_support as shared
from tests.venues.ws_order_entry_support import Commands, Rig, new_core, run, serve, until
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.enums import OrderType, RejectReason, Side, TimeInForce
from tradeloop.model.events import Event, OrderAccepted
from tradeloop.model.instrument import Instrument
from tradeloop.venues.okx.auth import ws_login_args
from tradeloop.venues.okx.connector import CONNECTOR, local_urls
from tradeloop.venues.okx.execution import OkxExecutionClient
from tradeloop.venues.okx.instruments import instruments_by_symbol
from tradeloop.venues.okx.simulator import OkxDialect
from tradeloop.venues.okx.spec import RATE_LIMIT_SPECS, WS_PRIVATE
from tradeloop.venues.okx.ws_wire import (
    WsFrames,
    ws_amend_args,
    ws_cancel_args,
    ws_frame,
    ws_place_args,
    ws_reply,
    ws_request,
)
from tradeloop.venues.simulator.server import VenueSimulator
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimitSpec

P = fixed.parse
SPECS = instruments_by_symbol()
BTC = SPECS["BTC-USDT"].instrument()
SWAP = SPECS["BTC-USDT-SWAP"].instrument()
CREDS = CONNECTOR.test_credentials()
BALANCES = {"USDT": P("100000"), "BTC": P("1")}
CMDS = Commands(BTC)
submit_cmd, amend_cmd, cancel_cmd = CMDS.submit, CMDS.amend, CMDS.cancel
OkxRig = Rig[OkxDialect, OkxExecutionClient]


client = shared.client_factory(OkxExecutionClient, CREDS, {BTC.id: BTC}, local_urls)


@asynccontextmanager
async def venue(
    *,
    order_entry: str = "websocket",
    inst_id_codes: bool = True,
    budget: RateBudget | None = None,
    reconnect_after_s: float = 0.05,
    insts: tuple[Instrument, ...] = (BTC,),
) -> AsyncIterator[OkxRig]:
    clock = LiveClock()
    ws_spec = msgspec.structs.replace(WS_PRIVATE, backoff=shared.reconnect_backoff(reconnect_after_s))

    def connect(sim: VenueSimulator, events: list[Event]) -> OkxExecutionClient:
        instruments = {i.id: i for i in insts}
        return client(sim, events, order_entry, instruments=instruments, clock=clock, ws_spec=ws_spec, budget=budget)

    core = new_core("okx", insts, BALANCES, clock)
    async with serve(OkxRig, core, OkxDialect(inst_id_codes=inst_id_codes), CREDS, connect) as r:
        yield r


# -- the frames, without sockets ------------------------------------------------------------------


def test_frames_are_the_reference_requests_byte_for_byte() -> None:
    for symbol in ("BTC-USDT", "BTC-USDT-SWAP"):
        spec = SPECS[symbol]
        frames = WsFrames(spec)
        iid = spec.instrument_id
        for n, (price, qty) in enumerate([("59000.1", "0.02"), ("61234.5", "0.05"), ("100", "0.01")]):
            amends = [
                AmendOrder(ts=0, strategy_id="t", instrument_id=iid, client_order_id=f"c{n}", price=P(price)),
                AmendOrder(ts=0, strategy_id="t", instrument_id=iid, client_order_id=f"c{n}", qty=P(qty)),
                AmendOrder(
                    ts=0, strategy_id="t", instrument_id=iid, client_order_id=f"c{n}", price=P(price), qty=P(qty)
                ),
            ]
            for cmd in amends:
                assert ws_frame(n, frames.amend(cmd)) == ws_request(str(n), "amend-order", ws_amend_args(cmd, spec))
            cancel = CancelOrder(ts=0, strategy_id="t", instrument_id=iid, client_order_id=f"c{n}")
            assert ws_frame(n, frames.cancel(cancel)) == ws_request(
                str(n), "cancel-order", ws_cancel_args(cancel, spec)
            )
            place = SubmitOrder(
                ts=0,
                strategy_id="t",
                instrument_id=iid,
                side=Side.SELL,
                qty=P(qty),
                price=P(price),
                client_order_id=f"p{n}",
                post_only=True,
            )
            assert ws_frame(n, frames.place(place)) == ws_request(str(n), "order", ws_place_args(place, spec))
    # Written out by hand: the swap names its instrument by instIdCode and sizes in contracts (0.01 BTC each).
    swap = AmendOrder(ts=0, strategy_id="t", instrument_id=SWAP.id, client_order_id="q1", price=P("1.5"), qty=P("0.05"))
    assert msgspec.json.decode(ws_frame(7, WsFrames(SPECS["BTC-USDT-SWAP"]).amend(swap))) == {
        "id": "7",
        "op": "amend-order",
        "args": [{"instIdCode": 10459, "clOrdId": "q1", "newSz": "5", "newPx": "1.5"}],
    }


def test_frames_refuse_what_okx_cannot_take() -> None:
    frames = WsFrames(SPECS["BTC-USDT"])
    with pytest.raises(ValueError, match="clOrdId"):
        frames.amend(amend_cmd('x"y', price="60000"))  # a quote would break the hand-built JSON
    with pytest.raises(ValueError, match="price, the size or both"):
        frames.amend(amend_cmd("ok1"))
    with pytest.raises(ValueError, match="tickSz"):
        frames.amend(amend_cmd("ok1", price="60000.05"))
    with pytest.raises(ValueError, match="request id"):
        ws_request("a-b", "order", {})


def test_replies_are_read_per_item() -> None:
    ok = ws_reply(b'{"id":"4","op":"order","code":"0","msg":"","data":[{"clOrdId":"a","ordId":"9","sCode":"0"}]}')
    assert (
        ok is not None
        and ok.request_id == "4"
        and [(a.ok, a.ord_id, a.cl_ord_id) for a in ok.acks] == [(True, "9", "a")]
    )
    partial = ws_reply(
        b'{"id":"5","op":"batch-cancel-orders","code":"2","msg":"","data":'
        b'[{"clOrdId":"a","sCode":"0"},{"clOrdId":"b","sCode":"51400","sMsg":"gone"}]}'
    )
    assert partial is not None and [(a.ok, a.code) for a in partial.acks] == [(True, "0"), (False, "51400")]
    refused = ws_reply(b'{"id":"6","op":"order","code":"60014","msg":"Requests too frequent","data":[]}')
    assert refused is not None and refused.acks[0].rate_limited and not refused.acks[0].ok
    assert ws_reply(b'{"arg":{"channel":"orders"},"data":[]}') is None
    assert ws_reply(b"pong") is None


# -- against the simulator ------------------------------------------------------------------------


def test_place_amend_cancel_and_fill_go_over_the_websocket() -> None:
    async def main() -> None:
        async with venue() as r:
            code = r.dialect.specs["BTC-USDT"].inst_id_code
            await shared.placed_over_the_socket(r, submit_cmd("ws1", Side.BUY, "0.01", "59990", post_only=True))
            (accepted,) = r.of("ws1")
            venue_order = r.core.order("ws1")
            assert venue_order is not None
            assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id == venue_order.venue_order_id
            assert r.dialect.ws_ops[-1] == (
                "order",
                [
                    {
                        "instIdCode": code,
                        "side": "buy",
                        "ordType": "post_only",
                        "sz": "0.01",
                        "tdMode": "cash",
                        "tgtCcy": "base_ccy",
                        "px": "59990",
                        "clOrdId": "ws1",
                    }
                ],
            )
            await shared.amended_to(r, amend_cmd("ws1", price="59980.5", qty="0.02"))
            venue_order = r.core.order("ws1")
            assert venue_order is not None and (venue_order.price, venue_order.qty) == (P("59980.5"), P("0.02"))
            await shared.canceled_at_the_venue(r, cancel_cmd("ws1"))
            ioc = submit_cmd("ioc1", Side.BUY, "0.2", "60000.1", time_in_force=TimeInForce.IOC)
            fill = await shared.filled_at(r, ioc, P("60000.1"))
            assert fill.fee > 0
            assert r.dialect.requests == {"ws:order": 2, "ws:amend-order": 1, "ws:cancel-order": 1}
            assert r.rest_orders() == 0 and r.wired == ["ws1", "ws1", "ws1", "ioc1"]
            shared.all_sent_over_the_socket(r, 4)

    run(main())


def test_refusals_rate_limits_and_unknown_outcomes_over_the_websocket() -> None:
    async def main() -> None:
        async with venue() as r:
            refusals = (
                ("poor1", "51008", RejectReason.INSUFFICIENT_BALANCE),
                ("dup1", "51016 Duplicated clOrdId", RejectReason.DUPLICATE_CLIENT_ID),
                ("bad1", "51000", RejectReason.INVALID_ORDER),
            )
            await shared.each_refused(r, CMDS, refusals)
            # A rate-limit reply (code 60014, no items): sent again, same clOrdId, new request id.
            await shared.rate_limited_then_sent_again(r, CMDS)
            assert [args[0]["clOrdId"] for op, args in r.dialect.ws_ops if op == "order"][-2:] == ["rl1", "rl1"]
            await shared.amend_and_cancel_refused(r, CMDS)
            # 50004 "does not indicate success or failure": nothing emitted, the query settles it.
            await shared.unknown_outcome_left_to_the_query(r, CMDS, "50004")
            # A command OKX cannot take: refused without sending, and not from inside the submit call.
            market = submit_cmd("mkt1", Side.BUY, "0.01", None, order_type=OrderType.MARKET, post_only=True)
            await shared.refused_without_sending(r, market, lambda: sum(r.dialect.requests.values()))

    run(main())


def test_socket_lost_before_the_reply_emits_nothing_and_the_query_resolves_it_without_a_duplicate() -> None:
    async def main() -> None:
        async with venue() as r:
            ws = r.ex.ws_orders
            assert r.ex.socket is not None and ws is not None
            await shared.lose_the_reply(r, CMDS)  # its reply and push will not arrive
            await asyncio.sleep(0.1)
            assert r.of("lost1") == [] and ws.unknown == 1
            report = await shared.query_reports_it_accepted(r, CMDS)
            venue_order = r.core.order("lost1")
            assert venue_order is not None and len(r.of("lost1")) == 1
            assert report.venue_order_id == venue_order.venue_order_id
            assert r.dialect.requests["ws:order"] == 1 and r.rest_orders() == 0, "never sent again"
            # The reconnected socket takes orders again.
            await shared.canceled_over_the_new_connection(r, CMDS)

    run(main())


def test_orders_go_over_rest_while_the_socket_is_down() -> None:
    async def main() -> None:
        async with venue(reconnect_after_s=0.8) as r:
            await shared.orders_go_over_rest_while_down(
                r,
                r.sim.faults.drop_connections,
                submit_cmd("rest1", Side.BUY, "0.01", "59990"),
                amend_cmd("rest1", price="59970"),
                lambda: (
                    r.dialect.requests["rest:/api/v5/trade/batch-orders"] == 1 and "ws:order" not in r.dialect.requests
                ),
                lambda: r.dialect.requests["ws:amend-order"] == 1,
            )

    run(main())


def test_rest_order_entry_keeps_orders_off_the_socket() -> None:
    async def main() -> None:
        async with venue(order_entry="rest") as r:
            assert r.ex.ws_orders is None and r.ex.order_entry == "rest"
            r.ex.submit(submit_cmd("r1", Side.BUY, "0.01", "59990"))
            await until(lambda: r.has("r1", OrderAccepted), "r1 accepted")
            assert r.wired == [] and not any(k.startswith("ws:") for k in r.dialect.requests)

    run(main())
    urls = local_urls("http://127.0.0.1:1")
    shared.refuses_an_unknown_order_entry(
        lambda **kw: OkxExecutionClient(CREDS, {BTC.id: BTC}, LiveClock(), print, urls, **kw)
    )


def test_the_rate_budget_holds_an_op_and_a_timer_sends_it() -> None:
    tight = [
        RateLimitSpec(name=s.name, limit=1, window_s=0.4) if s.name == "/api/v5/trade/order" else s
        for s in RATE_LIMIT_SPECS
    ]

    async def main() -> None:
        async with venue(budget=RateBudget("okx", "test", tight)) as r:
            await shared.the_budget_holds_an_op_for_a_timer(r, CMDS)

    run(main())


def test_instruments_by_code_or_by_name() -> None:
    async def main() -> None:
        for codes in (True, False):
            async with venue(inst_id_codes=codes, insts=(BTC, SWAP)) as r:
                r.ex.submit(submit_cmd(f"n{int(codes)}", Side.BUY, "0.01", "59990"))
                r.ex.submit(submit_cmd(f"s{int(codes)}", Side.BUY, "0.01", "59990", inst=SWAP))
                await until(lambda c=codes: r.has(f"s{int(c)}", OrderAccepted), "both accepted")  # type: ignore[misc]
                await until(lambda c=codes: r.has(f"n{int(c)}", OrderAccepted), "both accepted")  # type: ignore[misc]
                spot_args, swap_args = (args[0] for _, args in list(r.dialect.ws_ops)[-2:])
                if codes:  # the listing's codes, the swap's being OKX's real one
                    assert spot_args.get("instIdCode") == r.dialect.specs["BTC-USDT"].inst_id_code
                    assert swap_args.get("instIdCode") == 10459 and "instId" not in spot_args
                else:  # a spot pair the listing gives no code goes by name; the swap keeps its known code
                    assert spot_args.get("instId") == "BTC-USDT" and "instIdCode" not in spot_args
                    assert swap_args.get("instIdCode") == 10459
                swap_order = r.core.order(f"s{int(codes)}")
                assert swap_order is not None and swap_order.qty == P("0.01")

    run(main())


# -- the frame leaves inside the call -------------------------------------------------------------


@pytest.mark.parametrize("order_entry", ["websocket", "rest"])
def test_the_order_frame_is_written_before_submit_returns(order_entry: str) -> None:
    def simulator() -> VenueSimulator:
        return VenueSimulator(new_core("okx", (BTC,), BALANCES, LiveClock()), OkxDialect(), CREDS)

    shared.frame_written_before_submit_returns(order_entry, CMDS, simulator, "okx-sim", client)


# -- the dialect, raw -----------------------------------------------------------------------------


def test_the_simulator_answers_order_ops_the_okx_way() -> None:
    async def main() -> None:
        core = new_core("okx", (BTC,), BALANCES, LiveClock())
        dialect = OkxDialect()
        sim = VenueSimulator(core, dialect, CREDS)
        await sim.start()
        code = dialect.specs["BTC-USDT"].inst_id_code
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(local_urls(sim.base_url).ws_private) as ws,
            ):

                async def ask(message: dict[str, Any]) -> dict[str, Any]:
                    await ws.send_str(msgspec.json.encode(message).decode())
                    return dict(msgspec.json.decode((await ws.receive(2)).data))

                place = {"side": "buy", "ordType": "limit", "sz": "0.01", "tdMode": "cash", "px": "59990"}
                before = await ask({"id": "1", "op": "order", "args": [{"instIdCode": code, **place, "clOrdId": "a1"}]})
                assert (before["id"], before["op"], before["code"], before["data"]) == ("1", "order", "60011", [])
                assert core.order("a1") is None
                key, secret, passphrase = CREDS.api_key.reveal(), CREDS.secret.reveal(), CREDS.passphrase.reveal()  # type: ignore[union-attr]
                login = await ask({"op": "login", "args": [ws_login_args(key, secret, passphrase, int(time.time()))]})
                assert (login["event"], login["code"]) == ("login", "0")
                subscribed = await ask({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
                assert subscribed["event"] == "subscribe"
                placed = await ask({"id": "2", "op": "order", "args": [{"instIdCode": code, **place, "clOrdId": "a1"}]})
                venue_order = core.order("a1")
                assert venue_order is not None and placed["code"] == "0" and int(placed["outTime"]) > 0
                assert [(d["clOrdId"], d["ordId"], d["sCode"]) for d in placed["data"]] == [
                    ("a1", venue_order.venue_order_id, "0")
                ]
                push = dict(msgspec.json.decode((await ws.receive(2)).data))  # the push follows the reply
                assert push["arg"]["channel"] == "orders" and push["data"][0]["state"] == "live"
                by_name = await ask(
                    {"id": "3", "op": "order", "args": [{"instId": "BTC-USDT", **place, "clOrdId": "a2"}]}
                )
                assert by_name["code"] == "0" and core.order("a2") is not None
                await ws.receive(2)  # its push
                both = await ask(
                    {
                        "id": "4",
                        "op": "batch-cancel-orders",
                        "args": [{"instIdCode": code, "clOrdId": "a1"}, {"instIdCode": code, "clOrdId": "zz9"}],
                    }
                )
                assert both["code"] == "2" and [d["sCode"] for d in both["data"]] == ["0", "51400"]
                await ws.receive(2)  # the cancel's push
                unknown = await ask({"id": "5", "op": "order", "args": [{"instIdCode": 4, **place, "clOrdId": "a3"}]})
                assert unknown["code"] == "1" and unknown["data"][0]["sCode"] == "51001"
                sim.faults.reject_next("51008")
                poor = await ask({"id": "6", "op": "order", "args": [{"instIdCode": code, **place, "clOrdId": "a4"}]})
                assert poor["code"] == "1" and poor["data"][0]["sCode"] == "51008" and core.order("a4") is None
                bad_id = await ask({"id": "x-1", "op": "order", "args": [{"instIdCode": code, **place}]})
                assert (bad_id["event"], bad_id["code"]) == ("error", "60012")
                no_args = await ask({"id": "7", "op": "amend-order", "args": []})
                assert no_args["code"] == "60013"
        finally:
            await sim.stop()

    run(main())
