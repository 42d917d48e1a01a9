"""Intent before send, without blocking the engine: group commit for a live node's order requests.

A live node must not let a submit or amend leave before its intent is on disk (``OrderSubmitted``,
``OrderPendingAmend``): after a crash, recovery asks the venue about exactly those orders. Syncing the
journal inline for every intent (``append_durable``) blocks the event loop for an fsync (0.2-0.4 ms
here, more on a busy disk) per order, and caps the node at a few thousand intents a second.

:class:`IntentBarrier` instead holds each request until the journal reports its intent durable: the
intent is appended, a sync is requested (``Journal.request_durable``: one background fsync covers
every intent appended meanwhile) and the request waits in a FIFO; the journal's durable listener
wakes the loop, which releases every held request whose intent is now durable, in order. Requests
that need no durability (cancels, queries) still queue behind held ones, so a cancel never overtakes
the submit it cancels. With nothing held and the journal already durable, a request leaves at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["DurableJournal", "IntentBarrier"]


class DurableJournal(Protocol):
    """What the barrier needs from a journal."""

    def last_seq(self) -> int: ...

    def durable_seq(self) -> int: ...

    def request_durable(self) -> int: ...

    def add_durable_listener(self, fn: Callable[[int], None]) -> None: ...

    def remove_durable_listener(self, fn: Callable[[int], None]) -> None: ...


class IntentBarrier:
    """Holds requests until the journal has made their intents durable (see the module docstring).

    ``loop`` is the engine's event loop: the journal's listener may run on its sync thread, and the
    release runs on the loop.
    """

    def __init__(self, journal: DurableJournal, loop: asyncio.AbstractEventLoop) -> None:
        self._journal = journal
        self._loop = loop
        self._held: deque[tuple[int, Callable[[], None]]] = deque()
        self._wake_pending = False
        self.held_total = 0
        """Requests that had to wait for a sync (the others left at once)."""
        journal.add_durable_listener(self._on_durable)

    @property
    def held(self) -> int:
        """Requests waiting now."""
        return len(self._held)

    def after_intent(self, send: Callable[[], None]) -> None:
        """Run ``send`` once every record journaled so far (its intent among them) is durable."""
        journal = self._journal
        seq = journal.last_seq()
        if not self._held and journal.durable_seq() >= seq:
            send()
            return
        self._held.append((seq, send))
        self.held_total += 1
        journal.request_durable()

    def in_order(self, send: Callable[[], None]) -> None:
        """Run ``send`` (a request with no intent of its own) after the requests already held."""
        if not self._held:
            send()
            return
        self._held.append((0, send))

    def close(self) -> None:
        """Stop listening to the journal (held requests stay held; a session ends with none)."""
        self._journal.remove_durable_listener(self._on_durable)

    def _on_durable(self, _seq: int) -> None:
        # Any thread. One wake-up per burst is enough: the release reads durable_seq itself.
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._release)
        except RuntimeError:  # the loop is closed: the session is over
            self._wake_pending = False

    def _release(self) -> None:
        self._wake_pending = False
        held = self._held
        durable = self._journal.durable_seq()
        while held and held[0][0] <= durable:
            _, send = held.popleft()
            send()
        if held:
            self._journal.request_durable()
