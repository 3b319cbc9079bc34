"""The only road an order takes out of the process.

plan → guard chain on every leg (mandatory in live_trading) → dry_run_scale
(live_trading, opening plans) → gateway.  In live_readonly the road ends
before the gateway: the plan is logged and counted as a shadow trade.

Leg-risk repairs (:mod:`arb.legrisk`) take the same road as one-leg plans of
kind ``"repair"``: guarded like any order, never scaled, since they must
match what actually filled.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Protocol, Sequence

from arb.events import EventBus
from arb.guard import GuardChain, OrderCheck, new_check
from arb.models import MarketRules, Order, OrderIntent
from arb.scaling import scale_legs
from arb.strategy import Plan

log = logging.getLogger("arb.pipeline")


class Gateway(Protocol):
    def submit(self, legs: Sequence[OrderIntent], now_ms: float) -> list[Order]: ...

    def free_balances(self, exchange: str) -> dict[str, float]: ...

    def active_orders(self) -> int: ...


class OrderPipeline:
    def __init__(self, *, mode: str, gateway: Gateway, chain: GuardChain | None,
                 rules: Mapping[tuple[str, str], MarketRules], local_quote: str, events: EventBus,
                 equity: Callable[[str], float], daily_pnl: Callable[[], float],
                 dry_run_scale: float | None = None):
        if mode == "live_trading" and chain is None:
            raise ValueError("live_trading needs a guard chain")
        if mode == "live_trading" and dry_run_scale is not None and not 0.0 < dry_run_scale <= 1.0:
            # Above 1 would send more than the guards approved.
            raise ValueError(f"dry_run_scale must be in (0, 1], got {dry_run_scale}")
        self.mode = mode
        self.gateway = gateway
        self.chain = chain
        self.rules = rules
        self.local_quote = local_quote
        self.events = events
        self.equity = equity
        self.daily_pnl = daily_pnl
        self.dry_run_scale = dry_run_scale if mode == "live_trading" else None
        self.stop_reason: str | None = None
        self.shadow_trades = 0
        self.plans_blocked = 0
        self.plans_skipped = 0
        self.last_block_reason = ""
        #: ``open_notional(exchange)``: reference-currency value already open
        #: there (open trades' legs, unhedged legs); the engine sets it when attached.
        self.open_notional: Callable[[str], float] | None = None
        #: ``record(plan, legs, now_ms)``, called before anything is sent: what
        #: must not lose an order (the journal).  Unlike event subscribers, one
        #: that raises stops the orders and the session: fail closed.
        self.recorders: list[Callable[[Plan, Sequence[OrderIntent], float], None]] = []

    def execute(self, plan: Plan, now_ms: float) -> list[Order] | None:
        """Send ``plan``'s legs if allowed; None when nothing was sent."""
        legs = plan.legs
        if self.chain is not None:
            result = self.chain.check_plan(self._checks(plan, now_ms))
            if not result.allowed:
                veto = result.veto
                self.plans_blocked += 1
                self.last_block_reason = f"{veto.rule}: {veto.reason}"
                self.events.publish("plan_blocked", now_ms, plan=plan, result=result)
                if result.session_stop:
                    self.stop_reason = f"session stopped by guard {veto.rule}: {veto.reason}"
                    self.events.publish("session_stop", now_ms, rule=veto.rule, reason=veto.reason)
                return None
            self.events.publish("plan_allowed", now_ms, plan=plan, result=result)
        # Only openings are scaled: a close or a repair must match what filled.
        if self.dry_run_scale is not None and plan.kind == "open":
            legs, problem = scale_legs(legs, self.dry_run_scale,
                                       [self.rules[(leg.exchange, leg.symbol)] for leg in legs])
            if problem:
                self.plans_skipped += 1
                self.last_block_reason = problem
                log.warning("[ARB_SCALE] skipped %s %s: %s", plan.kind, plan.asset, problem)
                self.events.publish("plan_skipped", now_ms, plan=plan, reason=problem)
                return None
        if self.mode == "live_readonly":
            self.shadow_trades += 1
            log.info("[ARB_READONLY] order not sent (live_readonly forbids orders); shadow %s %s %s",
                     plan.kind, plan.asset, " / ".join(f"{l.exchange} {l.side.value} {l.quantity:g} {l.symbol}"
                                                        for l in legs))
            self.events.publish("shadow_trade", now_ms, plan=plan)
            return None
        # The intents are on record before anything leaves, so a crash
        # mid-send leaves a trace; an order that cannot be recorded is not sent.
        for record in self.recorders:
            try:
                record(plan, legs, now_ms)
            except Exception as exc:
                self._refuse_unrecorded(plan, now_ms, exc)
                return None
        self.events.publish("orders_submitting", now_ms, plan=plan, legs=legs)
        orders = self.gateway.submit(legs, now_ms)
        self.events.publish("orders_done", now_ms, plan=plan, orders=orders)
        return orders

    def _refuse_unrecorded(self, plan: Plan, now_ms: float, exc: Exception) -> None:
        reason = f"orders could not be recorded before sending ({type(exc).__name__}: {exc}); nothing was sent"
        log.critical("[ARB_JOURNAL] %s %s: %s", plan.kind, plan.asset, reason)
        self.plans_blocked += 1
        self.last_block_reason = reason
        if self.stop_reason is None:
            self.stop_reason = f"session stopped: {reason}"
            self.events.publish("session_stop", now_ms, rule="journal", reason=reason)

    def _checks(self, plan: Plan, now_ms: float) -> list[OrderCheck]:
        """What each leg puts before the rules.  Today's PnL and the data's
        age are the plan's, so they are worked out once for all its legs."""
        daily_pnl = self.daily_pnl()
        data_age = now_ms - plan.data_ms if plan.data_ms else 0.0
        rules, local_quote, equity, open_notional = self.rules, self.local_quote, self.equity, self.open_notional
        checks = []
        for leg in plan.legs:
            exchange, symbol, quantity, price = leg.exchange, leg.symbol, leg.quantity, leg.limit_price
            notional = quantity * price
            if rules[(exchange, symbol)].quote == local_quote:
                notional /= plan.fx_rate
            checks.append(new_check(exchange, symbol, leg.side, quantity, price, notional, equity(exchange),
                                    daily_pnl, now_ms, data_age, plan.premium_pct,
                                    open_notional(exchange) if open_notional is not None else 0.0))
        return checks
