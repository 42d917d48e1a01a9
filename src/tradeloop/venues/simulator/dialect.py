"""The part of a local simulator that is venue-specific."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tradeloop.venues.simulator.server import VenueSimulator

__all__ = ["Dialect"]


class Dialect(Protocol):
    """A venue's REST routes and WebSocket endpoints on a :class:`VenueSimulator`."""

    venue: str

    def install(self, sim: VenueSimulator) -> None:
        """Add the venue's REST routes and WebSocket endpoints (same paths as production) to ``sim.app``."""
