"""NATS subject and stream names of one split deployment.

Every name starts with ``tl.<deployment>``, so several deployments (and test runs) share one NATS
server without seeing each other's messages:

=================================  ==========  ======================================================
subject                            transport   carries
=================================  ==========  ======================================================
``tl.<d>.md.<venue>.<symbol>``     core        ``MarketData`` items of one instrument, in venue order
``tl.<d>.cmd``                     JetStream   ``TradingCommand`` and ``StrategyAlert`` (strategy -> execution)
``tl.<d>.evt``                     JetStream   ``Event`` (order, account, risk events; execution -> strategy)
``tl.<d>.ctl.resync``              core        ``ResyncRequest``: publish snapshots of these books
``tl.<d>.ctl.state``               request     ``StateReply``: the execution node's orders and portfolio
``tl.<d>.ctl.status.<service>``    request     ``Progress`` of one service (health, lockstep)
=================================  ==========  ======================================================

The JetStream streams are ``TL_<d>_CMD`` and ``TL_<d>_EVT``. A venue symbol may hold characters a
subject token cannot (``.``, ``*``, ``>``, whitespace): they are percent-escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from tradeloop.core.config import ConfigError
from tradeloop.model.identifiers import InstrumentId

__all__ = ["SERVICES", "ServiceName", "Subjects", "subject_token"]

ServiceName = Literal["market-data", "strategy", "execution"]
SERVICES: Final[tuple[ServiceName, ...]] = ("market-data", "strategy", "execution")

_DEPLOYMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE = re.compile(r"[.*>%\s]")


def subject_token(text: str) -> str:
    """``text`` as one subject token: ``.``, ``*``, ``>``, ``%`` and whitespace become ``%XX``."""
    if not text:
        raise ValueError("a subject token must not be empty")
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


@dataclass(frozen=True)
class Subjects:
    """The names of deployment ``deployment`` (letters, digits, ``_`` and ``-``, at most 64)."""

    deployment: str

    def __post_init__(self) -> None:
        if not _DEPLOYMENT.match(self.deployment):
            raise ConfigError(f"deployment name must be 1-64 letters, digits, '_' or '-', got {self.deployment!r}")

    @property
    def root(self) -> str:
        return f"tl.{self.deployment}"

    def market_data(self, instrument_id: InstrumentId) -> str:
        return f"{self.root}.md.{subject_token(instrument_id.venue)}.{subject_token(instrument_id.symbol)}"

    @property
    def commands(self) -> str:
        return f"{self.root}.cmd"

    @property
    def events(self) -> str:
        return f"{self.root}.evt"

    @property
    def resync(self) -> str:
        return f"{self.root}.ctl.resync"

    @property
    def state(self) -> str:
        return f"{self.root}.ctl.state"

    def status(self, service: ServiceName) -> str:
        return f"{self.root}.ctl.status.{service}"

    @property
    def command_stream(self) -> str:
        return f"TL_{self.deployment}_CMD"

    @property
    def event_stream(self) -> str:
        return f"TL_{self.deployment}_EVT"
