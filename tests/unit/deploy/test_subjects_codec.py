"""Subject names of a deployment and the codec: the engine's own structs on the wire, bad input refused."""

from __future__ import annotations

import msgspec
import pytest

from tradeloop.core.config import ConfigError
from tradeloop.deploy.codec import (
    DecodeFailed,
    Progress,
    ResyncRequest,
    decode,
    decode_event,
    decode_market,
    decode_upstream,
    encode,
    envelope_of,
    headers_for,
    message_id,
    new_origin,
    origin_start_ns,
)
from tradeloop.deploy.subjects import Subjects, subject_token
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus, Quote, Trade
from tradeloop.model.enums import LiquiditySide, Side
from tradeloop.model.events import AccountSnapshot, Balance, OrderFilled, RiskAlert, StrategyAlert
from tradeloop.model.identifiers import InstrumentId

IID = InstrumentId("okx", "BTC-USDT")


def test_subjects_are_rooted_in_the_deployment() -> None:
    s = Subjects("prod-1")
    assert s.market_data(IID) == "tl.prod-1.md.okx.BTC-USDT"
    assert (s.commands, s.events) == ("tl.prod-1.cmd", "tl.prod-1.evt")
    assert (s.resync, s.state, s.status("strategy")) == (
        "tl.prod-1.ctl.resync",
        "tl.prod-1.ctl.state",
        "tl.prod-1.ctl.status.strategy",
    )
    assert (s.command_stream, s.event_stream) == ("TL_prod-1_CMD", "TL_prod-1_EVT")


def test_symbols_that_a_subject_token_cannot_hold_are_escaped() -> None:
    assert subject_token("BTC/USD") == "BTC/USD"
    assert subject_token("BTC.P") == "BTC%2EP"
    assert subject_token("a b*c>d%") == "a%20b%2Ac%3Ed%25"
    assert Subjects("d").market_data(InstrumentId("kraken", "XBT.M")) == "tl.d.md.kraken.XBT%2EM"
    with pytest.raises(ValueError):
        subject_token("")


@pytest.mark.parametrize("name", ["", "has.dot", "has space", "star*", "x" * 65])
def test_a_bad_deployment_name_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="deployment name"):
        Subjects(name)


def test_commands_events_and_market_data_round_trip_as_the_same_structs() -> None:
    commands = [
        SubmitOrder(ts=1, strategy_id="mm", instrument_id=IID, side=Side.BUY, qty=10, price=5, client_order_id="A1"),
        CancelOrder(ts=2, strategy_id="mm", instrument_id=IID, client_order_id="A1"),
        AmendOrder(ts=3, strategy_id="mm", instrument_id=IID, client_order_id="A1", price=6),
        CancelAllOrders(ts=4, strategy_id="mm", only_strategy=True),
        StrategyAlert(ts=5, strategy_id="mm", kind="leg", message="hedged"),
    ]
    for cmd in commands:
        assert decode_upstream(encode(cmd), "s") == cmd
    events = [
        OrderFilled(
            ts=1,
            instrument_id=IID,
            client_order_id="A1",
            venue_order_id="V1",
            trade_id="T1",
            side=Side.SELL,
            last_qty=3,
            last_price=7,
            fee=-1,
            fee_currency="USDT",
            liquidity=LiquiditySide.MAKER,
        ),
        AccountSnapshot(ts=2, venue="okx", balances=[Balance("USDT", 10, 2)]),
        RiskAlert(ts=3, check="loss", message="m"),
    ]
    for event in events:
        assert decode_event(encode(event), "s") == event
    items = [
        BookDeltas(IID, 1, 2, 3, 4, [(10, 1)], [(11, 2)], snapshot=True, prev_seq=2, checksum=99),
        Trade(IID, 1, 2, 10, 1, Side.BUY, "t"),
        Quote(IID, 1, 2, 10, 1, 11, 2, seq=4),
        BookStatus(IID, 5, False, "gap"),
    ]
    for item in items:
        assert decode_market(encode(item), "s") == item
    progress = Progress(service="strategy", origin="o", ready=True, deltas={"okx:BTC-USDT": 3}, commands_sent=2)
    assert decode(encode(progress), Progress, "s") == progress


def test_bad_payloads_are_refused_naming_the_subject() -> None:
    with pytest.raises(DecodeFailed, match=r"tl\.x\.cmd: undecodable message \(4 bytes\)"):
        decode_upstream(b"junk", "tl.x.cmd")
    # A well-formed struct of a type the subject does not carry.
    with pytest.raises(DecodeFailed, match=r"tl\.x\.cmd"):
        decode_upstream(encode(RiskAlert(ts=1, check="c", message="m")), "tl.x.cmd")
    with pytest.raises(DecodeFailed, match=r"tl\.x\.ctl\.resync"):
        decode(encode({"instruments": "nope"}), ResyncRequest, "tl.x.ctl.resync")
    with pytest.raises(DecodeFailed):
        decode_market(msgspec.msgpack.encode({"type": "Trade", "price": "1.5"}), "tl.x.md.a.b")


def test_envelope_headers_and_message_ids() -> None:
    origin = new_origin("strategy")
    assert origin.startswith("strategy-") and origin_start_ns(origin) > 0
    assert origin_start_ns("no-digits-here") == 0
    headers = headers_for(origin, 7, "A1")
    assert headers["Nats-Msg-Id"] == f"A1:{origin}:7" == message_id(origin, 7, "A1")
    assert message_id(origin, 8) == f"{origin}:8"
    envelope = envelope_of(headers, "s")
    assert (envelope.origin, envelope.seq) == (origin, 7)
    for bad in (
        None,
        {},
        {"Tl-Origin": origin},
        {"Tl-Origin": origin, "Tl-Seq": "x"},
        {"Tl-Origin": "", "Tl-Seq": "1"},
    ):
        with pytest.raises(DecodeFailed, match="headers"):
            envelope_of(bad, "s")
    with pytest.raises(DecodeFailed):
        envelope_of({"Tl-Origin": origin, "Tl-Seq": "0"}, "s")
