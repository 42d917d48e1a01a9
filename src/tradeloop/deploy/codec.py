"""What the services put on NATS: the engine's own message types, msgpack-encoded, plus a few control
messages of the split itself.

Payloads are exactly the in-process structs (``MarketData`` items, ``TradingCommand``,
``StrategyAlert``, order and account ``Event``s): tagged msgspec structs, so one decoder per subject
decodes the union by tag. JetStream messages carry three headers:

* ``Tl-Origin``: the publishing process (``<service>-<start ns>-<pid>``; a restarted service has a new one),
* ``Tl-Seq``: its message counter (1, 2, ...), which consumers use to apply each message once,
* ``Nats-Msg-Id``: ``<client order id>:<origin>:<seq>`` (or ``<origin>:<seq>`` for messages about no
  order), so a message published again after a reconnect is stored once by the stream.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final, TypeVar, cast

import msgspec

from tradeloop.model.commands import TradingCommand
from tradeloop.model.data import MarketData
from tradeloop.model.events import Event, StrategyAlert
from tradeloop.model.identifiers import InstrumentId
from tradeloop.trading.state import EngineState

__all__ = [
    "HEADER_ORIGIN",
    "HEADER_SEQ",
    "MSG_ID",
    "DecodeFailed",
    "Envelope",
    "Progress",
    "ResyncRequest",
    "StateReply",
    "StateRequest",
    "Upstream",
    "decode",
    "decode_event",
    "decode_market",
    "decode_upstream",
    "encode",
    "envelope_of",
    "headers_for",
    "message_id",
    "new_origin",
    "origin_start_ns",
]

HEADER_ORIGIN: Final = "Tl-Origin"
HEADER_SEQ: Final = "Tl-Seq"
MSG_ID: Final = "Nats-Msg-Id"

Upstream = TradingCommand | StrategyAlert
"""What the strategy service sends the execution service on the command stream."""


class ResyncRequest(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A consumer asks the market-data service to publish a snapshot of each of these books (it is
    starting, or found a gap)."""

    instruments: list[InstrumentId]
    reason: str
    requester: str


class StateRequest(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A strategy service asks the execution node for its state (``strategy_id``: whose recent client
    order ids to include, so a restarted strategy never hands one out again)."""

    strategy_id: str
    requester: str


class StateReply(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """The execution node's state after its event ``event_seq`` (events of ``origin`` up to that seq are
    in it; a consumer applies the later ones)."""

    origin: str
    event_seq: int
    state: EngineState


class Progress(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """How far one service is: for health checks and for :mod:`tradeloop.deploy.lockstep`.

    Per instrument (keyed by its id text): ``books`` the last sequence of the book while valid,
    ``deltas`` the delta batches its book manager applied, ``trades`` and ``quotes`` the public trades
    and quotes it handled. Counters are cumulative since the service started.
    """

    service: str
    origin: str
    ready: bool
    books: dict[str, int] = msgspec.field(default_factory=dict)
    deltas: dict[str, int] = msgspec.field(default_factory=dict)
    trades: dict[str, int] = msgspec.field(default_factory=dict)
    quotes: dict[str, int] = msgspec.field(default_factory=dict)
    items: int = 0
    """Market data items handled."""
    fills: int = 0
    """Fills applied to the portfolio (strategy, execution)."""
    in_flight: int = 0
    """Orders the OMS is waiting on the venue for, or holding before sending (execution)."""
    commands_sent: int = 0
    """Commands handed to JetStream so far, i.e. the last ``Tl-Seq`` used (strategy)."""
    commands_done: dict[str, int] = msgspec.field(default_factory=dict)
    """Last command seq applied, per origin (execution)."""
    events_sent: int = 0
    """Events handed to JetStream so far (execution)."""
    events_done: dict[str, int] = msgspec.field(default_factory=dict)
    """Last event seq applied, per origin (strategy)."""


class Envelope(msgspec.Struct, frozen=True):
    """The split's headers of one JetStream message."""

    origin: str
    seq: int


class DecodeFailed(ValueError):
    """A payload or its headers are not what the subject carries (the message names the subject)."""


T = TypeVar("T")

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODERS: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def encode(message: object) -> bytes:
    """``message`` as msgpack (a tagged struct keeps its tag)."""
    return _ENCODER.encode(message)


def _decode(payload: bytes, kind: Any, subject: str) -> Any:
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.msgpack.Decoder(kind)
    try:
        return decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeFailed(f"{subject}: undecodable message ({len(payload)} bytes): {exc}") from None


def decode(payload: bytes, kind: type[T], subject: str) -> T:
    """Decode ``payload`` as the struct ``kind``; :class:`DecodeFailed` names the subject when it is not one."""
    return cast(T, _decode(payload, kind, subject))


def new_origin(service: str) -> str:
    """A name for this process as a publisher: ``<service>-<start ns>-<pid>``."""
    return f"{service}-{time.time_ns()}-{os.getpid()}"


def origin_start_ns(origin: str) -> int:
    """The start time encoded in an origin (0 when it has none)."""
    parts = origin.rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1])
    return 0


def message_id(origin: str, seq: int, client_order_id: str = "") -> str:
    """``Nats-Msg-Id`` of message ``seq`` of ``origin`` (about order ``client_order_id``, if any)."""
    base = f"{origin}:{seq}"
    return f"{client_order_id}:{base}" if client_order_id else base


def headers_for(origin: str, seq: int, client_order_id: str = "") -> dict[str, str]:
    return {HEADER_ORIGIN: origin, HEADER_SEQ: str(seq), MSG_ID: message_id(origin, seq, client_order_id)}


def envelope_of(headers: dict[str, str] | None, subject: str) -> Envelope:
    """The origin and seq of a JetStream message; :class:`DecodeFailed` when they are missing or bad."""
    origin = (headers or {}).get(HEADER_ORIGIN, "")
    seq_text = (headers or {}).get(HEADER_SEQ, "")
    if not origin or not seq_text.isdigit() or int(seq_text) < 1:
        raise DecodeFailed(f"{subject}: message without valid {HEADER_ORIGIN}/{HEADER_SEQ} headers")
    return Envelope(origin, int(seq_text))


def decode_market(payload: bytes, subject: str) -> MarketData:
    """A market data item (any of the ``MarketData`` union, by tag)."""
    return cast(MarketData, _decode(payload, MarketData, subject))


def decode_upstream(payload: bytes, subject: str) -> Upstream:
    """A command or a strategy alert (by tag)."""
    return cast(Upstream, _decode(payload, Upstream, subject))


def decode_event(payload: bytes, subject: str) -> Event:
    """Any engine ``Event`` (by tag)."""
    return cast(Event, _decode(payload, Event, subject))
