"""What only events can tell about orders: each leg's outcome and timings.

On the way to the gateway the subscriber only takes the time; the counting
waits until the orders are done, so the decision path pays two clock reads.
"""

from __future__ import annotations

import time
from typing import Iterable

from arb.events import Event
from arb.metrics_families import Histogram
from arb.models import Order, OrderStatus

#: Book receipt → orders handed to the gateway: tens of µs in process, ms with queueing.
TICK_TO_ORDER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: Legs handed to the gateway → every leg final (followed until filled or cancelled).
ROUND_TRIP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ORDER_STATUSES = ("filled", "partially_filled", "cancelled", "rejected", "open")


def order_status(order: Order) -> str:
    """One label value per final state; a part-filled order counts as such
    whether the rest was cancelled (IOC) or is still open."""
    if order.status is OrderStatus.FILLED:
        return "filled"
    if order.status is OrderStatus.REJECTED:
        return "rejected"
    if order.fills:
        return "partially_filled"
    return "cancelled" if order.status is OrderStatus.CANCELED else "open"


class OrderEvents:
    """Counts what the session's events tell about orders; called once per
    plan sent, on the session thread."""

    def __init__(self, exchanges: Iterable[str], wall_clock: bool):
        exchanges = tuple(exchanges)
        # Zeros up front: a counter that first appears at 1 loses that 1 to rate().
        self.sent = dict.fromkeys(exchanges, 0)
        self.outcomes = {(exchange, status): 0 for exchange in exchanges for status in ORDER_STATUSES}
        self.unhedged = 0
        self.tick_to_order = Histogram(TICK_TO_ORDER_BUCKETS)
        self.round_trip = Histogram(ROUND_TRIP_BUCKETS)
        # Tick-to-order compares the book's receipt stamp with the wall clock,
        # which only means something when books are stamped with it.
        self._wall_clock = wall_clock
        self._submitted_wall = 0.0
        self._submitted_at = 0.0

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == "orders_submitting":
            # On the way to the gateway: only take the time; the rest waits
            # until the orders are done.
            self._submitted_wall = time.time()
            self._submitted_at = time.perf_counter()
        elif kind == "orders_done":
            self._done(event)
        elif kind == "leg_unhedged":
            self.unhedged += 1

    def _done(self, event: Event) -> None:
        if self._submitted_at:
            self.round_trip.observe(time.perf_counter() - self._submitted_at)
            if self._wall_clock:
                # event.ts_ms is the receipt time of the book that triggered the plan.
                self.tick_to_order.observe(max(0.0, self._submitted_wall - event.ts_ms / 1000.0))
            self._submitted_at = 0.0
        for order in event.data["orders"]:
            exchange = order.intent.exchange
            self.sent[exchange] = self.sent.get(exchange, 0) + 1
            key = (exchange, order_status(order))
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
