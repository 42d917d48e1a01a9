"""The Exchange feed parser's one-pass decode of book and trade messages gives exactly what the general
path gives (a generic decode for the type, then the typed one): same items, same errors, same
sequence bookkeeping, on every frame of a recording and on damaged variants."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import orjson
import pytest

from tests.conftest import sample_path
from tradeloop.data.cryptofeed import Direction, read_cryptofeed
from tradeloop.venues.coinbase import parse as coinbase_parse
from tradeloop.venues.coinbase.parse import CoinbaseExchangeParser, ParseError

RECORDING = "coinbase/ws_recording/cryptofeed_COINBASE.ws.28.0"


class _Nothing(msgspec.Struct, tag_field="type", tag="never-sent"):
    pass


def run(payloads: list[bytes]) -> tuple[list[Any], int, dict[str, int]]:
    parser = CoinbaseExchangeParser()
    out: list[Any] = []
    for payload in payloads:
        try:
            out.append(parser.parse(payload, 7))
        except ParseError as exc:
            out.append(("error", str(exc)))
    return out, parser.sequence_regressions, dict(parser._last_seq)


def variants(payloads: list[bytes], rng: random.Random) -> list[bytes]:
    out: list[bytes] = []
    for payload in rng.sample(payloads, 40):
        doc = orjson.loads(payload)
        out.append(payload[: len(payload) // 2])
        if doc.get("type") == "l2update":
            for change in (["bid", "1"], ["up", "1", "2"], ["buy", "x", "1"], [1, "1", "2"]):
                out.append(orjson.dumps({**doc, "changes": [*doc["changes"], change]}))
            out.append(orjson.dumps({**doc, "time": "not a time"}))
            out.append(orjson.dumps({k: v for k, v in doc.items() if k != "changes"}))
        if doc.get("type") in ("match", "last_match"):
            out.append(orjson.dumps({**doc, "side": "up"}))
            out.append(orjson.dumps({**doc, "sequence": 1}))
            out.append(orjson.dumps({**doc, "trade_id": "7"}))
        out.append(orjson.dumps({**doc, "type": "error", "message": "boom"}))
    return out


def test_fast_and_general_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    path = sample_path(RECORDING)
    payloads = [f.payload for f in read_cryptofeed(path) if f.direction is Direction.RECEIVED]
    payloads += variants(payloads, random.Random(2))
    fast = run(payloads)
    monkeypatch.setattr(coinbase_parse, "_KNOWN", msgspec.json.Decoder(_Nothing))  # every frame: general path
    general = run(payloads)
    assert fast == general
    assert sum(1 for r in fast[0] if isinstance(r, tuple)) > 40  # the damaged ones were refused
