"""Circuit breakers: the window math against brute force and the math module, the trip rules on a
SimClock with a recording ``trip``, and the strict config."""

from __future__ import annotations

import math
import random
import tomllib
from decimal import Decimal, localcontext

import pytest

from tradeloop.core.clock import SimClock
from tradeloop.core.config import ConfigError, decode_config
from tradeloop.core.fixed import SCALE
from tradeloop.core.fixed import parse as P
from tradeloop.model.book import OrderBook
from tradeloop.model.data import BookDeltas, BookStatus
from tradeloop.model.enums import RejectReason, TradingState
from tradeloop.model.events import OrderAccepted, OrderCanceled, OrderRejected, RiskAlert, TradingStateChanged
from tradeloop.model.identifiers import InstrumentId
from tradeloop.runtime.config import BacktestConfig
from tradeloop.trading.breakers import (
    FACTOR_SCALE,
    CircuitBreakers,
    MidRange,
    RejectWindow,
    log_move_bps,
    log_move_exceeded,
    log_move_factor,
    reject_share_exceeded,
)
from tradeloop.trading.risk_config import (
    BreakersConfig,
    RejectRateBreakerConfig,
    RiskConfig,
    StaleDataBreakerConfig,
    VolatilityBreakerConfig,
)

T0 = 1_700_000_000 * 10**9
MS = 1_000_000
A = InstrumentId("simA", "BTCUSDT")
B = InstrumentId("simB", "BTCUSDT")

Trip = tuple[str, str, TradingState]


# -- pure pieces -----------------------------------------------------------------------------------


def test_reject_window_counts_and_expires_at_the_edge() -> None:
    w = RejectWindow(1000)
    w.add(T0, True)
    w.add(T0 + 400, False)
    w.add(T0 + 1000, True)  # the first sample is exactly window old: kept
    assert (w.rejects, w.orders) == (2, 3)
    w.add(T0 + 1001, False)  # now it is older than the window
    assert (w.rejects, w.orders) == (1, 3)
    w.expire(T0 + 2002)
    assert (w.rejects, w.orders) == (0, 0)


def test_reject_window_matches_brute_force() -> None:
    rng = random.Random(11)
    window = 500
    w = RejectWindow(window)
    samples: list[tuple[int, bool]] = []
    t = T0
    for _ in range(2000):
        t += rng.randrange(0, 60)
        rejected = rng.random() < 0.3
        w.add(t, rejected)
        samples.append((t, rejected))
        live = [r for ts, r in samples if ts >= t - window]
        assert (w.rejects, w.orders) == (sum(live), len(live))


@pytest.mark.parametrize(
    ("rejects", "orders", "min_orders", "max_bps", "expected"),
    [
        (5, 10, 10, 5000, False),  # exactly half: not over
        (6, 10, 10, 5000, True),
        (9, 9, 10, 5000, False),  # too few samples to judge
        (1, 3, 3, 3333, True),  # 1/3 = 3333.33 bps > 3333
        (1, 3, 3, 3334, False),
        (0, 50, 1, 1, False),
    ],
)
def test_reject_share_exceeded_is_exact(
    rejects: int, orders: int, min_orders: int, max_bps: int, expected: bool
) -> None:
    assert reject_share_exceeded(rejects, orders, min_orders, max_bps) is expected


def test_mid_range_matches_brute_force() -> None:
    rng = random.Random(5)
    window = 1000
    r = MidRange(window)
    points: list[tuple[int, int]] = []
    t = T0
    for _ in range(3000):
        t += rng.randrange(0, 120)
        v = rng.randrange(1000, 1100)
        r.add(t, v)
        points.append((t, v))
        live = [p for p in points if p[0] >= t - window]
        high, low = r.high, r.low
        assert high is not None and low is not None
        assert high[1] == max(v for _, v in live) and low[1] == min(v for _, v in live)
        # the times are those of a point carrying that value (the latest of equal values)
        assert high == max((p for p in live if p[1] == high[1]), key=lambda p: p[0])
        assert low == max((p for p in live if p[1] == low[1]), key=lambda p: p[0])


