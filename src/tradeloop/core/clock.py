"""Clocks and timers.

The engine reads time only through a :class:`Clock`. In backtests a :class:`SimClock` is moved
forward by the event loop, and timers fire in (time, creation order), so runs are repeatable. In
live and paper modes a :class:`LiveClock` reads the system clock and fires timers from asyncio.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

TimerCallback = Callable[[str, int], None]
"""Called with (timer name, scheduled time ns)."""


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def set_timer(self, name: str, interval_ns: int, callback: TimerCallback, start_ns: int | None = None) -> None:
        """Fire ``callback`` every ``interval_ns`` from ``start_ns`` (default: now + interval)."""

    def set_alarm(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        """Fire ``callback`` once at ``at_ns``."""

    def cancel_timer(self, name: str) -> None: ...

    def call_at(self, at_ns: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` once at ``at_ns`` (used for simulated latencies). Same-time calls run in order."""


class SimClock:
    """Simulated time, advanced explicitly. Timers are kept in a heap and fired by :meth:`advance_to`."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._heap: list[tuple[int, int, str]] = []
        self._calls: list[tuple[int, int, Callable[[], None]]] = []
        self._timers: dict[str, tuple[int, TimerCallback, int]] = {}  # name -> (interval, cb, generation)
        self._seq = itertools.count()

    def now_ns(self) -> int:
        return self._now

    def set_timer(self, name: str, interval_ns: int, callback: TimerCallback, start_ns: int | None = None) -> None:
        if interval_ns <= 0:
            raise ValueError("timer interval must be positive")
        gen = next(self._seq)
        self._timers[name] = (interval_ns, callback, gen)
        first = start_ns if start_ns is not None else self._now + interval_ns
        heapq.heappush(self._heap, (first, gen, name))

    def set_alarm(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        gen = next(self._seq)
        self._timers[name] = (0, callback, gen)
        heapq.heappush(self._heap, (max(at_ns, self._now), gen, name))

    def cancel_timer(self, name: str) -> None:
        self._timers.pop(name, None)

    def call_at(self, at_ns: int, fn: Callable[[], None]) -> None:
        heapq.heappush(self._calls, (max(at_ns, self._now), next(self._seq), fn))

    def next_event_ns(self) -> int | None:
        """Time of the next timer or scheduled call, or ``None``."""
        t = self.next_timer_ns()
        calls = self._calls
        if calls and (t is None or calls[0][0] < t):
            return calls[0][0]
        return t

    def next_timer_ns(self) -> int | None:
        """Time of the next live timer, or ``None``."""
        heap = self._heap
        while heap:
            at, gen, name = heap[0]
            entry = self._timers.get(name)
            if entry is not None and entry[2] == gen:
                return at
            heapq.heappop(heap)
        return None

    def set_time(self, ts_ns: int) -> None:
        """Move time forward without firing timers (the caller fires them first)."""
        if ts_ns > self._now:
            self._now = ts_ns

    def advance_to(self, ts_ns: int) -> int:
        """Run every timer and scheduled call due at or before ``ts_ns`` in (time, creation) order,
        then set the time. Returns how many ran."""
        fired = 0
        calls = self._calls
        while True:
            at = self.next_timer_ns()
            if calls and calls[0][0] <= ts_ns and (at is None or (calls[0][0], calls[0][1]) < (at, self._heap[0][1])):
                call_at, _, fn = heapq.heappop(calls)
                if call_at > self._now:
                    self._now = call_at
                fn()
                fired += 1
                continue
            if at is None or at > ts_ns:
                break
            _, gen, name = heapq.heappop(self._heap)
            interval, callback, _ = self._timers[name]
            self._now = max(self._now, at)
            if interval:
                heapq.heappush(self._heap, (at + interval, gen, name))
            else:
                del self._timers[name]
            callback(name, at)
            fired += 1
        self.set_time(ts_ns)
        return fired


class LiveClock:
    """Wall-clock time; timers run on the asyncio loop of the caller."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._handles: dict[str, asyncio.TimerHandle] = {}
        # Alarms (one-shot, often canceled before they fire: request deadlines) keep their own heap
        # under one asyncio handle for the earliest: setting or canceling one costs a dict update and
        # a heap push instead of an asyncio TimerHandle each. Canceled entries are dropped lazily.
        self._alarms: dict[str, tuple[int, int, TimerCallback]] = {}  # name -> (at, generation, callback)
        self._alarm_heap: list[tuple[int, int, str]] = []
        self._alarm_handle: asyncio.TimerHandle | None = None
        self._alarm_handle_at = 0
        # call_at keeps its own heap: asyncio orders handles by float time only, so same-time calls
        # (a venue's accept and fill, a submit and its cancel) could run out of order.
        self._calls: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._calls_handle: asyncio.TimerHandle | None = None
        self._calls_handle_at = 0

    def now_ns(self) -> int:
        return time.time_ns()

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def set_timer(self, name: str, interval_ns: int, callback: TimerCallback, start_ns: int | None = None) -> None:
        if interval_ns <= 0:
            raise ValueError("timer interval must be positive")
        self.cancel_timer(name)
        first = start_ns if start_ns is not None else self.now_ns() + interval_ns
        self._schedule(name, first, interval_ns, callback)

    def _schedule(self, name: str, at_ns: int, interval_ns: int, callback: TimerCallback) -> None:
        loop = self._get_loop()
        delay = max(at_ns - self.now_ns(), 0) / 1e9

        def fire() -> None:
            if interval_ns:
                self._schedule(name, at_ns + interval_ns, interval_ns, callback)
            else:
                self._handles.pop(name, None)
            callback(name, at_ns)

        self._handles[name] = loop.call_later(delay, fire)

    def set_alarm(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()
        gen = next(self._seq)
        self._alarms[name] = (at_ns, gen, callback)
        heap = self._alarm_heap
        heapq.heappush(heap, (at_ns, gen, name))
        if len(heap) > 2 * len(self._alarms) + 64:
            self._compact_alarms()
        if self._alarm_handle is None or at_ns < self._alarm_handle_at:
            self._arm_alarms()

    def cancel_timer(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()
        self._alarms.pop(name, None)

    def cancel_all(self) -> None:
        """Cancel every timer, alarm and scheduled call: a session that ends leaves nothing to fire
        later on the loop (against a journal it has closed)."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._alarms.clear()
        self._alarm_heap.clear()
        if self._alarm_handle is not None:
            self._alarm_handle.cancel()
            self._alarm_handle = None
        self._calls.clear()
        if self._calls_handle is not None:
            self._calls_handle.cancel()
            self._calls_handle = None

    def _compact_alarms(self) -> None:
        heap = self._alarm_heap  # in place: _run_alarms may be iterating it
        heap[:] = [(at, gen, name) for name, (at, gen, _) in self._alarms.items()]
        heapq.heapify(heap)

    def _next_alarm_ns(self) -> int | None:
        heap = self._alarm_heap
        alarms = self._alarms
        while heap:
            at, gen, name = heap[0]
            entry = alarms.get(name)
            if entry is not None and entry[1] == gen:
                return at
            heapq.heappop(heap)
        return None

    def _arm_alarms(self) -> None:
        if self._alarm_handle is not None:
            self._alarm_handle.cancel()
            self._alarm_handle = None
        head = self._next_alarm_ns()
        if head is None:
            return
        self._alarm_handle_at = head
        self._alarm_handle = self._get_loop().call_later(max(head - self.now_ns(), 0) / 1e9, self._run_alarms)

    def _run_alarms(self) -> None:
        self._alarm_handle = None
        heap = self._alarm_heap
        alarms = self._alarms
        now = self.now_ns()
        try:
            while heap and heap[0][0] <= now:
                at, gen, name = heapq.heappop(heap)
                entry = alarms.get(name)
                if entry is None or entry[1] != gen:
                    continue  # canceled or set again
                del alarms[name]
                entry[2](name, at)
        finally:
            if self._alarm_handle is None:
                self._arm_alarms()

    def call_at(self, at_ns: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` once at ``at_ns``; calls run in (time, scheduling order), like :class:`SimClock`."""
        heapq.heappush(self._calls, (at_ns, next(self._seq), fn))
        self._arm_calls()

    def _arm_calls(self) -> None:
        head = self._calls[0][0]
        if self._calls_handle is not None:
            if self._calls_handle_at <= head:
                return
            self._calls_handle.cancel()
        self._calls_handle_at = head
        self._calls_handle = self._get_loop().call_later(max(head - self.now_ns(), 0) / 1e9, self._run_calls)

    def _run_calls(self) -> None:
        self._calls_handle = None
        calls = self._calls
        now = self.now_ns()
        try:
            while calls and calls[0][0] <= now:
                heapq.heappop(calls)[2]()
        finally:
            if calls:
                self._arm_calls()
