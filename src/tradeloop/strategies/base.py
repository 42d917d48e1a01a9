"""Strategy API.

A strategy is a class with a frozen config (``config_type``) and event hooks. It reads books,
positions, open orders and balances through its :class:`StrategyContext` and acts only by
commands (``ctx.submit``, ``ctx.cancel``, ``ctx.amend``, ``ctx.cancel_all``), which go through the
OMS and the risk engine like any other order. The same class runs in backtest, paper and live.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, Generic, Protocol, TypeVar

import msgspec

from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import Clock, TimerCallback
from tradeloop.core.config import ConfigError
from tradeloop.core.ids import ClientOrderIdGenerator
from tradeloop.model import topics
from tradeloop.model.book import OrderBook
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, SubmitOrder
from tradeloop.model.data import BookStatus, Quote, Trade
from tradeloop.model.enums import OrderType, Side, TimeInForce
from tradeloop.model.events import OrderEvent, OrderFilled, StrategyAlert
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.model.order import Order


class StrategyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every strategy config: the instruments it trades (``"venue:SYMBOL"``)."""

    instruments: list[str] = msgspec.field(default_factory=list)


C = TypeVar("C", bound=StrategyConfig)


class _Books(Protocol):
    def book(self, instrument_id: InstrumentId) -> OrderBook | None: ...


class _Positions(Protocol):
    def position_qty(self, instrument_id: InstrumentId) -> int: ...

    def balance(self, venue: str, currency: str) -> int: ...


class _Orders(Protocol):
    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[Order]: ...

    def order(self, client_order_id: str) -> Order | None: ...


