"""The guard chain as a whole: order, fail-closed behaviour, plans, logging and
the refusal to go live without the five built-in rules.

Chains are built the way the product builds them: ``load_registry()`` over
the installed entry points (plus in-process third-party plugins where a test
needs one), then ``build_guard_chain``.
"""

from __future__ import annotations

import importlib
import logging

import pytest

import arb
from arb.guard import Decision, GuardChainError, GuardLimits, OrderCheck
from arb.models import Side
from arb.plugins import build_guard_chain, load_registry
from arb.specs import GuardRuleSpec

#: SPEC §3, in chain order, with the orders the built-in specs declare.
SPEC_RULES = ("enabled", "allowed_symbols", "min_account_balance", "max_daily_loss", "max_notional_per_trade")
SPEC_ORDERS = (10, 20, 30, 40, 50)

#: The built-in guard modules, keyed by the rule each registers.
BUILTIN_MODULES = {name: f"arb_guards.{name}" for name in SPEC_RULES}

BLOCK_PREFIX = "[ARB_GUARD] BLOCKED"


# --- helpers ------------------------------------------------------------------------


def live_limits(**overrides) -> GuardLimits:
    values = {"enabled": True, "allowed_symbols": ("KRW-BTC", "BTCUSDT"),
              "min_account_balance": 50.0, "max_daily_loss": 20.0, "max_notional_per_trade": 50.0}
    values.update(overrides)
    return GuardLimits(**values)


def order(**overrides) -> OrderCheck:
    values = {"exchange": "upbit", "symbol": "KRW-BTC", "side": Side.BUY, "quantity": 1.0,
              "price": 10.0, "notional": 10.0, "balance": 100.0, "daily_pnl": 0.0}
    values.update(overrides)
    return OrderCheck(**values)


def binance_leg(**overrides) -> OrderCheck:
    values = {"exchange": "binance", "symbol": "BTCUSDT", "side": Side.SELL, "quantity": 1.0,
              "price": 10.0, "notional": 10.0, "balance": 100.0, "daily_pnl": 0.0}
    values.update(overrides)
    return OrderCheck(**values)


class ScriptedRule:
    """A third-party rule whose verdict is a function of the check; records its calls."""

    def __init__(self, name: str, order: int, verdict):
        self.name = name
        self.order = order
        self._verdict = verdict
        self.seen: list[OrderCheck] = []

    def check(self, check: OrderCheck):
        self.seen.append(check)
        return self._verdict(self, check)


class RulePlugin:
    """A third-party plugin, the way a package would write one."""

    def __init__(self, *specs: GuardRuleSpec):
        self.specs = specs

    @arb.hookimpl
    def arb_register_guard_rules(self, register):
        for spec in self.specs:
            register(spec)


def third_party_rule(name: str, order: int, verdict, **spec_kwargs):
    """A spec plus the single rule object its build returns (so tests can inspect it)."""
    rule = ScriptedRule(name, order, verdict)
    spec = GuardRuleSpec(name, order, lambda limits, options: rule, **spec_kwargs)
    return spec, rule


def chain_with(*specs: GuardRuleSpec, limits: GuardLimits | None = None, rule_options=None,
               require_essential: bool = True):
    registry = load_registry(extra=[("my-plugin", RulePlugin(*specs))])
    return build_guard_chain(registry, limits or live_limits(), rule_options or {},
                             require_essential=require_essential)


def in_process_registry(rule_names):
    modules = [(f"local-{name}", importlib.import_module(BUILTIN_MODULES[name])) for name in rule_names]
    return load_registry(entry_points=False, extra=modules)


def blocked_records(caplog):
    return [r for r in caplog.records if r.getMessage().startswith(BLOCK_PREFIX)]


# --- order ---------------------------------------------------------------------------


def test_builtin_specs_declare_spec_orders():
    registry = load_registry()
    declared = {name: registry.guard_rules[name].spec.order for name in SPEC_RULES}
    assert declared == dict(zip(SPEC_RULES, SPEC_ORDERS))


def test_chain_runs_rules_in_order_then_name():
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    assert chain.names == list(SPEC_RULES)
    assert [rule.order for rule in chain.rules] == list(SPEC_ORDERS)
    assert [d.rule for d in chain.evaluate(order()).decisions] == list(SPEC_RULES)


