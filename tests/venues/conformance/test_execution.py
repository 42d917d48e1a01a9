"""Conformance, execution: every registered venue's execution client through the real engine (OMS,
risk, portfolio) against the venue's local simulator (section 4 of the contract)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tradeloop.model.commands import CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.data import Trade
from tradeloop.model.enums import InstrumentKind, OrderStatus, RejectReason, Side
from tradeloop.model.events import OrderCancelRejected, OrderRejected, OrderStatusReport
from tradeloop.security.credentials import Credentials

from .harness import Session, order_qty, reject_errors, venue_params, venue_session, wait_status, wait_until

pytestmark = pytest.mark.parametrize("venue", venue_params())

RUN_TIMEOUT_S = 30.0
OPEN = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, RUN_TIMEOUT_S))


def best(s: Session) -> tuple[int, int]:
    book = s.core.book(s.iid)
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None
    return bid, ask


def direct_submit(s: Session, cid: str, side: Side, price: int, qty: int, **kw: Any) -> None:
    """A submit straight to the execution client (no OMS, no risk): to test the venue's refusals."""
    s.execution.submit(
        SubmitOrder(
            ts=s.clock.now_ns(),
            strategy_id="conformance",
            instrument_id=s.iid,
            side=side,
            qty=qty,
            price=price,
            client_order_id=cid,
            **kw,
        )
    )


def assert_perp_account(s: Session, position: int) -> None:
    """A derivative's fills move no base currency: the venue holds a position of ``position`` and its
    quote (settle) balance moved by exactly that position's realized PnL minus fees; the engine's
    position and venue-style wallet balance equal the venue's."""
    base, settle = s.inst.base, s.inst.settle
    venue_balances = {b.currency: b.total for b in s.core.balances().balances}
    held = [p for p in s.core.positions() if p.instrument_id == s.iid]
    assert len(held) == 1, f"{s.venue}: the venue reports no position after a fill ({s.core.positions()})"
    venue_position = held[0]
    assert venue_position.qty == position
    assert venue_balances.get(base, 0) == s.balances.get(base, 0), "a derivative fill moved the base currency"
    assert venue_balances[settle] == s.balances[settle] + venue_position.realized - venue_position.fees
    assert s.engine.portfolio.position_qty(s.iid) == venue_position.qty
    assert s.engine.portfolio.balance(s.venue, base) == s.balances.get(base, 0)
    assert s.engine.portfolio.wallet_balance(s.venue, settle) == venue_balances[settle]


def test_place_amend_cancel_fill_cancel_all_and_query(venue: str) -> None:
    async def main() -> None:
        async with venue_session(venue, feed="static") as s:
            ctx, tick = s.engine.ctx, s.inst.tick_size
            bid, ask = best(s)
            qty = order_qty(s.inst, ask)

            # Place and rest.
            cid = ctx.submit(s.iid, Side.BUY, qty, bid - 5 * tick)
            await wait_status(s, cid, OPEN)
            at_venue = s.core.order(cid)
            assert at_venue is not None and at_venue.price == bid - 5 * tick and at_venue.qty == qty
            assert s.order(cid).venue_order_id  # the venue's own id, in the venue's format

            # Amend: native, or cancel/replace by the engine.
            ctx.amend(cid, price=bid - 6 * tick)
            if s.execution.supports_amend:
                await wait_until(
                    lambda: s.order(cid).price == bid - 6 * tick and s.order(cid).status in OPEN,
                    5.0,
                    f"{venue}: native amend applied in the OMS",
                )
                working = cid
            else:
                await wait_status(s, cid, (OrderStatus.CANCELED,))
                await wait_until(lambda: len(s.engine.oms.open_orders()) == 1, 5.0, f"{venue}: the replacement order")
                working = s.engine.oms.open_orders()[0].client_order_id
                await wait_status(s, working, OPEN)
            venue_open = s.core.open_orders()
            assert [(o.client_order_id, o.price, o.qty) for o in venue_open] == [(working, bid - 6 * tick, qty)]

            # Cancel.
            ctx.cancel(working)
            await wait_status(s, working, (OrderStatus.CANCELED,))
            assert s.core.open_orders() == []

            # Take liquidity: filled at the best ask; the engine's balances match the venue's account.
            taker = ctx.submit(s.iid, Side.BUY, qty, ask)
            await wait_status(s, taker, (OrderStatus.FILLED,))
            base, quote = s.inst.base, s.inst.quote
            venue_balances = {b.currency: b.total for b in s.core.balances().balances}
            if s.inst.kind is InstrumentKind.SPOT:
                assert venue_balances[base] == s.balances[base] + qty
                assert s.engine.portfolio.balance(s.venue, base) == venue_balances[base]
                assert s.engine.portfolio.balance(s.venue, quote) == venue_balances[quote]
            else:
                assert_perp_account(s, position=qty)

            # Rest at the best ask and get filled by a public trade through the queue (maker).
            ahead = s.core.book(s.iid).qty_at(ask, False)
            maker = ctx.submit(s.iid, Side.SELL, qty, ask)
            await wait_status(s, maker, OPEN)
            ts = s.clock.now_ns()
            s.core.apply_market(Trade(s.iid, ts, ts, ask, ahead + qty, Side.BUY, "conformance-1"))
            await wait_status(s, maker, (OrderStatus.FILLED,))
            assert s.order(maker).filled_qty == qty

            # Cancel all.
            cids = [ctx.submit(s.iid, Side.BUY, qty, bid - k * tick) for k in (5, 7)]
            for c in cids:
                await wait_status(s, c, OPEN)
            assert len(s.core.open_orders()) == 2
            ctx.cancel_all(s.iid)
            for c in cids:
                await wait_status(s, c, (OrderStatus.CANCELED,))
            assert s.core.open_orders() == []

            # Query by client order id: a filled order, and one the venue never saw.
            for queried in (taker, "CFNEVERSEEN1"):
                s.execution.query(QueryOrder(ts=s.clock.now_ns(), instrument_id=s.iid, client_order_id=queried))

            def report(c: str) -> OrderStatusReport | None:
                found = [e for e in s.client_events_of(c) if isinstance(e, OrderStatusReport)]
                return found[-1] if found else None

            await wait_until(lambda: report(taker) is not None, 5.0, f"{venue}: the status report of {taker}")
            await wait_until(
                lambda: report("CFNEVERSEEN1") is not None, 5.0, f"{venue}: the report of an unknown order"
            )
            filled = report(taker)
            assert filled is not None and filled.status is OrderStatus.FILLED and filled.filled_qty == qty
            unknown = report("CFNEVERSEEN1")
            assert unknown is not None and unknown.status is None
            # The query may re-send the taker's fill: de-duplicated by trade id, the balance (spot) or the
            # position (perp) is back where it started (bought qty, then sold qty as maker).
            if s.inst.kind is InstrumentKind.SPOT:
                assert {b.currency: b.total for b in s.core.balances().balances}[base] == s.balances[base]
                assert s.engine.portfolio.balance(s.venue, base) == s.balances[base]
            else:
                assert_perp_account(s, position=0)

    run(main())


