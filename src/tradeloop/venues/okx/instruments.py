"""OKX instrument specs: the instruments tradeloop lists, ``/api/v5/public/instruments`` parsing, and
exact conversions between engine sizes and OKX sizes.

Engine sizes are base units for every instrument (``Instrument`` lots, order and fill quantities,
book levels). OKX writes spot sizes in base units too, but swap sizes (``sz``, ``fillSz``,
``accFillSz``, book levels) in contracts of ``ctVal`` base each: ``sz = qty / ctVal``. Every
conversion here is exact; a size that does not convert exactly raises :class:`SizeError` instead of
being rounded. Our swap ``Instrument`` keeps ``contract_size = 1`` (sizes already in base units), so
notional and PnL are the same as for any other linear instrument.

Numbers sent to OKX are written without trailing zeros (``"0.1"``, ``"25000"``), as OKX documents
them and ccxt sends them, after checking they lie on the instrument's grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Final

import msgspec

from tradeloop.core import fixed
from tradeloop.model.enums import InstrumentKind
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.venues.okx.spec import VENUE, SymbolError

__all__ = [
    "INSTRUMENTS",
    "OkxInstrument",
    "SizeError",
    "contract_values",
    "instruments_by_symbol",
    "nanos_rounded",
    "parse_instruments",
    "plain_decimal",
    "spec_for",
    "spot_spec_of",
    "with_listed_codes",
]

_SCALE: Final = fixed.SCALE


class SizeError(ValueError):
    """A size or price that cannot be written exactly in the venue's units (off the grid, or inexact)."""


def plain_decimal(value: int) -> str:
    """Nanos as OKX writes numbers: no trailing zeros (``100000000`` -> ``"0.1"``)."""
    return fixed.to_str(value)


def nanos_rounded(text: str, rounding: str = "half_even") -> int:
    """A decimal string with any number of decimals as nanos, rounded (``"floor"`` or ``"half_even"``).

    For venue amounts that carry more than 9 decimals (fees, balances); exact decimal arithmetic,
    never float. Raises ``ValueError`` for text that is not a decimal number.
    """
    try:
        return fixed.parse(text)
    except fixed.FixedPointError:
        pass
    try:
        value = Decimal(text.strip()) * _SCALE
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite decimal number: {text!r}")
    mode = ROUND_FLOOR if rounding == "floor" else ROUND_HALF_EVEN
    return int(value.to_integral_value(rounding=mode))