def test_log_move_factor_against_math_exp() -> None:
    for bps in (1, 50, 500, 2500, 10_000):
        factor = log_move_factor(bps)
        assert abs(factor / FACTOR_SCALE - math.exp(bps / 10_000)) < 1e-15
        with localcontext() as ctx:
            ctx.prec = 60
            exact = Decimal(bps).scaleb(-4).exp().scaleb(18)
        assert factor - 1 < exact <= factor
    with pytest.raises(ValueError, match="positive"):
        log_move_factor(0)


def test_log_move_exceeded_agrees_with_math_log_away_from_the_boundary() -> None:
    rng = random.Random(3)
    factor = log_move_factor(300)
    checked = 0
    for _ in range(5000):
        low = rng.randrange(50_000 * SCALE, 70_000 * SCALE)
        high = low + rng.randrange(0, low // 20)
        exact_log = math.log(high / low)
        if abs(exact_log - 0.03) < 1e-9:
            continue
        assert log_move_exceeded(high, low, factor) is (exact_log > 0.03)
        checked += 1
    assert checked > 4900


def test_log_move_exceeded_at_the_boundary() -> None:
    low = 100 * SCALE
    factor = log_move_factor(500)
    with localcontext() as ctx:
        ctx.prec = 50
        boundary = Decimal(low) * Decimal("0.05").exp()  # 105.127109637602... in nanos
    just_below = int(boundary)  # ln < 0.05
    assert not log_move_exceeded(just_below, low, factor)
    assert log_move_exceeded(just_below + 1, low, factor)
    assert not log_move_exceeded(low, 0, factor)


def test_log_move_bps_against_math() -> None:
    rng = random.Random(9)
    for _ in range(500):
        low = rng.randrange(1, 10**12)
        high = low + rng.randrange(0, low)
        value = math.log(high / low) * 10_000
        if abs(value - round(value)) < 1e-6:
            continue
        assert log_move_bps(high, low) == math.ceil(value)
    assert log_move_bps(5, 5) == 0
    with pytest.raises(ValueError):
        log_move_bps(4, 5)


# -- the breakers on a SimClock --------------------------------------------------------------------


def make(
    config: BreakersConfig, instruments: tuple[InstrumentId, ...] = (A, B)
) -> tuple[CircuitBreakers, SimClock, list[Trip]]:
    clock = SimClock(T0)
    trips: list[Trip] = []
    breakers = CircuitBreakers(config, clock, instruments, lambda c, m, s: trips.append((c, m, s)))
    return breakers, clock, trips


def accepted(iid: InstrumentId, n: int) -> OrderAccepted:
    return OrderAccepted(ts=T0, instrument_id=iid, client_order_id=f"c{n}", venue_order_id=f"v{n}")


def rejected(iid: InstrumentId, n: int) -> OrderRejected:
    return OrderRejected(
        ts=T0, instrument_id=iid, client_order_id=f"c{n}", reason=RejectReason.RATE_LIMITED, message="too many requests"
    )


def book(iid: InstrumentId, bid: str, ask: str) -> OrderBook:
    b = OrderBook(iid)
    b.apply_snapshot(BookDeltas(iid, T0, T0, 0, 1, bids=[(P(bid), P("1"))], asks=[(P(ask), P("1"))], snapshot=True))
    return b


def test_reject_rate_trips_once_per_venue_and_rearms_when_the_share_clears() -> None:
    cfg = BreakersConfig(reject_rate=RejectRateBreakerConfig(max_reject_bps=5000, min_orders=4, window_ms=10_000))
    breakers, clock, trips = make(cfg)
    breakers.on_order_event(accepted(A, 1))
    breakers.on_order_event(rejected(A, 2))
    breakers.on_order_event(rejected(A, 3))
    breakers.on_order_event(accepted(B, 4))  # another venue's window
    assert trips == []  # 2 of 3 answers on simA: too few to judge
    breakers.on_order_event(accepted(A, 5))  # 2 of 4: exactly half, not over
    assert trips == []
    breakers.on_order_event(OrderCanceled(ts=T0, instrument_id=A, client_order_id="c1"))  # not an answer
    clock.advance_to(T0 + 5 * MS)
    breakers.on_order_event(rejected(A, 6))  # 3 of 5
    assert trips == [
        (
            "reject_rate",
            "reject_rate: simA rejected 3 of the last 5 submits in 10000 ms (6000 bps, max 5000 bps); "
            "last reject: RATE_LIMITED too many requests",
            TradingState.HALTED,
        )
    ]
    breakers.on_order_event(rejected(A, 7))  # still over: no second alert
    assert len(trips) == 1 and breakers.trips == {"reject_rate": 1}
    for n in range(8, 12):
        breakers.on_order_event(accepted(A, n))  # 4 of 10: back within the limit, re-armed
    for n in range(12, 16):
        breakers.on_order_event(rejected(A, n))  # 8 of 14
    assert len(trips) == 2


def test_reject_rate_window_slides_with_engine_time() -> None:
    cfg = BreakersConfig(reject_rate=RejectRateBreakerConfig(max_reject_bps=5000, min_orders=4, window_ms=1000))
    breakers, clock, trips = make(cfg)
    for n in range(3):
        breakers.on_order_event(rejected(A, n))
    clock.advance_to(T0 + 1001 * MS)  # those three leave the window
    for n in range(3, 6):
        breakers.on_order_event(accepted(A, n))
    breakers.on_order_event(rejected(A, 6))
    assert trips == []  # 1 of 4 in the window


def test_volatility_trips_on_a_jump_within_the_window_only() -> None:
    cfg = BreakersConfig(volatility=VolatilityBreakerConfig(max_move_bps=500, window_ms=60_000))
    breakers, clock, trips = make(cfg)
    breakers.on_book(book(A, "100.00", "100.10"))  # mid 100.05
    clock.advance_to(T0 + 61_000 * MS)
    breakers.on_book(book(A, "106.00", "106.10"))  # +5.8 %, but the old mid left the window
    assert trips == []
    clock.advance_to(T0 + 62_500 * MS)
    breakers.on_book(book(A, "99.90", "100.00"))  # 106.05 -> 99.95 within 1500 ms
    expected_bps = math.ceil(math.log(106.05 / 99.95) * 10_000)
    assert trips == [
        (
            "volatility",
            f"volatility: simA:BTCUSDT mid fell from 106.05 to 99.95 within 1500 ms, a {expected_bps} bps log move "
            "(max 500 bps in 60000 ms)",
            TradingState.REDUCING,
        )
    ]
    breakers.on_book(book(A, "99.00", "99.10"))  # still over: no repeat
    breakers.on_book(book(B, "100.00", "100.10"))  # other instrument: own window
    assert len(trips) == 1


def test_volatility_below_limit_does_not_trip() -> None:
    cfg = BreakersConfig(volatility=VolatilityBreakerConfig(max_move_bps=500))
    breakers, clock, trips = make(cfg)
    breakers.on_book(book(A, "100.00", "100.00"))
    clock.advance_to(T0 + MS)
    breakers.on_book(book(A, "105.12", "105.12"))  # ln(1.0512) = 0.04993: under 500 bps
    assert trips == []
    breakers.on_book(book(A, "105.13", "105.13"))  # ln(1.0513) = 0.05003: over
    assert [t[0] for t in trips] == ["volatility"]


def test_stale_data_checks_on_the_timer_and_names_the_book() -> None:
    cfg = BreakersConfig(stale_data=StaleDataBreakerConfig(max_age_ms=3000, check_interval_ms=1000))
    breakers, clock, trips = make(cfg)
    breakers.start()
    breakers.on_book(book(A, "100.00", "100.10"))
    breakers.on_book(book(B, "100.00", "100.10"))
    for s in range(1, 8):
        clock.advance_to(T0 + s * 1000 * MS)
        breakers.on_book(book(A, "100.00", "100.10"))  # simA keeps updating, simB went quiet at T0
    # simB is 3000 ms old at T0+3s (not over), 4000 ms at the check at T0+4s
    assert trips == [
        ("stale_data", "stale_data: simB:BTCUSDT no update for 4000 ms (max 3000 ms)", TradingState.HALTED)
    ]
    breakers.on_book(book(B, "100.00", "100.10"))  # back: re-armed for the next episode
    breakers.on_book_status(BookStatus(instrument_id=B, ts=clock.now_ns(), valid=False, reason="sequence gap 5..9"))
    clock.advance_to(T0 + 12_000 * MS)  # both last updated at T0+7s: over the limit at the check at T0+11s
    assert trips[1:] == [
        ("stale_data", "stale_data: simA:BTCUSDT no update for 4000 ms (max 3000 ms)", TradingState.HALTED),
        (
            "stale_data",
            "stale_data: simB:BTCUSDT book invalid (sequence gap 5..9) for 4000 ms (max 3000 ms)",
            TradingState.HALTED,
        ),
    ]


def test_stale_data_counts_a_book_that_never_came_from_the_start_and_stop_disarms() -> None:
    cfg = BreakersConfig(stale_data=StaleDataBreakerConfig(max_age_ms=2000, check_interval_ms=500, action="reducing"))
    breakers, clock, trips = make(cfg)
    breakers.start()
    clock.advance_to(T0 + 2000 * MS)
    assert trips == []
    clock.advance_to(T0 + 2500 * MS)
    assert trips == [
        ("stale_data", "stale_data: simA:BTCUSDT no book received for 2500 ms (max 2000 ms)", TradingState.REDUCING),
        ("stale_data", "stale_data: simB:BTCUSDT no book received for 2500 ms (max 2000 ms)", TradingState.REDUCING),
    ]
    breakers.stop()
    assert clock.next_timer_ns() is None
    breakers.start()  # no restart after stop
    assert clock.next_timer_ns() is None


def test_stale_data_timer_arms_itself_on_the_first_book() -> None:
    cfg = BreakersConfig(stale_data=StaleDataBreakerConfig(max_age_ms=2000, check_interval_ms=500))
    breakers, clock, trips = make(cfg, (A,))
    assert clock.next_timer_ns() is None
    breakers.on_book(book(A, "100.00", "100.10"))
    assert clock.next_timer_ns() == T0 + 500 * MS
    clock.advance_to(T0 + 2500 * MS)
    assert [t[0] for t in trips] == ["stale_data"]


def test_only_an_active_state_change_rearms_and_measurement_restarts() -> None:
    cfg = BreakersConfig(
        stale_data=StaleDataBreakerConfig(max_age_ms=2000, check_interval_ms=1000),
        volatility=VolatilityBreakerConfig(max_move_bps=100, window_ms=60_000),
    )
    breakers, clock, trips = make(cfg, (A,))
    breakers.start()
    breakers.on_book(book(A, "100.00", "100.00"))
    breakers.on_book(book(A, "102.00", "102.00"))  # 198 bps log move
    clock.advance_to(T0 + 3000 * MS)  # and then the feed stops
    assert [t[0] for t in trips] == ["volatility", "stale_data"]
    breakers.on_risk_event(TradingStateChanged(ts=clock.now_ns(), state=TradingState.REDUCING, reason="operator"))
    breakers.on_risk_event(RiskAlert(ts=clock.now_ns(), check="x", message="y"))
    clock.advance_to(T0 + 10_000 * MS)
    assert len(trips) == 2  # not re-armed: no repeats
    breakers.on_risk_event(TradingStateChanged(ts=clock.now_ns(), state=TradingState.ACTIVE, reason="resume"))
    clock.advance_to(T0 + 12_000 * MS)
    assert len(trips) == 2  # the age counts from the resume: 2000 ms is not over
    clock.advance_to(T0 + 13_000 * MS)
    assert trips[2] == (
        "stale_data",
        "stale_data: simA:BTCUSDT no update for 3000 ms (max 2000 ms)",
        TradingState.HALTED,
    )
    breakers.on_book(book(A, "102.00", "102.00"))  # the old 100.00 was forgotten at the resume
    assert len(trips) == 3


def test_nothing_configured_subscribes_nothing() -> None:
    from tradeloop.core.bus import MessageBus
    from tradeloop.model import topics

    bus = MessageBus()
    breakers, _, _ = make(BreakersConfig())
    breakers.subscribe(bus)
    bus.subscribe(topics.BOOK, breakers.on_book)  # would raise if already subscribed
    breakers.start()  # no stale breaker: no timer
    assert breakers.trips == {}


# -- config ----------------------------------------------------------------------------------------


def test_breakers_toml_decodes_with_defaults() -> None:
    text = """
[risk.breakers.reject_rate]
[risk.breakers.volatility]
max_move_bps = 300
window_ms = 10000
[risk.breakers.stale_data]
max_age_ms = 3000
action = "reducing"
"""
    cfg = decode_config(tomllib.loads(text), BacktestConfig).risk.breakers
    assert cfg.reject_rate == RejectRateBreakerConfig(
        max_reject_bps=5000, min_orders=10, window_ms=60_000, action="halted"
    )
    assert cfg.volatility == VolatilityBreakerConfig(max_move_bps=300, window_ms=10_000, action="reducing")
    assert cfg.stale_data == StaleDataBreakerConfig(max_age_ms=3000, check_interval_ms=1000, action="reducing")
    assert cfg.any_enabled


def test_breakers_are_off_by_default() -> None:
    assert RiskConfig().breakers == BreakersConfig(reject_rate=None, volatility=None, stale_data=None)
    assert not RiskConfig().breakers.any_enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[breakers.reject_rate]\nmax_reject_bps = 0", "risk.breakers.reject_rate.max_reject_bps"),
        ("[breakers.reject_rate]\nmax_reject_bps = 10001", "at most 10000"),
        ("[breakers.reject_rate]\nmin_orders = 0", "risk.breakers.reject_rate.min_orders: must be positive"),
        ("[breakers.volatility]\nwindow_ms = -1", "risk.breakers.volatility.window_ms"),
        ("[breakers.stale_data]\ncheck_interval_ms = 0", "risk.breakers.stale_data.check_interval_ms"),
        ('[breakers.stale_data]\naction = "stop"', "action"),
        ("[breakers.stale_data]\nmax_age = 5", "max_age"),
        ("[breakers.kill]\n", "kill"),
        ("[breakers.volatility]\nmax_move_bps = 5.0", "max_move_bps"),
    ],
)
def test_bad_breaker_config_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        decode_config(tomllib.loads(text), RiskConfig)


def test_stale_age_in_the_message_rounds_up_to_the_millisecond() -> None:
    cfg = BreakersConfig(stale_data=StaleDataBreakerConfig(max_age_ms=1, check_interval_ms=1))
    breakers, clock, trips = make(cfg, (A,))
    breakers.start()
    clock.advance_to(T0 + 300_000)
    breakers.on_book(book(A, "100.00", "100.10"))
    clock.advance_to(T0 + 2 * MS)  # 1.7 ms old at the check at T0+2ms: over 1 ms, shown as 2 ms
    assert trips == [("stale_data", "stale_data: simA:BTCUSDT no update for 2 ms (max 1 ms)", TradingState.HALTED)]
