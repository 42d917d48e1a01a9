"""``tradeloop live`` end to end against each venue's local simulator: the market maker's orders reach the
simulator through the venue's execution client, fills come back, the portfolio matches the simulator's
account exactly, and a clean shutdown leaves no open order. Plus the refusals before anything trades.

The helpers here (a simulator per venue, its test key in environment variables) are shared with the
paper-venue and record/replay tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest

from tests.secret_scan import record_output, register_test_secret
from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.core.config import ConfigError
from tradeloop.core.ids import ClientOrderIdGenerator
from tradeloop.model.commands import SubmitOrder
from tradeloop.model.enums import Side
from tradeloop.model.events import Event, OrderAccepted, OrderFilled
from tradeloop.model.instrument import Instrument
from tradeloop.runtime.config import StrategySection
from tradeloop.runtime.live import LiveSession, LiveStartError
from tradeloop.runtime.live_config import CredentialRefs, LiveConfig, LiveSection, LiveVenueSection
from tradeloop.runtime.simulator_feed import run_synthetic
from tradeloop.security.credentials import FIELDS
from tradeloop.security.master_key import KeyStoreError
from tradeloop.trading.rebuild import rebuild_state
from tradeloop.trading.risk_config import RiskConfig
from tradeloop.venues.connectors import CONNECTORS, get_connector
from tradeloop.venues.simulator.local import build_simulator
from tradeloop.venues.simulator.server import VenueSimulator

NO_VENUES: Final = "no venue connector registered in tradeloop.venues.connectors.CONNECTORS yet"
SPEED: Final = 8.0
"""Synthetic market pace at the simulators (x real time)."""
RUN_S: Final = 2.0
START_PRICE: Final = fixed.parse("60000")


def venue_params() -> list[Any]:
    if not CONNECTORS:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_VENUES), id="no-venues")]
    return [pytest.param(v, id=v) for v in sorted(CONNECTORS)]


def first_venue() -> str:
    if not CONNECTORS:
        pytest.skip(NO_VENUES)
    return "binance" if "binance" in CONNECTORS else sorted(CONNECTORS)[0]


def first_instrument(venue: str) -> Instrument:
    return get_connector(venue).instruments()[0]


def quote_qty(inst: Instrument) -> int:
    """The smallest size the venue accepts that also clears twice its minimum notional at 60,000."""
    unit = max(inst.lot_size, -(-inst.min_qty // inst.lot_size) * inst.lot_size)
    by_notional = fixed.div(2 * inst.min_notional, START_PRICE, "ceil") if inst.min_notional else 0
    return max(unit, -(-by_notional // inst.lot_size) * inst.lot_size)


def market_maker(inst: Instrument) -> StrategySection:
    qty = quote_qty(inst)
    return StrategySection(
        name="market_making",
        params={
            "instruments": [str(inst.id)],
            "order_qty": fixed.to_str(qty),
            "max_inventory": fixed.to_str(qty * 20),
            "refresh_threshold_ticks": 2,
        },
    )


def key_fields(venue: str) -> dict[str, str]:
    """The simulator's test key of ``venue``: field name -> value, for the fields it has."""
    creds = get_connector(venue).test_credentials()
    out: dict[str, str] = {}
    for field in FIELDS:
        try:
            out[field] = creds.field(field).reveal()
        except KeyStoreError:
            continue
        register_test_secret(out[field])
    return out


def credential_refs(monkeypatch: pytest.MonkeyPatch, venue: str) -> CredentialRefs:
    """The simulator's test key, put in environment variables the config refers to."""
    refs: dict[str, str] = {}
    for field, value in key_fields(venue).items():
        name = f"TL_TEST_{venue.upper()}_{field.upper()}"
        monkeypatch.setenv(name, value)
        refs[field] = f"env:{name}"
    return CredentialRefs(name="simulator", **refs)


