"""Optional rule: no order priced on market data older than ``max_age_ms``.

``OrderCheck.data_age_ms`` is the age of the oldest book the plan was priced
on, the FX book included, so a frozen KRW/USDT feed is caught as surely as a
frozen order book.  Order 15: right after ``enabled``, before any rule that
judges money worked out from those prices, so the journal names the root
cause (old data) rather than a symptom of it.
"""

import math

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "stale_data"
ORDER = 15
DEFAULT_MAX_AGE_MS = 1000.0
OPTIONS = ("max_age_ms",)


class StaleDataRule:
    name = NAME
    order = ORDER

    def __init__(self, max_age_ms: float):
        self._max_age_ms = max_age_ms
        self._ok = Decision.allow(NAME)

    def check(self, order: OrderCheck) -> Decision:
        if order.data_age_ms <= self._max_age_ms:  # NaN falls through to the veto
            return self._ok
        return Decision.veto(NAME, f"market data is {order.data_age_ms:g} ms old, more than max_age_ms "
                                   f"{self._max_age_ms:g} (book or FX rate on {order.exchange} {order.symbol})")


def build(limits: GuardLimits, options: dict) -> StaleDataRule:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; {NAME} takes {', '.join(OPTIONS)}")
    max_age_ms = options.get("max_age_ms", DEFAULT_MAX_AGE_MS)
    if isinstance(max_age_ms, bool) or not isinstance(max_age_ms, (int, float)) \
            or not (math.isfinite(max_age_ms) and max_age_ms > 0):
        raise ValueError(f"max_age_ms must be a positive number of milliseconds, got {max_age_ms!r}")
    return StaleDataRule(float(max_age_ms))


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "the book and FX rate an order is priced on must be at most "
                                               "max_age_ms old", optional=True))
