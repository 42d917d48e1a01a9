"""Tick to trade on a live node: a venue frame that makes the market maker requote, from its arrival at
the market-data client to the order's bytes written to the connection.

Set-up, per venue with a connector: the venue's local simulator (its dialect on the simulator
framework) runs in its own process, so its work does not share this process's event loop. Its book
widens and narrows its touch by 6 ticks every 0.5 s (``t2t_simulator.py``). This process runs a
real :class:`LiveSession` (``tradeloop live``): the venue's market-data client (WebSocket) feeds
the engine directly; the demo market maker with its defaults (a requote is an amend of each side's
quote, both sent from the ``on_book`` call of the frame) must requote both sides on every frame;
the venue's execution client trades with the simulator's test key: over the venue's WebSocket
order API where the client has one (OKX), else over REST.

Measured per order sent while the engine handled a market data item:

* start: the item's ``ts_recv``, the wall time the WebSocket client stamped on the frame when it
  came off the socket (before parsing);
* end, WebSocket order entry: the wall time the execution client's ``on_wire`` hook reports the
  order op's frame written to the connection (the client calls it with the client order id right
  after the transport's write returns; the hook changes nothing the venue sees). The send is
  synchronous, so for a sample the hook runs inside the same market data item;
* end, REST: the wall time aiohttp reports the order request's last bytes written to the connection
  (``TraceConfig.on_request_headers_sent`` / ``on_request_chunk_sent``, whichever comes last before
  the reply), matched to the send through the task it was made in (a context variable set when
  the request is handed to the execution client, inherited by the task the client schedules). The
  ``TraceConfig`` is added to every ``ClientSession`` created while the benchmark runs, so a
  WebSocket client's REST fallback (socket down) is measured too, and counted (``sent_over_rest``).

Both clocks are ``time.time_ns()``. Orders sent from timers or venue replies are not samples, and
neither are orders the venue's rate budget held back (REST: the transport's ``acquire`` is wrapped
to note the wait per request; WebSocket: an op not written during the item that sent it, which
the client holds for its budget's timer): those measure the venue's order limit, and are counted
apart (``held_by_venue_rate_budget``). The details also split each sample's median (and p99) into
stages: frame to engine (parse), engine to client (book, strategy, OMS, risk), then client to wire
(WebSocket: build the op, budget check, write) or client to request (task hop, signing, budget) and
request to wire (aiohttp). Targets on this 2-core machine: p50 <= 100 us, p99 <= 1 ms. A
histogram per venue is written next to the results JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import aiohttp
from latency import LatencyBenchmark, LatencyResult, percentile, register_latency
from t2t_floor import measure_floor

from tradeloop.core import fixed
from tradeloop.model.data import BookStatus, MarketData
from tradeloop.model.instrument import Instrument
from tradeloop.ops.metrics import EngineMetrics
from tradeloop.runtime.config import StrategySection, VenueSection
from tradeloop.runtime.live import LiveSession
from tradeloop.runtime.live_config import CredentialRefs, LiveConfig, LiveSection, LiveVenueSection
from tradeloop.trading.execution import ThrottleConfig
from tradeloop.trading.risk_config import RiskConfig
from tradeloop.venues.connectors import CONNECTORS, get_connector
from tradeloop.venues.transport import rest as rest_module
from tradeloop.venues.transport.order_socket import OrderSocket
from tradeloop.venues.transport.ws import ReconnectingWebSocket

RUN_SECONDS = float(os.environ.get("TRADELOOP_BENCH_T2T_SECONDS", "30"))
FRAME_INTERVAL_S = float(os.environ.get("TRADELOOP_BENCH_T2T_INTERVAL", "0.5"))
"""One book jump every this many seconds: two amends each, 4 orders/s, within every venue's order
limits but Kraken's (see ``PACE``)."""
PACE: dict[str, tuple[float, float]] = {"kraken": (1.25, RUN_SECONDS * 8 / 3)}
"""Venue -> (frame interval, run seconds) where the venue's own order limit needs a slower pace:
Kraken's Starter-tier counter (60, decaying about 1/s) holds orders back after ~20 s at 4 orders/s
and after about a minute at 2/s; at 1.6/s it stays below 50 for 80 s (128 amends, none held). An
explicit ``TRADELOOP_BENCH_T2T_INTERVAL`` applies to every venue."""


