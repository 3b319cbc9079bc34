"""Rule 4: stop the session once today's loss reaches ``max_daily_loss``."""

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "max_daily_loss"
ORDER = 40


class MaxDailyLossRule:
    name = NAME
    order = ORDER

    def __init__(self, max_loss: float):
        self._floor = -max_loss
        self._max_loss = max_loss
        self._ok = Decision.allow(NAME)

    def check(self, order: OrderCheck) -> Decision:
        if order.daily_pnl >= self._floor:
            return self._ok
        return Decision.veto(NAME, f"daily PnL {order.daily_pnl:.2f} breaches max_daily_loss "
                                   f"{self._max_loss:.2f}; session stopped", session_stop=True)


def build(limits: GuardLimits, options: dict) -> MaxDailyLossRule:
    return MaxDailyLossRule(limits.max_daily_loss)


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "today's PnL must stay above -max_daily_loss; "
                                               "a breach stops the session"))
