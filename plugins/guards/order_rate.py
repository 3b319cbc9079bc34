"""Optional rule: at most ``max_orders_per_minute`` orders per exchange.

Exchanges ban accounts that order too fast, and a strategy stuck in a loop
orders fast.  The window slides over ``OrderCheck.now_ms``, the session
clock, so a replayed or simulated session counts simulated minutes: an
order approved at ``t`` counts until ``t + 60 s`` (exclusive).

What is counted is the approvals this rule gave.  A rule only sees checks:
when a later rule, or the plan's other leg, vetoes, the order is not sent
but was counted anyway.  That errs towards fewer orders, never more.

Order 65: last of the built-ins, so that as few as possible of the orders it
counts are then stopped by a rule after it.
"""

import math
from collections import defaultdict, deque

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "order_rate"
ORDER = 65
WINDOW_MS = 60_000.0
DEFAULT_MAX_ORDERS_PER_MINUTE = 20
OPTIONS = ("max_orders_per_minute",)


class OrderRateRule:
    """Stateful: one instance per chain, so per session."""

    name = NAME
    order = ORDER

    def __init__(self, max_orders_per_minute: int):
        self._max = max_orders_per_minute
        self._approved: defaultdict[str, deque[float]] = defaultdict(deque)
        self._ok = Decision.allow(NAME)

    def check(self, order: OrderCheck) -> Decision:
        now = order.now_ms
        if not math.isfinite(now):  # nothing can be placed in the window
            return Decision.veto(NAME, f"session clock now_ms={now!r} is not a time")
        approved = self._approved[order.exchange]
        while approved and now - approved[0] >= WINDOW_MS:
            approved.popleft()
        if len(approved) < self._max:
            approved.append(now)
            return self._ok
        return Decision.veto(NAME, f"{len(approved)} orders approved on {order.exchange} in the last 60 s; "
                                   f"max_orders_per_minute is {self._max}")


def build(limits: GuardLimits, options: dict) -> OrderRateRule:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; {NAME} takes {', '.join(OPTIONS)}")
    maximum = options.get("max_orders_per_minute", DEFAULT_MAX_ORDERS_PER_MINUTE)
    if isinstance(maximum, float) and maximum.is_integer():
        maximum = int(maximum)  # JSON Schema's "integer" accepts 20.0 too
    if isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < 1:
        raise ValueError(f"max_orders_per_minute must be a whole number >= 1, got {maximum!r}")
    return OrderRateRule(maximum)


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "at most max_orders_per_minute orders per exchange in any "
                                               "60 s of the session clock", optional=True))
