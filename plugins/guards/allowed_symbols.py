"""Rule 2: only whitelisted symbols; an empty whitelist blocks everything."""

from arb import hookimpl
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "allowed_symbols"
ORDER = 20


class AllowedSymbolsRule:
    name = NAME
    order = ORDER

    def __init__(self, allowed: tuple[str, ...]):
        self._allowed = frozenset(allowed)
        self._ok = Decision.allow(NAME)

    def check(self, order: OrderCheck) -> Decision:
        if order.symbol in self._allowed:
            return self._ok
        if not self._allowed:
            return Decision.veto(NAME, "allowed_symbols is empty: every symbol is blocked")
        return Decision.veto(NAME, f"symbol {order.symbol} is not in allowed_symbols "
                                   f"[{', '.join(sorted(self._allowed))}]")


def build(limits: GuardLimits, options: dict) -> AllowedSymbolsRule:
    return AllowedSymbolsRule(limits.allowed_symbols)


@hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "the symbol must be on live_trading.allowed_symbols"))
