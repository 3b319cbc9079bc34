"""Rule 1: nothing is sent unless live trading was switched on on purpose."""

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "enabled"
ORDER = 10


class EnabledRule:
    name = NAME
    order = ORDER

    def __init__(self, enabled: bool):
        self._enabled = enabled is True
        self._ok = Decision.allow(NAME)
        self._off = Decision.veto(NAME, "live_trading.enabled=False")

    def check(self, order: OrderCheck) -> Decision:
        return self._ok if self._enabled else self._off


def build(limits: GuardLimits, options: dict) -> EnabledRule:
    return EnabledRule(limits.enabled)


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "live_trading.enabled must be true"))
