"""The five built-in guard rules, judged through the chain the product builds.

Covers the design note's guard tests (D47, minus the dry_run_scale ones,
which belong to the scaling module), its three worked scenarios and the
boundaries of every money limit.  The chain comes from the real entry points
of the installed built-in plugins; nothing of arb's is mocked.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import fields, replace

import pytest

from arb.guard import GuardLimits, OrderCheck
from arb.models import Side
from arb.plugins import build_guard_chain, load_registry

#: SPEC §3, in chain order.
SPEC_RULES = ("enabled", "allowed_symbols", "min_account_balance", "max_daily_loss", "max_notional_per_trade")

#: SPEC §3 "Defaults (very safe)".
SPEC_DEFAULTS = {
    "enabled": False,
    "dry_run_scale": 0.01,
    "allowed_symbols": (),
    "min_account_balance": 50.0,
    "max_daily_loss": 20.0,
    "max_notional_per_trade": 50.0,
}


def live_limits(**overrides) -> GuardLimits:
    """Limits switched on for KRW-BTC and BTCUSDT, money limits at SPEC's defaults."""
    values = {"enabled": True, "allowed_symbols": ("KRW-BTC", "BTCUSDT"),
              "min_account_balance": 50.0, "max_daily_loss": 20.0, "max_notional_per_trade": 50.0}
    values.update(overrides)
    return GuardLimits(**values)


def order(**overrides) -> OrderCheck:
    """The design note's order: KRW-BTC, notional 10, balance 100, no loss today."""
    values = {"exchange": "upbit", "symbol": "KRW-BTC", "side": Side.BUY, "quantity": 1.0,
              "price": 10.0, "notional": 10.0, "balance": 100.0, "daily_pnl": 0.0}
    values.update(overrides)
    return OrderCheck(**values)


def chain_for(limits: GuardLimits, rule_options=None):
    return build_guard_chain(load_registry(), limits, rule_options or {}, require_essential=True)


def only_veto(result):
    veto = result.veto
    assert veto is not None, f"expected a veto, every rule allowed: {result.decisions}"
    assert not result.allowed
    return veto


# --- the design note's guard tests -------------------------------------------------


def test_guard_initialization_defaults_are_spec_safe_defaults():
    limits = GuardLimits()
    assert {f.name for f in fields(GuardLimits)} == set(SPEC_DEFAULTS)
    for name, expected in SPEC_DEFAULTS.items():
        assert getattr(limits, name) == expected, name
    assert limits.enabled is False


def test_guard_initialization_builds_the_five_rules_and_blocks_by_default():
    chain = chain_for(GuardLimits())
    assert chain.names == list(SPEC_RULES)
    assert chain.summary()["checks"] == 0
    result = chain.evaluate(order())
    assert only_veto(result).rule == "enabled"
    # Even with enabled out of the way the default whitelist is empty.
    everything = chain.evaluate(order(), all_rules=True)
    vetoed = [d.rule for d in everything.decisions if not d.allowed]
    assert vetoed == ["enabled", "allowed_symbols"]


def test_guard_enabled_false_blocks_order():
    chain = chain_for(live_limits(enabled=False))
    veto = only_veto(chain.evaluate(order()))
    assert veto.rule == "enabled"
    assert veto.reason == "live_trading.enabled=False"
    assert veto.session_stop is False


def test_guard_enabled_true_allows_valid_order():
    chain = chain_for(live_limits())
    result = chain.evaluate(order())
    assert result.allowed
    assert result.veto is None
    assert [d.rule for d in result.decisions] == list(SPEC_RULES)
    assert all(d.allowed and not d.session_stop for d in result.decisions)


def test_guard_blocks_disallowed_symbol():
    chain = chain_for(live_limits(allowed_symbols=("KRW-BTC",)))
    veto = only_veto(chain.evaluate(order(symbol="KRW-ETH")))
    assert veto.rule == "allowed_symbols"
    assert "KRW-ETH" in veto.reason
    assert veto.session_stop is False
    # The same order on a whitelisted symbol goes through.
    assert chain.evaluate(order(symbol="KRW-BTC")).allowed


def test_guard_blocks_insufficient_balance():
    chain = chain_for(live_limits(min_account_balance=50.0))
    veto = only_veto(chain.evaluate(order(balance=30.0)))
    assert veto.rule == "min_account_balance"
    assert "30" in veto.reason
    assert veto.session_stop is False


def test_guard_blocks_excessive_daily_loss_and_stops_the_session():
    chain = chain_for(live_limits(max_daily_loss=20.0))
    veto = only_veto(chain.evaluate(order(daily_pnl=-30.0)))
    assert veto.rule == "max_daily_loss"
    assert veto.session_stop is True
    assert "-30" in veto.reason


def test_guard_blocks_excessive_notional():
    chain = chain_for(live_limits(max_notional_per_trade=50.0))
    veto = only_veto(chain.evaluate(order(notional=100.0)))
    assert veto.rule == "max_notional_per_trade"
    assert "100" in veto.reason
    assert veto.session_stop is False


