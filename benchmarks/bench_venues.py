"""Frames to applied books, per venue, on real recordings, as a ratio to ``orjson.loads`` of the same frames.

Measured, per frame: exactly what ``tradeloop replay`` (``data/venue_replay.py``) and the live
market-data clients do with a frame: the venue's registry adapter parses it
(``adapter.parse`` / ``adapter.parse_rest`` for REST snapshots) and every ``BookDeltas`` goes
through ``BookManager.on_deltas`` (sequence rule, checksum where the venue sends one, depth limit,
crossed-book check). The frames are read from the recording in setup (file reading and
decompression are not timed). Floor: ``orjson.loads`` of every frame's payload.

Every measured run is checked: no malformed frame, no sequence gap or checksum failure, every book
valid at the end, and against a reference computed independently in setup:

* binance, bybit, coinbase: the top 10 levels of every book equal a replay into plain dicts
  (``orjson`` + ``fixed.parse``, the venue's documented snapshot/delta rules, no tradeloop parser);
* okx, kraken: the venue's own CRC32 of the book is verified on every frame that carries one, and
  the count of verified checksums equals the count of checksum fields in the raw frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from harness import Benchmark, Case, Timed, register
from samples import sample_path

from tradeloop.core import fixed
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager
from tradeloop.data.venue_replay import Frame, MalformedFrame, read_frames
from tradeloop.model.book import ApplyResult
from tradeloop.model.data import BookDeltas
from tradeloop.venues.registry import PARSE_ERRORS, market_data_adapter

TOP = 10

Levels = list[tuple[int, int]]
Tops = dict[str, tuple[Levels, Levels]]


@dataclass(frozen=True)
class VenueRecording:
    name: str
    registry_venue: str
    files: tuple[str, ...]
    target_ratio: float
    reference: Callable[[list[Frame]], dict[str, Any]]
    """Independent expectations: ``{"tops": {symbol: (bids, asks)}}`` and/or ``{"checksums": n}``."""


# -- independent references ------------------------------------------------------------------------


def _levels(side: dict[int, int], best_high: bool) -> Levels:
    return sorted(side.items(), reverse=best_high)[:TOP]


def _apply(side: dict[int, int], price: str, qty: str) -> None:
    p, q = fixed.parse(price), fixed.parse(qty)
    if q:
        side[p] = q
    else:
        side.pop(p, None)


def _binance_reference(frames: list[Frame]) -> dict[str, Any]:
    """Binance spot: REST snapshot ``lastUpdateId`` L, drop diffs with ``u <= L``, apply the rest."""
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    last: int | None = None
    symbol = ""
    early: list[dict[str, Any]] = []  # diffs received before the snapshot, replayed after it
    diffs: list[dict[str, Any]] = []
    for f in frames:
        msg = orjson.loads(f.payload)
        if "lastUpdateId" in msg:
            bids = {fixed.parse(p): fixed.parse(q) for p, q in msg["bids"]}
            asks = {fixed.parse(p): fixed.parse(q) for p, q in msg["asks"]}
            last = msg["lastUpdateId"]
            diffs.extend(early)
            continue
        data = msg.get("data", msg)
        if data.get("e") == "depthUpdate":
            (early if last is None else diffs).append(data)
    for data in diffs:
        if last is None or data["u"] <= last:
            continue
        symbol = data["s"]
        for p, q in data["b"]:
            _apply(bids, p, q)
        for p, q in data["a"]:
            _apply(asks, p, q)
        last = data["u"]
    return {"tops": {symbol: (_levels(bids, True), _levels(asks, False))}}


def _bybit_reference(frames: list[Frame]) -> dict[str, Any]:
    """Bybit v5 ``orderbook.N``: a snapshot replaces the book, a delta sets levels (size 0 deletes)."""
    books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    for f in frames:
        msg = orjson.loads(f.payload)
        data = msg["data"]
        if msg["type"] == "snapshot":
            books[data["s"]] = ({}, {})
        bids, asks = books[data["s"]]
        for p, q in data["b"]:
            _apply(bids, p, q)
        for p, q in data["a"]:
            _apply(asks, p, q)
    return {"tops": {s: (_levels(b, True), _levels(a, False)) for s, (b, a) in books.items()}}


def _coinbase_reference(frames: list[Frame]) -> dict[str, Any]:
    """Coinbase Exchange ``level2``: ``snapshot`` then ``l2update`` changes ``[side, price, size]``."""
    books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    for f in frames:
        msg = orjson.loads(f.payload)
        kind = msg.get("type")
        if kind == "snapshot":
            books[msg["product_id"]] = (
                {fixed.parse(p): fixed.parse(q) for p, q in msg["bids"]},
                {fixed.parse(p): fixed.parse(q) for p, q in msg["asks"]},
            )
        elif kind == "l2update" and msg["product_id"] in books:
            bids, asks = books[msg["product_id"]]
            for side, p, q in msg["changes"]:
                _apply(bids if side == "buy" else asks, p, q)
    return {"tops": {s: (_levels(b, True), _levels(a, False)) for s, (b, a) in books.items()}}


def _okx_reference(frames: list[Frame]) -> dict[str, Any]:
    """OKX ``books``: every frame's ``data[0].checksum`` is a CRC32 of the top 25 levels."""
    n = 0
    for f in frames:
        msg = orjson.loads(f.payload)
        if isinstance(msg, dict) and msg.get("arg", {}).get("channel") == "books":
            n += sum(1 for d in msg.get("data", []) if "checksum" in d)
    return {"checksums": n}


