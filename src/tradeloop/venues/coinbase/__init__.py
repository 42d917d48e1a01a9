"""Coinbase: Advanced Trade API live, the Exchange ``ws-feed`` for replaying older recordings (``coinbase``)."""
