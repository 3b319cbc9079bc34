"""Rule 3: the account must hold at least ``min_account_balance``."""

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "min_account_balance"
ORDER = 30


class MinAccountBalanceRule:
    name = NAME
    order = ORDER

    def __init__(self, minimum: float):
        self._minimum = minimum
        self._ok = Decision.allow(NAME)

    def check(self, order: OrderCheck) -> Decision:
        if order.balance >= self._minimum:
            return self._ok
        return Decision.veto(NAME, f"balance {order.balance:.2f} on {order.exchange} is below "
                                   f"min_account_balance {self._minimum:.2f}")


def build(limits: GuardLimits, options: dict) -> MinAccountBalanceRule:
    return MinAccountBalanceRule(limits.min_account_balance)


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "account equity must be at least min_account_balance"))
