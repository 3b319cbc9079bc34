"""Binance spot (USDT markets) exchange adapter for arb."""
