"""The plugin registry: what it accepts, what it refuses, and where each
registration says it came from.

Third-party plugins are plain objects handed to ``load_registry(extra=...)``,
written the way an installed package would write them.
"""

from __future__ import annotations

import pytest

import arb
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.models import Side
from arb.plugins import PluginError, build_guard_chain, load_registry
from arb.specs import ExchangeSpec, GuardRuleSpec

#: SPEC §3, in chain order.
SPEC_RULES = ("enabled", "allowed_symbols", "min_account_balance", "max_daily_loss", "max_notional_per_trade")

IN_PROCESS = "(registered in process)"


# --- helpers ------------------------------------------------------------------------


class AllowRule:
    def __init__(self, name: str, order: int, options=None):
        self.name = name
        self.order = order
        self.options = dict(options or {})

    def check(self, check: OrderCheck) -> Decision:
        return Decision.allow(self.name)


def rule_spec(name: str, order: int, **kwargs) -> GuardRuleSpec:
    return GuardRuleSpec(name, order, lambda limits, options: AllowRule(name, order, options), **kwargs)


class RulePlugin:
    def __init__(self, *specs):
        self.specs = specs

    @arb.hookimpl
    def arb_register_guard_rules(self, register):
        for spec in self.specs:
            register(spec)


class MisspeltPlugin:
    @arb.hookimpl
    def arb_register_guard_rule(self, register):  # missing the final "s"
        register(rule_spec("never_seen", 35))


class WrongArgumentPlugin:
    @arb.hookimpl
    def arb_register_guard_rules(self, add):
        add(rule_spec("never_seen", 35))


class ExplodingPlugin:
    @arb.hookimpl
    def arb_register_guard_rules(self, register):
        raise RuntimeError("config file not found")


def live_limits() -> GuardLimits:
    return GuardLimits(enabled=True, allowed_symbols=("KRW-BTC",))


def order() -> OrderCheck:
    return OrderCheck("upbit", "KRW-BTC", Side.BUY, 1.0, 10.0, 10.0, 100.0, 0.0)


# --- conflicts ------------------------------------------------------------------------


def test_third_party_rule_sharing_a_builtin_order_is_refused_naming_both():
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("my-plugin", RulePlugin(rule_spec("my_rule", 40)))])
    message = str(excinfo.value)
    assert "my_rule" in message
    assert "max_daily_loss" in message
    assert "40" in message


def test_two_third_party_rules_sharing_an_order_are_refused_naming_both():
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("plugin-a", RulePlugin(rule_spec("rule_a", 35))),
                             ("plugin-b", RulePlugin(rule_spec("rule_b", 35)))])
    message = str(excinfo.value)
    assert "rule_a" in message and "rule_b" in message


def test_distinct_orders_are_accepted():
    registry = load_registry(extra=[("plugin-a", RulePlugin(rule_spec("rule_a", 35))),
                                    ("plugin-b", RulePlugin(rule_spec("rule_b", 36)))])
    assert registry.guard_rules["rule_a"].spec.order == 35
    assert registry.guard_rules["rule_b"].spec.order == 36


def test_two_plugins_registering_the_same_rule_name_are_refused():
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("plugin-a", RulePlugin(rule_spec("same_rule", 35))),
                             ("plugin-b", RulePlugin(rule_spec("same_rule", 36)))])
    message = str(excinfo.value)
    assert "same_rule" in message
    assert "plugin-a" in message and "plugin-b" in message


def test_third_party_rule_named_like_a_builtin_is_refused_not_shadowed():
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("impostor", RulePlugin(rule_spec("max_daily_loss", 41)))])
    message = str(excinfo.value)
    assert "max_daily_loss" in message
    assert "impostor" in message


def test_third_party_plugin_named_like_a_builtin_plugin_is_refused():
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("guard-max-daily-loss", RulePlugin(rule_spec("harmless", 35)))])
    assert "guard-max-daily-loss" in str(excinfo.value)


# --- broken plugins -----------------------------------------------------------------


def test_misspelt_hook_is_refused_and_named():
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("typo-plugin", MisspeltPlugin())])
    assert "arb_register_guard_rule" in str(excinfo.value)


def test_hook_with_wrong_argument_name_is_refused():
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("wrong-args", WrongArgumentPlugin())])
    assert "wrong-args" in str(excinfo.value)


@pytest.mark.parametrize("wrong", [
    ExchangeSpec("fake", "USD", symbol_for=str, paper_rules=lambda symbol: None),
    {"name": "dict_rule", "order": 35},
    AllowRule("bare_rule", 35),
], ids=["ExchangeSpec", "dict", "rule-object"])
def test_registering_the_wrong_spec_type_is_refused(wrong):
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("wrong-type", RulePlugin(wrong))])
    message = str(excinfo.value)
    assert "GuardRuleSpec" in message
    assert type(wrong).__name__ in message
    assert "wrong-type" in message


