"""tradeloop ops."""
