"""The OKX parser's and checksum's fast paths give exactly what the general paths give.

``books`` pushes are decoded once with their levels parsed in C; every frame of the live recording
and a set of damaged variants must give the same items (or the same ``ParseError`` message) as the
general path (envelope, typed push, Python level loop). The book checksum written by the
accelerator must equal the one formatted in Python and OKX's own ``checksum_of_levels``.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from tests.conftest import sample_path
from tradeloop.core import fastparse, fixed
from tradeloop.data.cryptofeed import Direction, read_cryptofeed
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.okx import parse as okx_parse
from tradeloop.venues.okx.parse import OkxBookChecksum, OkxParser, ParseError, book_checksum, checksum_of_levels

RECORDING = "okx/ws_recording/cryptofeed_OKX.ws.1.0"
CT = {"UNI-USD-SWAP": fixed.parse("0.01"), "BTC-USDT-SWAP": fixed.parse("0.01")}


def outcome(parser: OkxParser, payload: bytes) -> tuple[str, Any]:
    try:
        return "ok", parser.parse(payload, 123)
    except ParseError as exc:
        return "error", str(exc)


def both_paths(payload: bytes, monkeypatch: pytest.MonkeyPatch, ct: dict[str, int] | None = None) -> None:
    fast = outcome(OkxParser(contract_values=ct), payload)
    with monkeypatch.context() as m:
        m.setattr(okx_parse, "_LEVELS_IN_C", None)  # the general path only
        general = outcome(OkxParser(contract_values=ct), payload)
    assert fast == general, payload[:200]


def recorded_payloads() -> list[bytes]:
    path = sample_path(RECORDING)
    return [f.payload for f in read_cryptofeed(path) if f.direction is Direction.RECEIVED]


def damaged(payload: bytes, rng: random.Random) -> list[bytes]:
    """Variants of a ``books`` frame that must be refused (or read) the same way by both paths."""
    doc = orjson.loads(payload)
    out = [payload[: len(payload) // 2], payload.replace(b'"books"', b'"books5"')]
    data = doc["data"][0]
    for change in (
        lambda d: d["bids"].append(["1"]),
        lambda d: d["bids"].append(["1", 2, "0", "1"]),
        lambda d: d["asks"].append(["1.0000000001", "1", "0", "1"]),
        lambda d: d["asks"].append(["abc", "1", "0", "1"]),
        lambda d: d["bids"].append(["1", "2", 0, "1"]),
        lambda d: d["bids"].append(["1e3", "2", "0", "1"]),
        lambda d: d.update(ts="12x"),
        lambda d: d.update(ts="+1700000000000"),
        lambda d: d.update(checksum="5"),
        lambda d: d.update(seqId=None, prevSeqId=None),
        lambda d: d.pop("asks"),
    ):
        copy = orjson.loads(orjson.dumps(doc))
        change(copy["data"][0])
        out.append(orjson.dumps(copy))
    for extra in ({"event": "error", "code": "1", "msg": "x"}, {"event": 5}, {"action": 3}):
        out.append(orjson.dumps({**doc, **extra}))
    out.append(orjson.dumps({**doc, "arg": {**doc["arg"], "uid": 7}}))
    out.append(orjson.dumps({**doc, "arg": None}))
    out.append(orjson.dumps({**doc, "data": [data, data]}))
    if data["bids"]:
        i = rng.randrange(len(data["bids"]))
        copy = orjson.loads(orjson.dumps(doc))
        copy["data"][0]["bids"][i][1] = "0.015"  # not a whole number of nanos as 0.01-contract swap sizes
        out.append(orjson.dumps(copy))
    return out


def test_every_recorded_frame_parses_the_same_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    if fastparse.levels_json_strings is None:
        pytest.skip("the accelerator is not built: there is only the general path")
    rng = random.Random(4)
    payloads = recorded_payloads()
    books = [p for p in payloads if b'"books"' in p[:40]]
    assert len(books) > 250
    for payload in payloads:
        both_paths(payload, monkeypatch)
        both_paths(payload, monkeypatch, CT)
    for payload in rng.sample(books, 25):
        for variant in damaged(payload, rng):
            both_paths(variant, monkeypatch)
            both_paths(variant, monkeypatch, CT)


def random_book(rng: random.Random, n: int) -> OrderBook:
    iid = InstrumentId("okx", "UNI-USD-SWAP")
    book = OrderBook(iid)
    mid = rng.randrange(10**9, 10**14)
    tick = rng.choice([10**5, 10**7, 10**8])
    bids = [(mid - (k + 1) * tick, rng.randrange(1, 10**6) * 10**7) for k in range(n)]
    asks = [(mid + (k + 1) * tick, rng.randrange(1, 10**6) * 10**7) for k in range(rng.randrange(n + 1))]
    book.apply_snapshot(BookDeltas(iid, 0, 0, 1, 1, bids, asks, snapshot=True))
    return book


def test_book_checksum_is_okx_crc_of_the_written_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(9)
    s = fixed.to_str
    contracts = OkxBookChecksum(CT)
    for _ in range(300):
        book = random_book(rng, rng.randrange(0, 40))
        bids, asks = book.top_bids(25), book.top_asks(25)
        expected = checksum_of_levels([(s(p), s(q)) for p, q in bids], [(s(p), s(q)) for p, q in asks])
        ct = CT["UNI-USD-SWAP"]
        in_contracts = checksum_of_levels(
            [(s(p), s(q * fixed.SCALE // ct)) for p, q in bids], [(s(p), s(q * fixed.SCALE // ct)) for p, q in asks]
        )
        got = (book_checksum(book), contracts(book))
        with monkeypatch.context() as m:
            m.setattr(okx_parse, "_TEXT_IN_C", None)  # the Python formatting (remembered texts)
            assert (book_checksum(book), contracts(book)) == got
        assert got == (expected, in_contracts)
