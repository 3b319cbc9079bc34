"""Binance spot filters (PRICE_FILTER, LOT_SIZE, NOTIONAL) for paper mode.

The live client reads them from ``/api/v3/exchangeInfo``; these are the
values recorded for the common USDT markets, used in paper mode.
"""

from arb.models import MarketRules

TAKER_FEE = 0.001
MIN_NOTIONAL_USDT = 5.0

# symbol: (tickSize, stepSize)
KNOWN_FILTERS: dict[str, tuple[float, float]] = {
    "BTCUSDT": (0.01, 0.00001),
    "ETHUSDT": (0.01, 0.0001),
    "XRPUSDT": (0.0001, 0.1),
    "SOLUSDT": (0.01, 0.001),
    "DOGEUSDT": (0.00001, 1.0),
    "ADAUSDT": (0.0001, 0.1),
}
DEFAULT_FILTERS = (0.0001, 0.01)


def usdt_market_rules(symbol: str, taker_fee: float = TAKER_FEE) -> MarketRules:
    tick, step = KNOWN_FILTERS.get(symbol, DEFAULT_FILTERS)
    base = symbol[: -len("USDT")] if symbol.endswith("USDT") else symbol
    return MarketRules(
        exchange="binance", symbol=symbol, base=base, quote="USDT",
        tick_table=((0.0, tick),), lot_step=step, min_qty=step,
        min_notional=MIN_NOTIONAL_USDT, taker_fee=taker_fee,
    )