def pace_of(venue: str) -> tuple[float, float]:
    """(frame interval, run seconds) of ``venue``'s run."""
    if "TRADELOOP_BENCH_T2T_INTERVAL" in os.environ:
        return FRAME_INTERVAL_S, RUN_SECONDS
    return PACE.get(venue, (FRAME_INTERVAL_S, RUN_SECONDS))
JUMP_TICKS = 6
SIMULATOR_BATCH = os.environ.get("TRADELOOP_BENCH_T2T_SIM_BATCH", "1") != "0"
"""Run the simulator process under ``SCHED_BATCH`` (``t2t_simulator.py --batch``): on this 2-core machine a
normal-priority simulator woken by the node's order frame takes the CPU inside the node's ``send``
system call, and the node's write returns only after the simulator has handled the order (a real
venue is another machine). ``TRADELOOP_BENCH_T2T_SIM_BATCH=0`` measures with that effect."""
TARGETS_US = {"p50": 100.0, "p99": 1000.0}
THROTTLE_PER_S = 40
FLOOR_FRAMES = int(os.environ.get("TRADELOOP_BENCH_T2T_FLOOR_FRAMES", "40"))
"""Frames replayed to the bare client of the floor (``t2t_floor.py``), at the run's frame interval."""
ORDER_BYTES_KEPT = 8
HERE = Path(__file__).resolve().parent
_ENV_PREFIX = "TL_BENCH_T2T_"


class Sent:
    """One submit or amend the engine sent while handling a market data item (wall ns)."""

    __slots__ = ("at_client", "at_engine", "cid", "claimed", "ts_recv")

    def __init__(self, cid: str, ts_recv: int, at_engine: int, at_client: int) -> None:
        self.cid = cid
        self.ts_recv = ts_recv
        """The item's receive time at the market-data client."""
        self.at_engine = at_engine
        """When the item entered the engine."""
        self.at_client = at_client
        """When the request was handed to the execution client."""
        self.claimed = False
        """A request on the wire was matched to it."""


class Sample(NamedTuple):
    sent: Sent
    request_started: int
    """When the request left the execution client's hands: aiohttp began the request (REST, after the
    client's signing and rate budget); for a WebSocket op the same as ``written``."""
    written: int
    """When its last bytes were written to the connection."""
    budget_wait_s: float
    """How long the request waited for the venue's rate budget before it could be sent."""
    path: str
    """``websocket`` or ``rest``."""


_SENT: ContextVar[Sent | None] = ContextVar("t2t_sent", default=None)
"""The send being handed to the execution client right now. The client schedules a task for the
request, and a task starts with a copy of the current context, so the request's first HTTP call
finds, in its own context, the send it was made for: no guessing by ids in URLs or bodies."""

_BUDGET_WAIT: ContextVar[float] = ContextVar("t2t_budget_wait", default=0.0)


class TickProbe(EngineMetrics):
    """The engine's metrics, plus: which market data item each submit or amend was sent from."""

    def __init__(self) -> None:
        super().__init__()
        self.current_ts_recv: int | None = None
        self.current_hub_at = 0
        self.sent: list[Sent] = []
        self.sent_outside_tick = 0
        self._unwritten: dict[str, Sent] = {}
        """Sends of the current item not yet reported written by a WebSocket client's ``on_wire``."""
        self.ws_samples: list[Sample] = []
        self.ws_not_in_tick: list[Sent] = []
        """Sent during an item, written after it (held back by the client's rate budget, or sent over REST)."""
        self.ws_written_outside = 0
        """``on_wire`` calls for orders that were not sent from a market data item."""

    def market_data_started(self, item: MarketData) -> None:
        self.current_hub_at = time.time_ns()
        super().market_data_started(item)
        self.current_ts_recv = item.ts if isinstance(item, BookStatus) else item.ts_recv

    def market_data_finished(self) -> None:
        super().market_data_finished()
        self.current_ts_recv = None
        _SENT.set(None)
        if self._unwritten:
            self.ws_not_in_tick.extend(self._unwritten.values())
            self._unwritten.clear()

    def order_sent(self, client_order_id: str) -> None:
        super().order_sent(client_order_id)
        if self.current_ts_recv is not None:
            sent = Sent(client_order_id, self.current_ts_recv, self.current_hub_at, 0)
            self.sent.append(sent)
            self._unwritten[client_order_id] = sent
            _SENT.set(sent)  # a REST client's task for this request is created right after this call
            # Stamped last: the engine hands the command to the execution client right after this
            # returns, so "client to wire" is the client's own time (the probe's bookkeeping and the
            # engine's metrics count as engine time; the total is the same either way).
            sent.at_client = time.time_ns()
        else:
            self.sent_outside_tick += 1
            _SENT.set(None)

    def on_wire(self, client_order_id: str) -> None:
        """A WebSocket execution client wrote an order op's frame (its ``on_wire`` hook)."""
        now = time.time_ns()
        sent = self._unwritten.pop(client_order_id, None)
        if sent is None or sent.claimed:
            self.ws_written_outside += 1
            return
        sent.claimed = True
        self.ws_samples.append(Sample(sent, now, now, 0.0, "websocket"))


