"""Local venue simulators: one server per venue speaking that venue's own REST and WebSocket dialect,
backed by the simulated matching engine, with fault injection.

* :class:`~tradeloop.venues.simulator.faults.FaultPlan`: armed faults, consumed by dialects.
* :class:`~tradeloop.venues.simulator.core.SimulatorCore`: the exchange (a ``SimulatedVenue`` on a
  ``LiveClock``) driven by domain commands.
* :class:`~tradeloop.venues.simulator.server.VenueSimulator`: the aiohttp server, control routes.
* :class:`~tradeloop.venues.simulator.dialect.Dialect`: what each venue's ``simulator.py`` implements.
"""

from tradeloop.venues.simulator.core import SimulatorCore
from tradeloop.venues.simulator.dialect import Dialect
from tradeloop.venues.simulator.faults import FAULTS, FaultError, FaultPlan
from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["FAULTS", "Dialect", "FaultError", "FaultPlan", "SimulatorCore", "VenueSimulator"]