def live_config(monkeypatch: pytest.MonkeyPatch, venue: str, **live: Any) -> LiveConfig:
    inst = first_instrument(venue)
    live.setdefault("stop_timeout_s", 3.0)  # the simulator answers in milliseconds
    return LiveConfig(
        node_tag="LT",
        valuation=inst.quote,
        strategy=market_maker(inst),
        risk=RiskConfig(order_rate_max=200),
        live=LiveSection(
            venues={venue: LiveVenueSection(symbols=[inst.id.symbol], credentials=credential_refs(monkeypatch, venue))},
            **live,
        ),
    )


FEEDS: dict[int, asyncio.Task[Any]] = {}
"""id(simulator) -> the task driving its books (tests pause the market by canceling it)."""


@contextlib.asynccontextmanager
async def running_simulator(venue: str, *, seed: int = 5, speed: float = SPEED) -> AsyncIterator[VenueSimulator]:
    """The venue's simulator on a free local port, its books driven by the synthetic market."""
    sim = build_simulator(get_connector(venue))
    await sim.start()
    FEEDS[id(sim)] = sim.spawn(run_synthetic(sim.core, seed=seed, speed=speed), name="synthetic")
    try:
        yield sim
    finally:
        FEEDS.pop(id(sim), None)
        await sim.stop()


