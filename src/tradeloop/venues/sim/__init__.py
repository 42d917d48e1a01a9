"""tradeloop venues/sim."""