@contextlib.contextmanager
def budget_waits() -> Iterator[None]:
    """Note, per request (its task's context), how long the transport's rate budget held it back."""
    original = rest_module.acquire

    async def acquire(*args: Any, **kwargs: Any) -> float:
        waited = await original(*args, **kwargs)
        _BUDGET_WAIT.set(waited)
        return waited

    rest_module.acquire = acquire  # type: ignore[assignment]
    try:
        yield
    finally:
        rest_module.acquire = original  # type: ignore[assignment]


class WireTimes:
    """aiohttp trace callbacks: when each order request's last bytes went out.

    The first HTTP request made in the task of a send claims it (later requests of the same task, or
    of tasks that inherited an already claimed send, do not)."""

    def __init__(self, capture: WireCapture | None = None) -> None:
        self.samples: list[Sample] = []
        self.capture = capture
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._start)
        self.config.on_request_headers_sent.append(self._written)
        self.config.on_request_chunk_sent.append(self._written)
        self.config.on_request_end.append(self._end)
        self.config.on_request_exception.append(self._end)

    async def _start(self, _s: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        ctx.t2t_started = time.time_ns()
        ctx.t2t_at = None
        ctx.t2t_budget_wait = _BUDGET_WAIT.get()
        _BUDGET_WAIT.set(0.0)
        sent = _SENT.get()
        ctx.t2t_sent = sent if sent is not None and not sent.claimed else None
        if ctx.t2t_sent is not None:
            sent.claimed = True

    async def _written(self, _s: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        ctx.t2t_at = time.time_ns()
        chunk = getattr(params, "chunk", None)
        if self.capture is not None and isinstance(chunk, bytes) and getattr(ctx, "t2t_sent", None) is not None:
            self.capture.keep_body(chunk)

    async def _end(self, _s: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        sent = getattr(ctx, "t2t_sent", None)
        at = getattr(ctx, "t2t_at", None)
        if sent is not None and at is not None:
            self.samples.append(Sample(sent, ctx.t2t_started, at, ctx.t2t_budget_wait, "rest"))


@contextlib.contextmanager
def traced_sessions(trace: aiohttp.TraceConfig) -> Iterator[None]:
    """Add ``trace`` to every ``aiohttp.ClientSession`` created inside the block (benchmark only)."""
    original = aiohttp.ClientSession.__init__

    def init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or []), trace]
        original(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        aiohttp.ClientSession.__init__ = original  # type: ignore[method-assign]


class WireCapture:
    """Raw bytes for the floor: every market-data frame by its ``ts_recv`` (the WebSocket client's
    ``on_frame`` wrapped; the node's own timing starts at the same ``ts_recv``), and the first few
    order frames the node wrote (``OrderSocket.send`` wrapped until ``ORDER_BYTES_KEPT`` are kept, then
    restored) or, over REST, the first request bodies."""

    def __init__(self) -> None:
        self.frames: dict[int, bytes] = {}
        self.orders: list[bytes] = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        ws_init = ReconnectingWebSocket.__init__
        send = OrderSocket.send
        frames, orders = self.frames, self.orders

        def init(ws: ReconnectingWebSocket, *args: Any, **kwargs: Any) -> None:
            on_frame = kwargs["on_frame"]

            def keep(data: str | bytes, ts_recv: int) -> None:
                frames[ts_recv] = data.encode() if isinstance(data, str) else data
                on_frame(data, ts_recv)

            kwargs["on_frame"] = keep
            ws_init(ws, *args, **kwargs)

        def keep_send(sock: OrderSocket, payload: bytes) -> bool:
            sent = send(sock, payload)
            if sent and b"login" not in payload and b'"auth"' not in payload and b"subscribe" not in payload:
                orders.append(payload)
                if len(orders) >= ORDER_BYTES_KEPT:
                    OrderSocket.send = send  # type: ignore[method-assign]
            return sent

        ReconnectingWebSocket.__init__ = init  # type: ignore[method-assign]
        OrderSocket.send = keep_send  # type: ignore[method-assign]
        try:
            yield
        finally:
            ReconnectingWebSocket.__init__ = ws_init  # type: ignore[method-assign]
            OrderSocket.send = send  # type: ignore[method-assign]

    def keep_body(self, chunk: bytes) -> None:
        if len(self.orders) < ORDER_BYTES_KEPT and chunk:
            self.orders.append(chunk)


def _floor(capture: WireCapture, samples: list[Sample], interval_s: float) -> tuple[list[int], dict[str, Any]]:
    """The bare client over the frames that made samples, writing as many order frames per frame:
    its samples (ns) and their summary."""
    per_frame: dict[int, int] = {}
    for s in samples:
        per_frame[s.sent.ts_recv] = per_frame.get(s.sent.ts_recv, 0) + 1
    chosen = [ts for ts in sorted(per_frame) if ts in capture.frames][:FLOOR_FRAMES]
    if not chosen or not capture.orders:
        return [], {"floor_note": "no frames or order bytes captured"}
    orders = capture.orders
    frames = [capture.frames[ts] for ts in chosen]
    writes = [[orders[(i * 2 + k) % len(orders)] for k in range(per_frame[ts])] for i, ts in enumerate(chosen)]
    floor = sorted(measure_floor(frames, writes, interval_s))
    return floor, {
        "floor_samples": len(floor),
        "floor_p50_us": round(percentile(floor, 50) / 1000, 1),
        "floor_p99_us": round(percentile(floor, 99) / 1000, 1),
    }


@contextlib.contextmanager
def simulator(venue: str, interval_s: float) -> Iterator[str]:
    """The venue's simulator with a jumping book (``t2t_simulator.py``) in a subprocess; yields its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "t2t_simulator.py"),
            venue,
            "--interval",
            str(interval_s),
            "--ticks",
            str(JUMP_TICKS),
            *(["--batch"] if SIMULATOR_BATCH else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"{venue} simulator did not start (printed {line!r})")
        yield line
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _credentials_env(venue: str) -> CredentialRefs:
    """Put the simulator's test key into environment variables; the config refers to them."""
    creds = get_connector(venue).test_credentials()
    refs: dict[str, str] = {}
    for field in ("api_key", "secret", "passphrase", "private_key"):
        try:
            value = creds.field(field).reveal()
        except Exception:
            continue
        name = f"{_ENV_PREFIX}{venue.upper()}_{field.upper()}"
        os.environ[name] = value
        refs[field] = f"env:{name}"
    return CredentialRefs(name="simulator-test-key", **refs)


def quote_qty(inst: Instrument) -> int:
    """The smallest size the venue accepts that also clears twice its minimum notional at 60,000 (the
    simulator's synthetic market starts there)."""
    unit = max(inst.lot_size, -(-inst.min_qty // inst.lot_size) * inst.lot_size)
    by_notional = fixed.div(2 * inst.min_notional, fixed.parse("60000"), "ceil") if inst.min_notional else 0
    return max(unit, -(-by_notional // inst.lot_size) * inst.lot_size)


def _config(inst: Instrument, lot: int) -> LiveConfig:
    venue, symbol = inst.id.venue, inst.id.symbol
    return LiveConfig(
        node_tag="T2T",
        valuation=inst.quote,
        strategy=StrategySection(
            name="market_making",
            params={
                "instruments": [str(inst.id)],
                "order_qty": fixed.to_str(lot),
                "max_inventory": fixed.to_str(lot * 1000),
                "refresh_threshold_ticks": 2,
                "skew_bps": 0.0,
                "inventory_skew_bps": 0.0,
                "reject_cooldown_ms": 0,
            },
        ),
        risk=RiskConfig(order_rate_max=100_000, max_open_orders_per_instrument=1000, max_open_orders_total=1000),
        # The engine's throttle never holds a requote back at this pace (the frame interval keeps the
        # orders within the venue's own limits, so no sample waits for a rate budget either).
        venues={venue: VenueSection(throttle=ThrottleConfig(rate=THROTTLE_PER_S, burst=2 * THROTTLE_PER_S))},
        live=LiveSection(
            venues={venue: LiveVenueSection(symbols=[symbol], credentials=_credentials_env(venue))},
            existing_orders="cancel",
        ),
    )


def _plot(samples_ns: list[int], floor_ns: list[int], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    us = np.array(samples_ns, dtype=float) / 1000
    fig, ax = plt.subplots(figsize=(8, 4.5))
    floor_us = np.array(floor_ns, dtype=float) / 1000
    lo = max(min(us.min(), floor_us.min() if floor_ns else us.min(), 50.0), 1.0)
    hi = max(us.max(), 2000.0)
    bins = np.geomspace(lo, hi, 80)
    if floor_ns:
        ax.hist(floor_us, bins=bins, color="#999999", alpha=0.6, label="floor: bare client, same frames")
    ax.hist(us, bins=bins, color="#4c72b0", label="node")
    ax.set_xscale("log")
    s = sorted(samples_ns)
    for name, q, color in (("p50", 50.0, "#2ca02c"), ("p99", 99.0, "#d62728")):
        v = percentile(s, q) / 1000
        ax.axvline(v, color=color, linestyle="-", label=f"{name} = {v:,.0f} us")
    for (name, target), color in zip(TARGETS_US.items(), ("#2ca02c", "#d62728"), strict=False):
        ax.axvline(target, color=color, linestyle=":", label=f"target {name} <= {target:g} us")
    ax.set_xlabel("tick to trade (us, log scale)")
    ax.set_ylabel("orders")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


class ProbedSession(LiveSession):
    """The live session, with each execution client's ``on_wire`` hook (where it has one) reporting to
    the probe. Installed once the clients are started, before any market data reaches the engine."""

    def __init__(self, probe: TickProbe, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = probe
        self.probe = probe
        self.hooked: list[str] = []

    def _build_engine(self) -> Any:
        engine = super()._build_engine()
        for venue, link in self.links.items():
            if link.client is not None and hasattr(link.client, "on_wire"):
                link.client.on_wire = self.probe.on_wire  # type: ignore[attr-defined]
                self.hooked.append(venue)
        return engine


def _stages(samples: list[Sample], path: str) -> dict[str, dict[str, float]]:
    """p50 and p99 (us) of each stage of the samples sent over ``path``."""
    chosen = [s for s in samples if s.path == path]
    if not chosen:
        return {}
    parts = {
        "frame_to_engine": [s.sent.at_engine - s.sent.ts_recv for s in chosen],
        "engine_to_client": [s.sent.at_client - s.sent.at_engine for s in chosen],
    }
    if path == "websocket":
        parts["client_to_wire"] = [s.written - s.sent.at_client for s in chosen]
    else:
        parts["client_to_request"] = [s.request_started - s.sent.at_client for s in chosen]
        parts["request_to_wire"] = [s.written - s.request_started for s in chosen]
    return {
        q: {k: round(percentile(sorted(v), p) / 1000, 1) for k, v in parts.items()}
        for q, p in (("p50", 50.0), ("p99", 99.0))
    }


def _run_venue(venue: str, out_dir: Path) -> LatencyResult:
    connector = get_connector(venue)
    inst = connector.instruments()[0]
    lot = quote_qty(inst)
    probe = TickProbe()
    capture = WireCapture()
    wire = WireTimes(capture)
    interval_s, run_s = pace_of(venue)
    with simulator(venue, interval_s) as base_url, traced_sessions(wire.config), budget_waits(), capture.installed():
        session = ProbedSession(
            probe,
            _config(inst, lot),
            endpoint=base_url,
            duration_s=run_s,
            handle_signals=False,
        )
        asyncio.run(session.run())
    engine = session.engine
    assert engine is not None
    # A request the venue's rate budget held back measures the venue's order limit, not the node:
    # those are counted and reported apart, never mixed into the distribution.
    rest_held = [s for s in wire.samples if s.budget_wait_s > 0]
    ws_held = [s for s in probe.ws_not_in_tick if not s.claimed] if venue in session.hooked else []
    clean = [s for s in wire.samples if s.budget_wait_s == 0] + probe.ws_samples
    samples = [s.written - s.sent.ts_recv for s in clean]
    first_of_frame: dict[int, int] = {}
    for s in clean:
        latency = s.written - s.sent.ts_recv
        first_of_frame[s.sent.ts_recv] = min(latency, first_of_frame.get(s.sent.ts_recv, latency))
    over_ws = sum(1 for s in clean if s.path == "websocket")
    stages = {path: _stages(clean, path) for path in ("websocket", "rest") if any(s.path == path for s in clean)}
    main_path = "websocket" if over_ws >= len(clean) - over_ws else "rest"
    problems: list[str] = []
    unmatched = sum(1 for sent in probe.sent if not sent.claimed)
    if any(v for v in session.orders_left.values()):
        problems.append(f"orders left open at the simulator: {session.orders_left}")
    floor_ns, floor = _floor(capture, clean, interval_s) if clean else ([], {})
    if "floor_p50_us" in floor and samples:
        p50, p99 = percentile(sorted(samples), 50) / 1000, percentile(sorted(samples), 99) / 1000
        floor["ratio_p50_to_floor"] = round(p50 / max(floor["floor_p50_us"], 0.1), 2)
        floor["ratio_p99_to_floor"] = round(p99 / max(floor["floor_p99_us"], 0.1), 2)
    picture = out_dir / f"tick_to_trade_{venue}.png"
    if samples:
        _plot(samples, floor_ns, picture, f"{venue}: frame received -> order bytes written ({len(samples)} orders)")
    fills = len(engine.series.fills)
    client = engine.execution.client(venue)
    ws_orders = getattr(client, "ws_orders", None)
    return LatencyResult(
        samples,
        details={
            "venue": venue,
            "symbol": inst.id.symbol,
            "seconds": run_s,
            "frame_interval_s": interval_s,
            "simulator_sched_batch": SIMULATOR_BATCH,
            "jump_ticks": JUMP_TICKS,
            "market_items": session.items,
            "order_path": main_path,
            "sent_over_websocket": over_ws,
            "sent_over_rest": len(clean) - over_ws,
            "orders_sent_from_ticks": len(probe.sent),
            "orders_sent_otherwise": probe.sent_outside_tick,
            "throttled_by_engine": engine.execution.throttled,
            "unmatched_on_the_wire": unmatched,
            "held_by_venue_rate_budget": len(rest_held) + len(ws_held),
            "max_rate_budget_wait_s": round(max((s.budget_wait_s for s in rest_held), default=0.0), 3),
            "client_ws_counters": {
                k: getattr(ws_orders, k) for k in ("sent", "held", "retried", "unknown", "fell_back")
            }
            if ws_orders is not None
            else None,
            "fills": fills,
            "stage_p50_us": stages.get(main_path, {}).get("p50", {}),
            "stage_p99_us": stages.get(main_path, {}).get("p99", {}),
            "stages_by_path_us": stages,
            "first_order_of_frame_p50_us": round(percentile(sorted(first_of_frame.values()), 50) / 1000, 1)
            if first_of_frame
            else None,
            "histogram": str(picture) if samples else None,
            **floor,
            "execution_client": type(client).__qualname__,
        },
        problems=problems,
    )


def _register(venue: str) -> None:
    register_latency(
        LatencyBenchmark(
            name=f"tick_to_trade_{venue}",
            description=f"{venue} simulator frame -> market maker requote -> order bytes on the wire (live node)",
            targets_us=TARGETS_US,
            run=lambda out_dir: _run_venue(venue, out_dir),
        )
    )


VENUES = [v for v in os.environ.get("TRADELOOP_BENCH_T2T_VENUES", ",".join(sorted(CONNECTORS))).split(",") if v]
"""Venues measured (``TRADELOOP_BENCH_T2T_VENUES=binance,okx``); every registered venue by default."""

for _venue in VENUES:
    if _venue in CONNECTORS:
        _register(_venue)
