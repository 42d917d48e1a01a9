"""The pairs z-score state machine: entries, exits, stops and the cool-down, on hand-written z paths,
and a hand-computed z-score from a rolling OLS window driving an entry."""

from __future__ import annotations

import math

import pytest

from tradeloop.strategies.hedge_ratio import RollingOLS
from tradeloop.strategies.pairs_signal import PairsSignal, SignalAction, SpreadPosition, Thresholds

A = SignalAction
S = 1_000_000_000
TH = Thresholds(entry=2.0, exit=0.5, stop=4.0, cooldown_ns=10 * S)


def run(signal: PairsSignal, path: list[float], start: int = 0) -> list[SignalAction]:
    return [signal.update(z, start + i * S) for i, z in enumerate(path)]


def test_short_spread_entry_and_exit() -> None:
    sig = PairsSignal(TH)
    assert run(sig, [0.0, 1.9, 2.0, 1.0, 0.6, 0.5, 0.2]) == [
        A.NONE,
        A.NONE,
        A.ENTER_SHORT,
        A.NONE,
        A.NONE,
        A.EXIT,
        A.NONE,
    ]
    assert sig.position is SpreadPosition.FLAT


def test_long_spread_entry_and_exit() -> None:
    sig = PairsSignal(TH)
    assert run(sig, [-1.99, -2.5, -3.9, -0.51, -0.5]) == [A.NONE, A.ENTER_LONG, A.NONE, A.NONE, A.EXIT]


def test_jump_through_zero_exits() -> None:
    sig = PairsSignal(TH)
    assert run(sig, [2.5, -3.0]) == [A.ENTER_SHORT, A.EXIT]
    sig = PairsSignal(TH)
    assert run(sig, [-2.5, 4.5]) == [A.ENTER_LONG, A.EXIT]  # far through zero is profit, not a stop


def test_stop_then_cooldown_then_entry_again() -> None:
    sig = PairsSignal(TH)
    assert run(sig, [2.1, 3.0, 4.0]) == [A.ENTER_SHORT, A.NONE, A.STOP]  # stop at t = 2 s
    assert sig.position is SpreadPosition.FLAT
    assert sig.cooldown_until == 12 * S
    assert sig.update(2.5, 11 * S) is A.NONE  # still cooling down
    assert sig.update(-2.5, 12 * S - 1) is A.NONE
    assert sig.update(-2.5, 12 * S) is A.ENTER_LONG
    assert sig.update(-4.0, 13 * S) is A.STOP
    assert sig.cooldown_until == 23 * S


def test_start_cooldown_without_a_stop_never_shortens_one() -> None:
    sig = PairsSignal(TH)
    sig.start_cooldown(5 * S)  # e.g. an entry that traded nothing
    assert sig.position is SpreadPosition.FLAT
    assert sig.update(3.0, 14 * S) is A.NONE
    assert sig.update(3.0, 15 * S) is A.ENTER_SHORT
    sig.commit(A.STOP, 16 * S)
    sig.start_cooldown(10 * S)  # an earlier start does not cut the stop's cool-down short
    assert sig.cooldown_until == 26 * S


def test_no_entry_beyond_the_stop_level() -> None:
    sig = PairsSignal(TH)
    assert run(sig, [4.0, -5.0, 3.99]) == [A.NONE, A.NONE, A.ENTER_SHORT]


def test_decide_does_not_change_state_and_nan_does_nothing() -> None:
    sig = PairsSignal(TH)
    assert sig.decide(3.0, 0) is A.ENTER_SHORT
    assert sig.position is SpreadPosition.FLAT
    assert sig.decide(math.nan, 0) is A.NONE
    sig.commit(A.ENTER_LONG, 0)
    assert sig.decide(math.inf, 0) is A.NONE
    with pytest.raises(ValueError):
        sig.commit(A.ENTER_SHORT, 0)
    sig.commit(A.EXIT, 1)  # forced exit (e.g. the cointegration gate closed): no cool-down
    assert sig.position is SpreadPosition.FLAT and not sig.in_cooldown(1)


@pytest.mark.parametrize(
    ("entry", "exit_", "stop", "cooldown"),
    [(2.0, 2.0, 4.0, 0), (2.0, -0.1, 4.0, 0), (2.0, 0.5, 2.0, 0), (2.0, 0.5, math.inf, 0), (2.0, 0.5, 4.0, -1)],
)
def test_thresholds_validation(entry: float, exit_: float, stop: float, cooldown: int) -> None:
    with pytest.raises(ValueError):
        Thresholds(entry=entry, exit=exit_, stop=stop, cooldown_ns=cooldown)


def test_rolling_ols_zscore_drives_entry_and_exit() -> None:
    # Window of 4: fitted on (1,2), (2,4.5), (3,5.5), (4,8): beta 1.9, alpha 0.25, last residual 0.15,
    # residual deviation sqrt(0.1125): z = 1/sqrt(5) = 0.4472.
    ols = RollingOLS(4)
    sig = PairsSignal(Thresholds(entry=0.4, exit=0.1, stop=1.5))
    actions = []
    zs = []
    for x, y in [(1.0, 2.0), (2.0, 4.5), (3.0, 5.5), (4.0, 8.0)]:
        est = ols.update(x, y)
        if est is not None and est.zscore is not None:
            zs.append(est.zscore)
            actions.append(sig.update(est.zscore, 0))
    assert zs == [pytest.approx(1 / math.sqrt(5))]
    assert actions == [A.ENTER_SHORT]
    # Next point (5, 9): window (2,4.5), (3,5.5), (4,8), (5,9): mean x 3.5, mean y 6.75;
    # dx = -1.5,-0.5,0.5,1.5; dy = -2.25,-1.25,1.25,2.25; Sxy = 3.375+0.625+0.625+3.375 = 8, Sxx = 5 -> beta 1.6,
    # alpha 6.75 - 5.6 = 1.15; residuals 0.15, -0.45, 0.45, -0.15 -> sd sqrt(0.1125), z = -1/sqrt(5).
    est = ols.update(5.0, 9.0)
    assert est is not None and est.zscore is not None
    assert (est.beta, est.alpha) == (pytest.approx(1.6), pytest.approx(1.15))
    assert est.spread == pytest.approx(-0.15)
    assert est.zscore == pytest.approx(-1 / math.sqrt(5))
    assert sig.update(est.zscore, 1) is A.EXIT  # short spread, z went through zero below the exit level
    # (6, 11.5): window (3,5.5),(4,8),(5,9),(6,11.5): mean x 4.5, mean y 8.5; dy = -3,-0.5,0.5,3; Sxy = 9.5 ->
    # beta 1.9, alpha 8.5 - 8.55 = -0.05; residuals -0.15, 0.45, -0.45, 0.15 -> z = +1/sqrt(5): short again.
    est = ols.update(6.0, 11.5)
    assert est is not None and est.zscore is not None
    assert (est.beta, est.alpha) == (pytest.approx(1.9), pytest.approx(-0.05))
    assert est.zscore == pytest.approx(1 / math.sqrt(5))
    assert sig.update(est.zscore, 2) is A.ENTER_SHORT
