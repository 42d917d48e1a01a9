"""Coinbase Advanced Trade execution client: signed REST orders, the ``user`` channel for fills.

Every command is handled in an asyncio task and answered through ``emit``; nothing raises for a
venue-side problem. Replies to requests give acceptance, rejection, cancel and edit results; the
user channel gives fills (derived from cumulative quantities, see :mod:`.private`) and the states
the venue reaches by itself (IOC/FOK leftovers expired, orders cancelled by the venue). Each order's
acceptance and terminal event is emitted once, whichever path reports it first.

* A create whose outcome is unknown (timeout, 5xx) emits nothing: the OMS queries by client id.
* A 429 is retried with a fresh JWT and the same client order id (the venue treats it as an
  idempotency key) until ``rate_limit_patience_s``; then ``OrderRejected(RATE_LIMITED)``.
* After a reconnect or a sequence gap of the user socket, every working order is re-read over REST
  so fills and cancels missed meanwhile are reported (fills de-duplicated by derived trade id).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

import aiohttp
import msgspec
from yarl import URL

from tradeloop.core.clock import Clock
from tradeloop.core.logging import get_logger
from tradeloop.model.commands import AmendOrder, CancelAllOrders, CancelOrder, QueryOrder, SubmitOrder
from tradeloop.model.enums import OrderStatus, RejectReason
from tradeloop.model.events import (
    AccountSnapshot,
    OrderAmended,
    OrderAmendRejected,
    OrderCanceled,
    OrderCancelRejected,
    OrderRejected,
    OrderStatusReport,
)
from tradeloop.model.identifiers import InstrumentId
from tradeloop.model.instrument import Instrument
from tradeloop.security.credentials import Credentials
from tradeloop.venues.base import EmitEvent, SignedRequest
from tradeloop.venues.coinbase import orders as req
from tradeloop.venues.coinbase.parse import ParseError
from tradeloop.venues.coinbase.private import UserChannelParser
from tradeloop.venues.coinbase.schemas import OrderRecord
from tradeloop.venues.coinbase.spec import (
    CANCEL_BATCH_SIZE,
    HEARTBEAT_CHANNEL,
    HISTORY_PAGE,
    HISTORY_PAGES_FOR_CLIENT_ID,
    OPEN_ORDERS_PAGE,
    PRIVATE_COST,
    RATE_LIMITS,
    VENUE,
    WS_HEARTBEAT,
    WS_STALE_AFTER_S,
)
from tradeloop.venues.coinbase.tracking import OrderTracker, TrackedOrder
from tradeloop.venues.connector import ConnectorUrls
from tradeloop.venues.transport.backoff import Backoff, BackoffSpec
from tradeloop.venues.transport.order_entry import OrderEntry, check_order_entry
from tradeloop.venues.transport.ratelimit import RateBudget, RateLimited
from tradeloop.venues.transport.rest import (
    OutcomeUnknown,
    RestClient,
    RestConfig,
    RestError,
    RestResponse,
)
from tradeloop.venues.transport.ws import NotConnected, ReconnectingWebSocket, WsConnection, WsSpec

__all__ = ["CoinbaseExecutionClient"]

log = get_logger("tradeloop.venues.coinbase.execution")

_KEEP_ORDERS: Final = 10_000


class CoinbaseExecutionClient:
    """:class:`~tradeloop.venues.base.ExecutionClient` for Coinbase Advanced Trade (spot)."""

    venue = VENUE
    supports_amend = True
    """Native ``orders/edit`` (GTC limit orders; other orders are refused with INVALID_ORDER)."""

    def __init__(
        self,
        credentials: Credentials,
        instruments: Mapping[InstrumentId, Instrument],
        clock: Clock,
        emit: EmitEvent,
        urls: ConnectorUrls,
        *,
        rest_config: RestConfig | None = None,
        rate_limit_patience_s: float = 10.0,
        order_entry: OrderEntry = "rest",
        budget: RateBudget | None = None,
    ) -> None:
        if check_order_entry(VENUE, order_entry) != "rest":
            raise ValueError("Coinbase Advanced Trade has no WebSocket order API: order_entry must be 'rest'")
        self._key = req.CoinbaseKey.from_credentials(credentials)
        self._account = credentials.fingerprint
        self._budget = budget
        self._instruments = dict(instruments)
        self._by_product = {iid.symbol: inst for iid, inst in instruments.items()}
        self._clock = clock
        self._emit = emit
        self.urls = urls
        rest = URL(urls.rest)
        self._host = (rest.raw_host or "") + (f":{rest.explicit_port}" if rest.explicit_port else "")
        self._rest_config = rest_config or RestConfig()
        self._patience_s = rate_limit_patience_s
        self.clock_offset_ns = 0
        """Added to ``clock.now_ns()`` for the JWT times (the venue's clock offset, when measured)."""
        self.orders = OrderTracker(clock, emit)
        self._parser = UserChannelParser()
        self._session: aiohttp.ClientSession | None = None
        self._rest: RestClient | None = None
        self._ws: ReconnectingWebSocket | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconcile = False
        self.malformed = 0
        """User-socket frames that did not parse (logged, never fatal)."""

    # ---- lifecycle -------------------------------------------------------------------------------

    def _open_rest(self) -> RestClient:
        if self._rest is None:
            self._session = aiohttp.ClientSession()
            budget = self._budget if self._budget is not None else RateBudget(VENUE, self._account, RATE_LIMITS)
            self._rest = RestClient(self.urls.rest, self._session, config=self._rest_config, budget=budget, name=VENUE)
        return self._rest

    async def start(self) -> None:
        """Open the REST session and the user socket (subscribed within the venue's 5 s)."""
        self._open_rest()
        assert self._session is not None
        if self.urls.ws_private:
            spec = WsSpec(url=self.urls.ws_private, heartbeat=WS_HEARTBEAT, stale_after_s=WS_STALE_AFTER_S)
            self._ws = ReconnectingWebSocket(
                spec,
                on_open=self._on_open,
                on_frame=self._on_frame,
                on_close=self._on_close,
                session=self._session,
                now_ns=self._clock.now_ns,
                name="coinbase-user",
            )
            self._ws.start()
            await self._ws.wait_open(15)

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # ---- ExecutionClient -------------------------------------------------------------------------

    def submit(self, cmd: SubmitOrder) -> None:
        inst = self._instruments.get(cmd.instrument_id)
        if inst is None:
            self.orders.emit_now(
                OrderRejected,
                cmd.instrument_id,
                cmd.client_order_id,
                reason=RejectReason.INVALID_ORDER,
                message=f"{cmd.instrument_id} is not a Coinbase instrument of this client",
            )
            return
        self.orders.remember(TrackedOrder(cmd, inst))
        self._spawn(self._submit(cmd, inst))

    def cancel(self, cmd: CancelOrder) -> None:
        self._spawn(self._cancel(cmd))

    def cancel_all(self, cmd: CancelAllOrders) -> None:
        if cmd.venue is not None and cmd.venue != VENUE:
            return
        self._spawn(self._cancel_all(cmd))

    def amend(self, cmd: AmendOrder) -> None:
        self._spawn(self._amend(cmd))

    def query(self, cmd: QueryOrder) -> None:
        self._spawn(self._query(cmd))

    async def fetch_open_orders(self) -> list[OrderStatusReport]:
        """Every working order at the venue (all pages), as status reports."""
        now = self._clock.now_ns()
        return [
            req.status_report(r, InstrumentId(VENUE, r.product_id), r.client_order_id, now)
            for r in await self._list_orders("OPEN", ())
        ]

    async def fetch_balances(self) -> AccountSnapshot:
        """Balances of every account (all pages): total = available + hold, locked = hold."""
        pages: list[bytes] = []
        cursor = ""
        while True:
            resp = await self._call(req.accounts_request, cursor=cursor)
            if resp.status != 200:
                raise RestError(f"GET accounts: HTTP {resp.status}", method="GET", path="/api/v3/brokerage/accounts")
            pages.append(resp.body)
            cursor = req.accounts_cursor(resp.body)
            if not cursor:
                return req.account_snapshot(pages, self._clock.now_ns())

    # ---- requests --------------------------------------------------------------------------------

    async def _call(self, build: Callable[..., SignedRequest], *args: Any, **kwargs: Any) -> RestResponse:
        """Send ``build(key, now, nonce, *args, host=..., **kwargs)``, built fresh (new JWT) for every
        attempt; re-sent after a 429 until the patience runs out."""
        rest = self._open_rest()  # requests work before start() too (the user stream needs start())
        loop = asyncio.get_running_loop()
        started = loop.time()
        backoff = Backoff(BackoffSpec(base_s=0.1, cap_s=2.0), random.Random())
        while True:
            now = self._clock.now_ns() + self.clock_offset_ns
            signed = build(self._key, now, secrets.token_hex(16), *args, host=self._host, **kwargs)
            resp = await rest.request(
                signed.method,
                signed.path,
                params=signed.query or None,
                headers=signed.headers,
                body=signed.body,
                idempotent=signed.idempotent,
                costs=PRIVATE_COST,
            )
            if resp.status != 429 or loop.time() - started > self._patience_s:
                return resp
            log.info("coinbase rate limited; re-sending", path=signed.path, attempt=resp.attempts)
            # The client penalized the budget for Retry-After; a short backoff covers a missing header.
            await asyncio.sleep(backoff.next_delay())

    async def _submit(self, cmd: SubmitOrder, inst: Instrument) -> None:
        cid = cmd.client_order_id
        try:
            req.create_order_body(cmd, inst)
        except req.OrderRequestError as exc:
            self.orders.reject(cmd.instrument_id, cid, req.Rejection(RejectReason.INVALID_ORDER, str(exc)))
            return
        try:
            resp = await self._call(req.create_order_request, cmd, inst)
        except OutcomeUnknown:
            return  # the OMS times out and queries by client order id
        except RateLimited as exc:
            self.orders.reject(cmd.instrument_id, cid, req.Rejection(RejectReason.RATE_LIMITED, str(exc)))
            return
        except RestError as exc:
            self.orders.reject(cmd.instrument_id, cid, req.Rejection(RejectReason.OTHER, f"not sent: {exc}"))
            return
        if resp.status != 200:
            self.orders.reject(cmd.instrument_id, cid, req.http_rejection(resp.status, resp.body))
            return
        try:
            result = req.create_reply(resp.body)
        except req.ReplyError as exc:
            log.warning("coinbase create reply unreadable; the order will be queried", error=str(exc))
            return
        if isinstance(result, req.Rejection):
            self.orders.reject(cmd.instrument_id, cid, result)
            return
        order = self.orders.get(cid)
        if order is not None:
            self.orders.set_order_id(order, result)
            self.orders.accept(order)

    async def _cancel(self, cmd: CancelOrder) -> None:
        order = self.orders.get(cmd.client_order_id)
        order_id = order.order_id if order is not None else None
        try:
            if order_id is None:
                record = await self._search(cmd.client_order_id, cmd.instrument_id)
                order_id = record.order_id if record is not None else None
            if order_id is None:
                self.orders.emit_now(
                    OrderCancelRejected,
                    cmd.instrument_id,
                    cmd.client_order_id,
                    reason=RejectReason.UNKNOWN_ORDER,
                    message="no such order at Coinbase",
                )
                return
            oid = order_id
            rejection: req.Rejection | None
            resp = await self._call(req.batch_cancel_request, [oid])
            if resp.status != 200:
                rejection = req.http_rejection(resp.status, resp.body)
            else:
                rejection = req.cancel_results(resp.body).get(oid, req.Rejection(RejectReason.OTHER, "no result"))
        except (RestError, RateLimited, req.ReplyError) as exc:
            rejection = req.Rejection(
                RejectReason.RATE_LIMITED if isinstance(exc, RateLimited) else RejectReason.OTHER, str(exc)
            )
        if rejection is None:
            if order is not None:
                self.orders.terminal(order, OrderCanceled, reason="canceled on request")
            else:
                self.orders.emit_now(
                    OrderCanceled, cmd.instrument_id, cmd.client_order_id, reason="canceled on request"
                )
        else:
            self.orders.emit_now(
                OrderCancelRejected,
                cmd.instrument_id,
                cmd.client_order_id,
                reason=rejection.reason,
                message=rejection.message,
            )

    async def _cancel_all(self, cmd: CancelAllOrders) -> None:
        products = (cmd.instrument_id.symbol,) if cmd.instrument_id is not None else ()
        try:
            records = await self._list_orders("OPEN", products)
        except (RestError, RateLimited, req.ReplyError) as exc:
            log.error("coinbase cancel-all: listing open orders failed", error=str(exc))
            return
        ids: list[str] = []
        for r in records:
            mine = self.orders.get(r.client_order_id)
            if cmd.only_strategy and (mine is None or mine.strategy_id != cmd.strategy_id):
                continue
            ids.append(r.order_id)
        by_id = {r.order_id: r for r in records}
        for start in range(0, len(ids), CANCEL_BATCH_SIZE):
            chunk = ids[start : start + CANCEL_BATCH_SIZE]
            try:
                resp = await self._call(req.batch_cancel_request, chunk)
                results = req.cancel_results(resp.body) if resp.status == 200 else {}
            except (RestError, RateLimited, req.ReplyError) as exc:
                log.error("coinbase cancel-all: batch_cancel failed", error=str(exc), orders=len(chunk))
                continue
            for oid, rejection in results.items():
                order = self.orders.get(by_id[oid].client_order_id) if oid in by_id else None
                if rejection is None and order is not None:
                    self.orders.terminal(order, OrderCanceled, reason=cmd.reason or "cancel all")

    async def _amend(self, cmd: AmendOrder) -> None:
        order = self.orders.get(cmd.client_order_id)
        if order is None or order.order_id is None:
            self.orders.emit_now(
                OrderAmendRejected,
                cmd.instrument_id,
                cmd.client_order_id,
                reason=RejectReason.UNKNOWN_ORDER,
                message="order not working at Coinbase",
            )
            return
        if order.immediate or order.price is None:
            self.orders.emit_now(
                OrderAmendRejected,
                cmd.instrument_id,
                cmd.client_order_id,
                reason=RejectReason.INVALID_ORDER,
                message="Coinbase edits GTC limit orders only",
            )
            return
        price = cmd.price if cmd.price is not None else order.price
        qty = cmd.qty if cmd.qty is not None else order.qty
        oid = order.order_id
        try:
            resp = await self._call(req.edit_order_request, oid, price, qty, order.instrument)
            rejection = req.http_rejection(resp.status, resp.body) if resp.status != 200 else req.edit_reply(resp.body)
        except OutcomeUnknown:
            return
        except req.OrderRequestError as exc:
            rejection = req.Rejection(RejectReason.INVALID_ORDER, str(exc))
        except (RestError, RateLimited, req.ReplyError) as exc:
            reason = RejectReason.RATE_LIMITED if isinstance(exc, RateLimited) else RejectReason.OTHER
            rejection = req.Rejection(reason, str(exc))
        if rejection is None:
            order.price, order.qty = price, qty
            self.orders.emit_now(OrderAmended, cmd.instrument_id, cmd.client_order_id, price=price, qty=qty)
        else:
            self.orders.emit_now(
                OrderAmendRejected,
                cmd.instrument_id,
                cmd.client_order_id,
                reason=rejection.reason,
                message=rejection.message,
            )

    async def _query(self, cmd: QueryOrder) -> None:
        try:
            record = await self._search(cmd.client_order_id, cmd.instrument_id)
        except (RestError, RateLimited, req.ReplyError) as exc:
            log.warning("coinbase query failed", client_order_id=cmd.client_order_id, error=str(exc))
            return
        now = self._clock.now_ns()
        if record is None:
            self._emit(
                OrderStatusReport(
                    ts=now,
                    instrument_id=cmd.instrument_id,
                    client_order_id=cmd.client_order_id,
                    venue_order_id=None,
                    status=None,
                )
            )
            return
        order = self.orders.get(cmd.client_order_id)
        report = req.status_report(record, cmd.instrument_id, cmd.client_order_id, now)
        if order is not None:
            self.orders.set_order_id(order, record.order_id)
            self.orders.fill_from_record(order, record)
            order.accepted = order.accepted or report.status not in (None, OrderStatus.REJECTED)
            order.terminal = order.terminal or (report.status is not None and report.status.is_terminal)
        self._emit(report)

    async def _search(self, client_order_id: str, iid: InstrumentId) -> OrderRecord | None:
        """The venue's record of an order by client id: direct when its venue id is known, else a search
        of the most recent orders (the API has no lookup by client order id)."""
        order = self.orders.get(client_order_id)
        if order is not None and order.order_id is not None:
            oid = order.order_id
            resp = await self._call(req.get_order_request, oid)
            if resp.status == 200:
                return req.order_reply(resp.body)
            if resp.status not in (400, 404):
                raise RestError(
                    f"GET order: HTTP {resp.status}", method="GET", path="/api/v3/brokerage/orders/historical"
                )
        cursor = ""
        for _ in range(HISTORY_PAGES_FOR_CLIENT_ID):
            resp = await self._call(
                req.list_orders_request, status=None, product_ids=[iid.symbol], limit=HISTORY_PAGE, cursor=cursor
            )
            if resp.status != 200:
                raise RestError(f"list orders: HTTP {resp.status}", method="GET", path="/api/v3/brokerage/orders")
            page = req.orders_page(resp.body)
            for record in page.orders:
                if record.client_order_id == client_order_id:
                    return record
            if not page.has_next or not page.cursor:
                return None
            cursor = page.cursor
        return None

    async def _list_orders(self, status: str | None, products: tuple[str, ...]) -> list[OrderRecord]:
        out: list[OrderRecord] = []
        cursor = ""
        while True:
            resp = await self._call(
                req.list_orders_request, status=status, product_ids=products, limit=OPEN_ORDERS_PAGE, cursor=cursor
            )
            if resp.status != 200:
                raise RestError(f"list orders: HTTP {resp.status}", method="GET", path="/api/v3/brokerage/orders")
            page = req.orders_page(resp.body)
            out.extend(page.orders)
            if not page.has_next or not page.cursor:
                return out
            cursor = page.cursor

    # ---- user channel ----------------------------------------------------------------------------

    def _subscribe(self, kind: str, channel: str) -> str:
        msg: dict[str, object] = {"type": kind, "channel": channel}
        if channel != HEARTBEAT_CHANNEL:
            msg["product_ids"] = sorted(self._by_product)
        msg["jwt"] = self._key.jwt(self._clock.now_ns() + self.clock_offset_ns, secrets.token_hex(16))
        return msg_json(msg)

    async def _on_open(self, conn: WsConnection) -> None:
        self._parser.sequence.reset()
        await conn.send(self._subscribe("subscribe", "user"))
        await conn.send(self._subscribe("subscribe", HEARTBEAT_CHANNEL))

    def _on_close(self, reason: str) -> None:
        self._reconcile = True
        log.warning("coinbase user socket lost", reason=reason)

    def _on_frame(self, data: str | bytes, ts_recv: int) -> None:
        payload = data.encode() if isinstance(data, str) else data
        gaps = self._parser.sequence.gaps
        try:
            messages = self._parser.parse(payload)
        except ParseError as exc:
            self.malformed += 1
            log.warning("coinbase user frame malformed", venue=VENUE, channel="user", error=str(exc)[:200])
            return
        if self._parser.sequence.gaps != gaps:
            log.warning("coinbase user socket sequence gap; resubscribing", venue=VENUE)
            self._reconcile = True
            self._spawn(self._resubscribe())
        for message in messages:
            for update in message.updates:
                self.orders.on_update(update)
            if message.snapshot and self._reconcile:
                self._reconcile = False
                self._spawn(self._reread_working())

    async def _resubscribe(self) -> None:
        if self._ws is None:
            return
        with contextlib.suppress(NotConnected):
            await self._ws.send(self._subscribe("unsubscribe", "user"))
            await self._ws.send(self._subscribe("subscribe", "user"))

    async def _reread_working(self) -> None:
        """After a gap in the user stream: re-read every working order so missed fills and ends are reported."""
        for order in self.orders.working():
            oid = order.order_id
            assert oid is not None
            try:
                resp = await self._call(req.get_order_request, oid)
                if resp.status == 200:
                    self.orders.apply_record(order, req.order_reply(resp.body))
            except (RestError, RateLimited, req.ReplyError) as exc:
                log.warning(
                    "coinbase re-read of an order failed", client_order_id=order.client_order_id, error=str(exc)
                )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not kill the client; it is logged with its type
            log.error("coinbase execution task failed", error=f"{type(exc).__name__}: {exc}")


def msg_json(msg: Mapping[str, object]) -> str:
    return msgspec.json.encode(msg).decode()
