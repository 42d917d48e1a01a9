"""Domain types: instruments, market data, order book, orders, commands, events, positions."""