def _kraken_reference(frames: list[Frame]) -> dict[str, Any]:
    """Kraken v1 ``book``: update frames carry ``"c"``, the CRC32 of the top 10 asks and bids."""
    n = 0
    for f in frames:
        msg = orjson.loads(f.payload)
        if isinstance(msg, list):
            n += sum(1 for part in msg[1:-2] if isinstance(part, dict) and "c" in part)
    return {"checksums": n}


RECORDINGS = (
    VenueRecording("binance", "binance", ("marketdata/binance_spot_btcusdt_20240808.gz",), 4.0, _binance_reference),
    VenueRecording("okx", "okx", ("okx/ws_recording/cryptofeed_OKX.ws.1.0",), 4.0, _okx_reference),
    VenueRecording("kraken", "kraken", ("kraken/ws_recording/cryptofeed_KRAKEN.ws.50.0",), 4.0, _kraken_reference),
    VenueRecording("bybit", "bybit_linear", ("bybit/ws_book/xrpusdt-ob500.data.zip",), 4.0, _bybit_reference),
    VenueRecording(
        "coinbase", "coinbase", ("coinbase/ws_recording/cryptofeed_COINBASE.ws.28.0",), 4.0, _coinbase_reference
    ),
)


# -- the benchmark -----------------------------------------------------------------------------------


def _manager(venue: str) -> tuple[Any, BookManager]:
    """A fresh adapter and book manager configured exactly as ``replay_venue`` configures them."""
    adapter = market_data_adapter(venue)
    checksum_fn = adapter.checksum_fn
    manager = BookManager(
        MessageBus(),
        SimClock(0),
        {adapter.venue: adapter.sequence_rule},
        {adapter.venue: checksum_fn} if checksum_fn is not None else {},
        depth_limits={adapter.venue: adapter.depth_limit} if adapter.depth_limit else {},
    )
    return adapter, manager


