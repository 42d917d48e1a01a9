"""Durable-progress listeners: tell an engine, from whatever thread made it so, that more of the journal is durable.

An engine that pipelines group commits (append an intent, :meth:`~tradeloop.persistence.journal.Journal.
request_durable`, hold the send) wants to release its sends as soon as ``durable_seq()`` covers them,
without polling. A journal calls each listener with the new ``durable_seq()`` every time it
advances, from the thread that advanced it: the SQLite journal's WAL-sync thread, the PostgreSQL
journal's writer thread, or the caller's thread for a synchronous durable commit (and for every
append of a :class:`~tradeloop.persistence.memory.MemoryJournal`).

:class:`DurableListeners` does the delivery, with three guarantees:

* per listener, the seqs are strictly increasing (each advance at most once; several advances that
  happen while a delivery runs are coalesced into one call with the newest seq);
* no journal lock is held during a call, so a listener may call ``durable_seq()`` (and add or remove
  listeners);
* a listener that raises is logged and does not stop the journal or the other listeners.

Two threads that advance at once never call listeners concurrently: the one that finds a delivery
running leaves its seq to it (so a listener may be called from a thread other than the one that
made that seq durable). Listeners must be quick and thread-safe: typically
``lambda seq: loop.call_soon_threadsafe(on_durable, seq)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tradeloop.core.logging import get_logger

DurableListener = Callable[[int], None]
"""``fn(durable_seq)``: called when the journal's ``durable_seq()`` advances."""

log = get_logger("tradeloop.journal")


class DurableListeners:
    """The durable-progress listeners of one journal and their delivery (see the module docstring).

    :param describe: names the journal in log messages (called only when a listener fails).
    """

    __slots__ = ("_delivered", "_delivering", "_describe", "_lock", "_target", "listeners")

    def __init__(self, describe: Callable[[], str]) -> None:
        self.listeners: tuple[DurableListener, ...] = ()
        """The registered listeners (a tuple, replaced on change: empty means there is nothing to do)."""
        self._describe = describe
        self._lock = threading.Lock()
        self._target = 0
        self._delivered = 0
        self._delivering = False

    def add(self, fn: DurableListener) -> None:
        """Register ``fn``; it is called for every advance from now on (not with the current seq)."""
        if not callable(fn):
            raise TypeError(f"a durable listener must be callable, got {type(fn).__name__}")
        with self._lock:
            self.listeners = (*self.listeners, fn)

    def remove(self, fn: DurableListener) -> None:
        """Unregister ``fn`` (once, if it was added several times); nothing happens if it is not registered.

        A delivery already running may still call it once.
        """
        with self._lock:
            listeners = list(self.listeners)
            if fn in listeners:
                listeners.remove(fn)
                self.listeners = tuple(listeners)

    def advanced(self, seq: int) -> None:
        """``durable_seq()`` reached ``seq``: call the listeners (here, or in the delivery already running).

        Callers check :attr:`listeners` first, so a journal without listeners pays nothing more.
        """
        lock = self._lock
        with lock:
            if seq > self._target:
                self._target = seq
            if self._delivering:
                return  # the running delivery picks the new target up before it ends
            self._delivering = True
        try:
            while True:
                with lock:
                    target = self._target
                    if target <= self._delivered:
                        self._delivering = False
                        return
                    self._delivered = target
                    listeners = self.listeners
                for fn in listeners:
                    try:
                        fn(target)
                    except Exception as exc:  # a listener must not stop the journal's thread
                        log.error(
                            "durable listener failed",
                            journal=self._describe(),
                            listener=repr(fn),
                            seq=target,
                            error=f"{type(exc).__name__}: {exc}",
                        )
        except BaseException:
            with lock:
                self._delivering = False
            raise
