"""tradeloop runtime."""
