"""tradeloop data."""
