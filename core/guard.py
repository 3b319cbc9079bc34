"""The guard chain: ordered rules, each able to veto an order before it is sent.

The first rule that vetoes decides.  A rule that raises, or answers with
anything but a :class:`Decision`, vetoes: the chain fails closed.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence

from arb.models import Side, fast_constructor

log = logging.getLogger("arb.guard")

#: Stable prefix of every log line about a blocked order; alerting greps it.
BLOCK_PREFIX = "[ARB_GUARD] BLOCKED"

#: The built-in rules live trading cannot start without (SPEC §3), in order.
ESSENTIAL_RULES = (
    "enabled",
    "allowed_symbols",
    "min_account_balance",
    "max_daily_loss",
    "max_notional_per_trade",
)


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """The ``live_trading`` section of a config; money in the reference currency."""

    enabled: bool = False
    dry_run_scale: float = 0.01
    allowed_symbols: tuple[str, ...] = ()
    min_account_balance: float = 50.0
    max_daily_loss: float = 20.0
    max_notional_per_trade: float = 50.0


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """Everything a rule may judge, kept with its verdict for the record.

    ``notional``, ``balance`` and ``daily_pnl`` are in the reference currency;
    ``balance`` is the account's equity on ``exchange``; ``daily_pnl`` is
    today's realized plus open unrealized PnL.
    """

    exchange: str
    symbol: str
    side: Side
    quantity: float
    price: float
    notional: float
    balance: float
    daily_pnl: float
    now_ms: float = 0.0
    data_age_ms: float = 0.0       # age of the oldest book the order was priced on
    premium_pct: float = 0.0       # the plan's gross premium, percent
    open_notional: float = 0.0     # exposure already open on ``exchange`` (reference currency)

    def describe(self) -> str:
        return (f"{self.exchange} {self.side.value} {self.quantity:g} {self.symbol} @ {self.price:g} "
                f"notional={self.notional:.2f} balance={self.balance:.2f} daily_pnl={self.daily_pnl:.2f}")


new_check = fast_constructor(OrderCheck)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    reason: str = ""
    session_stop: bool = False

    @classmethod
    def allow(cls, rule: str) -> Decision:
        return cls(True, rule)

    @classmethod
    def veto(cls, rule: str, reason: str, *, session_stop: bool = False) -> Decision:
        return cls(False, rule, reason, session_stop)


class GuardRule(Protocol):
    name: str
    order: int

    def check(self, order: OrderCheck) -> Decision: ...


@dataclass(slots=True)
class CheckResult:
    """One order's trip through the chain: its inputs and every verdict given."""

    check: OrderCheck
    decisions: list[Decision]

    @property
    def veto(self) -> Decision | None:
        for decision in self.decisions:
            if not decision.allowed:
                return decision
        return None

    @property
    def allowed(self) -> bool:
        return self.veto is None


@dataclass(slots=True)
class PlanResult:
    """All legs of one plan; a veto on any leg means no leg is sent."""

    results: list[CheckResult]
    veto: Decision | None

    @property
    def allowed(self) -> bool:
        return self.veto is None

    @property
    def session_stop(self) -> bool:
        return self.veto is not None and self.veto.session_stop


@dataclass
class GuardStats:
    checks: int = 0
    allowed: int = 0
    blocked: Counter = field(default_factory=Counter)
    session_stops: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "allowed": self.allowed,
            "blocked": sum(self.blocked.values()),
            "blocked_by_rule": dict(sorted(self.blocked.items())),
            "session_stops": self.session_stops,
            "session_stop": self.session_stops > 0,
        }


class GuardChainError(ValueError):
    """The chain cannot be assembled as configured."""


class GuardChain:
    def __init__(self, rules: Iterable[GuardRule]):
        ordered = sorted(rules, key=lambda r: (r.order, r.name))
        seen: dict[int, str] = {}
        for rule in ordered:
            if rule.order in seen:
                raise GuardChainError(
                    f"guard rules {seen[rule.order]!r} and {rule.name!r} share order {rule.order}; "
                    "each rule needs its own place in the chain")
            seen[rule.order] = rule.name
        self.rules: tuple[GuardRule, ...] = tuple(ordered)
        self.stats = GuardStats()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def evaluate(self, check: OrderCheck, *, all_rules: bool = False) -> CheckResult:
        """Run the rules in order; stop at the first veto unless ``all_rules``.

        Pure: counts nothing and logs nothing (``arb check-order`` uses it).
        """
        return CheckResult(check, self._judge(check, all_rules)[0])

    def _judge(self, check: OrderCheck, all_rules: bool) -> tuple[list[Decision], Decision | None]:
        """Every verdict given, and the first veto among them."""
        decisions: list[Decision] = []
        veto = None
        for rule in self.rules:
            try:
                decision = rule.check(check)
            except Exception as exc:  # fail closed: a broken rule is a veto
                decision = _raised(rule, exc)
            if decision.__class__ is not Decision and not isinstance(decision, Decision):
                decision = _not_a_decision(rule, decision)
            decisions.append(decision)
            if not decision.allowed and veto is None:
                veto = decision
                if not all_rules:
                    break
        return decisions, veto

    def check_plan(self, checks: Sequence[OrderCheck]) -> PlanResult:
        """Check every leg before any is sent; count and log the outcome."""
        results = []
        veto = None
        stats = self.stats
        judge = self._judge
        debug = log.isEnabledFor(logging.DEBUG)
        for check in checks:
            decisions, leg_veto = judge(check, False)
            results.append(CheckResult(check, decisions))
            stats.checks += 1
            if leg_veto is None:
                stats.allowed += 1
                if debug:
                    log.debug("[ARB_GUARD] allowed %s", check.describe())
                continue
            stats.blocked[leg_veto.rule] += 1
            log.warning("%s rule=%s reason=%s order: %s", BLOCK_PREFIX, leg_veto.rule,
                        leg_veto.reason, check.describe())
            if veto is None or (leg_veto.session_stop and not veto.session_stop):
                veto = leg_veto
        if veto is not None and veto.session_stop:
            stats.session_stops += 1
        return PlanResult(results, veto)

    def summary(self) -> dict[str, Any]:
        return {"rules": self.names, **self.stats.as_dict()}


def _raised(rule: GuardRule, exc: Exception) -> Decision:
    return Decision.veto(rule.name, f"rule {rule.name!r} failed: {type(exc).__name__}: {exc}")


def _not_a_decision(rule: GuardRule, answer: object) -> Decision:
    return Decision.veto(rule.name, f"rule {rule.name!r} returned {type(answer).__name__}, not a Decision")
