"""tradeloop strategies."""
