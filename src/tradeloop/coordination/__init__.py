"""Coordination between engine processes over Redis: shared rate budgets, a hot-state mirror, the failover lease."""