def _setup(rec: VenueRecording) -> Case:
    malformed: list[MalformedFrame] = []
    frames: list[Frame] = []
    for relative in rec.files:
        frames.extend(read_frames(sample_path(relative), malformed, rec.registry_venue))
    frames.sort(key=lambda f: f.ts_recv)  # stable: ties keep file order, as replay_venue's merge does
    if malformed:
        raise RuntimeError(f"{rec.name}: the recording itself has malformed lines: {malformed[:3]}")
    reference = rec.reference(frames)
    payloads = [f.payload for f in frames]

    def prepare_floor() -> Timed:
        loads = orjson.loads

        def floor() -> None:
            for payload in payloads:
                loads(payload)

        return floor

    def prepare_measured() -> Timed:
        adapter, manager = _manager(rec.registry_venue)
        parse = adapter.parse
        parse_rest = adapter.parse_rest
        on_deltas = manager.on_deltas

        def measured() -> tuple[BookManager, list[int], int]:
            counts = [0, 0, 0]  # by ApplyResult
            bad = 0
            for f in frames:
                try:
                    items = (
                        parse(f.payload, f.ts_recv)
                        if f.rest_url is None
                        else parse_rest(f.rest_url, f.payload, f.ts_recv)
                    )
                except PARSE_ERRORS:
                    bad += 1
                    continue
                for item in items:
                    if type(item) is BookDeltas:
                        counts[on_deltas(item)] += 1
            return manager, counts, bad

        return measured

    def verify(result: object) -> list[str]:
        manager, counts, bad = cast(tuple[BookManager, list[int], int], result)
        problems: list[str] = []
        if bad:
            problems.append(f"{bad} malformed frames")
        books = manager.books()
        if not books:
            problems.append("no book was built")
        for iid, book in sorted(books.items()):
            c = manager.counters(iid)
            if c.gaps or c.checksum_failures or c.crossed or c.refused:
                problems.append(
                    f"{iid}: gaps {c.gaps}, checksum failures {c.checksum_failures}, crossed {c.crossed}, "
                    f"refused {c.refused}"
                )
            if not book.valid:
                problems.append(f"{iid}: invalid at the end ({book.invalid_reason})")
        if not counts[ApplyResult.APPLIED]:
            problems.append("no delta batch was applied")
        tops = cast(Tops | None, reference.get("tops"))
        if tops is not None:
            by_symbol = {iid.symbol: book for iid, book in books.items()}
            for symbol, (bids, asks) in sorted(tops.items()):
                book = by_symbol.get(symbol)
                if book is None:
                    problems.append(f"{symbol}: no book")
                elif book.top_bids(TOP) != bids or book.top_asks(TOP) != asks:
                    problems.append(f"{symbol}: top {TOP} levels differ from the independent replay")
        expected_checksums = cast(int | None, reference.get("checksums"))
        if expected_checksums is not None:
            verified = sum(b.checksums_verified for b in books.values())
            if verified != expected_checksums or not expected_checksums:
                problems.append(f"{verified} checksums verified, the frames carry {expected_checksums}")
        return problems

    n_bytes = sum(len(p) for p in payloads)
    return Case(
        prepare_floor=prepare_floor,
        prepare_measured=prepare_measured,
        n_messages=len(frames),
        verify=verify,
        details={
            "venue": rec.name,
            "registry_venue": rec.registry_venue,
            "recording": list(rec.files),
            "rest_frames": sum(1 for f in frames if f.rest_url is not None),
            "mean_payload_bytes": round(n_bytes / max(len(frames), 1), 1),
            "reference": "top-10 levels of a plain-dict replay" if "tops" in reference else "venue checksums",
            "reference_checksums": reference.get("checksums"),
            "books": len(reference.get("tops", {})) or None,
        },
    )


def _register(rec: VenueRecording) -> None:
    register(
        Benchmark(
            name=f"frames_to_book_{rec.name}",
            floor_name="orjson.loads",
            target_ratio=rec.target_ratio,
            setup=lambda: _setup(rec),
            description=f"{rec.name}: recorded frames -> registry parser -> BookManager, vs orjson.loads",
        )
    )


for _rec in RECORDINGS:
    _register(_rec)