def test_reply_delayed_past_the_timeout_is_resolved_by_query_without_a_duplicate(venue: str) -> None:
    delay = 1.6

    async def main() -> None:
        async with venue_session(venue, feed="static", request_timeout_ms=400) as s:
            bid, _ = best(s)
            qty = order_qty(s.inst, bid)
            loop = asyncio.get_running_loop()
            s.sim.faults.delay_next_reply(delay)
            sent = loop.time()
            cid = s.engine.ctx.submit(s.iid, Side.BUY, qty, bid - 5 * s.inst.tick_size)
            await wait_status(s, cid, OPEN, timeout=delay - 0.2)
            assert loop.time() - sent < delay, "resolved before the held reply was released"
            assert s.sim.faults.consumed["delay_next_reply"] == 1, "the dialect did not hold the reply"
            await asyncio.sleep(delay - (loop.time() - sent) + 0.4)  # the held reply has arrived by now
            assert s.accepted_at_venue(cid) == 1, "the order must reach the venue exactly once"
            assert [o.client_order_id for o in s.core.open_orders()] == [cid]
            assert s.order(cid).status in OPEN and len(s.engine.oms.open_orders()) == 1

    run(main())


def test_rate_limit_reply_is_retried_within_the_budget(venue: str) -> None:
    async def main() -> None:
        async with venue_session(venue, feed="static") as s:
            bid, _ = best(s)
            qty = order_qty(s.inst, bid)
            s.sim.faults.rate_limit_next(1)
            cid = s.engine.ctx.submit(s.iid, Side.BUY, qty, bid - 5 * s.inst.tick_size)
            await wait_status(s, cid, OPEN, timeout=8.0)
            assert s.sim.faults.consumed["rate_limit_next"] == 1, "the dialect did not send its rate-limit reply"
            assert s.accepted_at_venue(cid) == 1
            assert len(s.core.open_orders()) == 1

    run(main())


