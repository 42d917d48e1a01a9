"""Per-instrument counts of the market data a service handled (for its :class:`~tradeloop.deploy.codec.Progress`)."""

from __future__ import annotations

from collections import Counter

from tradeloop.core.bus import MessageBus
from tradeloop.data.book_manager import BookManager
from tradeloop.model import topics
from tradeloop.model.data import Quote, Trade

__all__ = ["MarketCounts"]


class MarketCounts:
    """Trades and quotes seen on a bus, and the book manager's own counts, keyed by instrument id text."""

    def __init__(self, bus: MessageBus, books: BookManager) -> None:
        self._books = books
        self._trades: Counter[str] = Counter()
        self._quotes: Counter[str] = Counter()
        bus.subscribe(topics.TRADES, self._on_trade)
        bus.subscribe(topics.QUOTES, self._on_quote)

    def _on_trade(self, trade: Trade) -> None:
        self._trades[str(trade.instrument_id)] += 1

    def _on_quote(self, quote: Quote) -> None:
        self._quotes[str(quote.instrument_id)] += 1

    def books(self) -> dict[str, int]:
        """Last sequence of every valid book."""
        return {str(iid): b.last_seq for iid, b in self._books.books().items() if b.valid}

    def deltas(self) -> dict[str, int]:
        """Delta batches applied per book (snapshots not counted)."""
        return {str(iid): self._books.counters(iid).applied for iid in self._books.books()}

    def trades(self) -> dict[str, int]:
        return dict(self._trades)

    def quotes(self) -> dict[str, int]:
        return dict(self._quotes)