def test_guard_summary_counts_checks_allowed_blocked_per_rule_and_session_stops():
    chain = chain_for(live_limits())
    plans = [
        [order()],                       # allowed
        [order(notional=5.0)],           # allowed
        [order(symbol="KRW-XRP")],       # allowed_symbols
        [order(balance=1.0)],            # min_account_balance
        [order(notional=70.0)],          # max_notional_per_trade
        [order(notional=80.0)],          # max_notional_per_trade
        [order(daily_pnl=-21.0)],        # max_daily_loss, session stop
    ]
    outcomes = [chain.check_plan(plan) for plan in plans]
    assert [o.allowed for o in outcomes] == [True, True, False, False, False, False, False]

    summary = chain.summary()
    assert summary["rules"] == list(SPEC_RULES)
    assert summary["checks"] == len(plans)
    assert summary["allowed"] == 2
    assert summary["blocked"] == len(plans) - 2
    assert summary["blocked_by_rule"] == {
        "allowed_symbols": 1,
        "max_daily_loss": 1,
        "max_notional_per_trade": 2,
        "min_account_balance": 1,
    }
    assert summary["session_stops"] == 1
    assert summary["session_stop"] is True


def test_guard_summary_without_session_stop():
    chain = chain_for(live_limits())
    chain.check_plan([order()])
    chain.check_plan([order(notional=51.0)])
    summary = chain.summary()
    assert (summary["checks"], summary["allowed"], summary["blocked"]) == (2, 1, 1)
    assert summary["session_stops"] == 0
    assert summary["session_stop"] is False


def test_guard_multiple_conditions_failure_first_rule_decides():
    chain = chain_for(live_limits(allowed_symbols=("KRW-BTC",)))
    bad = order(symbol="KRW-DOGE", balance=10.0, daily_pnl=-50.0, notional=500.0)
    veto = only_veto(chain.evaluate(bad))
    assert veto.rule == "allowed_symbols"
    assert veto.session_stop is False
    everything = chain.evaluate(bad, all_rules=True)
    assert [d.rule for d in everything.decisions if not d.allowed] == list(SPEC_RULES[1:])


# Each failing condition, keyed by the rule that must catch it.
_FAILURES = {
    "enabled": ({"enabled": False}, {}),
    "allowed_symbols": ({}, {"symbol": "KRW-SOL"}),
    "min_account_balance": ({}, {"balance": 49.0}),
    "max_daily_loss": ({}, {"daily_pnl": -21.0}),
    "max_notional_per_trade": ({}, {"notional": 51.0}),
}
_FAILING_SETS = [combo for size in range(1, len(SPEC_RULES) + 1)
                 for combo in itertools.combinations(SPEC_RULES, size)]


@pytest.mark.parametrize("failing", _FAILING_SETS, ids=lambda c: "+".join(c))
def test_any_set_of_failing_conditions_is_decided_by_the_first_rule_in_spec_order(failing):
    limit_overrides, order_overrides = {}, {}
    for rule in failing:
        limit_overrides.update(_FAILURES[rule][0])
        order_overrides.update(_FAILURES[rule][1])
    chain = chain_for(live_limits(**limit_overrides))
    check = order(**order_overrides)

    veto = only_veto(chain.evaluate(check))
    first = next(rule for rule in SPEC_RULES if rule in failing)
    assert veto.rule == first
    assert veto.session_stop is (first == "max_daily_loss")

    everything = chain.evaluate(check, all_rules=True)
    assert sorted(d.rule for d in everything.decisions if not d.allowed) == sorted(failing)


# --- the design note's three scenarios ---------------------------------------------


def test_scenario_1_enabled_false_blocks():
    chain = chain_for(live_limits(enabled=False, allowed_symbols=("KRW-BTC",)))
    result = chain.evaluate(order(symbol="KRW-BTC", notional=10.0, balance=100.0, daily_pnl=0.0))
    veto = only_veto(result)
    assert veto.rule == "enabled"
    assert veto.reason == "live_trading.enabled=False"
    assert veto.session_stop is False
    assert len(result.decisions) == 1  # nothing after the first veto was asked


def test_scenario_2_all_conditions_met_is_allowed():
    chain = chain_for(live_limits(allowed_symbols=("KRW-BTC",)))
    result = chain.evaluate(order(symbol="KRW-BTC", notional=10.0, balance=100.0, daily_pnl=0.0))
    assert result.allowed
    assert [(d.rule, d.allowed) for d in result.decisions] == [(r, True) for r in SPEC_RULES]


