"""``dry_run_scale``: send only a fraction of what the guards approved."""

from __future__ import annotations

from operator import attrgetter
from typing import Sequence

from arb.models import MarketRules, OrderIntent, floor_to_step, new_intent

_lot_step, _quantity = attrgetter("lot_step"), attrgetter("quantity")


def scaled_quantity(quantity: float, scale: float, lot_step: float) -> float:
    """Approved quantity × scale, rounded down to the lot step: never more."""
    return floor_to_step(quantity * scale, lot_step)


def scale_legs(legs: Sequence[OrderIntent], scale: float,
               rules: Sequence[MarketRules]) -> tuple[tuple[OrderIntent, ...], str | None]:
    """Scale every leg to one common quantity so the pair stays hedged.

    Returns the scaled legs and ``None``, or the original legs and the reason
    the scaled order cannot be sent (below an exchange minimum).
    """
    step = max(map(_lot_step, rules))
    qty = floor_to_step(min(map(_quantity, legs)) * scale, step)
    for leg, leg_rules in zip(legs, rules):
        problem = leg_rules.violation(qty, leg.limit_price)
        if problem:
            return tuple(legs), (f"after dry_run_scale {scale:g}, {leg.quantity:g} becomes {qty:g} "
                                 f"{leg_rules.base}: {problem}; not sent")
    return tuple([new_intent(leg.exchange, leg.symbol, leg.side, qty, leg.limit_price, leg.expected_price,
                             leg.client_order_id, leg.order_type) for leg in legs]), None