def test_each_mapped_venue_error_arrives_as_its_reject_reason(venue: str) -> None:
    async def main() -> None:
        async with venue_session(venue, feed="static") as s:
            table = reject_errors(s.connector)
            if not table:
                pytest.skip(
                    f"{venue}: no venue errors to inject (CONNECTOR.extras['reject_errors'] or spec.REJECT_ERRORS)"
                )
            bid, _ = best(s)
            price = bid - 5 * s.inst.tick_size
            qty = order_qty(s.inst, bid)

            def rejection(cid: str) -> OrderRejected | None:
                found = [e for e in s.client_events_of(cid) if isinstance(e, OrderRejected)]
                return found[0] if found else None

            for n, (reason, error) in enumerate(sorted(table.items())):
                if reason is RejectReason.UNKNOWN_ORDER:
                    continue  # a cancel's refusal: checked below without injection
                cid = f"CFREJ{n}"
                s.sim.faults.reject_next(error)
                direct_submit(s, cid, Side.BUY, price, qty)
                if reason is RejectReason.RATE_LIMITED:
                    # The client backs off and re-sends within its budget: accepted, or refused as rate limited.
                    await wait_until(
                        lambda c=cid: rejection(c) is not None or s.core.order(c) is not None,  # type: ignore[misc]
                        8.0,
                        f"{venue}: an answer to {cid} after a rate-limit refusal",
                    )
                    refused = rejection(cid)
                    assert refused is None or refused.reason is RejectReason.RATE_LIMITED, refused
                else:
                    await wait_until(
                        lambda c=cid: rejection(c) is not None,  # type: ignore[misc]
                        5.0,
                        lambda c=cid, e=error: f"{venue}: {c} rejected for {e!r} ({s.client_events_of(c)})",  # type: ignore[misc]
                    )
                    refused = rejection(cid)
                    assert refused is not None and refused.reason is reason, f"{error!r}: {refused}"
                    assert s.core.order(cid) is None, "a refused order must not exist at the venue"
                assert s.sim.faults.pending()["reject_next"] == 0, f"the dialect did not consume reject_next({error!r})"
                s.sim.faults.clear()

            # Refusals the venue decides itself, encoded by the dialect and mapped by the client.
            direct_submit(s, "CFPOOR1", Side.BUY, price, 10 * fixed_quote_budget(s, price))
            await wait_until(
                lambda: rejection("CFPOOR1") is not None, 5.0, f"{venue}: an order beyond the balance refused"
            )
            poor = rejection("CFPOOR1")
            assert poor is not None and poor.reason is RejectReason.INSUFFICIENT_BALANCE, poor
            s.execution.cancel(
                CancelOrder(
                    ts=s.clock.now_ns(), strategy_id="conformance", instrument_id=s.iid, client_order_id="CFNOPE1"
                )
            )

            def cancel_refused() -> OrderCancelRejected | None:
                found = [e for e in s.client_events_of("CFNOPE1") if isinstance(e, OrderCancelRejected)]
                return found[0] if found else None

            await wait_until(
                lambda: cancel_refused() is not None, 5.0, f"{venue}: a cancel of an unknown order refused"
            )
            refused_cancel = cancel_refused()
            assert refused_cancel is not None and refused_cancel.reason is RejectReason.UNKNOWN_ORDER, refused_cancel

    run(main())


def fixed_quote_budget(s: Session, price: int) -> int:
    """A size worth the whole quote balance at ``price`` (on the lot grid)."""
    from tradeloop.core import fixed

    return s.inst.round_qty(fixed.div(s.balances[s.inst.quote], price, "ceil"), "ceil")


def wrong_credentials(good: Credentials) -> Credentials:
    """The same API key with a different secret (or private key of the same kind)."""
    key, secret, passphrase, pem = good.reveal_all()
    other_pem = None
    if pem is not None:
        private = good.load_private_key()
        fresh = (
            ed25519.Ed25519PrivateKey.generate()
            if isinstance(private, ed25519.Ed25519PrivateKey)
            else ec.generate_private_key(ec.SECP256R1())
        )
        other_pem = fresh.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    other_secret = None
    if secret is not None:
        # Swap two different characters: same length and alphabet (still valid base64/hex), different key.
        chars = list(secret)
        i = next(i for i in range(1, len(chars)) if chars[i] != chars[0])
        chars[0], chars[i] = chars[i], chars[0]
        other_secret = "".join(chars)
    return Credentials(good.venue, good.name + "-wrong", key, other_secret, passphrase, other_pem)


def test_a_wrong_signature_is_refused_and_nothing_reaches_the_book(venue: str) -> None:
    async def main() -> None:
        from tradeloop.venues.connectors import get_connector

        bad = wrong_credentials(get_connector(venue).test_credentials())
        async with venue_session(venue, feed="static") as s:
            bid, _ = best(s)
            client = s.connector.execution(bad, {s.iid: s.inst}, s.clock, s.client_events.append, s.urls)
            direct_submit_to = SubmitOrder(
                ts=s.clock.now_ns(),
                strategy_id="conformance",
                instrument_id=s.iid,
                side=Side.BUY,
                qty=order_qty(s.inst, bid),
                price=bid - 5 * s.inst.tick_size,
                client_order_id="CFBADSIG1",
            )
            try:
                start = getattr(client, "start", None)
                if start is not None:  # a private-stream login with a wrong secret may fail: that is fine
                    with suppress(Exception):
                        await asyncio.wait_for(start(), 1.0)
                client.submit(direct_submit_to)
                await wait_until(
                    lambda: any(isinstance(e, OrderRejected) for e in s.client_events_of("CFBADSIG1")),
                    5.0,
                    f"{venue}: an order signed with the wrong secret refused",
                )
                assert s.core.order("CFBADSIG1") is None and s.core.open_orders() == []
            finally:
                stop = getattr(client, "stop", None)
                if stop is not None:
                    with suppress(Exception):
                        await asyncio.wait_for(stop(), 5)

    run(main())