def test_default_evaluation_stops_at_first_veto():
    spec, late_rule = third_party_rule("after_everything", 60, lambda self, c: Decision.allow(self.name))
    chain = chain_with(spec, limits=live_limits(enabled=False))
    result = chain.evaluate(order(notional=500.0))
    assert [d.rule for d in result.decisions] == ["enabled"]
    assert result.veto.rule == "enabled"
    assert late_rule.seen == []


def test_all_rules_evaluation_returns_every_verdict():
    spec, late_rule = third_party_rule("after_everything", 60, lambda self, c: Decision.allow(self.name))
    chain = chain_with(spec, limits=live_limits(enabled=False))
    check = order(notional=500.0)
    result = chain.evaluate(check, all_rules=True)
    assert [d.rule for d in result.decisions] == [*SPEC_RULES, "after_everything"]
    assert [d.allowed for d in result.decisions] == [False, True, True, True, False, True]
    assert result.veto.rule == "enabled"  # the first veto still decides
    assert not result.allowed
    assert late_rule.seen == [check]


def test_evaluate_counts_and_logs_nothing(caplog):
    caplog.set_level(logging.DEBUG, logger="arb.guard")
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    before = chain.summary()
    chain.evaluate(order(notional=500.0))
    chain.evaluate(order(), all_rules=True)
    assert chain.summary() == before
    assert before["checks"] == 0
    assert caplog.records == []


# --- fail closed --------------------------------------------------------------------


def _raise(self, check):
    raise ZeroDivisionError("feed went away")


def test_rule_that_raises_is_a_veto_naming_rule_and_exception():
    spec, _ = third_party_rule("flaky_feed", 35, _raise)
    chain = chain_with(spec)
    result = chain.evaluate(order())
    veto = result.veto
    assert veto is not None and not result.allowed
    assert veto.rule == "flaky_feed"
    assert "flaky_feed" in veto.reason
    assert "ZeroDivisionError" in veto.reason
    assert "feed went away" in veto.reason


def test_rule_that_raises_blocks_a_plan_and_is_logged(caplog):
    caplog.set_level(logging.WARNING, logger="arb.guard")
    spec, _ = third_party_rule("flaky_feed", 35, _raise)
    chain = chain_with(spec)
    plan = chain.check_plan([order(), binance_leg()])
    assert not plan.allowed
    assert plan.veto.rule == "flaky_feed"
    assert chain.summary()["blocked_by_rule"] == {"flaky_feed": 2}
    assert len(blocked_records(caplog)) == 2


@pytest.mark.parametrize("answer", [True, None, "allow", 1, {"allowed": True}, (True, "ok")],
                         ids=repr)
def test_rule_that_answers_with_a_non_decision_is_a_veto(answer):
    spec, _ = third_party_rule("sloppy", 35, lambda self, c: answer)
    chain = chain_with(spec)
    result = chain.evaluate(order())
    assert not result.allowed
    assert result.veto.rule == "sloppy"
    assert type(answer).__name__ in result.veto.reason


def test_third_party_rule_at_order_35_runs_between_balance_and_daily_loss():
    spec, rule = third_party_rule(
        "max_open_orders", 35,
        lambda self, c: Decision.veto(self.name, "too many open orders") if c.quantity > 3
        else Decision.allow(self.name))
    chain = chain_with(spec)
    assert chain.names == ["enabled", "allowed_symbols", "min_account_balance", "max_open_orders",
                           "max_daily_loss", "max_notional_per_trade"]

    # Within its limit it allows and the chain carries on.
    assert chain.evaluate(order(quantity=1.0)).allowed

    # It vetoes; it runs before max_daily_loss, so it decides even when the
    # daily loss is also breached.
    veto = chain.evaluate(order(quantity=5.0, daily_pnl=-25.0)).veto
    assert veto.rule == "max_open_orders"
    assert veto.reason == "too many open orders"
    assert veto.session_stop is False

    # A veto from min_account_balance comes first: the rule is not even asked.
    rule.seen.clear()
    assert chain.evaluate(order(quantity=5.0, balance=1.0)).veto.rule == "min_account_balance"
    assert rule.seen == []

    # With it allowing, the daily-loss rule after it still vetoes.
    assert chain.evaluate(order(quantity=1.0, daily_pnl=-25.0)).veto.rule == "max_daily_loss"


def test_third_party_rule_can_request_a_session_stop():
    spec, _ = third_party_rule("kill_switch", 45,
                               lambda self, c: Decision.veto(self.name, "operator pressed stop", session_stop=True))
    chain = chain_with(spec)
    plan = chain.check_plan([order()])
    assert plan.veto.rule == "kill_switch"
    assert plan.session_stop is True
    assert chain.summary()["session_stops"] == 1