@contextlib.contextmanager
def simulator_thread(venue: str, *, seed: int = 5, speed: float = SPEED) -> Iterator[VenueSimulator]:
    """The simulator on its own event loop in a thread (for CLI subprocesses to talk to)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            async with running_simulator(venue, seed=seed, speed=speed) as sim:
                box["sim"] = sim
                box["stop"] = asyncio.Event()
                box["loop"] = asyncio.get_running_loop()
                ready.set()
                await box["stop"].wait()

        try:
            asyncio.run(main())
        finally:
            ready.set()

    thread = threading.Thread(target=serve, name=f"{venue}-simulator", daemon=True)
    thread.start()
    assert ready.wait(10), "simulator did not start"
    if "sim" not in box:
        raise RuntimeError("simulator failed to start")
    try:
        yield box["sim"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tradeloop.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", **env},
    )
    record_output("tradeloop " + args[0], result.stdout + result.stderr)
    return result


def balances_of(sim: VenueSimulator) -> dict[str, int]:
    return {b.currency: b.total for b in sim.core.balances().balances}


# -- end to end ------------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", venue_params())
def test_market_maker_trades_on_the_simulator_and_stops_clean(venue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = live_config(monkeypatch, venue)
    inst = first_instrument(venue)

    async def scenario() -> tuple[LiveSession, list[Event], dict[str, int]]:
        async with running_simulator(venue) as sim:
            at_venue: list[Event] = []
            sim.core.add_private_listener(at_venue.append)
            before = balances_of(sim)
            session = LiveSession(config, endpoint=sim.base_url, duration_s=RUN_S, handle_signals=False)
            await session.run()
            assert sim.core.open_orders() == [], "orders left open at the simulator"
            assert session.engine is not None
            # As the venue reports them (a perp's open cost is part of the venue's wallet, not spent cash).
            assert {ccy: session.engine.portfolio.wallet_balance(venue, ccy) for ccy in before} == balances_of(sim)
            return session, at_venue, before

    session, at_venue, before = asyncio.run(scenario())
    engine = session.engine
    assert engine is not None
    assert session.stop_reason == "duration reached"
    assert session.orders_left == {venue: 0}
    # Orders reached the simulator through the venue's API, under the engine's client order ids.
    sent = {cid for cid, o in engine.oms.orders.items() if o.instrument_id == inst.id}
    accepted_at_venue = {e.client_order_id for e in at_venue if isinstance(e, OrderAccepted)}
    assert accepted_at_venue and accepted_at_venue <= sent
    # Every fill the simulator made came back once, with the simulator's price, size and fee.
    venue_fills = sorted(
        (e.client_order_id, e.last_price, e.last_qty, e.fee) for e in at_venue if isinstance(e, OrderFilled)
    )
    engine_fills = sorted((e.client_order_id, e.last_price, e.last_qty, e.fee) for e in _journal_fills(engine))
    assert venue_fills, "the market maker was never filled"
    assert engine_fills == venue_fills
    # The journal alone rebuilds the same account (starting balances are the venue's own).
    rebuilt = rebuild_state((r for _, _, r in engine.journal.read()), valuation=config.valuation).portfolio
    assert rebuilt is not None and rebuilt.balances == engine.portfolio.balances
    assert {ccy: rebuilt.balance(venue, ccy) for ccy in before} != before  # it did trade
    # The engine's own view ends clean too (checked last: every check above holds either way).
    stuck = engine.oms.open_orders()
    assert stuck == []


def _journal_fills(engine: Any) -> list[OrderFilled]:
    return [r for _, _, r in engine.journal.read() if isinstance(r, OrderFilled)]


def test_keep_orders_leaves_the_quotes_at_the_venue(monkeypatch: pytest.MonkeyPatch) -> None:
    venue = first_venue()
    config = live_config(monkeypatch, venue)

    async def scenario() -> tuple[LiveSession, int]:
        async with running_simulator(venue) as sim:
            session = LiveSession(config, endpoint=sim.base_url, duration_s=1.5, keep_orders=True, handle_signals=False)
            await session.run()
            return session, len(sim.core.open_orders())

    session, open_at_venue = asyncio.run(scenario())
    assert session.engine is not None
    working = [o for o in session.engine.oms.open_orders()]
    assert open_at_venue == len(working) > 0
    assert session.orders_left == {}


def test_orders_from_before_are_refused_or_canceled(monkeypatch: pytest.MonkeyPatch) -> None:
    venue = first_venue()
    inst = first_instrument(venue)

    async def stale_order(sim: VenueSimulator) -> None:
        """An order placed through the venue's API by an earlier process (another execution client)."""
        connector = get_connector(venue)
        client: Any = connector.execution(
            connector.test_credentials(),
            {inst.id: inst},
            LiveClock(),
            lambda _e: None,
            connector.local_urls(sim.base_url),
        )
        await client.start()
        client.submit(
            SubmitOrder(
                ts=time.time_ns(),
                strategy_id="old",
                instrument_id=inst.id,
                client_order_id=ClientOrderIdGenerator("OLD", time.time_ns()).next(),
                side=Side.BUY,
                qty=quote_qty(inst) * 4,
                price=inst.round_price(fixed.parse("30000")),
                post_only=True,
            )
        )
        for _ in range(200):
            if sim.core.open_orders():
                break
            await asyncio.sleep(0.01)
        await client.stop()

    async def scenario() -> tuple[str, int, int]:
        async with running_simulator(venue) as sim:
            await stale_order(sim)
            assert len(sim.core.open_orders()) == 1
            refusing = LiveSession(
                live_config(monkeypatch, venue), endpoint=sim.base_url, duration_s=1, handle_signals=False
            )
            with pytest.raises(LiveStartError) as err:
                await refusing.run()
            still_open = len(sim.core.open_orders())
            canceling = LiveSession(
                live_config(monkeypatch, venue, existing_orders="cancel"),
                endpoint=sim.base_url,
                duration_s=1,
                handle_signals=False,
            )
            await canceling.run()
            return str(err.value), still_open, len(sim.core.open_orders())

    message, still_open, after = asyncio.run(scenario())
    assert "1 open order(s) already at the venue" in message and venue in message
    assert still_open == 1
    assert after == 0


