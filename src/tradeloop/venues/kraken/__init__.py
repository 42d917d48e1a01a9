"""Kraken spot: WebSocket v2 live, v1 for replaying older recordings (``kraken`` venue)."""
