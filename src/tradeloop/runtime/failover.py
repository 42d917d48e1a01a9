"""Failover: two live nodes, one primary and one hot secondary, sharing a lease in Redis and one journal.

``tradeloop live --config C --failover redis://HOST:6379/0 [--node-id N]`` runs a :class:`FailoverNode`:

1. **Secondary.** The config is read, the keys resolved and the venue connectors built at once (a
   :class:`~tradeloop.runtime.live.LiveSession` is constructed, which refuses a bad node before it
   waits), then the node polls the lease (:class:`~tradeloop.coordination.lease.FailoverLease`).
2. **Takeover.** With the lease comes a fencing token ``T``. The node starts a live session with
   ``id_epoch=T`` (every client order id carries ``T``, so a fenced venue refuses the ids of an older
   primary) and a send gate that refuses every submit and amend once the lease is no longer valid
   locally. The session recovers from the shared journal (snapshot, tail, reconciliation with the
   venues) before the strategy starts. Renewals run every ``renew_every_ms``.
3. **Loss.** When the lease lapses (renewals failed past its local validity, or the key was taken
   over), the gate already refuses; the session is stopped at once *without* canceling anything
   (the orders belong to the new primary now) and the process ends with :data:`EXIT_LEASE_LOST`; a
   supervisor restarts it as a secondary. A session that does not end within ``lost_grace_s`` is
   abandoned.
4. **A deliberate end** (SIGINT/SIGTERM, ``--duration`` counted from the takeover) while the lease is
   valid stops the session the normal way (cancel-all unless ``--keep-orders``) and releases the
   lease, so the other node takes over at once. Any other end (an engine error, a venue that cannot
   be started) keeps the orders for the other node and releases the lease.

The secondary takes over at most ``ttl_ms`` + ``poll_ms`` after the primary's last renewal, plus its
own start (connect, recover, reconcile). Both nodes must use the same ``node_tag`` and the same
journal (a PostgreSQL URL, or one SQLite file on one machine); the lease name defaults to the
node tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from dataclasses import dataclass
from typing import Final

import msgspec
from rich.console import Console

from tradeloop.coordination.lease import FailoverLease, LeaseError
from tradeloop.coordination.redis_keys import resolve_redis_url
from tradeloop.core.config import ConfigError
from tradeloop.core.logging import get_logger
from tradeloop.ops.admin import AdminSettings
from tradeloop.persistence import JournalError
from tradeloop.runtime.live import LiveSession
from tradeloop.runtime.live_config import LiveConfig
from tradeloop.runtime.results import RunSummary
from tradeloop.runtime.session_tasks import install_stop_signals
from tradeloop.trading.execution import GatedCommand

__all__ = [
    "EXIT_FAILED",
    "EXIT_LEASE_LOST",
    "EXIT_OK",
    "FailoverNode",
    "FailoverResult",
    "FailoverSettings",
    "default_node_id",
    "resolve_redis_url",
    "run_failover_cli",
]

log = get_logger("tradeloop.failover")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
EXIT_LEASE_LOST: Final = 3
"""The node lost its lease while primary (restart it: it comes back as the secondary)."""

_NODE_ID_BAD: Final = re.compile(r"[^A-Za-z0-9_.-]")


class FailoverSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the lease lives and how it is held (see :class:`~tradeloop.coordination.lease.FailoverLease`)."""

    redis_url: str
    node_id: str
    lease_name: str
    ttl_ms: int = 2000
    """The lease's TTL: the other node takes over at most this long after this one's last renewal."""
    renew_every_ms: int | None = None
    """Default: a quarter of the TTL (with the default margin, also a quarter, three tries per holding)."""
    safety_margin_ms: int | None = None
    poll_ms: int = 100
    key_prefix: str = "tradeloop:lease"
    lost_grace_s: float = 5.0
    """How long a node that lost the lease lets its session end before abandoning it."""

    def __post_init__(self) -> None:
        if not self.lost_grace_s > 0:
            raise ValueError(f"lost_grace_s must be positive, got {self.lost_grace_s}")


@dataclass
class FailoverResult:
    """How a node's run ended: its exit code, why, the token it held (if it ever was primary) and the
    session's summary (when the session ran to its end)."""

    exit_code: int
    reason: str
    token: int | None = None
    summary: RunSummary | None = None


def default_node_id() -> str:
    """``<host>-<pid>``, in the characters a lease accepts."""
    return _NODE_ID_BAD.sub("-", f"{socket.gethostname()}-{os.getpid()}")[-64:]