def test_the_spec_order_places_a_rule_in_the_chain():
    """GuardRuleSpec: "``order`` places it in the chain".  A rule object that
    carries a different ``order`` attribute must not move itself ahead of the
    built-in rules (``arb plugins`` shows the spec's order)."""
    spec, rule = third_party_rule("claims_first", 35, lambda self, c: Decision.allow(self.name))
    rule.order = 5  # the built object disagrees with its registered spec
    registry = load_registry(extra=[("my-plugin", RulePlugin(spec))])
    assert registry.guard_rules["claims_first"].spec.order == 35
    # Refused outright: a rule running somewhere other than where it was
    # registered (and reviewed) must never make it into a live chain.
    with pytest.raises(GuardChainError, match=r"registered at order 35.*order=5"):
        build_guard_chain(registry, live_limits(), {}, require_essential=True)


# --- plans --------------------------------------------------------------------------


def test_plan_with_one_vetoed_leg_is_not_allowed_and_keeps_both_results():
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    buy, sell = order(), binance_leg(notional=75.0)
    plan = chain.check_plan([buy, sell])
    assert not plan.allowed
    assert plan.veto is not None and plan.veto.rule == "max_notional_per_trade"
    assert plan.session_stop is False
    assert [r.check for r in plan.results] == [buy, sell]
    assert [r.allowed for r in plan.results] == [True, False]
    assert plan.results[1].veto == plan.veto


def test_plan_with_first_leg_vetoed_still_checks_the_second():
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    buy, sell = order(symbol="KRW-ETH"), binance_leg()
    plan = chain.check_plan([buy, sell])
    assert not plan.allowed
    assert plan.veto.rule == "allowed_symbols"
    assert [r.check for r in plan.results] == [buy, sell]
    assert [r.allowed for r in plan.results] == [False, True]
    assert [d.rule for d in plan.results[1].decisions] == list(SPEC_RULES)


def test_plan_with_both_legs_allowed():
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    plan = chain.check_plan([order(), binance_leg()])
    assert plan.allowed
    assert plan.veto is None
    assert plan.session_stop is False
    assert [r.allowed for r in plan.results] == [True, True]


def test_plan_session_stop_propagates_from_daily_loss():
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    plan = chain.check_plan([order(daily_pnl=-25.0), binance_leg(daily_pnl=-25.0)])
    assert not plan.allowed
    assert plan.veto.rule == "max_daily_loss"
    assert plan.session_stop is True
    summary = chain.summary()
    assert summary["session_stops"] == 1  # one plan, one stop
    assert summary["blocked_by_rule"] == {"max_daily_loss": 2}


def test_plan_session_stop_wins_over_an_earlier_plain_veto():
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    plan = chain.check_plan([order(symbol="KRW-ETH"), binance_leg(daily_pnl=-25.0)])
    assert not plan.allowed
    assert plan.session_stop is True
    assert plan.veto.rule == "max_daily_loss"
    assert chain.summary()["session_stops"] == 1


def test_plan_stats_are_counted_per_leg():
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    chain.check_plan([order(), binance_leg()])
    first = chain.summary()
    assert (first["checks"], first["allowed"], first["blocked"]) == (2, 2, 0)

    chain.check_plan([order(balance=10.0), binance_leg()])
    second = chain.summary()
    assert (second["checks"], second["allowed"], second["blocked"]) == (4, 3, 1)
    assert second["blocked_by_rule"] == {"min_account_balance": 1}

    chain.check_plan([order(notional=99.0), binance_leg(balance=0.0)])
    third = chain.summary()
    assert (third["checks"], third["allowed"], third["blocked"]) == (6, 3, 3)
    assert third["blocked_by_rule"] == {"min_account_balance": 2, "max_notional_per_trade": 1}
    assert third["session_stops"] == 0


def test_blocked_legs_are_logged_with_prefix_rule_and_reason(caplog):
    caplog.set_level(logging.DEBUG, logger="arb.guard")
    chain = build_guard_chain(load_registry(), live_limits(), {}, require_essential=True)
    chain.check_plan([order(), binance_leg()])
    assert blocked_records(caplog) == []

    plan = chain.check_plan([order(), binance_leg(notional=75.0)])
    records = blocked_records(caplog)
    assert len(records) == 1
    message = records[0].getMessage()
    assert "max_notional_per_trade" in message
    assert plan.veto.reason in message
    assert "BTCUSDT" in message
    assert records[0].levelno == logging.WARNING


