"""Optional rule: a premium too large to be true is a bad price, not a gift.

A fat-finger quote, a book from a halted market or a wrong FX rate all show
up as a huge premium, and the strategy would chase it with full size.
``OrderCheck.premium_pct`` is the plan's gross premium in percent; either
sign counts, since a bad price can push it either way.

Order 25: with ``stale_data`` (15) among the rules that judge the data before
any rule judges money worked out from it (balance, notional, exposure), so
the journal names the bad price rather than a symptom of it.  It comes after
``stale_data`` because old data is the likelier cause of an absurd premium,
and after ``enabled`` (10), which stays the first word on whether anything
is sent at all.
"""

import math

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "premium_sanity"
ORDER = 25
DEFAULT_MAX_PREMIUM_PCT = 10.0
OPTIONS = ("max_premium_pct",)


class PremiumSanityRule:
    name = NAME
    order = ORDER

    def __init__(self, max_premium_pct: float):
        self._max = max_premium_pct
        self._ok = Decision.allow(NAME)

    def check(self, order: OrderCheck) -> Decision:
        if abs(order.premium_pct) <= self._max:  # NaN falls through to the veto
            return self._ok
        return Decision.veto(NAME, f"premium {order.premium_pct:g}% is beyond max_premium_pct ±{self._max:g}%: "
                                   "more likely a bad price than an opportunity")


def build(limits: GuardLimits, options: dict) -> PremiumSanityRule:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; {NAME} takes {', '.join(OPTIONS)}")
    maximum = options.get("max_premium_pct", DEFAULT_MAX_PREMIUM_PCT)
    if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) \
            or not (math.isfinite(maximum) and maximum > 0):
        raise ValueError(f"max_premium_pct must be a positive number (percent), got {maximum!r}")
    return PremiumSanityRule(float(maximum))


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "the plan's premium must be within ±max_premium_pct; "
                                               "beyond it the price is more likely wrong", optional=True))
