"""tradeloop trading."""
