"""Group commit for the SQLite journal: the WAL is fsynced in a background thread while the engine goes on.

In WAL mode a commit is durable once the WAL file holds its frames on disk; ``synchronous=FULL``
gets there by an fsync at every commit, on the committing thread. With a :class:`WalSyncer` the
journal commits under ``synchronous=NORMAL`` (the frames are written to the WAL, not synced: a few
microseconds) and hands the syncer the seq it committed; the syncer's thread fsyncs the WAL (the
GIL is released meanwhile) and then reports that seq durable. One fsync covers every commit made
while the previous one ran, so the rate of durable intents is no longer one per disk sync.

A checkpoint copies WAL frames into the database file and syncs both itself, and a WAL restart
reuses the same file, so syncing the WAL's file descriptor always covers every committed frame
written before the sync began. A failed fsync is final (the kernel may have dropped the dirty
pages): the syncer reports it and makes nothing durable after it.

After each fsync the syncer calls ``on_durable(seq)`` on its own thread, with no lock held (the
journal's durable-progress listeners hang off it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


class WalSyncer:
    """Fsyncs one WAL file on request, in a thread of its own; see the module docstring."""

    def __init__(self, wal_path: Path, on_durable: Callable[[int], None] | None = None) -> None:
        self.path = wal_path
        self._on_durable = on_durable
        self._fd = os.open(wal_path, os.O_RDONLY)
        self._cond = threading.Condition()
        self._target = 0
        self._durable = 0
        self._busy = False
        self._stop = False
        self.error: OSError | None = None
        """The fsync failure that stopped the syncer, if any."""
        self.syncs = 0
        """fsyncs done so far."""
        self._thread = threading.Thread(target=self._run, name="journal-wal-sync", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True while a sync is requested or running."""
        return self._busy

    @property
    def durable(self) -> int:
        """The highest seq made durable by this syncer."""
        return self._durable

    def submit(self, seq: int) -> None:
        """Make every commit up to ``seq`` (already written to the WAL) durable. Only when not :attr:`busy`."""
        with self._cond:
            if self._busy:
                raise RuntimeError("WalSyncer.submit while a sync is running")
            self._target = seq
            self._busy = True
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no sync is running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                cond.wait_for(lambda: self._busy or self._stop)
                if self._stop:
                    return
                target = self._target
            error: OSError | None = None
            try:
                os.fsync(self._fd)
            except OSError as exc:
                error = exc
            with cond:
                if error is None:
                    self._durable = max(self._durable, target)
                    self.syncs += 1
                else:
                    self.error = error
                    self._stop = True
                self._busy = False
                cond.notify_all()
            if error is not None:
                return
            if self._on_durable is not None:
                self._on_durable(self._durable)

    def close(self) -> None:
        """Finish the running sync, stop the thread and close the file descriptor. Idempotent."""
        with self._cond:
            self._cond.wait_for(lambda: not self._busy or self._stop, timeout=30.0)
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=30.0)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