def test_every_blocked_leg_is_logged_under_its_own_rule(caplog):
    caplog.set_level(logging.WARNING, logger="arb.guard")
    chain = build_guard_chain(load_registry(), live_limits(enabled=False), {}, require_essential=True)
    chain.check_plan([order(), binance_leg()])
    messages = [r.getMessage() for r in blocked_records(caplog)]
    assert len(messages) == 2
    assert all("enabled" in m and "live_trading.enabled=False" in m for m in messages)
    assert any("KRW-BTC" in m for m in messages) and any("BTCUSDT" in m for m in messages)


# --- build_guard_chain: essential rules ------------------------------------------------


def test_real_registry_builds_the_five_essential_rules():
    registry = load_registry()
    chain = build_guard_chain(registry, GuardLimits(), {}, require_essential=True)
    assert chain.names == list(SPEC_RULES)
    for name in SPEC_RULES:
        assert registry.guard_rules[name].plugin.distribution == "arb"


@pytest.mark.parametrize("missing", SPEC_RULES)
def test_live_refuses_when_a_builtin_rule_is_missing(missing):
    registry = in_process_registry([name for name in SPEC_RULES if name != missing])
    assert missing not in registry.guard_rules
    with pytest.raises(GuardChainError) as excinfo:
        build_guard_chain(registry, live_limits(), {}, require_essential=True)
    assert f"{missing} is not installed" in str(excinfo.value)


def test_live_refuses_builtin_rules_registered_in_process():
    registry = in_process_registry(SPEC_RULES)
    assert set(registry.guard_rules) == set(SPEC_RULES)
    assert {reg.plugin.distribution for reg in registry.guard_rules.values()} == {"(registered in process)"}
    with pytest.raises(GuardChainError) as excinfo:
        build_guard_chain(registry, live_limits(), {}, require_essential=True)
    message = str(excinfo.value)
    for name in SPEC_RULES:
        assert name in message
    assert "not from arb" in message


def test_paper_chain_may_be_built_without_every_builtin_rule():
    registry = in_process_registry(["enabled", "allowed_symbols", "max_notional_per_trade"])
    chain = build_guard_chain(registry, live_limits(), {}, require_essential=False)
    assert chain.names == ["enabled", "allowed_symbols", "max_notional_per_trade"]


@pytest.mark.parametrize("disabled", SPEC_RULES)
def test_live_refuses_when_an_essential_rule_is_disabled(disabled):
    with pytest.raises(GuardChainError) as excinfo:
        build_guard_chain(load_registry(), live_limits(), {disabled: {"enabled": False}},
                          require_essential=True)
    assert f"{disabled} is disabled" in str(excinfo.value)


def test_disabled_max_daily_loss_is_refused_with_its_name():
    with pytest.raises(GuardChainError, match="max_daily_loss"):
        build_guard_chain(load_registry(), live_limits(), {"max_daily_loss": {"enabled": False}},
                          require_essential=True)


@pytest.mark.parametrize("falsy", [0, None, ""], ids=repr)
def test_live_never_runs_without_an_essential_rule_whatever_the_disabling_value(falsy):
    """build_guard_chain: "the five built-in rules must all be installed ...
    and switched on; anything less refuses"."""
    try:
        chain = build_guard_chain(load_registry(), live_limits(), {"max_daily_loss": {"enabled": falsy}},
                                  require_essential=True)
    except GuardChainError as exc:
        assert "max_daily_loss" in str(exc)
    else:
        assert chain.names == list(SPEC_RULES), (
            f"enabled={falsy!r} silently removed an essential rule from a live chain")


def test_explicitly_enabled_essential_rule_is_fine():
    chain = build_guard_chain(load_registry(), live_limits(), {"max_daily_loss": {"enabled": True}},
                              require_essential=True)
    assert chain.names == list(SPEC_RULES)


@pytest.mark.parametrize("require_essential", [True, False])
def test_unknown_rule_in_rule_options_is_an_error(require_essential):
    with pytest.raises(GuardChainError) as excinfo:
        build_guard_chain(load_registry(), live_limits(), {"max_daily_los": {"enabled": True}},
                          require_essential=require_essential)
    assert "max_daily_los" in str(excinfo.value)
