"""Optional rule: cap what is open on an exchange, not just each order.

``max_notional_per_trade`` (50) bounds one order; this bounds their sum.
``OrderCheck.open_notional`` is the exposure already open on the order's
exchange (open positions and resting orders, reference currency), filled in
by the pipeline; the order is vetoed when it would take that total past
``max_open_notional``.

Order 55: right after ``max_notional_per_trade``, so an order too large on
its own is named as such, and this rule speaks only about the sum.
"""

import math

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "open_exposure"
ORDER = 55
DEFAULT_MAX_OPEN_NOTIONAL = 200.0
OPTIONS = ("max_open_notional",)


class OpenExposureRule:
    name = NAME
    order = ORDER

    def __init__(self, max_open_notional: float):
        self._max = max_open_notional
        self._ok = Decision.allow(NAME)

    def check(self, order: OrderCheck) -> Decision:
        open_notional = order.open_notional
        total = open_notional + order.notional
        if open_notional >= 0 and total <= self._max:  # NaN falls through to the veto
            return self._ok
        if not open_notional >= 0:
            return Decision.veto(NAME, f"open exposure {open_notional!r} on {order.exchange} is not a "
                                       "non-negative amount")
        return Decision.veto(NAME, f"open exposure {open_notional:.2f} + order {order.notional:.2f} = "
                                   f"{total:.2f} on {order.exchange} exceeds max_open_notional {self._max:.2f}")


def build(limits: GuardLimits, options: dict) -> OpenExposureRule:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; {NAME} takes {', '.join(OPTIONS)}")
    maximum = options.get("max_open_notional", DEFAULT_MAX_OPEN_NOTIONAL)
    if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) \
            or not (math.isfinite(maximum) and maximum > 0):
        raise ValueError(f"max_open_notional must be a positive amount of the reference currency, "
                         f"got {maximum!r}")
    return OpenExposureRule(float(maximum))


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "open exposure on an exchange plus the order must not exceed "
                                               "max_open_notional", optional=True))
