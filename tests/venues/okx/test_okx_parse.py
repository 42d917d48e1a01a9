"""OKX parser: mapping rules, checksum function, symbol mapping and malformed frames."""

from __future__ import annotations

import pytest

from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.venues.okx.parse import OkxParser, ParseError, checksum_of_levels
from tradeloop.venues.okx.spec import SymbolError, from_unified, to_unified


def test_checksum_doc_examples() -> None:
    # shared/docs/venues/okx.md: "3366.1:7:3366.8:9:3366:6:3368:8" -> -1881014294
    assert checksum_of_levels([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]) == -1881014294
    # one side shorter: the other side's remaining levels continue alone
    assert checksum_of_levels([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]) == 831078360


def test_book_frames_map_sequence_ids() -> None:
    parser = OkxParser()
    snap = parser.parse(
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["41006.8","0.6","0","1"]],'
        b'"bids":[["41006.3","0.3","0","2"]],"ts":"1629966436396","checksum":-1,"prevSeqId":-1,"seqId":123}]}',
        1,
    )
    upd = parser.parse(
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["41006.8","0","0","0"]],'
        b'"bids":[],"ts":"1629966436500","checksum":0,"prevSeqId":123,"seqId":130}]}',
        2,
    )
    assert len(snap) == 1 and isinstance(snap[0], BookDeltas)
    s = snap[0]
    assert s.snapshot and s.last_seq == 123 and s.prev_seq == -1 and s.checksum == -1
    assert s.bids == [(41_006_300_000_000, 300_000_000)] and s.ts_event == 1_629_966_436_396_000_000
    u = upd[0]
    assert isinstance(u, BookDeltas) and not u.snapshot
    assert (u.first_seq, u.last_seq, u.prev_seq) == (123, 130, 123)
    assert u.asks == [(41_006_800_000_000, 0)]
    assert u.checksum is None  # 0 means OKX no longer computes it


def test_trades_and_tickers() -> None:
    parser = OkxParser()
    trades = parser.parse(
        b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"30000.1",'
        b'"sz":"0.01","side":"sell","ts":"1652459225000"},{"instId":"BTC-USDT","tradeId":"2","px":"30000.2",'
        b'"sz":"0.02","side":"buy","ts":"1652459225001"}]}',
        5,
    )
    assert [(t.trade_id, t.aggressor) for t in trades if isinstance(t, Trade)] == [("1", Side.SELL), ("2", Side.BUY)]
    quote = parser.parse(
        b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","bidPx":"1.5","bidSz":"2",'
        b'"askPx":"1.6","askSz":"3","ts":"1","last":"1.55"}]}',
        5,
    )[0]
    assert isinstance(quote, Quote) and (quote.bid, quote.ask_qty) == (1_500_000_000, 3_000_000_000)


def test_acks_pongs_and_other_channels_give_nothing() -> None:
    parser = OkxParser()
    assert parser.parse(b"pong", 1) == []
    assert parser.parse(b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}', 1) == []
    assert parser.parse(b'{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1"]]}', 1) == []


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["1.0"', "not a valid"),
        (b'{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[{"asks":[["x","1"]],"bids":[],"ts":"1"}]}', "books"),
        (b'{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[{"asks":"no","bids":[],"ts":"1"}]}', "books"),
        (
            b'{"arg":{"channel":"trades","instId":"X"},"data":[{"instId":"X","tradeId":"1","px":"1","sz":"1",'
            b'"side":"up","ts":"1"}]}',
            "trades",
        ),
        (b'{"event":"error","code":"60012","msg":"Invalid request"}', "60012"),
    ],
)
def test_malformed_frames_raise_a_parse_error_naming_the_channel(frame: bytes, needle: str) -> None:
    with pytest.raises(ParseError, match=needle):
        OkxParser().parse(frame, 1)


@pytest.mark.parametrize(
    ("inst_id", "unified"),
    [
        ("BTC-USDT", "BTC/USDT"),
        ("BTC-USDT-SWAP", "BTC/USDT:USDT"),
        ("BTC-USD-SWAP", "BTC/USD:BTC"),
        ("BTC-USD-220527", "BTC/USD:BTC-220527"),
        ("UNI-USD-SWAP", "UNI/USD:UNI"),
    ],
)
def test_symbol_mapping_round_trips(inst_id: str, unified: str) -> None:
    assert to_unified(inst_id) == unified
    assert from_unified(unified) == inst_id


@pytest.mark.parametrize("bad", ["BTCUSDT", "btc-usdt", "BTC-USDT-PERP", ""])
def test_bad_inst_ids_are_refused(bad: str) -> None:
    with pytest.raises(SymbolError):
        to_unified(bad)


@pytest.mark.parametrize("bad", ["BTCUSDT", "BTC/USDT:BTC", "/USDT"])
def test_bad_unified_symbols_are_refused(bad: str) -> None:
    with pytest.raises(SymbolError):
        from_unified(bad)
