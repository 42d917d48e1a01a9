"""The simulated venue: matches our orders against replayed L2 books for backtest and paper trading.

* :class:`~tradeloop.venues.sim.config.SimVenueConfig`: latencies, fees, queue model, margin.
* :class:`~tradeloop.venues.sim.venue.SimulatedVenue`: the exchange (matching + account).
* :class:`~tradeloop.venues.sim.execution.SimExecutionClient`: the engine's client, with latency
  and fault injection.
"""

from tradeloop.venues.sim.config import QueueModel, SimVenueConfig
from tradeloop.venues.sim.execution import SimExecutionClient
from tradeloop.venues.sim.matching import MatchingEngine
from tradeloop.venues.sim.orders import SimOrderView, VenuePosition
from tradeloop.venues.sim.venue import SimulatedVenue

__all__ = [
    "MatchingEngine",
    "QueueModel",
    "SimExecutionClient",
    "SimOrderView",
    "SimVenueConfig",
    "SimulatedVenue",
    "VenuePosition",
]
