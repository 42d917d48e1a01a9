"""OKX API v5: spot and linear swaps (``okx`` venue)."""