class OkxInstrument(msgspec.Struct, frozen=True, kw_only=True):
    """One OKX instrument's rules in OKX's own units (nanos): spot sizes in base, swap sizes in contracts."""

    inst_id: str
    inst_type: str
    """``SPOT`` or ``SWAP`` (linear swaps only)."""
    base: str
    quote: str
    tick_sz: int
    lot_sz: int
    min_sz: int
    ct_val: int = _SCALE
    """Base units per contract (swaps); 1 for spot."""
    inst_id_code: int | None = None

    def __post_init__(self) -> None:
        if self.inst_type not in ("SPOT", "SWAP"):
            raise ValueError(f"{self.inst_id}: unsupported instType {self.inst_type!r}")
        if self.tick_sz <= 0 or self.lot_sz <= 0 or self.ct_val <= 0 or self.min_sz < 0:
            raise ValueError(f"{self.inst_id}: tickSz, lotSz and ctVal must be positive")
        if self.inst_type == "SPOT" and self.ct_val != _SCALE:
            raise ValueError(f"{self.inst_id}: a spot instrument has no contract value")

    @property
    def is_swap(self) -> bool:
        return self.inst_type == "SWAP"

    @property
    def instrument_id(self) -> InstrumentId:
        return InstrumentId(VENUE, self.inst_id)

    def instrument(self) -> Instrument:
        """The engine's view: sizes in base units (lot and minimum converted from contracts)."""
        return Instrument(
            id=self.instrument_id,
            base=self.base,
            quote=self.quote,
            kind=InstrumentKind.LINEAR_PERP if self.is_swap else InstrumentKind.SPOT,
            tick_size=self.tick_sz,
            lot_size=self.qty_from_sz(self.lot_sz),
            min_qty=self.qty_from_sz(self.min_sz),
        )

    # -- sizes ----------------------------------------------------------------------------------

    def qty_from_sz(self, sz: int) -> int:
        """OKX size (nanos of contracts for swaps) -> base quantity (nanos); exact or :class:`SizeError`."""
        if not self.is_swap:
            return sz
        q, r = divmod(sz * self.ct_val, _SCALE)
        if r:
            raise SizeError(f"{self.inst_id}: {plain_decimal(sz)} contracts are not a whole number of nanos")
        return q

    def sz_from_qty(self, qty: int) -> int:
        """Base quantity (nanos) -> OKX size (nanos of contracts for swaps); exact or :class:`SizeError`."""
        if not self.is_swap:
            return qty
        q, r = divmod(qty * _SCALE, self.ct_val)
        if r:
            raise SizeError(
                f"{self.inst_id}: {plain_decimal(qty)} {self.base} is not a whole number of nanos of contracts "
                f"({plain_decimal(self.ct_val)} {self.base} each)"
            )
        return q

    def parse_sz(self, text: str) -> int:
        """An OKX size string -> base quantity (nanos)."""
        return self.qty_from_sz(fixed.parse(text))

    def sz_text(self, qty: int) -> str:
        """The ``sz`` of an order for ``qty`` base (nanos): on the lot grid, without trailing zeros."""
        sz = self.sz_from_qty(qty)
        if sz <= 0 or sz % self.lot_sz:
            raise SizeError(
                f"{self.inst_id}: size {plain_decimal(sz)} is not a positive multiple of lotSz "
                f"{plain_decimal(self.lot_sz)}"
            )
        return plain_decimal(sz)

    def px_text(self, price: int) -> str:
        """The ``px`` of an order: on the tick grid, without trailing zeros."""
        if price <= 0 or price % self.tick_sz:
            raise SizeError(
                f"{self.inst_id}: price {plain_decimal(price)} is not a positive multiple of tickSz "
                f"{plain_decimal(self.tick_sz)}"
            )
        return plain_decimal(price)


def _spot(inst_id: str, tick: str, lot: str, min_sz: str) -> OkxInstrument:
    base, quote = inst_id.split("-")
    return OkxInstrument(
        inst_id=inst_id,
        inst_type="SPOT",
        base=base,
        quote=quote,
        tick_sz=fixed.parse(tick),
        lot_sz=fixed.parse(lot),
        min_sz=fixed.parse(min_sz),
    )


def _swap(inst_id: str, tick: str, lot: str, min_sz: str, ct_val: str, code: int) -> OkxInstrument:
    base, quote, _ = inst_id.split("-")
    return OkxInstrument(
        inst_id=inst_id,
        inst_type="SWAP",
        base=base,
        quote=quote,
        tick_sz=fixed.parse(tick),
        lot_sz=fixed.parse(lot),
        min_sz=fixed.parse(min_sz),
        ct_val=fixed.parse(ct_val),
        inst_id_code=code,
    )


INSTRUMENTS: Final[tuple[OkxInstrument, ...]] = (
    _spot("BTC-USDT", "0.1", "0.00000001", "0.00001"),
    _spot("ETH-USDT", "0.01", "0.000001", "0.0001"),
    _swap("BTC-USDT-SWAP", "0.1", "0.01", "0.01", "0.01", 10459),
    _swap("ETH-USDT-SWAP", "0.01", "0.01", "0.01", "0.1", 10461),
)
"""The instruments tradeloop lists on OKX (values from ``/api/v5/public/instruments``; refresh with
:func:`parse_instruments` on the live listing)."""


def instruments_by_symbol(specs: Iterable[OkxInstrument] = INSTRUMENTS) -> Mapping[str, OkxInstrument]:
    """``instId`` -> spec."""
    return MappingProxyType({s.inst_id: s for s in specs})


class _InstrumentData(msgspec.Struct, frozen=True):
    instId: str
    instType: str
    tickSz: str
    lotSz: str
    minSz: str
    state: str = "live"
    baseCcy: str = ""
    quoteCcy: str = ""
    ctVal: str = ""
    ctValCcy: str = ""
    ctType: str = ""
    settleCcy: str = ""
    uly: str = ""
    instFamily: str = ""
    instIdCode: int | None = None


