"""Bybit API v5: spot (``bybit``) and linear perpetuals (``bybit_linear``)."""
