"""Market data layer: recording reader and replay (``recording``, ``replay``), the book manager and
market data hub (``book_manager``) and the seeded synthetic market (``synthetic``)."""
