"""Infrastructure: fixed point, clock and timers, message bus, ids, config, logging."""
