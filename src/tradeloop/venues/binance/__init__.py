"""tradeloop venues/binance."""
