"""Kraken market-data client without a network: frame handling, its own book checks, resync, malformed frames;
and the rate windows that stand for Kraken's decaying counters."""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from typing import Any

import pytest

from tradeloop.core import fixed
from tradeloop.core.clock import SimClock
from tradeloop.model.data import BookDeltas, BookStatus, Quote, Trade
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.kraken import spec
from tradeloop.venues.kraken.market_data import KrakenMarketData, book_subscription
from tradeloop.venues.transport.ratelimit import RateBudget

BTC = InstrumentId("kraken", "BTC/USD")
URLS = ConnectorUrls(rest="http://127.0.0.1:1", ws_public="ws://127.0.0.1:1/v2", ws_private="ws://127.0.0.1:1/v2")


def _crc(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """Kraken's checksum written out independently: digits without '.', leading zeros dropped."""
    text = "".join(p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0") for p, q in asks + bids)
    return zlib.crc32(text.encode())


def _book(kind: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], checksum: int) -> bytes:
    data = {
        "symbol": "BTC/USD",
        "bids": [{"price": float(p), "qty": float(q)} for p, q in bids],
        "asks": [{"price": float(p), "qty": float(q)} for p, q in asks],
        "checksum": checksum,
        "timestamp": "2024-01-01T00:00:00.000000Z",
    }
    # json writes these short decimals exactly as given (the parser reads them as Decimal)
    return json.dumps({"channel": "book", "type": kind, "data": [data]}).encode()


class Harness:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.md = KrakenMarketData([BTC], self.items.append, SimClock(5), URLS, depth=10)
        self.sent: list[str] = []

        async def send(text: str) -> None:
            self.sent.append(text)

        self.md.ws.send = send  # type: ignore[method-assign]

    def frame(self, payload: bytes) -> None:
        self.md._on_frame(payload, 7)  # the client's frame entry point


SNAP_BIDS = [("60000.0", "1.00000000"), ("59999.9", "2.00000000")]
SNAP_ASKS = [("60000.1", "0.50000000"), ("60000.2", "3.00000000")]


def test_snapshot_updates_and_own_checksum_check() -> None:
    async def main() -> None:
        h = Harness()
        h.md._awaiting[BTC] = 0.0  # as after a connect: a snapshot comes first
        h.frame(_book("update", [("60000.0", "5.00000000")], [], 1))  # before the snapshot: dropped
        assert h.items == []
        h.frame(_book("snapshot", SNAP_BIDS, SNAP_ASKS, _crc(SNAP_ASKS, SNAP_BIDS)))
        snap = h.items[-1]
        assert (
            isinstance(snap, BookDeltas) and snap.snapshot and snap.bids[0] == (fixed.parse("60000"), fixed.parse("1"))
        )
        bids = [("60000.0", "1.50000000"), ("59999.9", "2.00000000")]
        h.frame(_book("update", [("60000.0", "1.50000000")], [], _crc(SNAP_ASKS, bids)))
        assert isinstance(h.items[-1], BookDeltas) and not h.items[-1].snapshot
        assert h.md.checksum_fn is not None
        # An update whose checksum does not match: not passed on, the book declared invalid, resubscribed.
        h.frame(_book("update", [("59999.9", "9.00000000")], [], 12345))
        status = h.items[-1]
        assert isinstance(status, BookStatus) and not status.valid and status.reason.startswith("checksum mismatch")
        await asyncio.sleep(0)
        assert [json.loads(s)["method"] for s in h.sent] == ["unsubscribe", "subscribe"]
        assert json.loads(h.sent[1])["params"] == {
            "channel": "book",
            "symbol": ["BTC/USD"],
            "depth": 10,
            "snapshot": True,
        }
        n = len(h.items)
        h.frame(_book("update", [("60000.0", "2.00000000")], [], 1))  # still before the new snapshot
        assert len(h.items) == n
        h.md.resync(BTC, "engine asks again")  # already under way: not sent twice
        await asyncio.sleep(0)
        assert len(h.sent) == 2 and h.md.counters.resyncs_requested == 2
        h.frame(_book("snapshot", SNAP_BIDS, SNAP_ASKS, _crc(SNAP_ASKS, SNAP_BIDS)))
        assert isinstance(h.items[-1], BookDeltas) and h.items[-1].snapshot

    asyncio.run(main())


def test_trades_quotes_and_malformed_frames() -> None:
    async def main() -> None:
        h = Harness()
        h.frame(b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":60000.1,'
                b'"qty":0.25,"ord_type":"market","trade_id":9,"timestamp":"2024-01-01T00:00:01Z"}]}')  # fmt: skip
        h.frame(b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":60000.0,"bid_qty":1.5,'
                b'"ask":60000.1,"ask_qty":0.5,"last":1,"timestamp":"2024-01-01T00:00:01Z"}]}')  # fmt: skip
        trade, quote = h.items
        assert isinstance(trade, Trade) and trade.trade_id == "9" and trade.qty == fixed.parse("0.25")
        assert isinstance(quote, Quote) and (quote.bid, quote.ask_qty) == (fixed.parse("60000"), fixed.parse("0.5"))
        h.frame(b'{"channel":"heartbeat"}')
        h.frame(b'{"method":"subscribe","success":true,"result":{"channel":"book"}}')
        assert len(h.items) == 2 and h.md.counters.malformed == 0
        for bad in [
            b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"pri',  # truncated
            b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":"x"}]}',  # types
            b'{"channel":"trade","type":"update","data":[{"symbol":"ETH/USD","side":"buy","price":1,"qty":1,'
            b'"trade_id":1,"timestamp":"2024-01-01T00:00:01Z"}]}',  # a symbol not subscribed
            b"not json at all",
        ]:
            h.frame(bad)
        assert h.md.counters.malformed == 4 and len(h.items) == 2

    asyncio.run(main())


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="depth"):
        KrakenMarketData([BTC], print, SimClock(0), URLS, depth=7)
    with pytest.raises(ValueError, match="okx"):
        KrakenMarketData([InstrumentId("okx", "BTC-USDT")], print, SimClock(0), URLS)
    with pytest.raises(spec.SymbolError):
        KrakenMarketData([InstrumentId("kraken", "BTCUSD")], print, SimClock(0), URLS)
    md = KrakenMarketData([BTC], print, SimClock(0), URLS)
    assert md.depth_limit == 1000 and md.sequence_rule is spec.SEQUENCE_RULE
    assert md.precisions.get(BTC) == (1, 8)
    assert json.loads(book_subscription("unsubscribe", ["BTC/USD"], 25, 3)) == {
        "method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 25}, "req_id": 3,
    }  # fmt: skip


@pytest.mark.parametrize(("kind", "capacity", "decay"), [("REST", 15, 0.33), ("ORDERS", 60, 1.0)])
def test_rate_windows_never_overflow_the_decaying_counter(kind: str, capacity: int, decay: float) -> None:
    """Greedy random traffic admitted by the declared windows never overflows Kraken's counter,
    and the long-run admitted rate stays close to the decay rate."""
    windows = spec.REST_WINDOWS if kind == "REST" else spec.ORDER_WINDOWS
    now = [0]
    budget = RateBudget("kraken", "t", windows, lambda: now[0])
    rng = random.Random(3)
    level = 0.0
    last = 0
    admitted = 0
    horizon = 1_800 * 1_000_000_000
    while now[0] < horizon:
        now[0] += int(rng.expovariate(4 * decay) * 1e9) + 1
        if budget.try_acquire(spec.costs(kind)) == 0:
            level = max(0.0, level - decay * (now[0] - last) / 1e9) + 1
            last = now[0]
            admitted += 1
            assert level <= capacity + 1e-9
    assert admitted / (horizon / 1e9) > 0.6 * decay
