"""Operations: Prometheus metrics of an engine, its JSON snapshot, and the admin HTTP API with the dashboard."""
