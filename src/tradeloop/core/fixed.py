"""Exact fixed-point numbers for prices, sizes and money.

Every exact quantity in tradeloop (price, size, fee, balance, PnL) is a plain Python ``int``
counting units of ``10**-9`` ("nanos"). One representation for everything means no conversions
between types on the hot path and no float anywhere in the trading core.

``Price``, ``Qty`` and ``Money`` are ``NewType`` aliases of ``int``: free at run time, checked by
mypy so a quantity is not passed where a price is expected.

A product of two fixed-point values (price x size) has 18 fractional digits; :func:`mul` brings it
back to 9 with an explicit rounding mode. Prices and sizes with at most 9 decimals whose digits
add up to at most 9 (every instrument we know of) multiply exactly.
"""

from __future__ import annotations

from typing import Final, NewType

SCALE_DIGITS: Final[int] = 9
SCALE: Final[int] = 10**SCALE_DIGITS

Price = NewType("Price", int)
Qty = NewType("Qty", int)
Money = NewType("Money", int)

_MAX_EXPONENT: Final[int] = 100
"""Exponents beyond this are refused (no venue sends them; 10**huge would stall the parser)."""
_POW10: Final[tuple[int, ...]] = tuple(10**i for i in range(SCALE_DIGITS + 1))
_INFINITIES: Final = (float("inf"), float("-inf"))


class FixedPointError(ValueError):
    """A string or number that cannot be represented exactly at 9 decimals."""


def parse(text: str) -> int:
    """Parse a decimal string such as ``"65432.10000000"`` into nanos, exactly.

    Accepts an optional sign, an integer part, a fraction and an exponent (``"1e-8"``). Raises
    :class:`FixedPointError` if the value has non-zero digits beyond the 9th decimal or is not a
    decimal number at all. Never goes through float.
    """
    fast = _parse_fast(text)
    if fast is not None:
        return fast
    return _parse_general(text)


def _parse_fast(text: str) -> int | None:
    # Plain unsigned "123" or "123.456" with up to 9 decimals: the shape of almost every venue string.
    if not text.isascii():
        return None
    dot = text.find(".")
    if dot < 0:
        return int(text) * SCALE if text.isdigit() else None
    frac = len(text) - dot - 1
    if frac > SCALE_DIGITS or frac == 0 or dot == 0:
        return None
    digits = text[:dot] + text[dot + 1 :]
    if not digits.isdigit():
        return None
    return int(digits) * _POW10[SCALE_DIGITS - frac]


def _parse_general(text: str) -> int:
    s = text.strip()
    if not s:
        raise FixedPointError(f"empty decimal string {text!r}")
    if not s.isascii():
        raise FixedPointError(f"not an ASCII decimal number: {text!r}")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    exp = 0
    epos = max(s.find("e"), s.find("E"))
    if epos >= 0:
        try:
            exp = int(s[epos + 1 :])
        except ValueError:
            raise FixedPointError(f"not a decimal number: {text!r}") from None
        if abs(exp) > _MAX_EXPONENT:
            raise FixedPointError(f"exponent out of range in {text!r}")
        s = s[:epos]
    whole, _, frac = s.partition(".")
    if not (whole or frac) or (whole and not whole.isdigit()) or (frac and not frac.isdigit()):
        raise FixedPointError(f"not a decimal number: {text!r}")
    mantissa = int((whole or "0") + frac)
    shift = SCALE_DIGITS + exp - len(frac)
    if shift >= 0:
        return sign * mantissa * _pow10(shift)
    q, r = divmod(mantissa, _pow10(-shift))
    if r:
        raise FixedPointError(f"{text!r} has more than {SCALE_DIGITS} decimals")
    return sign * q


def _pow10(n: int) -> int:
    result: int = 10**n
    return result


def from_int(value: int) -> int:
    """Whole units (for example ``5`` BTC) as nanos."""
    return value * SCALE


