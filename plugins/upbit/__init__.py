"""Upbit (KRW markets) exchange adapter for arb."""
