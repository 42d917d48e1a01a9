"""Market data for a local simulator: the seeded synthetic market in real time, or any item stream.

``run_synthetic(core, seed=7, speed=10)`` builds a :class:`SyntheticMarket` with one listing per
instrument of the simulator (the instrument's own tick and lot, so every price and size lands on its
grid), re-targets its items onto the simulator's instrument ids, stamps them with the live clock and
applies them at ``speed`` x the synthetic market's pace. Prices and sizes are the synthetic ones.

``paced(items, speed, mapping)`` does the pacing and re-targeting for any iterable of
``(ts_recv, item)`` (a :class:`~tradeloop.data.replay.RecordingReplay`, a synthetic market built
elsewhere); :meth:`SimulatorCore.run_recording` applies the paced stream. This wiring lives in
``runtime/``: the simulator (connectivity layer) knows nothing of the data layer's synthetic market.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.core.clock import Clock
from tradeloop.data.synthetic import FlowConfig, SyntheticConfig, SyntheticInstrument, SyntheticMarket
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.simulator.core import SimulatorCore

__all__ = [
    "instrument_mapping",
    "paced",
    "restamp",
    "run_market",
    "run_synthetic",
    "start_price_of",
    "synthetic_config_for",
]

_YIELD_EVERY: Final = 256
"""Items applied between two yields to the event loop when the feed is behind its schedule."""

DEFAULT_DURATION_S: Final = 86_400.0
"""Synthetic time of one generated stream; ``run_synthetic`` starts a new one (next seed) after it."""

FeedItem = BookDeltas | Trade

DEFAULT_START_PRICES: Final[dict[str, str]] = {"BTC": "60000", "ETH": "3000", "SOL": "150", "XRP": "0.5"}
"""Start price of the synthetic market per base currency; others start at ``OTHER_START_PRICE``."""
OTHER_START_PRICE: Final = "100"


def start_price_of(inst: Instrument, start_price: str | None = None) -> int:
    """The synthetic start price of ``inst`` on its tick grid (at least one tick)."""
    text = start_price if start_price is not None else DEFAULT_START_PRICES.get(inst.base.upper(), OTHER_START_PRICE)
    return max(inst.round_price(fixed.parse(text)), inst.tick_size)


def synthetic_config_for(
    instruments: Sequence[Instrument],
    *,
    seed: int,
    duration_s: float = DEFAULT_DURATION_S,
    start_price: str | None = None,
    flow: FlowConfig | None = None,
) -> SyntheticConfig:
    """A synthetic market with one listing per instrument, on the instrument's tick, lot and ids.

    The synthetic lot is the instrument's lot raised to its minimum size, so every synthetic level is
    an order the venue would accept. Instruments of the same base/quote share one fair value, starting
    at ``start_price`` or the base currency's entry in :data:`DEFAULT_START_PRICES`.
    """
    listings = []
    for inst in instruments:
        lot = inst.lot_size
        if inst.min_qty > lot:
            lot = -(-inst.min_qty // inst.lot_size) * inst.lot_size
        listings.append(
            SyntheticInstrument(
                venue=inst.id.venue,
                symbol=inst.id.symbol,
                base=inst.base,
                quote=inst.quote,
                kind=inst.kind,
                tick=fixed.to_str(inst.tick_size),
                lot=fixed.to_str(lot),
                min_notional=fixed.to_str(inst.min_notional),
                start_price=fixed.to_str(start_price_of(inst, start_price)),
            )
        )
    return SyntheticConfig(
        seed=seed, duration_s=duration_s, instruments=listings, flow=flow if flow is not None else FlowConfig()
    )


def instrument_mapping(source: Sequence[Instrument], target: Sequence[Instrument]) -> dict[InstrumentId, InstrumentId]:
    """Map source instruments onto target ones in order (``simA:BTCUSDT`` -> ``binance:BTCUSDT``).

    ``ValueError`` unless every source price and size is on the target's grid (the source tick and
    lot are multiples of the target's) and there are enough targets.
    """
    if len(source) > len(target):
        raise ValueError(f"{len(source)} source instruments but only {len(target)} simulator instruments")
    mapping: dict[InstrumentId, InstrumentId] = {}
    for src, dst in zip(source, target, strict=False):
        if src.tick_size % dst.tick_size or src.lot_size % dst.lot_size:
            raise ValueError(
                f"{src.id} (tick {fixed.to_str(src.tick_size)}, lot {fixed.to_str(src.lot_size)}) is not on the grid "
                f"of {dst.id} (tick {fixed.to_str(dst.tick_size)}, lot {fixed.to_str(dst.lot_size)})"
            )
        mapping[src.id] = dst.id
    return mapping


def restamp(item: FeedItem, instrument_id: InstrumentId, ts: int) -> FeedItem:
    """``item`` on ``instrument_id`` at time ``ts`` (event and receive), prices and sizes unchanged."""
    return msgspec.structs.replace(item, instrument_id=instrument_id, ts_event=ts, ts_recv=ts)


async def paced(
    items: Iterable[tuple[int, object]],
    *,
    speed: float,
    clock: Clock,
    mapping: Mapping[InstrumentId, InstrumentId] | None = None,
) -> AsyncIterator[FeedItem]:
    """Yield ``BookDeltas`` and ``Trade`` items of ``items`` at ``speed`` x their ``ts_recv`` pace.

    The first item is due at once. Items are re-stamped with ``clock`` and, with ``mapping``, moved
    onto the mapped instrument (unmapped instruments are dropped). Other item types are skipped.
    """
    if not speed > 0:
        raise ValueError(f"speed must be positive, got {speed}")
    loop = asyncio.get_running_loop()
    wall0 = loop.time()
    ts0: int | None = None
    behind = 0
    for ts_recv, item in items:
        if not isinstance(item, BookDeltas | Trade):
            continue  # quotes and book statuses are the consumer's view, not the venue's book
        if ts0 is None:
            ts0 = ts_recv
        delay = wall0 + (ts_recv - ts0) / 1e9 / speed - loop.time()
        if delay > 0:
            behind = 0
            await asyncio.sleep(delay)
        else:
            behind += 1
            if behind % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        iid = item.instrument_id
        if mapping is not None:
            target = mapping.get(iid)
            if target is None:
                continue
            iid = target
        yield restamp(item, iid, clock.now_ns())


async def run_market(core: SimulatorCore, market: SyntheticMarket, *, speed: float = 1.0) -> None:
    """Drive ``core`` from a synthetic market built elsewhere (``simA:BTCUSDT``, ...): its instruments map
    in order onto the simulator's (see :func:`instrument_mapping`), prices and sizes as generated."""
    mapping = instrument_mapping(market.instruments(), list(core.instruments.values()))
    await core.run_recording(paced(market, speed=speed, clock=core.clock, mapping=mapping))


async def run_synthetic(
    core: SimulatorCore,
    *,
    seed: int,
    speed: float = 1.0,
    duration_s: float = DEFAULT_DURATION_S,
    start_price: str | None = None,
    flow: FlowConfig | None = None,
    forever: bool = True,
) -> None:
    """Drive ``core``'s books from synthetic markets built by :func:`synthetic_config_for`.

    With ``forever`` (the default) a new stream (seed + 1, + 2, ...) starts with a fresh snapshot
    whenever one ends; otherwise returns after ``duration_s`` of synthetic time.
    """
    instruments = list(core.instruments.values())
    round_no = 0
    while True:
        config = synthetic_config_for(
            instruments, seed=seed + round_no, duration_s=duration_s, start_price=start_price, flow=flow
        )
        await core.run_recording(paced(SyntheticMarket(config), speed=speed, clock=core.clock))
        round_no += 1
        if not forever:
            return
