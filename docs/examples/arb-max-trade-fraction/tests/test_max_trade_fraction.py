"""The rule on its own, then inside arb's chain, with arb's pytest fixtures.

Install the package first (``pip install -e .``): the chain tests use the
installed plugins, found through their entry points like in production.
"""

import pytest

import arb_max_trade_fraction as plugin
from arb.guard import GuardChainError, GuardLimits
from arb.plugins import build_guard_chain
from arb.testing import order_check

LIVE = GuardLimits(enabled=True, allowed_symbols=("BTCUSDT",))


def test_allows_an_order_within_the_fraction():
    rule = plugin.build(LIVE, {"max_fraction": 0.1})
    assert rule.check(order_check(notional=10.0, balance=100.0)).allowed


@pytest.mark.parametrize("notional, balance", [(10.01, 100.0), (1.0, 0.0), (float("nan"), 100.0)])
def test_vetoes_an_order_beyond_the_fraction(notional, balance):
    decision = plugin.build(LIVE, {"max_fraction": 0.1}).check(order_check(notional=notional, balance=balance))
    assert not decision.allowed
    assert decision.rule == "max_trade_fraction"
    assert not decision.session_stop


@pytest.mark.parametrize("options", [{"max_fraction": 0}, {"max_fraction": "10%"}, {"max_fracton": 0.1}])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError):
        plugin.build(LIVE, options)


def test_the_module_registers_one_rule_at_35(arb_registry_with):
    # entry_points=False: just this module, installed or not.
    registry = arb_registry_with(("under-test", plugin), entry_points=False)
    assert list(registry.guard_rules) == ["max_trade_fraction"]
    assert registry.guard_rules["max_trade_fraction"].spec.order == 35


def test_installed_package_is_found_through_its_entry_point(arb_registry):
    reg = arb_registry.guard_rules["max_trade_fraction"]
    assert reg.spec.order == 35
    assert reg.plugin.distribution == "arb-max-trade-fraction"


def test_runs_between_balance_and_daily_loss(arb_registry):
    chain = build_guard_chain(arb_registry, LIVE, {"max_trade_fraction": {"max_fraction": 0.005}},
                              require_essential=True)
    names = chain.names
    assert names.index("min_account_balance") < names.index("max_trade_fraction") < names.index("max_daily_loss")
    assert chain.evaluate(order_check()).veto.rule == "max_trade_fraction"


def test_bad_options_stop_the_chain_from_being_built(arb_registry):
    with pytest.raises(GuardChainError, match="max_trade_fraction"):
        build_guard_chain(arb_registry, LIVE, {"max_trade_fraction": {"max_fraction": 2}}, require_essential=True)