class FailoverNode:
    """One node of a failover pair; ``await run()`` waits for the lease, trades while it holds it and
    returns a :class:`FailoverResult`. The session options are those of :class:`LiveSession`."""

    def __init__(
        self,
        config: LiveConfig,
        settings: FailoverSettings,
        *,
        endpoint: str | None = None,
        keep_orders: bool = False,
        duration_s: float | None = None,
        admin: AdminSettings | None = None,
        strategy_spec: str | None = None,
        handle_signals: bool = True,
        console: Console | None = None,
    ) -> None:
        if config.journal.path is None:
            raise ConfigError(
                "failover: the pair needs a journal both nodes share (journal.path or --journal: a postgresql:// "
                "URL, or one SQLite file on this machine)"
            )
        if duration_s is not None and not duration_s > 0:
            raise ConfigError(f"duration must be positive, got {duration_s}")
        self.config = config
        self.settings = settings
        self.endpoint = endpoint
        self.keep_orders = keep_orders
        self.duration_s = duration_s
        self.admin = admin
        self.strategy_spec = strategy_spec
        self.handle_signals = handle_signals
        self.console = console or Console(stderr=True, quiet=True)
        # Hot standby: config, strategy and keys are checked now, not at takeover.
        self.standby = self._new_session(None)
        try:
            self.lease = FailoverLease(
                settings.redis_url,
                settings.lease_name,
                settings.node_id,
                ttl_ms=settings.ttl_ms,
                renew_every_ms=settings.renew_every_ms or max(settings.ttl_ms // 4, 1),
                safety_margin_ms=settings.safety_margin_ms,
                poll_ms=settings.poll_ms,
                key_prefix=settings.key_prefix,
            )
        except LeaseError as exc:
            raise ConfigError(f"failover: {exc}") from None
        self.session: LiveSession | None = None
        self.role = "secondary"
        """``secondary``, ``primary``, then ``lost`` or ``ended``."""
        self.lost_reason = ""
        self.gate_refusals = 0
        """Submits and amends this node's gate refused (the lease was no longer valid)."""
        self._stopping = asyncio.Event()
        self._stop_reason = ""
        self._run_task: asyncio.Task[RunSummary] | None = None

    # -- control ------------------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """End the node: a secondary stops waiting; a primary that still holds the lease ends its
        session the normal way (cancel-all unless ``keep_orders``) and releases the lease."""
        if self._stopping.is_set():
            return
        self._stop_reason = reason
        self._stopping.set()
        session = self.session
        if session is None or self.role != "primary":
            return
        if self.lease.valid_now():
            session.keep_orders = self.keep_orders  # a holder may clean up its own orders
        session.stop(reason)

    def describe(self) -> str:
        s = self.settings
        return f"node {s.node_id}, lease {s.lease_name!r} at {self.lease.where} (ttl {s.ttl_ms} ms)"

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> FailoverResult:
        loop = asyncio.get_running_loop()
        signals = install_stop_signals(loop, self.stop) if self.handle_signals else []
        try:
            token = await self._wait_for_lease()
            if token is None:
                self.role = "ended"
                return FailoverResult(EXIT_OK, f"stopped as secondary ({self._stop_reason})")
            return await self._trade(token)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            with contextlib.suppress(Exception):
                await self.lease.close()

    async def _wait_for_lease(self) -> int | None:
        log.info("failover: secondary, waiting for the lease", detail=self.describe())
        self.console.print(f"failover: secondary ({self.describe()}), waiting for the lease")
        acquiring = asyncio.create_task(self.lease.acquire_wait(), name="failover.acquire")
        stopping = asyncio.create_task(self._stopping.wait(), name="failover.stopping")
        try:
            await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            acquiring.cancel()
            await asyncio.gather(acquiring, stopping, return_exceptions=True)
        if acquiring.cancelled() or acquiring.exception() is not None:
            if self.lease.held:  # acquired in the same instant as the stop
                await self.lease.release()
            return None
        token = acquiring.result()
        if self._stopping.is_set():
            await self.lease.release()
            return None
        return token

    async def _trade(self, token: int) -> FailoverResult:
        self.role = "primary"
        log.info("failover: primary", node=self.settings.node_id, fencing_epoch=token)
        self.console.print(f"failover: primary with fencing token {token}")
        try:
            session = self._new_session(token)
        except BaseException:
            await self.lease.release()
            raise
        self.session = session
        if self._stopping.is_set():  # stopped between the acquire and here
            await self.lease.release()
            self.role = "ended"
            return FailoverResult(EXIT_OK, f"stopped before trading ({self._stop_reason})", token)
        renewing = asyncio.create_task(self.lease.run_renewals(self._on_lost), name="failover.renew")
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.duration_s, self.stop, "duration reached") if self.duration_s else None
        self._run_task = asyncio.create_task(session.run(), name="failover.session")
        summary: RunSummary | None = None
        error: BaseException | None = None
        try:
            summary = await self._run_task
        except asyncio.CancelledError:
            if self.role != "lost":
                raise
            error = TimeoutError(f"session did not end within {self.settings.lost_grace_s:g}s of losing the lease")
        except Exception as exc:
            error = exc
        finally:
            if timer is not None:
                timer.cancel()
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
        if self.role == "lost":
            self.console.print(f"[red]failover: lease lost[/red] ({self.lost_reason}); orders left to the new primary")
            return FailoverResult(EXIT_LEASE_LOST, f"lease lost: {self.lost_reason}", token, summary)
        self.role = "ended"
        released = await self.lease.release()
        log.info("failover: session ended, lease released", released=released, error=_name(error))
        if error is not None:
            code = EXIT_CONFIG if isinstance(error, ConfigError) else EXIT_FAILED
            return FailoverResult(code, f"{type(error).__name__}: {error}", token, summary)
        return FailoverResult(EXIT_OK, session.stop_reason, token, summary)

    # -- the lease inside the session -----------------------------------------------------------

    def _gate(self, cmd: GatedCommand) -> str | None:
        """The session's send gate: nothing (submit, amend, cancel) leaves once the lease is not valid
        here and now; the orders belong to the next primary."""
        if self.lease.valid_now():
            return None
        self.gate_refusals += 1
        self._on_lost(self.lease.lost_reason or "local validity ended")
        return f"failover: this node no longer holds lease {self.settings.lease_name!r} (token {self.lease.token})"

    def _on_lost(self, reason: str) -> None:
        if self.role != "primary":
            return
        self.role = "lost"
        self.lost_reason = reason
        log.error("failover: lease lost, stopping without canceling", node=self.settings.node_id, why=reason)
        session = self.session
        if session is not None:
            session.keep_orders = True
            session.stop(f"failover lease lost: {reason}")
        task = self._run_task
        if task is not None and not task.done():
            asyncio.get_running_loop().call_later(self.settings.lost_grace_s, task.cancel)

    def _new_session(self, token: int | None) -> LiveSession:
        # keep_orders=True: a session ending on its own (an error, a venue lost) leaves the orders for
        # the other node; only a deliberate stop by a valid holder cancels (see stop()).
        return LiveSession(
            self.config,
            endpoint=self.endpoint,
            keep_orders=True,
            duration_s=None,
            admin=self.admin,
            strategy_spec=self.strategy_spec,
            handle_signals=False,
            console=self.console,
            send_gate=self._gate if token is not None else None,
            id_epoch=token,
            journal_claim=token,
        )


def _name(error: BaseException | None) -> str:
    return "" if error is None else type(error).__name__


def run_failover_cli(
    config: LiveConfig,
    redis: str,
    *,
    node_id: str | None,
    lease_name: str | None,
    ttl_ms: int = 2000,
    endpoint: str | None,
    keep_orders: bool,
    duration_s: float | None,
    admin: AdminSettings | None,
    strategy_spec: str | None,
    console: Console,
) -> int:
    """``tradeloop live --failover``: build the node (user errors raise :class:`ConfigError`), run it,
    print how it ended; returns the exit code (0 done, 1 failed, 2 configuration, 3 lease lost)."""
    from tradeloop.runtime.summary import render_summary

    settings = FailoverSettings(
        redis_url=resolve_redis_url(redis, "--failover"),
        node_id=node_id or default_node_id(),
        lease_name=lease_name or config.node_tag,
        ttl_ms=ttl_ms,
    )
    node = FailoverNode(
        config,
        settings,
        endpoint=endpoint,
        keep_orders=keep_orders,
        duration_s=duration_s,
        admin=admin,
        strategy_spec=strategy_spec,
        console=console,
    )
    for line in node.standby.describe_keys():
        console.print(f"  {line}")
    try:
        result = asyncio.run(node.run())
    finally:
        _close_journal(node, console)
    console.print(f"failover node ended ({node.role}): {result.reason}")
    session = node.session
    if session is not None:
        for venue, left in sorted(session.orders_left.items()):
            style = "green" if left == 0 else "red"
            console.print(f"  {venue}: [{style}]{left} open order(s) left[/{style}]")
    if result.summary is not None:
        console.print(render_summary(result.summary))
    if result.exit_code == EXIT_OK and session is not None and any(session.orders_left.values()):
        return EXIT_FAILED
    return result.exit_code


def _close_journal(node: FailoverNode, console: Console) -> None:
    journal = node.session.journal if node.session is not None else None
    if journal is None:
        return
    try:
        journal.close()
    except JournalError as exc:
        if node.role != "lost":
            raise
        # The new primary writes this journal now: what this node still had buffered is refused.
        log.warning("failover: journal records after the lease was lost were not written", error=str(exc))
        console.print("failover: the journal belongs to the new primary; this node's last records were dropped")
