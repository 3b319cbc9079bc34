"""Building order-book ladders that every exchange rule would accept.

Paper fills walk these books, so a price off the tick or a size off the lot
step here would let paper mode fill orders the real exchange refuses.
"""

from __future__ import annotations

import random

from arb.book import Level, OrderBook
from arb.models import MarketRules, Side
from arb.specs import Market

#: USDT value of one level before ``depth_scale``: a 40 USDT trade fills at
#: the top level, a few thousand USDT start walking the book.
LEVEL_VALUE_USDT = (2_000.0, 30_000.0)
#: Gap between neighbouring levels, in ticks.
MAX_GAP_TICKS = 3


def snap(rules: MarketRules, price: float, side: Side) -> float:
    """Snap to the tick of the band the price lands in.

    Snapping across a band edge (Upbit's tick grows with price) can land on a
    price whose own band has a coarser tick, so snap until it is stable.
    """
    for _ in range(4):
        snapped = rules.round_price(price, side)
        if snapped == price:
            break
        price = snapped
    return price


def _size(rules: MarketRules, usdt_per_base: float, depth_scale: float, rng: random.Random) -> float:
    value = rng.uniform(*LEVEL_VALUE_USDT) * depth_scale
    qty = rules.round_qty(value / usdt_per_base)
    # With fine lot steps (Upbit's 1e-8) float division can make round_qty
    # shave one more step off an already rounded size; step down until the
    # size is one round_qty keeps, so the core's own lot check accepts it.
    for _ in range(16):
        again = rules.round_qty(qty)
        if again == qty:
            break
        qty = again
    # Never zero: a coarse lot step on an expensive asset must still show depth.
    return max(qty, rules.lot_step)


def ladder(rules: MarketRules, mid: float, *, levels: int, usdt_per_base: float,
           depth_scale: float, rng: random.Random) -> tuple[list[Level], list[Level]]:
    """Bids (best first, descending) and asks (best first, ascending) around ``mid``.

    ``usdt_per_base`` converts a level's USDT value into base quantity.
    The best bid and ask straddle ``mid`` at least one tick apart, sometimes
    two, so spreads are not perfectly constant.
    """
    best_bid = snap(rules, mid, Side.BUY)
    if best_bid <= 0.0:
        best_bid = rules.tick_for(mid)
    best_ask = snap(rules, mid, Side.SELL)
    if best_ask <= best_bid:
        best_ask = snap(rules, best_bid + rules.tick_for(best_bid), Side.SELL)
    if rng.random() < 0.3:
        best_ask = snap(rules, best_ask + rules.tick_for(best_ask), Side.SELL)

    bids = [(best_bid, _size(rules, usdt_per_base, depth_scale, rng))]
    asks = [(best_ask, _size(rules, usdt_per_base, depth_scale, rng))]
    for _ in range(levels - 1):
        price = snap(rules, bids[-1][0] - rng.randint(1, MAX_GAP_TICKS) * rules.tick_for(bids[-1][0]), Side.BUY)
        if price <= 0.0:
            break  # a bid at zero is no bid; a short ladder is still a valid book
        bids.append((price, _size(rules, usdt_per_base, depth_scale, rng)))
    for _ in range(levels - 1):
        price = snap(rules, asks[-1][0] + rng.randint(1, MAX_GAP_TICKS) * rules.tick_for(asks[-1][0]), Side.SELL)
        asks.append((price, _size(rules, usdt_per_base, depth_scale, rng)))
    return bids, asks


def make_book(market: Market, mid: float, *, levels: int, usdt_per_base: float,
              depth_scale: float, rng: random.Random, ts_ms: float, received_ms: float) -> OrderBook:
    bids, asks = ladder(market.rules, mid, levels=levels, usdt_per_base=usdt_per_base,
                        depth_scale=depth_scale, rng=rng)
    return OrderBook(market.exchange, market.symbol, bids, asks,
                     received_ms=received_ms, exchange_ts_ms=ts_ms)
