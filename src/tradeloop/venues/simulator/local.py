"""A venue's local simulator built from its connector (``tradeloop simulate``, the conformance suite)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from tradeloop.core import fixed
from tradeloop.core.clock import LiveClock
from tradeloop.model.instrument import Instrument
from tradeloop.venues.connector import VenueConnector
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["DEFAULT_BASE_BALANCE", "DEFAULT_QUOTE_BALANCE", "build_simulator", "default_balances", "parse_balances"]

DEFAULT_QUOTE_BALANCE: Final = 100_000 * fixed.SCALE
DEFAULT_BASE_BALANCE: Final = 1 * fixed.SCALE


def default_balances(instruments: Sequence[Instrument]) -> dict[str, int]:
    """100,000 of every quote (settle) currency and 1 of every base currency of ``instruments``."""
    balances: dict[str, int] = {}
    for inst in instruments:
        balances[inst.settle] = DEFAULT_QUOTE_BALANCE
    for inst in instruments:
        balances.setdefault(inst.base, DEFAULT_BASE_BALANCE)
    return dict(sorted(balances.items()))


def parse_balances(text: str) -> dict[str, int]:
    """``"USDT=100000,BTC=1.5"`` -> nanos per currency; ``ValueError`` naming the bad part."""
    out: dict[str, int] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        ccy, sep, amount = part.partition("=")
        ccy = ccy.strip().upper()
        if not sep or not ccy or not ccy.isalnum():
            raise ValueError(f"balance {part!r} must look like CCY=AMOUNT, e.g. USDT=100000")
        try:
            value = fixed.parse(amount.strip())
        except fixed.FixedPointError as exc:
            raise ValueError(f"balance {part!r}: {exc}") from None
        if value < 0:
            raise ValueError(f"balance {part!r} must not be negative")
        if ccy in out:
            raise ValueError(f"balance of {ccy} given twice")
        out[ccy] = value
    if not out:
        raise ValueError("no balances given (expected CCY=AMOUNT,...)")
    return out


def build_simulator(
    connector: VenueConnector,
    *,
    instruments: Sequence[Instrument] | None = None,
    balances: Mapping[str, int] | None = None,
    sim_config: SimVenueConfig | None = None,
    clock: LiveClock | None = None,
) -> VenueSimulator:
    """The connector's dialect on a core with its instruments (default: all it lists), accepting its
    test credentials. Call ``await sim.start()`` to serve it."""
    listed = list(instruments) if instruments is not None else connector.instruments()
    core = SimulatorCore(
        connector.venue,
        listed,
        balances=balances if balances is not None else default_balances(listed),
        sim_config=sim_config,
        clock=clock,
    )
    return VenueSimulator(core, connector.dialect(), connector.test_credentials())
