"""Order books and walking them for the depth an order actually needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

Level = tuple[float, float]  # (price, quantity)

_DUST = 1e-12  # relative to the quantity walked


@dataclass(slots=True)
class OrderBook:
    """A top-N snapshot of one market.

    ``bids`` best (highest) first, ``asks`` best (lowest) first.
    ``received_ms`` is when we got it, on the session clock; the age of a
    book is measured from it, since exchange clocks are not ours.
    """

    exchange: str
    symbol: str
    bids: list[Level]
    asks: list[Level]
    received_ms: float
    exchange_ts_ms: float = 0.0

    @property
    def best_bid(self) -> float:
        return self.bids[0][0] if self.bids else 0.0

    @property
    def best_ask(self) -> float:
        return self.asks[0][0] if self.asks else 0.0

    @property
    def mid(self) -> float:
        return (self.best_bid + self.best_ask) / 2.0

    def problem(self) -> str | None:
        """Why this book must not be traded on, or None when it is sane."""
        if not self.bids or not self.asks:
            return "empty book"
        if self.best_bid >= self.best_ask:
            return "crossed book"
        return None

    def age_ms(self, now_ms: float) -> float:
        return now_ms - self.received_ms


class Walk(NamedTuple):
    """The outcome of sweeping levels for a quantity (a tuple: made on every
    priced opportunity, so it must be cheap to build)."""

    quantity: float       # what the visible depth can fill (≤ asked)
    avg_price: float
    worst_price: float    # the last level touched: a limit price that fills it all


# Walk(...) goes through a Python-level __new__, and pricing an entry or an
# exit walks both books.
_new_walk = tuple.__new__


def walk(levels: list[Level], quantity: float) -> Walk:
    """Sweep ``levels`` (best first) for ``quantity``."""
    # Float noise left over after subtracting level sizes (0.4 - 0.1 - 0.3 =
    # 5e-17) is not a reason to touch a worse level or to call it partial.
    # ``filled`` is summed, not taken as quantity - remaining, which would
    # lose the digits of a small fill against a large quantity.
    dust = quantity * _DUST
    filled = 0.0
    cost = 0.0
    worst = 0.0
    for price, size in levels:
        remaining = quantity - filled
        if remaining <= dust:
            break
        take = size if size < remaining else remaining
        cost += take * price
        filled += take
        worst = price
    if quantity - filled <= dust:
        filled = quantity
    return _new_walk(Walk, (filled, cost / filled if filled else 0.0, worst))


def depth(levels: list[Level], max_levels: int) -> float:
    """Total quantity visible in the first ``max_levels`` levels."""
    total = 0.0
    for _, size in levels[:max_levels]:
        total += size
    return total


def quantity_for_quote(levels: list[Level], quote_amount: float) -> float:
    """How much base ``quote_amount`` buys (or sells for) sweeping ``levels``."""
    remaining = quote_amount
    qty = 0.0
    for price, size in levels:
        level_value = price * size
        if level_value >= remaining:
            return qty + remaining / price
        qty += size
        remaining -= level_value
    return qty
