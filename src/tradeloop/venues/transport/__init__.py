"""Venue connectivity transport: reconnecting WebSocket, REST with safe retries, rate budgets, clock offset.

Venue adapters declare their connection rules as data in their ``spec.py`` (a :class:`WsSpec` with
its :class:`HeartbeatSpec`, :class:`RateLimitSpec` lists, base URLs) and use these pieces; nothing
here knows a venue. See ``docs/connectivity.md``.
"""

from tradeloop.venues.transport.backoff import Backoff, BackoffSpec, JitterMode
from tradeloop.venues.transport.clock_sync import ClockOffsetEstimator, ClockSample, NoClockSample
from tradeloop.venues.transport.endpoint import loggable_url, with_endpoint
from tradeloop.venues.transport.ratelimit import (
    RateBudget,
    RateBudgetRegistry,
    RateLimited,
    RateLimitScope,
    RateLimitSpec,
    UsageHeaderKind,
    acquire,
)
from tradeloop.venues.transport.rest import (
    OutcomeUnknown,
    RequestNotSent,
    RestClient,
    RestConfig,
    RestError,
    RestResponse,
    RestUnavailable,
    measure_clock_offset,
)
from tradeloop.venues.transport.ws import (
    HeartbeatKind,
    HeartbeatSpec,
    NotConnected,
    ReconnectingWebSocket,
    WsConnection,
    WsCounters,
    WsSpec,
)

__all__ = [
    "Backoff",
    "BackoffSpec",
    "ClockOffsetEstimator",
    "ClockSample",
    "HeartbeatKind",
    "HeartbeatSpec",
    "JitterMode",
    "NoClockSample",
    "NotConnected",
    "OutcomeUnknown",
    "RateBudget",
    "RateBudgetRegistry",
    "RateLimitScope",
    "RateLimitSpec",
    "RateLimited",
    "ReconnectingWebSocket",
    "RequestNotSent",
    "RestClient",
    "RestConfig",
    "RestError",
    "RestResponse",
    "RestUnavailable",
    "UsageHeaderKind",
    "WsConnection",
    "WsCounters",
    "WsSpec",
    "acquire",
    "loggable_url",
    "measure_clock_offset",
    "with_endpoint",
]
