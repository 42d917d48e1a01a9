"""tradeloop: an event-driven, deterministic multi-venue crypto trading engine."""

__version__ = "0.1.0"
