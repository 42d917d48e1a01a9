"""Journal records for the persistence tests: one realistic instance of every type, and an order-flow mix."""

from __future__ import annotations

from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import BookStatus
from tradeloop.model.enums import (
    InstrumentKind,
    LiquiditySide,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    TradingState,
)
from tradeloop.model.events import (
    AccountSnapshot,
    Balance,
    BalanceCorrected,
    InstrumentAdded,
    MarkPrice,
    NodeRecovered,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderOutcomeUnknown,
    OrderPendingAmend,
    OrderPendingCancel,
    OrderRejected,
    OrderStatusReport,
    OrderSubmitted,
    OrderTransitionRefused,
    RiskAlert,
    StrategyAlert,
    TradingStateChanged,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.persistence import JournalRecord

BTC = InstrumentId("binance", "BTCUSDT")
T0 = 1_717_200_000_000_000_000  # 2024-06-01T00:00:00Z in ns
CID = "T0lxq2ps1"
PX = 67_123_450_000_000  # 67123.45
QTY = 1_500_000  # 0.0015


def one_of_each() -> list[JournalRecord]:
    """One instance of every journal record type, with realistic fixed-point values."""
    records: list[JournalRecord] = [
        InstrumentAdded(
            ts=T0,
            instrument=Instrument(
                id=BTC,
                base="BTC",
                quote="USDT",
                kind=InstrumentKind.SPOT,
                tick_size=10_000_000,
                lot_size=10_000,
                min_qty=10_000,
                min_notional=5_000_000_000,
            ),
        ),
        AccountSnapshot(
            ts=T0,
            venue="binance",
            balances=[Balance("BTC", 250_000_000), Balance("USDT", 100_000_000_000_000, locked=1_000_000_000)],
        ),
        SubmitOrder(
            ts=T0 + 1,
            strategy_id="mm-btc",
            instrument_id=BTC,
            side=Side.BUY,
            qty=QTY,
            price=PX,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            post_only=True,
            client_order_id=CID,
        ),
        OrderInitialized(
            ts=T0 + 1,
            instrument_id=BTC,
            client_order_id=CID,
            strategy_id="mm-btc",
            side=Side.BUY,
            qty=QTY,
            price=PX,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            post_only=True,
            reduce_only=False,
        ),
        OrderDenied(ts=T0 + 2, instrument_id=BTC, client_order_id=CID, reason="max_order_qty exceeded"),
        OrderSubmitted(ts=T0 + 3, instrument_id=BTC, client_order_id=CID),
        OrderAccepted(ts=T0 + 4, instrument_id=BTC, client_order_id=CID, venue_order_id="28457102935"),
        OrderRejected(
            ts=T0 + 5,
            instrument_id=BTC,
            client_order_id=CID,
            reason=RejectReason.POST_ONLY_WOULD_CROSS,
            message="-2010",
        ),
        OrderFilled(
            ts=T0 + 6,
            instrument_id=BTC,
            client_order_id=CID,
            venue_order_id="28457102935",
            trade_id="3601829451",
            side=Side.BUY,
            last_qty=500_000,
            last_price=PX,
            fee=-33_561,
            fee_currency="USDT",
            liquidity=LiquiditySide.MAKER,
        ),
        OrderPendingCancel(ts=T0 + 7, instrument_id=BTC, client_order_id=CID),
        OrderCanceled(ts=T0 + 8, instrument_id=BTC, client_order_id=CID, reason="strategy"),
        OrderCancelRejected(
            ts=T0 + 9,
            instrument_id=BTC,
            client_order_id=CID,
            reason=RejectReason.UNKNOWN_ORDER,
            message="Unknown order sent.",
        ),
        OrderPendingAmend(ts=T0 + 10, instrument_id=BTC, client_order_id=CID, price=PX - 10_000_000, qty=None),
        OrderAmended(ts=T0 + 11, instrument_id=BTC, client_order_id=CID, price=PX - 10_000_000, qty=QTY),
        OrderAmendRejected(ts=T0 + 12, instrument_id=BTC, client_order_id=CID, reason=RejectReason.RATE_LIMITED),
        OrderExpired(ts=T0 + 13, instrument_id=BTC, client_order_id=CID, reason="IOC remainder"),
        OrderOutcomeUnknown(
            ts=T0 + 14, instrument_id=BTC, client_order_id=CID, request="submit", detail="timeout after 5000 ms"
        ),
        OrderStatusReport(
            ts=T0 + 15,
            instrument_id=BTC,
            client_order_id=CID,
            venue_order_id="28457102935",
            status=OrderStatus.PARTIALLY_FILLED,
            filled_qty=500_000,
        ),
        OrderStatusReport(ts=T0 + 15, instrument_id=BTC, client_order_id=CID, venue_order_id=None, status=None),
        OrderTransitionRefused(
            ts=T0 + 16, instrument_id=BTC, client_order_id=CID, status=OrderStatus.FILLED, event="OrderCanceled"
        ),
        CancelOrder(ts=T0 + 17, strategy_id="mm-btc", instrument_id=BTC, client_order_id=CID),
        CancelAllOrders(ts=T0 + 18, strategy_id="ops", venue="binance", reason="kill switch"),
        CancelAllOrders(ts=T0 + 18, strategy_id="mm-btc", instrument_id=BTC, only_strategy=True),
        AmendOrder(ts=T0 + 19, strategy_id="mm-btc", instrument_id=BTC, client_order_id=CID, price=PX + 10_000_000),
        QueryOrder(ts=T0 + 20, instrument_id=BTC, client_order_id=CID),
        TradingStateChanged(ts=T0 + 21, state=TradingState.REDUCING, reason="daily loss limit"),
        RiskAlert(ts=T0 + 22, check="stale_data", message="binance:BTCUSDT book older than 2000 ms"),
        StrategyAlert(ts=T0 + 22, strategy_id="S1", kind="leg_risk", message="hedged 0.002 BTC on binance"),
        MarkPrice(ts=T0 + 23, instrument_id=BTC, price=PX + 5_000_000),
        BookStatus(BTC, T0 + 24, False, "sequence gap 4512..4520"),
        BookStatus(BTC, T0 + 25, True, "resynced"),
        BalanceCorrected(
            ts=T0 + 26,
            venue="binance",
            currency="USDT",
            engine_total=100_000_000_000_000,
            venue_total=99_999_966_439_000,
            reason="reconciliation",
        ),
        NodeRecovered(
            ts=T0 + 27,
            snapshot_seq=None,
            replayed=31,
            orders_recovered=1,
            orders_resolved=1,
            fills_recovered=0,
            orders_canceled_at_venue=0,
            balances_corrected=1,
        ),
    ]
    return records


def order_flow(n: int, t0: int = T0) -> list[JournalRecord]:
    """``n`` records of a market maker's order flow: submit, lifecycle events, fills, cancels, marks."""
    out: list[JournalRecord] = []
    k = 0
    while len(out) < n:
        k += 1
        ts = t0 + k * 1_000_000
        cid = f"T0lxq2ps{k:x}"
        side = Side.BUY if k % 2 else Side.SELL
        px = PX + (k % 200 - 100) * 10_000_000
        out.append(SubmitOrder(ts=ts, strategy_id="mm-btc", instrument_id=BTC, side=side, qty=QTY, price=px))
        out.append(
            OrderInitialized(
                ts=ts,
                instrument_id=BTC,
                client_order_id=cid,
                strategy_id="mm-btc",
                side=side,
                qty=QTY,
                price=px,
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                post_only=True,
                reduce_only=False,
            )
        )
        out.append(OrderSubmitted(ts=ts + 1, instrument_id=BTC, client_order_id=cid))
        out.append(
            OrderAccepted(
                ts=ts + 200_000, instrument_id=BTC, client_order_id=cid, venue_order_id=str(28_457_000_000 + k)
            )
        )
        for j in range(2):
            out.append(
                OrderFilled(
                    ts=ts + 300_000 + j,
                    instrument_id=BTC,
                    client_order_id=cid,
                    venue_order_id=str(28_457_000_000 + k),
                    trade_id=str(3_601_000_000 + 2 * k + j),
                    side=side,
                    last_qty=500_000,
                    last_price=px,
                    fee=33_561,
                    fee_currency="USDT",
                    liquidity=LiquiditySide.MAKER,
                )
            )
        out.append(CancelOrder(ts=ts + 400_000, strategy_id="mm-btc", instrument_id=BTC, client_order_id=cid))
        out.append(OrderPendingCancel(ts=ts + 400_000, instrument_id=BTC, client_order_id=cid))
        out.append(OrderCanceled(ts=ts + 600_000, instrument_id=BTC, client_order_id=cid))
        out.append(MarkPrice(ts=ts + 600_000, instrument_id=BTC, price=px))
    return out[:n]
