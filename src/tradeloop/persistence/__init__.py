"""tradeloop persistence."""
