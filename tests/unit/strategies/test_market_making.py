"""The market-making strategy on the simulated venue: config decoding, model prices on the tick
grid, inventory limits, the refresh threshold, amend and cancel/replace, and whole backtests on the
synthetic market and on the Binance spot recording."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sample_path
from tests.integration.helpers import IID, START, book_snapshot, feed, instrument, trade
from tradeloop.core import fixed
from tradeloop.core.config import ConfigError, decode_config
from tradeloop.model import topics
from tradeloop.model.book import SequenceRule
from tradeloop.model.commands import AmendOrder, CancelOrder, SubmitOrder
from tradeloop.model.data import BookDeltas, BookStatus
from tradeloop.model.enums import OrderStatus, Side
from tradeloop.model.events import OrderAmended, OrderEvent, OrderEventBase, OrderInitialized
from tradeloop.model.order import IllegalTransition, Order
from tradeloop.persistence import open_journal
from tradeloop.persistence.memory import MemoryJournal
from tradeloop.runtime.backtest import BacktestEngine
from tradeloop.runtime.config import BacktestConfig, SimSection, StrategySection, VenueSection
from tradeloop.runtime.runner import BacktestRequest, run_backtest
from tradeloop.strategies.market_making import MarketMaking, MarketMakingConfig

P = fixed.parse
S = 1_000_000_000
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

# Quotes that follow the touch exactly: no imbalance skew, no inventory skew, no half spread.
TOUCH = {"imbalance": {"skew_bps": 0, "inventory_skew_bps": 0, "half_spread_bps": 0}, "order_qty": "0.1"}


class Node:
    """A backtest node with the market maker on ``simA:BTCUSDT`` (tick 0.01, lot 0.00001), 2 BTC held."""

    def __init__(self, params: dict[str, Any], supports_amend: bool = True) -> None:
        venue = VenueSection(balances={"USDT": "100000", "BTC": "2"}, sim=SimSection(supports_amend=supports_amend))
        strategy = StrategySection(name="market_making", params={"instruments": ["simA:BTCUSDT"], **params})
        config = BacktestConfig(venues={"simA": venue}, strategy=strategy)
        self.engine = BacktestEngine(
            config,
            [instrument()],
            START,
            sequence_rules={"simA": SequenceRule.RANGE},
            journal=MemoryJournal(),
            check_invariants=True,
        )
        self.commands: list[object] = []
        self.engine.bus.subscribe(topics.COMMANDS, self.commands.append)
        self.engine.strategy.on_start()
        self.seq = 0

    @property
    def strategy(self) -> MarketMaking:
        assert isinstance(self.engine.strategy, MarketMaking)
        return self.engine.strategy

    def book(self, t: int, bid: str, ask: str) -> None:
        self.seq += 1
        feed(self.engine, [book_snapshot(START + t * S, self.seq, bid, ask)])

    def sweep(self, t: int, price: str, aggressor: Side) -> None:
        feed(self.engine, [trade(START + t * S, price, "100", aggressor)])

    def open(self, side: Side) -> list[Order]:
        return sorted(
            (o for o in self.engine.oms.open_orders(IID) if o.side is side),
            key=lambda o: o.price or 0,
            reverse=side is Side.BUY,
        )

    def prices(self, side: Side) -> list[int | None]:
        return [o.price for o in self.open(side)]

    def inventory(self) -> int:
        return self.strategy.inventory(IID)

    def sent(self, kind: type) -> list[Any]:
        return [c for c in self.commands if isinstance(c, kind)]


# -- config ---------------------------------------------------------------------------------------


def test_defaults_and_the_older_flat_keys_of_examples_backtest_toml() -> None:
    cfg = decode_config(
        {
            "order_qty": "0.01",
            "half_spread_bps": 0,
            "depth_levels": 5,
            "skew_bps": 2,
            "max_inventory": "0.1",
            "inventory_skew_bps": 3,
            "refresh_ticks": 4,
        },
        MarketMakingConfig,
    )
    assert cfg.model == "imbalance" and cfg.levels == 1 and cfg.post_only and cfg.use_amend
    assert cfg.resolved_refresh_threshold_ticks() == 4
    imb = cfg.resolved_imbalance()
    assert (imb.depth_levels, imb.skew_bps, imb.half_spread_bps, imb.inventory_skew_bps) == (5, 2.0, 0.0, 3.0)
    assert decode_config({}, MarketMakingConfig).resolved_refresh_threshold_ticks() == 3


def test_model_tables_decode() -> None:
    cfg = decode_config(
        {
            "model": "avellaneda_stoikov",
            "refresh_threshold_ticks": 2,
            "imbalance": {"skew_bps": 1},
            "avellaneda_stoikov": {"gamma": 0.2, "horizon": "finite", "horizon_s": 60, "kappa": 1.5},
        },
        MarketMakingConfig,
    )
    assert cfg.avellaneda_stoikov.gamma == 0.2 and cfg.avellaneda_stoikov.horizon == "finite"
    assert cfg.avellaneda_stoikov.kappa == 1.5 and cfg.avellaneda_stoikov.sigma_bps is None
    assert cfg.resolved_imbalance().skew_bps == 1.0 and cfg.resolved_refresh_threshold_ticks() == 2


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"model": "glft"}, "model"),
        ({"order_qty": 0.01}, "order_qty"),  # a TOML float for a size
        ({"order_qty": "0"}, "order_qty"),
        ({"order_qty": "0.0000000001"}, "decimals"),
        ({"max_inventory": "-1"}, "max_inventory"),
        ({"levels": 0}, "levels"),
        ({"refresh_ticks": 2, "refresh_threshold_ticks": 3}, "refresh_ticks"),
        ({"skew_bps": 2, "imbalance": {"skew_bps": 1}}, "skew_bps"),
        ({"imbalance": {"depth_levels": 0}}, "depth_levels"),
        ({"avellaneda_stoikov": {"gamma": 0}}, "gamma"),
        ({"avellaneda_stoikov": {"kappa": -1.0}}, "kappa"),
        ({"avellaneda_stoikov": {"horizon": "forever"}}, "horizon"),
        ({"avellaneda_stoikov": {"gama": 0.1}}, "gama"),
        ({"spread": 3}, "spread"),
    ],
)
def test_bad_config_is_a_clear_error(params: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        decode_config(params, MarketMakingConfig)


def test_unknown_instrument_and_off_lot_size_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown instrument simB:BTCUSDT"):
        Node({"instruments": ["simB:BTCUSDT"]})
    with pytest.raises(ConfigError, match="not a multiple of lot"):
        Node({"order_qty": "0.000015"})


# -- prices ---------------------------------------------------------------------------------------


def test_avellaneda_stoikov_quotes_on_the_tick_grid_and_skewed_by_inventory() -> None:
    # Fixed sigma 10 bps/sqrt(s) of mid 100.05, gamma 0.1, kappa 2, rolling 10 s: spread
    # 0.1 * 0.10005^2 * 10 + 20 * ln(1.05) = 0.98581328588864 (hand-computed with Decimal).
    node = Node(
        {
            "model": "avellaneda_stoikov",
            "order_qty": "0.1",
            "max_inventory": "1",
            "max_improve_ticks": 0,
            "refresh_threshold_ticks": 0,
            "avellaneda_stoikov": {"gamma": 0.1, "sigma_bps": 10.0, "kappa": 2.0, "horizon_s": 10.0},
        }
    )
    node.book(1, "100.00", "100.10")
    # r = 100.05: bid 99.557093357 -> 99.55 (down), ask 100.542906643 -> 100.55 (up).
    assert node.prices(Side.BUY) == [P("99.55")] and node.prices(Side.SELL) == [P("100.55")]
    display = node.strategy._states[IID].display
    assert display["reservation_price"] == pytest.approx(100.05, abs=1e-9)
    assert display["spread_bps"] == pytest.approx(0.98581328588864006 / 100.05 * 1e4, rel=1e-9)
    node.sweep(2, "99.50", Side.SELL)  # our bid is filled: q = 0.1 / 0.1 = 1
    assert node.inventory() == P("0.1")
    node.book(3, "100.00", "100.10")
    # r = 100.05 - 1 * 0.1 * 0.10005^2 * 10 = 100.0399899975: bid 99.547083355 -> 99.54, ask 100.53289664 -> 100.54.
    assert node.prices(Side.BUY) == [P("99.54")] and node.prices(Side.SELL) == [P("100.54")]


def test_finite_horizon_narrows_the_inventory_term_as_the_session_ends() -> None:
    node = Node(
        {
            "model": "avellaneda_stoikov",
            "order_qty": "0.1",
            "avellaneda_stoikov": {
                "gamma": 0.1,
                "sigma_bps": 10.0,
                "kappa": 2.0,
                "horizon": "finite",
                "horizon_s": 10.0,
            },
        }
    )

    def spread() -> float:
        return node.strategy._states[IID].display["spread_bps"] * 100.05 / 1e4

    node.book(1, "100.00", "100.10")  # T - t = 9 s
    spread_9s = spread()
    node.book(6, "100.00", "100.10")  # T - t = 4 s
    # gamma * sigma^2 * (T-t) + 20 * ln(1.05) with sigma = 0.10005: 0.00900900225 and 0.004004001 + 0.97580328339
    assert spread_9s == pytest.approx(0.98481228563864, rel=1e-9)
    assert spread() == pytest.approx(0.97980728438864, rel=1e-9)
    node.book(11, "100.00", "100.10")  # a new session: T - t = 9 s again
    assert spread() == pytest.approx(spread_9s, rel=1e-12)


def test_avellaneda_stoikov_waits_for_its_estimators() -> None:
    node = Node(
        {
            "model": "avellaneda_stoikov",
            "order_qty": "0.1",
            "avellaneda_stoikov": {"volatility_min_samples": 3, "kappa": 1.0},
        }
    )
    node.book(1, "100.00", "100.10")
    node.book(2, "100.00", "100.10")
    assert node.open(Side.BUY) == [] and node.sent(SubmitOrder) == []  # only one sampled return so far
    node.book(3, "100.01", "100.11")
    node.book(4, "100.00", "100.10")
    assert len(node.open(Side.BUY)) == 1 and len(node.open(Side.SELL)) == 1


@pytest.mark.parametrize(
    ("bid_size", "ask_size", "bids", "asks"),
    [
        ("9", "1", [P("100.09")], [P("104.06")]),  # fair 100.05 * (1 + 0.05 * 0.8) = 104.052: far above the ask
        ("1", "9", [P("96.04")], [P("100.01")]),  # fair 100.05 * (1 - 0.05 * 0.8) = 96.048: far below the bid
    ],
)
def test_post_only_quotes_never_cross_or_lock_the_touch(
    bid_size: str, ask_size: str, bids: list[int], asks: list[int]
) -> None:
    node = Node({"imbalance": {"skew_bps": 500, "inventory_skew_bps": 0}, "max_improve_ticks": 100, "order_qty": "0.1"})
    snap = BookDeltas(
        instrument_id=IID,
        ts_event=START,
        ts_recv=START + S,
        first_seq=1,
        last_seq=1,
        snapshot=True,
        bids=[(P("100.00"), P(bid_size)), (P("99.99"), P(bid_size))],
        asks=[(P("100.10"), P(ask_size)), (P("100.11"), P(ask_size))],
    )
    feed(node.engine, [snap])
    assert node.prices(Side.BUY) == bids and node.prices(Side.SELL) == asks  # one tick inside the touch at most


# -- inventory limits ------------------------------------------------------------------------------


def test_inventory_limit_stops_the_heavy_side_counting_open_orders() -> None:
    node = Node({**TOUCH, "order_qty": "0.1", "max_inventory": "0.25", "levels": 3})
    node.book(1, "100.00", "100.10")
    # 0.25 of room fits two quotes of 0.1 per side, not three.
    assert node.prices(Side.BUY) == [P("100.00"), P("99.99")]
    assert node.prices(Side.SELL) == [P("100.10"), P("100.11")]
    node.sweep(2, "99.90", Side.SELL)  # a sell sweeps through both bids at once
    assert node.inventory() == P("0.2")
    node.book(3, "100.00", "100.10")
    assert node.open(Side.BUY) == []  # 0.05 of room left: less than one quote
    assert node.prices(Side.SELL) == [P("100.10"), P("100.11"), P("100.12")]
    node.sweep(4, "100.20", Side.BUY)  # a buy sweeps all three asks: 0.2 - 0.3 = -0.1
    assert node.inventory() == P("-0.1")
    node.book(5, "100.00", "100.10")
    assert node.prices(Side.BUY) == [P("100.00"), P("99.99"), P("99.98")]
    assert node.prices(Side.SELL) == [P("100.10")]  # -0.1 - 0.1 >= -0.25; a second would pass it
    node.sweep(6, "100.20", Side.BUY)
    node.book(7, "100.00", "100.10")
    assert node.inventory() == P("-0.2") and node.open(Side.SELL) == []
    assert abs(node.inventory()) <= P("0.25")


def test_at_the_limit_a_requote_by_cancel_waits_for_the_cancel_to_be_confirmed() -> None:
    # Without amend, moving a quote is cancel + new order; while the cancel is in flight the old
    # order may still fill, so the new one is only sent once the old one is gone.
    node = Node({**TOUCH, "order_qty": "0.1", "max_inventory": "0.1", "use_amend": False, "refresh_threshold_ticks": 1})
    node.book(1, "100.00", "100.10")
    first, node_ask = node.open(Side.BUY)[0], node.open(Side.SELL)[0]
    node.commands.clear()
    node.engine.clock.advance_to(START + 2 * S)
    node.seq += 1
    snap = book_snapshot(START + 2 * S, node.seq, "100.05", "100.15")
    node.engine.venues["simA"].on_market_data(snap)
    node.engine.hub.on_data(snap)
    cancels = node.sent(CancelOrder)
    assert sorted(c.client_order_id for c in cancels) == sorted([first.client_order_id, node_ask.client_order_id])
    assert node.sent(SubmitOrder) == []  # neither side has room while its old quote may still fill
    node.book(3, "100.05", "100.15")  # the cancels were confirmed in between
    assert node.prices(Side.BUY) == [P("100.05")] and node.prices(Side.SELL) == [P("100.15")]
    assert node.engine.oms.order(first.client_order_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]


# -- refresh threshold, amend, cancel/replace ------------------------------------------------------


def test_refresh_threshold_leaves_small_moves_alone_and_amends_larger_ones() -> None:
    node = Node({**TOUCH, "refresh_threshold_ticks": 3})
    node.book(1, "100.00", "100.10")
    bid, ask = node.open(Side.BUY)[0], node.open(Side.SELL)[0]
    node.commands.clear()
    node.book(2, "100.02", "100.12")  # targets moved 2 ticks: below the threshold
    assert node.sent(AmendOrder) == [] and node.sent(CancelOrder) == [] and node.sent(SubmitOrder) == []
    assert node.prices(Side.BUY) == [P("100.00")] and node.prices(Side.SELL) == [P("100.10")]
    node.book(3, "100.03", "100.13")  # 3 ticks: amend both, in place
    amends = node.sent(AmendOrder)
    assert sorted((a.client_order_id, a.price) for a in amends) == sorted(
        [(bid.client_order_id, P("100.03")), (ask.client_order_id, P("100.13"))]
    )
    assert node.sent(CancelOrder) == [] and node.sent(SubmitOrder) == []
    assert [o.client_order_id for o in node.open(Side.BUY)] == [bid.client_order_id]
    assert node.prices(Side.BUY) == [P("100.03")] and node.prices(Side.SELL) == [P("100.13")]


def test_without_venue_amend_the_replacement_order_takes_over_the_quote() -> None:
    node = Node({**TOUCH, "refresh_threshold_ticks": 3}, supports_amend=False)
    node.book(1, "100.00", "100.10")
    old = node.open(Side.BUY)[0]
    node.book(2, "100.05", "100.15")
    new = node.open(Side.BUY)
    assert [o.price for o in new] == [P("100.05")] and new[0].client_order_id != old.client_order_id
    assert node.engine.oms.order(old.client_order_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    slots = node.strategy._states[IID].slots[Side.BUY]
    assert slots == [new[0].client_order_id]
    node.commands.clear()
    node.book(3, "100.10", "100.20")  # the replacement is moved again, not left behind
    assert [a.client_order_id for a in node.sent(AmendOrder) if a.price == P("100.10")] == [new[0].client_order_id]
    assert node.sent(SubmitOrder) == []
    assert node.prices(Side.BUY) == [P("100.10")] and node.prices(Side.SELL) == [P("100.20")]


def test_invalid_book_pulls_the_quotes() -> None:
    node = Node(dict(TOUCH))
    node.book(1, "100.00", "100.10")
    assert node.open(Side.BUY) and node.open(Side.SELL)
    node.engine.bus.publish(
        topics.BOOK_STATUS, BookStatus(instrument_id=IID, ts=START + 2 * S, valid=False, reason="test")
    )
    node.engine.clock.advance_to(START + 3 * S)
    assert node.engine.oms.open_orders(IID) == []


# -- whole backtests -------------------------------------------------------------------------------


def test_avellaneda_stoikov_backtest_on_the_synthetic_market(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADELOOP__SYNTHETIC__DURATION_S", "120")
    request = BacktestRequest(
        config_path=EXAMPLES / "market_making_as.toml",
        journal=str(tmp_path / "j.sqlite"),
        report=str(tmp_path / "r.html"),
        check_invariants=True,
    )
    run = run_backtest(request)
    sides = {f.side for f in run.series.fills}
    assert sides == {Side.BUY, Side.SELL}
    assert run.summary.fills == run.summary.maker_fills > 10  # post-only: never took liquidity
    assert run.engine.stats.invariant_checks == run.summary.fills
    for panel in ("reservation_price", "spread_bps", "sigma_bps", "kappa"):
        assert run.series.extra_panels[panel], panel
    strategy = run.engine.strategy
    assert isinstance(strategy, MarketMaking)
    (iid,) = strategy._states
    assert abs(strategy.inventory(iid)) <= fixed.parse(strategy.config.max_inventory)
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_backtest_on_the_binance_spot_recording(tmp_path: Path) -> None:
    data = str(sample_path("marketdata/binance_spot_btcusdt_20240808.gz"))
    request = BacktestRequest(
        config_path=EXAMPLES / "market_making_binance.toml",
        data=[data],
        journal=str(tmp_path / "bn.sqlite"),
        report=str(tmp_path / "bn.html"),
        check_invariants=True,
    )
    run = run_backtest(request)
    assert run.errors == [] and run.summary.book_integrity["binance:BTCUSDT"].gaps == 0
    assert {f.side for f in run.series.fills} == {Side.BUY, Side.SELL}
    assert run.summary.fills == run.summary.maker_fills > 10
    assert run.engine.stats.invariant_checks == run.summary.fills
    strategy = run.engine.strategy
    assert isinstance(strategy, MarketMaking)
    (iid,) = strategy._states
    assert abs(strategy.inventory(iid)) <= fixed.parse(strategy.config.max_inventory)
    assert run.engine.oms.open_orders() == []
    # Binance spot has no amend: every amend became cancel/replace, and quotes never piled up.
    journal = open_journal(str(tmp_path / "bn.sqlite"))
    records = [r for _, _, r in journal.read()]
    journal.close()
    assert any(isinstance(r, AmendOrder) for r in records)
    assert not any(isinstance(r, OrderAmended) for r in records)
    assert max_open_per_side(records) <= strategy.config.levels


def max_open_per_side(records: list[Any]) -> int:
    """The most non-terminal orders one side ever had, folding the journal's order events."""
    orders: dict[str, Order] = {}
    most = 0
    for r in records:
        if isinstance(r, OrderInitialized):
            orders[r.client_order_id] = Order(r)
        elif isinstance(r, OrderEventBase) and r.client_order_id in orders and isinstance(r, OrderEvent):
            try:
                orders[r.client_order_id].apply(r)
            except IllegalTransition:
                continue
        else:
            continue
        for side in Side:
            most = max(most, sum(1 for o in orders.values() if o.side is side and not o.is_terminal))
    return most
