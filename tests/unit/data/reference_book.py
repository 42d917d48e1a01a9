"""An independent Binance book rebuild for tests: stdlib ``json``, ``Decimal`` and plain dicts,
following the "how to manage a local order book" steps of the Binance docs. Nothing from
tradeloop is used, so it can check tradeloop's parser, book and manager.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any


class _Stop(Exception):
    pass


class ReferenceBook:
    """Local book per Binance's "how to manage a local order book" steps, nothing from tradeloop."""

    def __init__(self, futures: bool, stop_after: int | None = None) -> None:
        self.futures = futures
        self.stop_after = stop_after
        self.bids: dict[Decimal, Decimal] | None = None
        self.asks: dict[Decimal, Decimal] = {}
        self.last = -1
        self.first = True
        self.pending: list[dict[str, Any]] = []
        self.applied = 0

    def snapshot(self, msg: dict[str, Any]) -> None:
        self.bids = {Decimal(p): Decimal(q) for p, q in msg["bids"] if Decimal(q)}
        self.asks = {Decimal(p): Decimal(q) for p, q in msg["asks"] if Decimal(q)}
        self.last = msg["lastUpdateId"]
        self.first = True
        pending, self.pending = self.pending, []
        for event in pending:
            self.diff(event)

    def diff(self, event: dict[str, Any]) -> None:
        if self.bids is None:
            self.pending.append(event)
            return
        first_id, last_id = event["U"], event["u"]
        if self.futures:
            if last_id < self.last:
                return
            if self.first:
                assert first_id <= self.last <= last_id, "first event must straddle the snapshot"
            else:
                assert event["pu"] == self.last, "pu chain broken"
        else:
            if last_id <= self.last:
                return
            if self.first:
                assert first_id <= self.last + 1 <= last_id, "first event must contain snapshot + 1"
            else:
                assert first_id == self.last + 1, "update ids not contiguous"
        for side, levels in ((self.bids, event["b"]), (self.asks, event["a"])):
            for p, q in levels:
                if Decimal(q):
                    side[Decimal(p)] = Decimal(q)
                else:
                    side.pop(Decimal(p), None)
        self.last = last_id
        self.first = False
        self.applied += 1
        if self.applied == self.stop_after:
            raise _Stop

    def snapshot_message(self) -> dict[str, Any]:
        """The current book as a REST depth snapshot body."""
        assert self.bids is not None
        return {
            "lastUpdateId": self.last,
            "bids": [[str(p), str(q)] for p, q in sorted(self.bids.items(), reverse=True)],
            "asks": [[str(p), str(q)] for p, q in sorted(self.asks.items())],
        }


def reference_rebuild(paths: list[Path], futures: bool, stop_after: int | None = None) -> ReferenceBook:
    """Rebuild from capture lines ``<ts> <json>``; with ``stop_after``, stop after that many diffs applied."""
    ref = ReferenceBook(futures, stop_after)
    try:
        for path in paths:
            with gzip.open(path, "rt") as f:
                for line in f:
                    msg = json.loads(line.split(" ", 1)[1])
                    if "lastUpdateId" in msg:
                        ref.snapshot(msg)
                    elif msg.get("data", {}).get("e") == "depthUpdate":
                        ref.diff(msg["data"])
    except _Stop:
        pass
    return ref
