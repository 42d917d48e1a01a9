"""Book apply throughput on the Binance spot recording, as a ratio to ``orjson.loads`` of the same bytes.

Measured, per message: ``BinanceParser.parse(payload, ts_recv)`` -> ``OrderBook.apply_deltas`` for
book deltas (book with ``SequenceRule.RANGE`` seeded with the recording's REST snapshot) ->
``book.best_bid()`` and ``book.best_ask()``. Floor: ``orjson.loads(payload)`` of the same payloads.

Two variants: every depth message (``book_apply_binance_spot_depth``) and every stream message,
depth + trade + bookTicker (``book_apply_binance_spot_all``). Each run is checked against a
reference book built independently in setup (plain dicts, pure-Python parsing, no sequence rule).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import orjson
from harness import Benchmark, Case, Timed, register
from samples import BINANCE_SPOT_RECORDING, read_recording

from tradeloop.core import fixed
from tradeloop.core.fastparse import ACCELERATED
from tradeloop.model.book import ApplyResult, OrderBook, SequenceRule
from tradeloop.model.data import BookDeltas, Quote, Trade
from tradeloop.model.identifiers import InstrumentId
from tradeloop.venues.binance.parse import BinanceParser
from tradeloop.venues.binance.spec import VENUE_SPOT

TARGET_RATIO = 4.0
VENUE = VENUE_SPOT
SYMBOL = "BTCUSDT"
INSTRUMENT = InstrumentId(VENUE, SYMBOL)

Message = tuple[int, bytes]
Event = BookDeltas | Trade | Quote | None


# -- parser under test ----------------------------------------------------------------------------


def _make_parser() -> tuple[BinanceParser, Callable[[bytes, int], Event]]:
    parser = BinanceParser(VENUE)
    return parser, parser.parse


# -- data -----------------------------------------------------------------------------------------


def _is_snapshot(payload: bytes) -> bool:
    return payload.startswith(b'{"lastUpdateId"')


def _is_depth(payload: bytes) -> bool:
    return b"@depth" in payload[:40]


def _snapshot(messages: list[Message], parser: BinanceParser) -> BookDeltas:
    """The recording's REST snapshot, through the parser under test."""
    ts, payload = next(m for m in messages if _is_snapshot(m[1]))
    return parser.parse_snapshot(payload, ts, SYMBOL)


def _reference_top(recording: list[Message], messages: list[Message], depth: int = 10) -> dict[str, Any]:
    """Independent replay: orjson + ``fixed.parse`` into plain dicts, Binance's own sync rule."""
    snap = orjson.loads(next(p for _, p in recording if _is_snapshot(p)))
    bids = {fixed.parse(p): fixed.parse(q) for p, q in snap["bids"]}
    asks = {fixed.parse(p): fixed.parse(q) for p, q in snap["asks"]}
    last = snap["lastUpdateId"]
    applied = 0
    for _, payload in messages:
        if not _is_depth(payload):
            continue
        d = orjson.loads(payload)["data"]
        if d["u"] <= last:
            continue
        for side, key in ((bids, "b"), (asks, "a")):
            for p, q in d[key]:
                price, qty = fixed.parse(p), fixed.parse(q)
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        last = d["u"]
        applied += 1
    return {
        "bids": sorted(bids.items(), reverse=True)[:depth],
        "asks": sorted(asks.items())[:depth],
        "last_seq": last,
        "applied": applied,
    }


# -- the benchmark --------------------------------------------------------------------------------


def _setup(select: Callable[[bytes], bool], variant: str) -> Case:
    recording = read_recording(BINANCE_SPOT_RECORDING)
    parser, parse = _make_parser()
    snapshot = _snapshot(recording, parser)
    messages = [m for m in recording if not _is_snapshot(m[1]) and select(m[1])]
    reference = _reference_top(recording, messages)
    n_bytes = sum(len(p) for _, p in messages)

    def prepare_floor() -> Timed:
        loads = orjson.loads
        msgs = messages

        def floor() -> None:
            for _, payload in msgs:
                loads(payload)

        return floor

    def prepare_measured() -> Timed:
        book = OrderBook(INSTRUMENT, SequenceRule.RANGE)
        book.apply_snapshot(snapshot)
        msgs = messages

        def measured() -> tuple[OrderBook, list[int], int]:
            apply = book.apply_deltas
            best_bid = book.best_bid
            best_ask = book.best_ask
            counts = [0, 0, 0]  # indexed by ApplyResult
            crossed = 0
            for ts, payload in msgs:
                event = parse(payload, ts)
                if type(event) is BookDeltas:
                    counts[apply(event)] += 1
                bid = best_bid()
                ask = best_ask()
                if bid is not None and ask is not None and bid >= ask:
                    crossed += 1
            return book, counts, crossed

        return measured

    def verify(result: object) -> list[str]:
        book, counts, crossed = cast(tuple[OrderBook, list[int], int], result)
        problems = []
        if counts[ApplyResult.INVALID]:
            problems.append(f"{counts[ApplyResult.INVALID]} batches INVALID ({book.invalid_reason})")
        if counts[ApplyResult.APPLIED] != reference["applied"]:
            problems.append(f"applied {counts[ApplyResult.APPLIED]} batches, reference {reference['applied']}")
        if crossed:
            problems.append(f"crossed top of book after {crossed} messages")
        if book.last_seq != reference["last_seq"]:
            problems.append(f"book at seq {book.last_seq}, reference {reference['last_seq']}")
        if book.top_bids(10) != reference["bids"] or book.top_asks(10) != reference["asks"]:
            problems.append("top 10 levels differ from the reference replay")
        return problems

    return Case(
        prepare_floor=prepare_floor,
        prepare_measured=prepare_measured,
        n_messages=len(messages),
        verify=verify,
        details={
            "variant": variant,
            "recording": BINANCE_SPOT_RECORDING,
            "parser": f"{type(parser).__module__}.{type(parser).__qualname__}",
            "accelerated": ACCELERATED,
            "mean_payload_bytes": round(n_bytes / max(len(messages), 1), 1),
            "depth_messages": sum(1 for _, p in messages if _is_depth(p)),
            "snapshot_seq": snapshot.last_seq,
            "snapshot_levels": [len(snapshot.bids), len(snapshot.asks)],
            "sequence_rule": "RANGE",
        },
    )


register(
    Benchmark(
        name="book_apply_binance_spot_depth",
        floor_name="orjson.loads",
        target_ratio=TARGET_RATIO,
        setup=lambda: _setup(_is_depth, "depth messages"),
        description="Binance spot depth@100ms: parse -> apply_deltas -> best bid/ask, vs orjson.loads",
    )
)

register(
    Benchmark(
        name="book_apply_binance_spot_all",
        floor_name="orjson.loads",
        target_ratio=TARGET_RATIO,
        setup=lambda: _setup(lambda _payload: True, "all messages: depth + trade + bookTicker"),
        description="Binance spot depth + trade + bookTicker: parse -> apply -> best bid/ask, vs orjson.loads",
    )
)