def test_plugin_failing_while_registering_is_refused_and_named():
    with pytest.raises(PluginError) as excinfo:
        load_registry(extra=[("exploding", ExplodingPlugin())])
    message = str(excinfo.value)
    assert "exploding" in message
    assert "config file not found" in message


# --- provenance ---------------------------------------------------------------------


def test_builtin_guard_rules_come_from_the_arb_distribution():
    registry = load_registry()
    assert set(SPEC_RULES) <= set(registry.guard_rules)
    for name in SPEC_RULES:
        reg = registry.guard_rules[name]
        assert reg.kind == "guard_rule"
        assert reg.name == name
        assert reg.spec.name == name
        assert reg.plugin.distribution == "arb", name
        assert reg.plugin.version == arb.__version__, name


def test_every_builtin_registration_comes_from_the_arb_distribution():
    registry = load_registry()
    rows = registry.rows()
    assert {"upbit", "binance"} <= set(registry.exchanges)
    assert rows
    for reg in rows:
        assert reg.plugin.distribution == "arb", (reg.kind, reg.name)


def test_builtin_rules_are_one_plugin_each():
    registry = load_registry()
    plugins = [registry.guard_rules[name].plugin.name for name in SPEC_RULES]
    assert len(set(plugins)) == len(SPEC_RULES)


def test_in_process_registrations_are_marked_as_such():
    registry = load_registry(extra=[("my-plugin", RulePlugin(rule_spec("my_rule", 35)))])
    reg = registry.guard_rules["my_rule"]
    assert reg.plugin.name == "my-plugin"
    assert reg.plugin.distribution == IN_PROCESS
    # ... and do not change where the built-ins came from.
    assert all(registry.guard_rules[name].plugin.distribution == "arb" for name in SPEC_RULES)


def test_registry_without_entry_points_holds_only_what_was_given():
    registry = load_registry(entry_points=False, extra=[("my-plugin", RulePlugin(rule_spec("my_rule", 35)))])
    assert list(registry.guard_rules) == ["my_rule"]
    assert registry.exchanges == {}
    assert [p.name for p in registry.plugins] == ["my-plugin"]


def test_each_registry_is_fresh():
    with_extra = load_registry(extra=[("my-plugin", RulePlugin(rule_spec("my_rule", 35)))])
    plain = load_registry()
    assert "my_rule" in with_extra.guard_rules
    assert "my_rule" not in plain.guard_rules


# --- optional rules ---------------------------------------------------------------------


def _registry_with_optional():
    return load_registry(extra=[("my-plugin", RulePlugin(rule_spec("quiet_hours", 45, optional=True)))])


@pytest.mark.parametrize("require_essential", [True, False])
def test_optional_rule_stays_out_of_the_chain_unless_enabled(require_essential):
    registry = _registry_with_optional()
    assert registry.guard_rules["quiet_hours"].spec.optional is True

    default = build_guard_chain(registry, live_limits(), {}, require_essential=require_essential)
    assert "quiet_hours" not in default.names
    assert default.names == list(SPEC_RULES)

    switched_off = build_guard_chain(registry, live_limits(), {"quiet_hours": {"enabled": False}},
                                     require_essential=require_essential)
    assert "quiet_hours" not in switched_off.names

    options_only = build_guard_chain(registry, live_limits(), {"quiet_hours": {"from_hour": 22}},
                                     require_essential=require_essential)
    assert "quiet_hours" not in options_only.names

    switched_on = build_guard_chain(registry, live_limits(), {"quiet_hours": {"enabled": True}},
                                    require_essential=require_essential)
    assert switched_on.names == ["enabled", "allowed_symbols", "min_account_balance", "max_daily_loss",
                                 "quiet_hours", "max_notional_per_trade"]
    result = switched_on.evaluate(order())
    assert result.allowed
    assert "quiet_hours" in [d.rule for d in result.decisions]


def test_optional_rule_receives_its_own_options_without_the_switch():
    registry = _registry_with_optional()
    chain = build_guard_chain(registry, live_limits(), {"quiet_hours": {"enabled": True, "from_hour": 22}},
                              require_essential=True)
    rule = next(r for r in chain.rules if r.name == "quiet_hours")
    assert rule.options == {"from_hour": 22}


def test_non_optional_third_party_rule_runs_by_default():
    registry = load_registry(extra=[("my-plugin", RulePlugin(rule_spec("always_on", 45)))])
    chain = build_guard_chain(registry, live_limits(), {}, require_essential=True)
    assert "always_on" in chain.names
