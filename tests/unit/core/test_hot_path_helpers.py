"""Hot-path shortcuts give exactly what the plain code gives: the text memo, the usual-shape paths of
``fixed.from_float_for_signal`` and ``rfc3339_to_ns``, and the alarm heap of ``LiveClock``."""

from __future__ import annotations

import asyncio
import math
import struct
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tradeloop.core import fixed, timestamps
from tradeloop.core.clock import LiveClock
from tradeloop.core.textmemo import TextMemo
from tradeloop.core.timestamps import rfc3339_to_ns

# -- TextMemo --------------------------------------------------------------------------------------


def test_text_memo_is_its_function_and_stays_bounded() -> None:
    calls: list[int] = []

    def fmt(v: int) -> str:
        calls.append(v)
        return fixed.to_str(v)

    memo = TextMemo(fmt, max_entries=3)
    assert [memo(v) for v in (1, 2, 1, 10**9, 5)] == ["0.000000001", "0.000000002", "0.000000001", "1", "0.000000005"]
    assert calls == [1, 2, 10**9, 5]  # 1 came from the memo the second time
    assert len(memo) <= 3
    get, fill = memo.texts.get, memo.fill
    assert (get(5) or fill(5)) == "0.000000005"
    empty = TextMemo(lambda v: "")
    assert empty(1) == "" and empty(1) == ""  # a call handles an empty text too
    with pytest.raises(ValueError):
        TextMemo(str, max_entries=0)


def test_text_memo_lets_errors_through_and_remembers_nothing_then() -> None:
    memo = TextMemo(lambda v: fixed.to_str(v, 2))
    with pytest.raises(fixed.FixedPointError):
        memo(1)  # 0.000000001 cannot be written with 2 decimals
    assert len(memo) == 0


# -- from_float_for_signal: the exact decimal of repr(), whatever the path -------------------------


def _reference(value: float, step: int, rounding: str) -> int:
    """The float's shortest decimal (``repr``) via Decimal, rounded to ``step`` by ``fixed.div_round``."""
    d = Decimal(repr(value))
    sign, digits, exp = d.as_tuple()
    mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
    assert isinstance(exp, int)
    shift = exp + fixed.SCALE_DIGITS
    num, den = (mantissa * 10**shift, 1) if shift >= 0 else (mantissa, 10**-shift)
    return fixed.div_round(num, den * step, rounding) * step


floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e-3, max_value=1e-3),
    st.builds(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0], st.integers(0, 2**64 - 1)).filter(
        lambda v: math.isfinite(v) and abs(v) < 1e25
    ),
)


@settings(max_examples=2000, deadline=None)
@given(
    floats,
    st.sampled_from([1, 10, 12345, 10**8, 5 * 10**8, 10**9, 10**12]),
    st.sampled_from(["half_even", "floor", "ceil", "down"]),
)
@example(60000.05, 10**8, "floor")
@example(-0.0, 1, "half_even")
@example(1.5e-05, 10, "ceil")
@example(1e16, 10**9, "floor")
def test_from_float_for_signal_is_the_decimal_of_repr(value: float, step: int, rounding: str) -> None:
    assert fixed.from_float_for_signal(value, step, rounding) == _reference(value, step, rounding)


# -- rfc3339_to_ns: the remembered-second path ------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(0, 999_999_999),
    st.integers(1, 9),
)
def test_rfc3339_is_the_same_on_first_and_later_reads(moment: datetime, nanos: int, digits: int) -> None:
    frac = f"{nanos:09d}"[:digits]
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + "." + frac + "Z"
    expected = int(moment.replace(tzinfo=UTC).timestamp()) * 1_000_000_000 + int(frac.ljust(9, "0"))
    timestamps._SECONDS.clear()
    assert rfc3339_to_ns(text) == expected  # the general path, which remembers the second
    assert rfc3339_to_ns(text) == expected  # the shortcut


def test_rfc3339_shortcut_refuses_what_the_general_path_refuses() -> None:
    assert rfc3339_to_ns("2021-04-17T16:43:37.089723Z") == 1_618_677_817_089_723_000
    for bad in ("2021-04-17T16:43:37.Z", "2021-04-17T16:43:37.08x7Z", "2021-04-17T16:43:37.0²Z"):
        with pytest.raises(ValueError):
            rfc3339_to_ns(bad)
    # Offsets and lower-case z still take the general path.
    assert rfc3339_to_ns("2021-04-17T18:43:37.5+02:00") == 1_618_677_817_500_000_000
    assert rfc3339_to_ns(" 2021-04-17T16:43:37.089723z ") == 1_618_677_817_089_723_000


# -- LiveClock alarms ------------------------------------------------------------------------------


def test_live_clock_alarms_reset_cancel_order_and_errors() -> None:
    async def scenario() -> tuple[list[tuple[str, int]], list[BaseException]]:
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx["exception"]))
        clock = LiveClock()
        fired: list[tuple[str, int]] = []
        now = clock.now_ns()
        ms = 1_000_000

        def note(name: str, at: int) -> None:
            fired.append((name, at))

        def boom(name: str, at: int) -> None:
            fired.append((name, at))
            raise RuntimeError("alarm callback failed")

        def again(name: str, at: int) -> None:
            fired.append((name, at))
            clock.set_alarm("b", at + 5 * ms, note)  # set from inside a callback (as the OMS does)

        clock.set_alarm("late", now + 60 * ms, note)
        clock.set_alarm("a", now + 30 * ms, note)
        clock.set_alarm("a", now + 10 * ms, again)  # set again: only the latest counts
        clock.set_alarm("gone", now + 5 * ms, note)
        clock.cancel_timer("gone")
        clock.set_alarm("err", now + 20 * ms, boom)
        clock.set_alarm("same", now + 20 * ms, note)  # due together with the failing one: still runs
        for i in range(200):  # many set-and-cancel cycles (request deadlines) compact the heap
            clock.set_alarm(f"t{i}", now + 10_000 * ms, note)
            clock.cancel_timer(f"t{i}")
        assert len(clock._alarm_heap) <= 2 * len(clock._alarms) + 64
        clock.set_alarm("late", now + 40 * ms, note)  # moved earlier than first set
        await asyncio.sleep(0.08)
        return fired, errors

    fired, errors = asyncio.run(scenario())
    names = [name for name, _ in fired]
    assert names == ["a", "b", "err", "same", "late"]
    assert [at for _, at in fired] == sorted(at for _, at in fired)
    assert len(errors) == 1 and str(errors[0]) == "alarm callback failed"