class _InstrumentsReply(msgspec.Struct, frozen=True):
    code: str
    data: list[_InstrumentData] = []
    msg: str = ""


_INSTRUMENTS_REPLY = msgspec.json.Decoder(_InstrumentsReply)


def _from_data(d: _InstrumentData) -> OkxInstrument | None:
    if d.state != "live":
        return None
    if d.instType == "SPOT" and d.baseCcy and d.quoteCcy:
        return OkxInstrument(
            inst_id=d.instId,
            inst_type="SPOT",
            base=d.baseCcy,
            quote=d.quoteCcy,
            tick_sz=fixed.parse(d.tickSz),
            lot_sz=fixed.parse(d.lotSz),
            min_sz=fixed.parse(d.minSz),
            inst_id_code=d.instIdCode,
        )
    if d.instType == "SWAP" and d.ctType == "linear":
        family = d.instFamily or d.uly
        base, _, quote = family.partition("-")
        if not base or not quote or d.ctValCcy != base or d.settleCcy != quote:
            return None
        return OkxInstrument(
            inst_id=d.instId,
            inst_type="SWAP",
            base=base,
            quote=quote,
            tick_sz=fixed.parse(d.tickSz),
            lot_sz=fixed.parse(d.lotSz),
            min_sz=fixed.parse(d.minSz),
            ct_val=fixed.parse(d.ctVal),
            inst_id_code=d.instIdCode,
        )
    return None


def parse_instruments(payload: bytes) -> list[OkxInstrument]:
    """Live spot and linear-swap instruments in a ``/api/v5/public/instruments`` reply (others skipped).

    Raises ``ValueError`` for an error reply or a malformed body.
    """
    try:
        reply = _INSTRUMENTS_REPLY.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"okx instruments reply: {exc}") from exc
    if reply.code != "0":
        raise ValueError(f"okx instruments reply: code {reply.code}: {reply.msg}")
    out = []
    for d in reply.data:
        try:
            spec = _from_data(d)
        except (fixed.FixedPointError, ValueError, SymbolError):
            continue
        if spec is not None:
            out.append(spec)
    return out


def spec_for(symbol: str, specs: Mapping[str, OkxInstrument]) -> OkxInstrument:
    """The spec of ``symbol``; spot pairs not in ``specs`` need no spec for sizes, swaps do."""
    spec = specs.get(symbol)
    if spec is None:
        raise SymbolError(f"okx: no instrument spec for {symbol!r} (known: {', '.join(sorted(specs)) or 'none'})")
    return spec


def contract_values(specs: Sequence[OkxInstrument]) -> dict[str, int]:
    """``instId`` -> ``ctVal`` (nanos) of the swaps among ``specs``: what the parser converts."""
    return {s.inst_id: s.ct_val for s in specs if s.is_swap}


def spot_spec_of(inst: Instrument) -> OkxInstrument:
    """The OKX spec of a spot instrument known only as an engine :class:`Instrument` (a swap needs its
    contract value, which only OKX's listing gives)."""
    if inst.kind is not InstrumentKind.SPOT:
        raise ValueError(f"okx: {inst.id} is a swap without an OKX spec (its contract value is needed)")
    return OkxInstrument(
        inst_id=inst.id.symbol,
        inst_type="SPOT",
        base=inst.base,
        quote=inst.quote,
        tick_sz=inst.tick_size,
        lot_sz=inst.lot_size,
        min_sz=inst.min_qty,
    )


def with_listed_codes(specs: Mapping[str, OkxInstrument], listed: Iterable[OkxInstrument]) -> dict[str, OkxInstrument]:
    """``specs`` with each ``instIdCode`` the listing gives (others unchanged)."""
    codes = {s.inst_id: s.inst_id_code for s in listed}
    out = dict(specs)
    for symbol, spec in specs.items():
        code = codes.get(symbol)
        if code is not None and code != spec.inst_id_code:
            out[symbol] = msgspec.structs.replace(spec, inst_id_code=code)
    return out
