"""Rule 5: no single order larger than ``max_notional_per_trade``."""

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "max_notional_per_trade"
ORDER = 50


class MaxNotionalRule:
    name = NAME
    order = ORDER

    def __init__(self, maximum: float):
        self._maximum = maximum
        self._ok = Decision.allow(NAME)

    def check(self, order: OrderCheck) -> Decision:
        if order.notional <= self._maximum:
            return self._ok
        return Decision.veto(NAME, f"notional {order.notional:.2f} exceeds max_notional_per_trade "
                                   f"{self._maximum:.2f}")


def build(limits: GuardLimits, options: dict) -> MaxNotionalRule:
    return MaxNotionalRule(limits.max_notional_per_trade)


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "order notional must not exceed max_notional_per_trade"))
