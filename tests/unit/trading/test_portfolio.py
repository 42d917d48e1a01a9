from __future__ import annotations

import pytest

from tradeloop.core import fixed
from tradeloop.model.enums import InstrumentKind, LiquiditySide, Side
from tradeloop.model.events import OrderFilled
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.trading.portfolio import Portfolio, PortfolioError

P = fixed.parse
SPOT = InstrumentId("v1", "BTCUSDT")
PERP = InstrumentId("v2", "BTCUSDT")


def instruments() -> list[Instrument]:
    return [
        Instrument(id=SPOT, base="BTC", quote="USDT", tick_size=P("0.01"), lot_size=P("0.00001")),
        Instrument(
            id=PERP, base="BTC", quote="USDT", kind=InstrumentKind.LINEAR_PERP, tick_size=P("0.1"), lot_size=P("0.001")
        ),
    ]


_n = iter(range(10**6))


def fill(iid: InstrumentId, side: Side, qty: str, price: str, fee: str = "0", ccy: str = "USDT") -> OrderFilled:
    return OrderFilled(
        ts=0,
        instrument_id=iid,
        client_order_id="c",
        venue_order_id="v",
        trade_id=f"t{next(_n)}",
        side=side,
        last_qty=P(qty),
        last_price=P(price),
        fee=P(fee),
        fee_currency=ccy,
        liquidity=LiquiditySide.TAKER,
    )


def test_spot_and_perp_hand_computed() -> None:
    pf = Portfolio(instruments(), {"v1": {"USDT": P("10000"), "BTC": P("1")}, "v2": {"USDT": P("5000")}})
    assert pf.position_qty(SPOT) == P("1") and pf.initial_equity is None  # holdings wait for a mark
    pf.update_mark(SPOT, P("100"))
    pf.update_mark(PERP, P("100"))
    assert pf.initial_equity == P("15100")
    pf.apply_fill(fill(SPOT, Side.BUY, "2", "100", fee="0.2"))
    pf.apply_fill(fill(PERP, Side.SELL, "3", "101", fee="0.3"))
    assert pf.balance("v1", "USDT") == P("9799.8") and pf.balance("v1", "BTC") == P("3")
    assert pf.balance("v2", "USDT") == P("5302.7")  # synthetic cash: +303 notional - 0.3 fee
    assert pf.wallet_balance("v2", "USDT") == P("4999.7")  # as the venue reports it: minus the open cost
    pf.update_mark(SPOT, P("110"))
    pf.update_mark(PERP, P("110"))
    # equity = cash + sum(position x mark), exactly
    assert pf.equity() == P("9799.8") + P("5302.7") + 3 * P("110") - 3 * P("110")
    assert pf.unrealized_pnl() == P("30") + P("-27")  # spot 3 BTC from 100 to 110; short 3 from 101 to 110
    assert pf.equity() - pf.initial_equity == pf.pnl() == P("3") - P("0.5")


def test_invalid_fill_changes_nothing() -> None:
    pf = Portfolio(instruments(), {"v1": {"USDT": P("10000")}})
    before = pf.snapshot()
    with pytest.raises(PortfolioError):
        pf.apply_fill(fill(SPOT, Side.BUY, "1", "100", fee="0.001", ccy="BNB"))
    with pytest.raises(PortfolioError):
        pf.apply_fill(fill(InstrumentId("v9", "X"), Side.BUY, "1", "100"))
    assert pf.snapshot() == before


def test_instruments_must_share_the_valuation_currency() -> None:
    odd = Instrument(
        id=InstrumentId("v1", "ETHBTC"), base="ETH", quote="BTC", tick_size=P("0.00001"), lot_size=P("0.001")
    )
    with pytest.raises(PortfolioError):
        Portfolio([odd], {})