def test_scenario_3_daily_loss_beyond_limit_blocks_and_stops_session():
    chain = chain_for(live_limits(allowed_symbols=("KRW-BTC",), max_daily_loss=20.0))
    result = chain.evaluate(order(symbol="KRW-BTC", notional=10.0, balance=100.0, daily_pnl=-25.0))
    veto = only_veto(result)
    assert veto.rule == "max_daily_loss"
    assert veto.session_stop is True
    assert "-25" in veto.reason and "20" in veto.reason
    assert [(d.rule, d.allowed) for d in result.decisions] == [
        ("enabled", True), ("allowed_symbols", True), ("min_account_balance", True),
        ("max_daily_loss", False)]

    plan = chain.check_plan([result.check])
    assert not plan.allowed
    assert plan.session_stop is True
    assert chain.summary()["session_stops"] == 1


# --- boundaries ---------------------------------------------------------------------

_LIMITS = [50.0, 20.0, 0.1 + 0.2, 1234.5678]


@pytest.mark.parametrize("minimum", _LIMITS)
def test_balance_exactly_at_minimum_is_allowed_a_hair_below_is_vetoed(minimum):
    chain = chain_for(live_limits(min_account_balance=minimum))
    assert chain.evaluate(order(balance=minimum)).allowed
    below = math.nextafter(minimum, -math.inf)
    veto = only_veto(chain.evaluate(order(balance=below)))
    assert veto.rule == "min_account_balance"


@pytest.mark.parametrize("max_loss", _LIMITS)
def test_daily_pnl_exactly_at_minus_max_loss_is_allowed_a_hair_below_is_vetoed(max_loss):
    chain = chain_for(live_limits(max_daily_loss=max_loss))
    at_limit = chain.evaluate(order(daily_pnl=-max_loss))
    assert at_limit.allowed
    assert not any(d.session_stop for d in at_limit.decisions)

    below = math.nextafter(-max_loss, -math.inf)
    veto = only_veto(chain.evaluate(order(daily_pnl=below)))
    assert veto.rule == "max_daily_loss"
    assert veto.session_stop is True


@pytest.mark.parametrize("maximum", _LIMITS)
def test_notional_exactly_at_maximum_is_allowed_a_hair_above_is_vetoed(maximum):
    chain = chain_for(live_limits(max_notional_per_trade=maximum))
    assert chain.evaluate(order(notional=maximum)).allowed
    above = math.nextafter(maximum, math.inf)
    veto = only_veto(chain.evaluate(order(notional=above)))
    assert veto.rule == "max_notional_per_trade"
    assert veto.session_stop is False


def test_daily_profit_is_allowed():
    chain = chain_for(live_limits())
    assert chain.evaluate(order(daily_pnl=1_000.0)).allowed


@pytest.mark.parametrize("symbol", ["KRW-BTC", "BTCUSDT", "KRW-ETH", ""])
def test_empty_whitelist_blocks_every_symbol_with_a_clear_reason(symbol):
    chain = chain_for(live_limits(allowed_symbols=()))
    veto = only_veto(chain.evaluate(order(symbol=symbol)))
    assert veto.rule == "allowed_symbols"
    assert "allowed_symbols" in veto.reason
    assert "empty" in veto.reason.lower()


def test_whitelist_match_is_exact():
    chain = chain_for(live_limits(allowed_symbols=("KRW-BTC",)))
    for near_miss in ("krw-btc", "KRW-BTC ", "BTC", "KRW-BTCX"):
        veto = only_veto(chain.evaluate(order(symbol=near_miss)))
        assert veto.rule == "allowed_symbols", near_miss


_NON_FINITE = [
    ("balance", math.nan, "min_account_balance"),
    ("balance", -math.inf, "min_account_balance"),
    ("daily_pnl", math.nan, "max_daily_loss"),
    ("daily_pnl", -math.inf, "max_daily_loss"),
    ("notional", math.nan, "max_notional_per_trade"),
    ("notional", math.inf, "max_notional_per_trade"),
]


@pytest.mark.parametrize("field_name,value,rule", _NON_FINITE,
                         ids=[f"{f}={v}" for f, v, _ in _NON_FINITE])
def test_non_finite_inputs_are_vetoed_fail_closed(field_name, value, rule):
    chain = chain_for(live_limits())
    check = order(**{field_name: value})
    veto = only_veto(chain.evaluate(check))
    assert veto.rule == rule

    plan = chain.check_plan([check])
    assert not plan.allowed
    assert plan.veto.rule == rule


def test_nan_everywhere_is_vetoed_by_the_first_money_rule():
    chain = chain_for(live_limits())
    check = order(balance=math.nan, daily_pnl=math.nan, notional=math.nan)
    assert only_veto(chain.evaluate(check)).rule == "min_account_balance"
    everything = chain.evaluate(check, all_rules=True)
    assert [d.rule for d in everything.decisions if not d.allowed] == list(SPEC_RULES[2:])


def test_rules_judge_the_check_not_stale_state():
    """Allowed and vetoed checks interleave without one verdict leaking into the next."""
    chain = chain_for(live_limits())
    good = order()
    bad = replace(good, notional=60.0)
    verdicts = [chain.evaluate(c).allowed for c in (good, bad, good, bad, good)]
    assert verdicts == [True, False, True, False, True]
