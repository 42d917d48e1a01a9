"""Builders for simulated-venue tests: instruments, hand-made book data, a venue harness."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from tradeloop.core import fixed
from tradeloop.core.clock import SimClock
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import InstrumentKind, OrderType, Side, TimeInForce
from tradeloop.model.events import Event, OrderFilled
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.sim.config import SimVenueConfig
from tradeloop.venues.sim.venue import SimulatedVenue

E = TypeVar("E")

SPOT_ID = InstrumentId("sim", "BTCUSDT")
PERP_ID = InstrumentId("sim", "BTCUSDT-PERP")


def d(text: str) -> int:
    """Decimal string to nanos."""
    return fixed.parse(text)


SPOT = Instrument(id=SPOT_ID, base="BTC", quote="USDT", tick_size=d("0.01"), lot_size=d("0.00001"), min_notional=d("5"))
PERP = Instrument(
    id=PERP_ID,
    base="BTC",
    quote="USDT",
    kind=InstrumentKind.LINEAR_PERP,
    tick_size=d("0.01"),
    lot_size=d("0.00001"),
    min_notional=d("5"),
)
INSTRUMENTS = {SPOT_ID: SPOT, PERP_ID: PERP}

NO_FEES = SimVenueConfig(maker_fee=0, taker_fee=0)


def levels(*pairs: tuple[str, str]) -> list[tuple[int, int]]:
    return [(d(p), d(q)) for p, q in pairs]


class Harness:
    """A :class:`SimulatedVenue` on a :class:`SimClock` whose events are collected in ``events``."""

    def __init__(
        self,
        config: SimVenueConfig = NO_FEES,
        balances: Mapping[str, int] | None = None,
        instruments: Mapping[InstrumentId, Instrument] = INSTRUMENTS,
    ) -> None:
        self.clock = SimClock(1_000)
        self.events: list[Event] = []
        self._seq = 0
        self._cid = 0
        self.venue = SimulatedVenue(
            "sim",
            instruments,
            config,
            self.clock,
            self.events.append,
            balances if balances is not None else {"USDT": d("1000000"), "BTC": d("100")},
        )

    # -- market data --------------------------------------------------------------------------

    def book(
        self,
        bids: Sequence[tuple[str, str]] = (),
        asks: Sequence[tuple[str, str]] = (),
        snapshot: bool = False,
        iid: InstrumentId = SPOT_ID,
    ) -> None:
        self._seq += 1
        ts = self.clock.now_ns()
        self.venue.on_market_data(
            BookDeltas(iid, ts, ts, self._seq, self._seq, levels(*bids), levels(*asks), snapshot=snapshot)
        )

    def trade(self, price: str, qty: str, aggressor: Side, iid: InstrumentId = SPOT_ID) -> None:
        ts = self.clock.now_ns()
        self.venue.on_market_data(Trade(iid, ts, ts, d(price), d(qty), aggressor))

    # -- requests -----------------------------------------------------------------------------

    def submit(
        self,
        side: Side,
        qty: str,
        price: str | None = None,
        iid: InstrumentId = SPOT_ID,
        cid: str | None = None,
        **kw: Any,
    ) -> str:
        if cid is None:
            self._cid += 1
            cid = f"c{self._cid}"
        self.venue.handle_submit(self.submit_cmd(side, qty, price, iid, cid, **kw))
        return cid

    def submit_cmd(
        self, side: Side, qty: str, price: str | None, iid: InstrumentId, cid: str, **kw: Any
    ) -> SubmitOrder:
        order_type = OrderType.MARKET if price is None else OrderType.LIMIT
        return SubmitOrder(
            ts=self.clock.now_ns(),
            strategy_id=kw.pop("strategy_id", "s1"),
            instrument_id=iid,
            side=side,
            qty=d(qty),
            price=None if price is None else d(price),
            order_type=kw.pop("order_type", order_type),
            time_in_force=kw.pop("time_in_force", TimeInForce.GTC),
            client_order_id=cid,
            **kw,
        )

    def cancel(self, cid: str, iid: InstrumentId = SPOT_ID) -> None:
        self.venue.handle_cancel(CancelOrder(ts=0, strategy_id="s1", instrument_id=iid, client_order_id=cid))

    def cancel_all(self, iid: InstrumentId | None = None) -> None:
        self.venue.handle_cancel_all(CancelAllOrders(ts=0, strategy_id="s1", instrument_id=iid))

    def amend(self, cid: str, price: str | None = None, qty: str | None = None, iid: InstrumentId = SPOT_ID) -> None:
        self.venue.handle_amend(
            AmendOrder(
                ts=0,
                strategy_id="s1",
                instrument_id=iid,
                client_order_id=cid,
                price=None if price is None else d(price),
                qty=None if qty is None else d(qty),
            )
        )

    def query(self, cid: str, iid: InstrumentId = SPOT_ID) -> None:
        self.venue.handle_query(QueryOrder(ts=0, instrument_id=iid, client_order_id=cid))

    # -- reading ------------------------------------------------------------------------------

    def of(self, kind: type[E], cid: str | None = None) -> list[E]:
        """Collected events of one type (optionally of one order)."""
        out = [e for e in self.events if isinstance(e, kind)]
        if cid is not None:
            out = [e for e in out if getattr(e, "client_order_id", None) == cid]
        return out

    def fills(self, cid: str | None = None) -> list[OrderFilled]:
        return self.of(OrderFilled, cid)

    def filled_qty(self, cid: str) -> int:
        return sum(f.last_qty for f in self.fills(cid))

    def balance(self, currency: str) -> tuple[int, int]:
        """(total, locked) of one currency."""
        for b in self.venue.balances().balances:
            if b.currency == currency:
                return b.total, b.locked
        return 0, 0

    def clear(self) -> None:
        self.events.clear()
