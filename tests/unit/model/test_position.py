from __future__ import annotations

import random

from tradeloop.core import fixed
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.position import Position

P = fixed.parse


def fill(pos: Position, qty: str, price: str, fee: str = "0") -> int:
    q, p = P(qty), P(price)
    return pos.apply_fill(q, p, fixed.mul(abs(q), p), P(fee))


def test_open_add_reduce_flip_hand_computed() -> None:
    pos = Position(InstrumentId("sim", "BTCUSDT"))
    assert fill(pos, "2", "100") == 0 and pos.avg_entry() == P("100")
    assert fill(pos, "1", "130") == 0 and pos.avg_entry() == P("110")  # (200 + 130) / 3
    assert fill(pos, "-1.5", "120", fee="0.1") == P("15")  # 1.5 x (120 - 110)
    assert pos.qty == P("1.5") and pos.cost == P("165")
    assert fill(pos, "-2.5", "90") == P("-30")  # close 1.5 at 90: -30; open short 1 at 90
    assert pos.qty == P("-1") and pos.cost == P("-90") and pos.avg_entry() == P("90")
    assert pos.unrealized(P("80")) == P("10")
    assert pos.realized == P("-15") and pos.fees == P("0.1")


def test_cash_conservation_exact_over_random_fills() -> None:
    rng = random.Random(11)
    pos = Position(InstrumentId("sim", "X"))
    cash = 0
    for _ in range(5000):
        q = rng.choice([-1, 1]) * rng.randint(1, 10**6) * 10**3
        p = rng.randint(50_000, 70_000) * 10**7 + rng.randint(0, 99) * 10**5
        notional = fixed.mul(abs(q), p)
        cash += -notional if q > 0 else notional
        pos.apply_fill(q, p, notional, 0)
        mark = p
        # equity change = realized + unrealized, exactly, at every step
        assert cash + fixed.mul(pos.qty, mark) == pos.realized + pos.unrealized(mark)
