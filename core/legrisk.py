"""Leg risk: one leg of a pair filled and the other did not.

A plan whose legs came back unequal (one rejected, failed, or filled in
part) leaves a position nobody hedged.  The engine stops opening trades at
once and asks this policy what to send:

- ``unwind`` (the default, because it flattens) sends the opposite order for
  the unhedged quantity on the venue that filled more;
- ``retry`` sends the leg that filled less again, for what it is missing,
  under a new client order id.

A repair order is a limit IOC at most ``max_slippage_pct`` beyond the best
price of the book it is priced on, rounded to the market's tick and lot
step.  The first goes out at once; if the gap is still open, the next goes
out on the next fresh book of its market, up to ``max_retries`` in all.
Then the policy gives up: the exposure stays, entries stay halted, and it
is reported.  So it does, with the reason, when the order would break an
exchange minimum.  An order whose outcome is unknown makes the position
itself unknown, so nothing is sent for it: that needs a person.

The policy decides and keeps the record; the engine sends (through the
order pipeline, so the guard chain judges every repair) and books results.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Mapping

from arb.book import OrderBook
from arb.config import LegRiskSettings
from arb.models import OUTCOME_UNKNOWN, MarketRules, Order, OrderIntent, Side
from arb.strategy import Plan

UNWIND, RETRY = "unwind", "retry"
POLICIES = (UNWIND, RETRY)

# Float noise, not quantity: fills are sums of exchange decimals.
_NOISE = 1e-12

Key = tuple[str, str]


def uncertain(order: Order) -> bool:
    """Whether the exchange may hold more of this order than we know of."""
    return not order.status.is_final or order.reason.startswith(OUTCOME_UNKNOWN)


@dataclass(slots=True)
class LegExposure:
    """One unhedged plan and every repair order sent for it since."""

    id: int
    plan: Plan
    legs: tuple[OrderIntent, ...]   # the plan's legs as sent (after any dry_run_scale)
    orders: list[Order]             # the plan's orders, then each repair order
    filled: list[float]             # per leg: base quantity it moved, repairs included
    repairs: int = 0
    reason: str = ""                # why it is not flat yet
    given_up: bool = False          # nothing more is sent: a person takes over
    last_try_ms: float = float("-inf")

    @property
    def asset(self) -> str:
        return self.plan.asset

    def gap(self) -> tuple[int, int, float]:
        """(leading leg, lagging leg, how much more the leading leg moved)."""
        a, b = self.filled
        return (0, 1, a - b) if a >= b else (1, 0, b - a)

    @property
    def hedged_qty(self) -> float:
        return min(self.filled)

    def position(self) -> dict[str, float]:
        """The unhedged quantity on the venue holding it: + bought, − sold."""
        lead, _, gap = self.gap()
        if gap <= _NOISE:
            return {}
        leg = self.legs[lead]
        return {leg.exchange: gap if leg.side is Side.BUY else -gap}

    def describe(self) -> str:
        lead, _, gap = self.gap()
        leg = self.legs[lead]
        legs = ", ".join(f"{o.intent.exchange} {o.intent.side.value} {o.filled_qty:g}/{o.intent.quantity:g} "
                         f"{o.status.value}{' (' + o.reason + ')' if o.reason else ''}"
                         for o in self.orders[:len(self.legs)])
        held = f"{leg.exchange} {'+' if leg.side is Side.BUY else '-'}{gap:g} {self.asset}"
        text = f"unhedged {self.plan.kind} of {self.asset}: {held}; {legs}"
        if self.reason:
            text += f"; {self.reason}"
        return text


class LegRiskPolicy:
    """Decides the repair orders for unhedged plans; sends nothing itself."""

    def __init__(self, settings: LegRiskSettings, rules: Mapping[Key, MarketRules],
                 client_id: Callable[[], str]):
        if settings.policy not in POLICIES:
            raise ValueError(f"leg_risk.policy must be one of {', '.join(POLICIES)}, got {settings.policy!r}")
        if settings.max_retries < 1:
            raise ValueError(f"leg_risk.max_retries must be at least 1, got {settings.max_retries}")
        if not 0.0 < settings.max_slippage_pct <= 10.0:
            raise ValueError(f"leg_risk.max_slippage_pct must be in (0, 10], got {settings.max_slippage_pct}")
        self.settings = settings
        self.policy = settings.policy
        self._slippage = settings.max_slippage_pct / 100.0
        self._rules = rules
        self._client_id = client_id
        self._ids = itertools.count(1)

    # --- what is open -----------------------------------------------------------------

    def assess(self, plan: Plan, orders: list[Order]) -> LegExposure:
        """The record of a plan whose orders did not come back hedged."""
        legs = (tuple(o.intent for o in orders) + tuple(plan.legs[len(orders):]))[:2]
        filled = ([o.filled_qty for o in orders] + [0.0, 0.0])[:2]
        exposure = LegExposure(next(self._ids), plan, legs, list(orders), filled)
        unknown = [o for o in orders if uncertain(o)]
        if len(orders) != 2 or len(plan.legs) != 2:
            self._give_up(exposure, f"{len(orders)} order(s) for a {len(plan.legs)}-leg plan: reconcile by hand")
        elif unknown:
            self._give_up(exposure, self._unknown(unknown[0]))
        return exposure

    def is_flat(self, exposure: LegExposure) -> bool:
        """Both legs moved the same quantity, or differ by less than the repair
        market's lot step (which no order can carry)."""
        _, _, gap = exposure.gap()
        if gap <= _NOISE:
            return True
        rules = self._rules.get(self.repair_key(exposure))
        return rules is not None and rules.round_qty(gap) <= 0

    def repair_key(self, exposure: LegExposure) -> Key:
        leg = exposure.legs[self._repair_leg(exposure)]
        return leg.exchange, leg.symbol

    def _repair_leg(self, exposure: LegExposure) -> int:
        lead, lag, _ = exposure.gap()
        return lead if self.policy == UNWIND else lag

    # --- the next order -----------------------------------------------------------------

    def next_repair(self, exposure: LegExposure, book: OrderBook | None, fx_rate: float,
                    now_ms: float) -> Plan | None:
        """The next repair as a one-leg plan (kind ``"repair"``), or None.

        None with ``exposure.given_up`` unset means: wait for a usable book.
        """
        if exposure.given_up:
            return None
        if exposure.repairs >= self.settings.max_retries:
            self._give_up(exposure, exposure.reason or f"{exposure.repairs} repair(s) did not make it flat")
            return None
        if book is None or not book.bids or not book.asks:
            return None  # priced on the next usable book of the market
        index = self._repair_leg(exposure)
        leg = exposure.legs[index]
        side = leg.side if self.policy == RETRY else leg.side.opposite
        rules = self._rules[(leg.exchange, leg.symbol)]
        _, _, gap = exposure.gap()
        qty = rules.round_qty(gap)
        if side is Side.BUY:
            best = book.asks[0][0]
            price = rules.round_price(best * (1 + self._slippage), side)
        else:
            best = book.bids[0][0]
            price = rules.round_price(best * (1 - self._slippage), side)
        problem = rules.violation(qty, price)
        if problem:
            self._give_up(exposure, f"cannot {self.policy} {side.value} {qty:g} {leg.symbol} on {leg.exchange}: "
                                    f"{problem}")
            return None
        exposure.last_try_ms = now_ms
        intent = OrderIntent(leg.exchange, leg.symbol, side, qty, price, best, self._client_id())
        plan = exposure.plan
        return Plan("repair", plan.asset, plan.direction, qty, (intent,), 0.0, 0.0, fx_rate or plan.fx_rate,
                    plan.trade_id, book.received_ms)

    # --- what came back -------------------------------------------------------------------

    def record(self, exposure: LegExposure, repair: Plan, order: Order | None, blocked: str = "") -> None:
        """Count a repair attempt: ``order`` as the exchange answered, or None
        when it was not sent (``blocked`` says why)."""
        exposure.repairs += 1
        attempt = f"{self.policy} {exposure.repairs}/{self.settings.max_retries}"
        if order is None:
            exposure.reason = f"{attempt} not sent: {blocked}"
        else:
            exposure.orders.append(order)
            index = self._repair_leg(exposure)
            moved = order.filled_qty
            exposure.filled[index] += moved if self.policy == RETRY else -moved
            if uncertain(order):
                self._give_up(exposure, self._unknown(order))
                return
            exposure.reason = (f"{attempt}: {order.intent.side.value} {moved:g}/{order.intent.quantity:g} "
                               f"on {order.intent.exchange} {order.status.value}"
                               + (f" ({order.reason})" if order.reason else ""))
        if not self.is_flat(exposure) and exposure.repairs >= self.settings.max_retries:
            self._give_up(exposure, exposure.reason)

    @staticmethod
    def _give_up(exposure: LegExposure, reason: str) -> None:
        exposure.given_up = True
        exposure.reason = reason

    @staticmethod
    def _unknown(order: Order) -> str:
        return (f"{order.intent.exchange} order {order.intent.client_order_id} is {order.status.value}"
                f"{' (' + order.reason + ')' if order.reason else ''}: its fill is unknown, so nothing is sent "
                "for it; reconcile by hand")
