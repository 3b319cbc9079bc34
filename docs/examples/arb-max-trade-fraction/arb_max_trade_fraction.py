"""An arb guard rule: no single order may exceed a share of the account.

``max_trade_fraction`` vetoes an order whose notional is more than
``max_fraction`` of the account's equity on that exchange.  It sits at order
35: after ``min_account_balance`` (30) has made sure there is an account
worth the name, before ``max_daily_loss`` (40).

Config (optional; the rule runs as soon as the package is installed)::

    guards:
      max_trade_fraction:
        max_fraction: 0.1    # default 0.25
"""

from __future__ import annotations

from typing import Any, Mapping

import arb
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.specs import GuardRuleSpec

NAME = "max_trade_fraction"
ORDER = 35
DEFAULT_MAX_FRACTION = 0.25
OPTIONS = ("max_fraction",)


class MaxTradeFractionRule:
    name = NAME
    order = ORDER

    def __init__(self, max_fraction: float):
        self.max_fraction = max_fraction

    def check(self, order: OrderCheck) -> Decision:
        limit = order.balance * self.max_fraction
        # Written as "within the limit, else veto" so a NaN anywhere vetoes.
        if order.balance > 0 and order.notional <= limit:
            return Decision.allow(NAME)
        return Decision.veto(NAME, f"notional {order.notional:.2f} is more than {self.max_fraction:g} "
                                   f"of the {order.balance:.2f} balance on {order.exchange} (limit {limit:.2f})")


def build(limits: GuardLimits, options: Mapping[str, Any]) -> MaxTradeFractionRule:
    # A misspelt option must not leave the default silently in force.
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    fraction = options.get("max_fraction", DEFAULT_MAX_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"max_fraction must be a number in (0, 1], got {fraction!r}")
    return MaxTradeFractionRule(float(fraction))


@arb.hookimpl
def arb_register_guard_rules(register):
    register(GuardRuleSpec(NAME, ORDER, build, "order notional must not exceed max_fraction of the account"))