class StrategyContext:
    """What a strategy may read and do."""

    def __init__(
        self,
        strategy_id: str,
        clock: Clock,
        bus: MessageBus,
        ids: ClientOrderIdGenerator,
        instruments: Mapping[InstrumentId, Instrument],
        books: _Books,
        positions: _Positions,
        orders: _Orders,
        record_sink: Callable[[str, int, float], None] | None = None,
        fee_rates: Callable[[InstrumentId], tuple[int, int]] | Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.strategy_id = strategy_id
        self.clock = clock
        self._bus = bus
        self._ids = ids
        self.instruments = instruments
        self._books = books
        self._positions = positions
        self._orders = orders
        self._record_sink = record_sink
        self._fee_rates = fee_rates

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def instrument(self, instrument_id: InstrumentId) -> Instrument:
        return self.instruments[instrument_id]

    def resolve_instrument(self, instrument_id: InstrumentId) -> InstrumentId:
        """This node's id for a configured ``instrument_id``; venue names match in any case (``sima`` is ``simA``).

        Raises :class:`~tradeloop.core.config.ConfigError` naming the instruments the node has.
        """
        if instrument_id in self.instruments:
            return instrument_id
        for known in sorted(self.instruments):
            if known.venue.lower() == instrument_id.venue.lower() and known.symbol == instrument_id.symbol:
                return known
        names = ", ".join(str(i) for i in sorted(self.instruments))
        raise ConfigError(f"unknown instrument {instrument_id} (this node has {names})")

    def book(self, instrument_id: InstrumentId) -> OrderBook | None:
        """The book, or ``None`` if it does not exist or is invalid (do not price off it)."""
        book = self._books.book(instrument_id)
        return book if book is not None and book.valid else None

    def fee_rates(self, instrument_id: InstrumentId) -> tuple[int, int]:
        """(maker, taker) fee rates of the instrument's venue as nano fractions (``0.0004`` = ``400_000``).

        Fed by the node (a callable of the instrument id, or a mapping keyed by venue name); raises
        ``LookupError`` when the node did not say (a strategy may then take fees from its config).
        """
        source = self._fee_rates
        if source is None:
            raise LookupError(f"no fee rates known for {instrument_id}")
        if callable(source):
            return source(instrument_id)
        if instrument_id.venue not in source:
            raise LookupError(f"no fee rates known for venue {instrument_id.venue}")
        return source[instrument_id.venue]

    def position(self, instrument_id: InstrumentId) -> int:
        return self._positions.position_qty(instrument_id)

    def balance(self, venue: str, currency: str) -> int:
        return self._positions.balance(venue, currency)

    def open_orders(self, instrument_id: InstrumentId | None = None) -> list[Order]:
        """This strategy's open orders (optionally for one instrument)."""
        return [o for o in self._orders.open_orders(instrument_id) if o.strategy_id == self.strategy_id]

    def order(self, client_order_id: str) -> Order | None:
        return self._orders.order(client_order_id)

    def submit(
        self,
        instrument_id: InstrumentId,
        side: Side,
        qty: int,
        price: int | None = None,
        *,
        order_type: OrderType = OrderType.LIMIT,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
    ) -> str:
        """Send a new order; returns its client order id (the order may still be denied)."""
        cid = self._ids.next()
        self._bus.publish(
            topics.COMMANDS,
            SubmitOrder(
                ts=self.clock.now_ns(),
                strategy_id=self.strategy_id,
                instrument_id=instrument_id,
                side=side,
                qty=qty,
                price=price,
                order_type=order_type if price is not None else OrderType.MARKET,
                time_in_force=time_in_force,
                post_only=post_only,
                reduce_only=reduce_only,
                client_order_id=cid,
            ),
        )
        return cid

    def cancel(self, client_order_id: str) -> None:
        order = self._orders.order(client_order_id)
        if order is None:
            return
        self._bus.publish(
            topics.COMMANDS,
            CancelOrder(
                ts=self.clock.now_ns(),
                strategy_id=self.strategy_id,
                instrument_id=order.instrument_id,
                client_order_id=client_order_id,
            ),
        )

    def amend(self, client_order_id: str, price: int | None = None, qty: int | None = None) -> None:
        """Change a working order (cancel/replace on venues without amend)."""
        order = self._orders.order(client_order_id)
        if order is None:
            return
        self._bus.publish(
            topics.COMMANDS,
            AmendOrder(
                ts=self.clock.now_ns(),
                strategy_id=self.strategy_id,
                instrument_id=order.instrument_id,
                client_order_id=client_order_id,
                price=price,
                qty=qty,
            ),
        )

    def cancel_all(self, instrument_id: InstrumentId | None = None) -> None:
        """Cancel this strategy's open orders (optionally on one instrument)."""
        self._bus.publish(
            topics.COMMANDS,
            CancelAllOrders(
                ts=self.clock.now_ns(),
                strategy_id=self.strategy_id,
                instrument_id=instrument_id,
                only_strategy=True,
            ),
        )

    def set_timer(self, name: str, interval_ns: int, callback: TimerCallback) -> None:
        self.clock.set_timer(f"{self.strategy_id}.{name}", interval_ns, callback)

    def record(self, panel: str, value: float) -> None:
        """Record a display-only value (spread, z-score, reservation price...) for the report panel ``panel``.

        Floats are fine here: these values never reach an order or the books of account.
        """
        if self._record_sink is not None:
            self._record_sink(panel, self.clock.now_ns(), value)

    def alert(self, kind: str, message: str) -> None:
        """Put an incident on the record (journal, alert topic, report), e.g. a leg-risk hedge."""
        self._bus.publish(
            topics.STRATEGY_ALERTS,
            StrategyAlert(ts=self.clock.now_ns(), strategy_id=self.strategy_id, kind=kind, message=message),
        )


class Strategy(Generic[C]):
    """Base class: override the hooks you need. ``self.config`` is the decoded, frozen config."""

    config_type: ClassVar[type[StrategyConfig]] = StrategyConfig

    def __init__(self, strategy_id: str, config: C, ctx: StrategyContext) -> None:
        self.strategy_id = strategy_id
        self.config = config
        self.ctx = ctx
        self.instrument_ids = [InstrumentId.parse(s) for s in config.instruments]

    def on_start(self) -> None:
        """Called once before the first event."""

    def on_book(self, book: OrderBook) -> None:
        """A book of a subscribed instrument changed (and is valid)."""

    def on_book_status(self, status: BookStatus) -> None:
        """A book became invalid (stop pricing off it) or valid again."""

    def on_trade(self, trade: Trade) -> None:
        """A public trade."""

    def on_quote(self, quote: Quote) -> None:
        """The venue's best bid/ask message (when the venue sends one)."""

    def on_order(self, event: OrderEvent) -> None:
        """Any event of one of this strategy's orders (fills included)."""

    def on_fill(self, fill: OrderFilled) -> None:
        """One of this strategy's orders traded."""

    def on_timer(self, name: str, ts: int) -> None:
        """A timer set with ``ctx.set_timer`` fired."""

    def on_stop(self) -> None:
        """Called once after the last event."""
