"""Read-only views of trading state that components depend on instead of concrete classes.

The risk engine (and anything else that only needs to *look* at state) takes these Protocols, so it
depends neither on the OMS, the portfolio nor the book manager, and unit tests can pass small fakes.
The real implementations (OMS, portfolio, market data hub) satisfy them structurally.

All amounts are fixed-point nanos (:mod:`tradeloop.core.fixed`).
"""

from __future__ import annotations

from typing import Protocol

from tradeloop.model.book import OrderBook
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.order import Order


class PortfolioView(Protocol):
    """Positions, marks and account value."""

    def position_qty(self, instrument_id: InstrumentId) -> int:
        """Signed net position in base units (long > 0); 0 when flat or unknown."""
        ...

    def mark(self, instrument_id: InstrumentId) -> int | None:
        """Last mark price of the instrument, or ``None`` if it was never marked."""
        ...

    def gross_exposure(self) -> int:
        """Sum of ``|qty x mark|`` over every instrument on every venue, in quote nanos."""
        ...

    def equity(self) -> int:
        """Account equity (cash plus marked positions), in quote nanos."""
        ...


class OrderView(Protocol):
    """The OMS's live orders."""

    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[Order]:
        """Orders whose ``status.is_open`` is true, all or for one instrument."""
        ...


class BookView(Protocol):
    """Current L2 books."""

    def book(self, instrument_id: InstrumentId) -> OrderBook | None:
        """The instrument's book (possibly invalid: check ``valid``), or ``None`` if there is none."""
        ...
