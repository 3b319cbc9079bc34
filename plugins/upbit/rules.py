"""Upbit's KRW-market order rules, as the exchange publishes them.

The live client reads tick sizes from ``/v1/orderbook/instruments`` at
start-up; this table is what paper mode enforces and the fallback.
"""

from arb.models import MarketRules

# (from price, tick) from the highest band down; KRW price-unit table in force since 2025-07-31.
KRW_TICK_TABLE: tuple[tuple[float, float], ...] = (
    (1_000_000.0, 1000.0),
    (500_000.0, 500.0),
    (100_000.0, 100.0),
    (50_000.0, 50.0),
    (10_000.0, 10.0),
    (5_000.0, 5.0),
    (100.0, 1.0),
    (10.0, 0.1),
    (1.0, 0.01),
    (0.1, 0.001),
    (0.01, 0.0001),
    (0.0, 0.00001),
)

MIN_ORDER_KRW = 5_000.0
MAX_ORDER_KRW = 1_000_000_000.0
TAKER_FEE = 0.0005
# Upbit takes volumes with up to eight decimals and has no coarser lot step.
VOLUME_STEP = 1e-8


def krw_market_rules(symbol: str, taker_fee: float = TAKER_FEE) -> MarketRules:
    quote, _, base = symbol.partition("-")
    return MarketRules(
        exchange="upbit", symbol=symbol, base=base, quote=quote,
        tick_table=KRW_TICK_TABLE, lot_step=VOLUME_STEP, min_qty=VOLUME_STEP,
        min_notional=MIN_ORDER_KRW, taker_fee=taker_fee, max_notional=MAX_ORDER_KRW,
    )
