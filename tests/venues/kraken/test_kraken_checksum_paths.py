"""Kraken's book checksum written by the accelerator equals the one formatted in Python (remembered
texts) and an independent formatting of the top levels, including when a value cannot be written
with the pair's decimals (both paths then raise ``FixedPointError``, as before)."""

from __future__ import annotations

import random
import zlib

import pytest

from tradeloop.core import fixed
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.kraken import parse as kraken_parse
from tradeloop.venues.kraken.parse import KrakenPrecisions

IID = InstrumentId("kraken", "BTC/USD")


def independent(book: OrderBook, pdp: int, qdp: int) -> int:
    def part(v: int, d: int) -> str:
        return fixed.to_str(v, d).replace(".", "").lstrip("0")

    text = "".join(part(p, pdp) + part(q, qdp) for p, q in book.top_asks(10))
    text += "".join(part(p, pdp) + part(q, qdp) for p, q in book.top_bids(10))
    return zlib.crc32(text.encode())


def outcome(precisions: KrakenPrecisions, book: OrderBook) -> object:
    try:
        return precisions.book_checksum(book)
    except fixed.FixedPointError as exc:
        return type(exc)


def test_both_paths_and_an_independent_formatting_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    for _ in range(400):
        pdp, qdp = rng.randint(0, 9), rng.randint(0, 9)
        precisions = KrakenPrecisions()
        precisions.set(IID, pdp, qdp)
        mid = rng.randrange(1, 10**6) * 10**9
        tick = 10 ** (9 - pdp)
        lot = 10 ** (9 - qdp) if rng.random() < 0.95 else 1  # sometimes off the size grid
        n = rng.randrange(0, 15)
        bids = [(mid - (k + 1) * tick, rng.randrange(1, 10**5) * lot) for k in range(n)]
        asks = [(mid + (k + 1) * tick, rng.randrange(1, 10**5) * lot) for k in range(rng.randrange(0, 15))]
        book = OrderBook(IID)
        book.apply_snapshot(BookDeltas(IID, 0, 0, -1, -1, bids, asks, snapshot=True))
        got = outcome(precisions, book)
        with monkeypatch.context() as m:
            m.setattr(kraken_parse, "_TEXT_IN_C", None)
            assert outcome(precisions, book) == got
        try:
            expected: object = independent(book, pdp, qdp)
        except fixed.FixedPointError as exc:
            expected = type(exc)
        assert got == expected
    assert KrakenPrecisions().book_checksum(OrderBook(IID)) == -1  # precisions unknown