def to_str(value: int, decimals: int | None = None) -> str:
    """Format nanos as a decimal string without loss.

    With ``decimals`` the string has exactly that many fractional digits (the venue's own format,
    e.g. 8 for Binance spot); the value must be representable at that precision. Without it,
    trailing zeros are dropped (``"0.5"``, ``"100"``).
    """
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), SCALE)
    frac_s = f"{frac:09d}"
    if decimals is None:
        frac_s = frac_s.rstrip("0")
        return f"{sign}{whole}.{frac_s}" if frac_s else f"{sign}{whole}"
    if decimals < SCALE_DIGITS:
        if frac_s[decimals:].strip("0"):
            raise FixedPointError(f"{value} nanos cannot be written with {decimals} decimals")
        frac_s = frac_s[:decimals]
    else:
        frac_s = frac_s + "0" * (decimals - SCALE_DIGITS)
    return f"{sign}{whole}.{frac_s}" if frac_s else f"{sign}{whole}"


def decimals_of(step: int) -> int:
    """Number of decimals needed to write ``step`` (a tick or lot size) exactly."""
    if step <= 0:
        raise FixedPointError("step must be positive")
    d = SCALE_DIGITS
    while d > 0 and step % _POW10[SCALE_DIGITS - d + 1] == 0:
        d -= 1
    return d


def mul(a: int, b: int, rounding: str = "half_even") -> int:
    """``a x b`` of two fixed-point values, rounded back to 9 decimals.

    ``rounding`` is ``"half_even"`` (default, unbiased), ``"floor"``, ``"ceil"`` or ``"down"``
    (towards zero).
    """
    return div_round(a * b, SCALE, rounding)


def div(a: int, b: int, rounding: str = "half_even") -> int:
    """``a / b`` of two fixed-point values as a fixed-point value."""
    if b == 0:
        raise ZeroDivisionError("fixed-point division by zero")
    return div_round(a * SCALE, b, rounding)


def div_round(num: int, den: int, rounding: str = "half_even") -> int:
    """Integer division ``num / den`` with an explicit rounding mode (``den`` may be negative)."""
    if den < 0:
        num, den = -num, -den
    q, r = divmod(num, den)
    if r == 0 or rounding == "floor":
        return q
    if rounding == "ceil":
        return q + 1
    if rounding == "down":
        return q + 1 if q < 0 else q
    if rounding != "half_even":
        raise ValueError(f"unknown rounding mode {rounding!r}")
    twice = 2 * r
    if twice > den or (twice == den and q % 2 == 1):
        return q + 1
    return q


def round_to_step(value: int, step: int, rounding: str = "half_even") -> int:
    """Round ``value`` to a multiple of ``step`` (tick or lot size)."""
    if step <= 0:
        raise FixedPointError("step must be positive")
    return div_round(value, step, rounding) * step


def from_float_for_signal(value: float, step: int, rounding: str = "half_even") -> int:
    """Turn a strategy's float signal into an exact multiple of ``step``.

    The only sanctioned door from float into fixed point: the float is rendered to a decimal
    string (``repr`` is exact for the float's shortest form) and then rounded to the instrument's
    tick or lot, so no binary noise reaches an order.
    """
    if value != value or value in _INFINITIES:
        raise FixedPointError(f"not a finite number: {value!r}")
    text = repr(value)
    whole, dot, frac = text.partition(".")
    if dot and "e" not in frac:
        # The usual form ("-123.45"): the same arithmetic as below without the exponent handling.
        n_frac = len(frac)
        digits = int(whole + frac)
        if n_frac <= SCALE_DIGITS:
            return div_round(digits * _POW10[SCALE_DIGITS - n_frac], step, rounding) * step
        return div_round(digits, 10 ** (n_frac - SCALE_DIGITS) * step, rounding) * step
    # Parse with extra precision, then round to the step.
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("-")
    mant, _, exp_s = body.partition("e")
    exp = int(exp_s) if exp_s else 0
    whole, _, frac = mant.partition(".")
    digits = int((whole or "0") + frac)
    power = exp - len(frac)
    # value = sign * digits * 10**power; express as num/den in nanos.
    if power + SCALE_DIGITS >= 0:
        nanos_num, nanos_den = digits * 10 ** (power + SCALE_DIGITS), 1
    else:
        nanos_num, nanos_den = digits, 10 ** (-(power + SCALE_DIGITS))
    return div_round(sign * nanos_num, nanos_den * step, rounding) * step


def to_float(value: int) -> float:
    """For display, charts and strategy signal math only; never for money."""
    return value / SCALE
