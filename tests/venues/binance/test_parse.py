"""Binance market-data parser: fixture frames, shared sample frames, malformed frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import sample_path
from tradeloop.core.fixed import parse as px
from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.model.enums import Side
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.binance.parse import BinanceParser, ParseError

FIXTURES = Path(__file__).parent / "fixtures"
SPOT = InstrumentId("binance", "BTCUSDT")
USDM = InstrumentId("binance_usdm", "BTCUSDT")
MS = 1_000_000


def frame(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().strip()


def malformed_frames() -> list[tuple[str, str, bytes]]:
    out = []
    for line in (FIXTURES / "malformed.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, words, payload = line.split("\t", 2)
            out.append((name, words, payload.encode()))
    return out


# -- depth -------------------------------------------------------------------------------------


def test_spot_depth_update() -> None:
    d = BinanceParser("binance").parse(frame("spot_depth_update.json"), 42)
    assert isinstance(d, BookDeltas)
    assert d.instrument_id == SPOT
    assert (d.first_seq, d.last_seq, d.prev_seq, d.snapshot) == (50093239203, 50093239207, -1, False)
    assert d.ts_event == 1723161255308 * MS and d.ts_recv == 42
    assert d.bids == [(px("61837.63"), px("3.78826")), (px("55653.87"), 0)]
    assert d.asks == [(px("61838.04"), px("0.32332"))]


def test_usdm_depth_update_carries_prev_and_transaction_time() -> None:
    d = BinanceParser("binance_usdm").parse(frame("usdm_depth_update.json"), 7)
    assert isinstance(d, BookDeltas)
    assert d.instrument_id == USDM
    assert (d.first_seq, d.last_seq, d.prev_seq) == (5123107832006, 5123107837557, 5123107831937)
    assert d.ts_event == 1723161256298 * MS  # T (transaction time) wins over E
    assert d.bids == [(px("58710.2"), px("0.014")), (px("61510.9"), 0)]


def test_spot_snapshot_uses_symbol_of_the_depth_stream() -> None:
    parser = BinanceParser("binance")
    with pytest.raises(ParseError, match="symbol"):
        parser.parse(frame("spot_snapshot.json"), 1)
    parser.parse(frame("spot_depth_update.json"), 1)
    snap = parser.parse(frame("spot_snapshot.json"), 99)
    assert isinstance(snap, BookDeltas) and snap.snapshot
    assert snap.instrument_id == SPOT
    assert snap.first_seq == snap.last_seq == 50093239218
    assert snap.ts_event == 99  # spot snapshots carry no time: receive time
    assert snap.bids[0] == (px("61837.63"), px("3.78826")) and len(snap.asks) == 2


def test_snapshot_with_explicit_symbol_and_event_time() -> None:
    parser = BinanceParser("binance_usdm", symbol="btcusdt")
    snap = parser.parse(frame("usdm_snapshot.json"), 5)
    assert isinstance(snap, BookDeltas) and snap.snapshot
    assert snap.instrument_id == USDM and snap.last_seq == 5123107852948
    assert snap.ts_event == 1723161256493 * MS


def test_snapshot_symbol_is_ambiguous_after_two_depth_streams() -> None:
    parser = BinanceParser("binance")
    parser.parse(frame("spot_depth_update.json"), 1)
    parser.parse(frame("spot_depth_update.json").replace(b"btcusdt@", b"ethusdt@"), 1)
    with pytest.raises(ParseError, match="pass symbol"):
        parser.parse(frame("spot_snapshot.json"), 1)
    snap = parser.parse_snapshot(frame("spot_snapshot.json"), 1, symbol="ETHUSDT")
    assert snap.instrument_id == InstrumentId("binance", "ETHUSDT")


# -- trades and tickers ------------------------------------------------------------------------


def test_trade_buyer_maker_means_aggressor_sell() -> None:
    t = BinanceParser().parse(frame("spot_trade.json"), 3)
    assert t == Trade(SPOT, 1723161255342 * MS, 3, px("61837.63"), px("0.02"), Side.SELL, "3735683259")


def test_usdm_trade_buyer_taker() -> None:
    t = BinanceParser("binance_usdm").parse(frame("usdm_trade.json"), 3)
    assert isinstance(t, Trade)
    assert t.instrument_id == USDM and t.aggressor is Side.BUY
    assert (t.price, t.qty) == (px("61800.3"), px("0.006"))


def test_agg_trade() -> None:
    t = BinanceParser().parse(frame("spot_agg_trade.json"), 3)
    assert isinstance(t, Trade)
    assert t.aggressor is Side.BUY and t.trade_id == "26129"


def test_book_tickers() -> None:
    q = BinanceParser().parse(frame("spot_book_ticker.json"), 11)
    assert q == Quote(SPOT, 11, 11, px("61837.63"), px("3.78826"), px("61837.64"), px("1.54698"), 50093239212)
    q2 = BinanceParser("binance_usdm").parse(frame("usdm_book_ticker.json"), 11)
    assert isinstance(q2, Quote)
    assert q2.ts_event == 1723161256313 * MS and q2.seq == 5123107839020 and q2.ask_qty == px("2.51")


# -- frame shapes ------------------------------------------------------------------------------


def test_frames_without_market_data_give_none() -> None:
    parser = BinanceParser()
    assert parser.parse(frame("subscription_ack.json"), 1) is None
    assert parser.parse(frame("spot_kline.json"), 1) is None
    assert parser.parse(b'{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":1,"bids":[],"asks":[]}}', 1) is None


def test_ignored_stream_still_rejects_broken_json() -> None:
    with pytest.raises(ParseError):
        BinanceParser().parse(b'{"stream":"btcusdt@kline_1m","data":{"e":"kl', 1)


def test_reordered_keys_and_raw_streams_parse_like_combined_frames() -> None:
    parser = BinanceParser()
    assert parser.parse(frame("spot_trade_reordered.json"), 5) == parser.parse(frame("spot_trade.json"), 5)
    raw_trade = parser.parse(frame("spot_raw_trade.json"), 5)
    assert isinstance(raw_trade, Trade) and raw_trade.aggressor is Side.BUY and raw_trade.instrument_id == SPOT
    assert parser.parse(frame("spot_raw_book_ticker.json"), 11) == parser.parse(frame("spot_book_ticker.json"), 11)


def test_instrument_ids_are_cached() -> None:
    parser = BinanceParser()
    a = parser.parse(frame("spot_trade.json"), 1)
    b = parser.parse(frame("spot_book_ticker.json"), 1)
    assert a is not None and b is not None and a.instrument_id is b.instrument_id


@pytest.mark.parametrize(
    ("name", "words", "payload"), malformed_frames(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_malformed_frames_raise_parse_error_saying_what_is_wrong(name: str, words: str, payload: bytes) -> None:
    parser = BinanceParser(symbol="BTCUSDT")
    with pytest.raises(ParseError) as info:
        parser.parse(payload, 1)
    assert isinstance(info.value, ValueError)
    assert words in str(info.value), f"{name}: {info.value}"


# -- shared sample frames (used in place) ------------------------------------------------------


def test_sample_futures_depth_update_event() -> None:
    d = BinanceParser("binance_usdm").parse(
        sample_path("binance/ws_book/futures_depth_update_stream.json").read_bytes(), 1
    )
    assert isinstance(d, BookDeltas)
    assert (d.first_seq, d.last_seq, d.prev_seq) == (157, 160, 149)
    assert d.ts_event == 123456788 * MS
    assert d.bids == [(px("0.0024"), px("10"))] and d.asks == [(px("0.0026"), px("100"))]


def test_sample_futures_book_ticker_event() -> None:
    q = BinanceParser("binance_usdm").parse(
        sample_path("binance/ws_book/futures_book_ticker_stream.json").read_bytes(), 1
    )
    assert isinstance(q, Quote)
    assert q.instrument_id == InstrumentId("binance_usdm", "BNBUSDT")
    assert (q.bid, q.bid_qty, q.ask, q.ask_qty, q.seq) == (
        px("25.3519"),
        px("31.21"),
        px("25.3652"),
        px("40.66"),
        400900217,
    )


def test_sample_futures_trades() -> None:
    parser = BinanceParser("binance_usdm")
    t = parser.parse(sample_path("binance/ws_trades/futures_trade_stream.json").read_bytes(), 1)
    assert isinstance(t, Trade)
    assert (t.price, t.qty, t.aggressor, t.trade_id) == (px("0.001"), px("100"), Side.SELL, "5933014")
    agg = parser.parse(sample_path("binance/ws_trades/futures_agg_trade_stream.json").read_bytes(), 1)
    assert isinstance(agg, Trade) and agg.trade_id == "5933014" and agg.ts_event == 123456785 * MS


def test_sample_rest_depth_snapshot() -> None:
    body = sample_path("binance/rest/spot_depth_response.json").read_bytes()
    snap = BinanceParser(symbol="LTCBTC").parse(body, 1)
    assert isinstance(snap, BookDeltas) and snap.snapshot and snap.last_seq == 1027024
    assert snap.bids == [(px("4"), px("431"))] and snap.asks == [(px("4.000002"), px("12"))]