def test_no_credentials_or_an_unknown_symbol_refuse_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    venue = first_venue()
    inst = first_instrument(venue)
    base = live_config(monkeypatch, venue)
    section = base.live.venues[venue]
    no_key = LiveConfig(
        valuation=inst.quote,
        strategy=base.strategy,
        live=LiveSection(venues={venue: LiveVenueSection(symbols=section.symbols)}),
    )
    with pytest.raises(ConfigError, match=f"live.venues.{venue}: no credentials"):
        LiveSession(no_key, endpoint="http://127.0.0.1:9")
    bad_symbol = LiveConfig(
        valuation=inst.quote,
        strategy=base.strategy,
        live=LiveSection(venues={venue: LiveVenueSection(symbols=["NOPE-NOPE"], credentials=section.credentials)}),
    )
    with pytest.raises(ConfigError) as err:
        LiveSession(bad_symbol, endpoint="http://127.0.0.1:9")
    assert "unknown symbol 'NOPE-NOPE'" in str(err.value) and inst.id.symbol in str(err.value)
    with pytest.raises(ConfigError, match="no connector for venue 'mtgox'"):
        LiveSession(
            LiveConfig(
                live=LiveSection(venues={"mtgox": LiveVenueSection(symbols=["X"], credentials=section.credentials)})
            ),
        )


def test_cli_trades_against_a_simulator_and_never_prints_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue = first_venue()
    inst = first_instrument(venue)
    fingerprint = get_connector(venue).test_credentials().fingerprint
    qty = fixed.to_str(quote_qty(inst))
    env = {f"TL_CLI_{field.upper()}": value for field, value in key_fields(venue).items()}
    lines = [f'{field} = "env:TL_CLI_{field.upper()}"' for field in key_fields(venue)]
    config = tmp_path / "live.toml"
    config.write_text(
        f"""
valuation = "{inst.quote}"

[strategy]
name = "market_making"
params = {{ instruments = ["{inst.id}"], order_qty = "{qty}" }}

[live.venues.{venue}]
symbols = ["{inst.id.symbol}"]
credentials = {{ {", ".join(lines)} }}
"""
    )
    missing = run_cli("live", "--config", str(config), "--endpoint", "http://127.0.0.1:9", env={})
    assert missing.returncode == 2, missing.stderr
    assert "TL_CLI_API_KEY is not set" in missing.stderr
    with simulator_thread(venue) as sim:
        result = run_cli("live", "--config", str(config), "--endpoint", sim.base_url, "--duration", "2", env=env)
        open_after = len(sim.core.open_orders())
    assert result.returncode == 0, result.stderr
    assert "0 open order(s) left" in result.stderr and "session ended: duration reached" in result.stderr
    assert fingerprint in result.stderr
    for value in env.values():
        assert value not in result.stdout + result.stderr
    assert open_after == 0


def _with_order_entry(config: LiveConfig, venue: str, order_entry: str) -> LiveConfig:
    section = msgspec.structs.replace(config.live.venues[venue], order_entry=order_entry)
    return msgspec.structs.replace(config, live=msgspec.structs.replace(config.live, venues={venue: section}))


@pytest.mark.parametrize("order_entry", ["websocket", "rest"])
def test_order_entry_is_chosen_per_venue_in_the_config(order_entry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    venue = "okx"
    config = _with_order_entry(live_config(monkeypatch, venue), venue, order_entry)

    async def scenario() -> LiveSession:
        async with running_simulator(venue) as sim:
            session = LiveSession(config, endpoint=sim.base_url, duration_s=RUN_S, handle_signals=False)
            await session.run()
            return session

    session = asyncio.run(scenario())
    assert session.engine is not None and session.engine.execution.sent > 0
    client = session.links[venue].client
    assert client is not None and client.order_entry == order_entry  # type: ignore[attr-defined]
    entry = client.ws_orders  # type: ignore[attr-defined]
    if order_entry == "websocket":
        assert entry is not None and entry.sent > 0, "orders went out on the socket"
    else:
        assert entry is None, "with order_entry = 'rest' no order op is written to a socket"


def test_a_venue_without_a_websocket_order_api_refuses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _with_order_entry(live_config(monkeypatch, "coinbase"), "coinbase", "websocket")

    async def scenario() -> None:
        async with running_simulator("coinbase") as sim:
            session = LiveSession(config, endpoint=sim.base_url, duration_s=RUN_S, handle_signals=False)
            await session.run()

    with pytest.raises(ConfigError, match=r"live\.venues\.coinbase: .*no WebSocket order API"):
        asyncio.run(scenario())
