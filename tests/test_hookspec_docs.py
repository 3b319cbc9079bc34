"""docs/plugins.md is the contract for plugin authors: it must say exactly
what ``arb.hookspecs`` and the specs say, and every hook must be backed by a
built-in implementation.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from importlib import metadata
from pathlib import Path

import pluggy
import pytest

from arb import hookspecs
from arb.guard import Decision, GuardLimits, OrderCheck
from arb.plugins import CORE_DISTRIBUTION, ENTRY_POINT_GROUP, load_registry
from arb.notify import Alert
from arb.specs import (ExchangeSpec, GuardRuleSpec, Market, MarketSourceSpec, NotifierSpec, PairMarkets,
                       SourceRequest)

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"
EXAMPLE = REPO / "docs" / "examples" / "arb-max-trade-fraction"

SPEC_CLASSES = (ExchangeSpec, GuardRuleSpec, MarketSourceSpec, SourceRequest, PairMarkets, Market,
                Decision, OrderCheck, GuardLimits, NotifierSpec, Alert)

#: Which registry table each hook fills; a new hook must be added here.
HOOK_TABLES = {
    "arb_register_exchanges": "exchanges",
    "arb_register_guard_rules": "guard_rules",
    "arb_register_market_sources": "market_sources",
    "arb_register_notifiers": "notifiers",
}


class _Source(str):
    """An annotation kept as source text (the module uses postponed
    annotations), printed without quotes."""

    def __repr__(self) -> str:
        return str(self)


def hookspec_functions() -> dict[str, object]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {name: fn for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, marker)}


def signature_line(name: str, fn: object) -> str:
    """``def name(param: Annotation, ...) -> Return``, as written in the module."""
    sig = inspect.signature(fn)

    def text(annotation):
        return annotation if annotation is inspect.Signature.empty else _Source(
            annotation if isinstance(annotation, str) else inspect.formatannotation(annotation))

    sig = sig.replace(parameters=[p.replace(annotation=text(p.annotation)) for p in sig.parameters.values()],
                      return_annotation=text(sig.return_annotation))
    return f"def {name}{sig}"


@pytest.fixture(scope="module")
def doc() -> str:
    assert DOC.is_file(), f"{DOC} is missing"
    return DOC.read_text(encoding="utf-8")


def section(doc: str, heading: str) -> str:
    """The text under a ``### heading`` up to the next heading of any level."""
    match = re.search(rf"^###\s+{re.escape(heading)}\s*$(.*?)(?=^#{{1,3}}\s|\Z)", doc, re.M | re.S)
    assert match, f"docs/plugins.md has no '### {heading}' section"
    return match.group(1)


def test_the_hookspec_module_declares_the_hooks_of_the_table():
    assert set(hookspec_functions()) == set(HOOK_TABLES)


@pytest.mark.parametrize("name", sorted(HOOK_TABLES))
def test_every_hook_is_documented_with_its_exact_signature(doc, name):
    line = signature_line(name, hookspec_functions()[name])
    assert "register: Callable[[" in line  # the helper really read the annotations
    assert line in doc, f"docs/plugins.md must contain, verbatim:\n    {line}"


@pytest.mark.parametrize("name", sorted(HOOK_TABLES))
def test_every_hook_has_its_own_section(doc, name):
    assert section(doc, f"`{name}`").strip()


def test_docs_document_no_hook_that_does_not_exist(doc):
    signatures = set(re.findall(r"^def (arb_\w+)\(.*\) -> ", doc, re.M))
    headings = set(re.findall(r"^###\s+`(arb_\w+)`\s*$", doc, re.M))
    assert signatures == set(hookspec_functions()), "hook signatures in docs/plugins.md differ from arb.hookspecs"
    assert headings == set(hookspec_functions()), "hook sections in docs/plugins.md differ from arb.hookspecs"


def test_signature_helper_breaks_on_a_renamed_parameter(doc):
    def arb_register_guard_rules(add: Callable[[GuardRuleSpec], None]) -> None:  # noqa: F821
        """A hook whose parameter was renamed."""

    line = signature_line("arb_register_guard_rules", arb_register_guard_rules)
    assert line == "def arb_register_guard_rules(add: Callable[[GuardRuleSpec], None]) -> None"
    assert line not in doc


@pytest.mark.parametrize("cls", SPEC_CLASSES, ids=lambda c: c.__name__)
def test_every_spec_field_is_documented(doc, cls):
    text = section(doc, f"`{cls.__name__}`")
    missing = [f.name for f in dataclasses.fields(cls) if f"`{f.name}`" not in text]
    assert not missing, f"docs/plugins.md, section {cls.__name__}: fields not documented: {missing}"


def test_docs_show_the_guard_chain_orders_of_the_builtin_rules(doc, arb_registry):
    builtin = {name: reg.spec.order for name, reg in arb_registry.guard_rules.items()
               if reg.plugin.distribution == CORE_DISTRIBUTION}
    assert {"enabled", "allowed_symbols", "min_account_balance", "max_daily_loss",
            "max_notional_per_trade"} <= set(builtin)
    for name, order in builtin.items():
        assert re.search(rf"^\|\s*{order}\s*\|\s*`{name}`\s*\|", doc, re.M), f"order table lacks {order} {name}"


@pytest.mark.parametrize("relative, fence", [
    ("pyproject.toml", "toml"),
    ("arb_max_trade_fraction.py", "python"),
    ("tests/test_max_trade_fraction.py", "python"),
])
def test_the_example_package_is_shown_in_full(doc, relative, fence):
    source = (EXAMPLE / relative).read_text(encoding="utf-8")
    assert f"```{fence}\n{source}```" in doc, f"docs/plugins.md must show {relative} verbatim"


# --- every hook is backed by a built-in --------------------------------------------


def test_every_hook_has_a_builtin_implementation():
    """Load arb's own entry points straight through pluggy, so this holds
    whatever the core's loader does on top."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    own = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
           if ep.dist is not None and ep.dist.name == CORE_DISTRIBUTION]
    assert own, "the arb distribution declares no entry points in the arb group"
    for ep in own:
        pm.register(ep.load(), name=ep.name)
    pm.check_pending()
    for name in HOOK_TABLES:
        impls = getattr(pm.hook, name).get_hookimpls()
        assert impls, f"no built-in plugin implements {name}"


@pytest.mark.parametrize("hook, table", sorted(HOOK_TABLES.items()))
def test_every_hook_has_builtin_registrations(arb_registry, hook, table):
    registrations = getattr(arb_registry, table)
    builtin = [reg for reg in registrations.values() if reg.plugin.distribution == CORE_DISTRIBUTION]
    assert builtin, f"no built-in plugin registered anything through {hook}"


def test_a_fresh_registry_holds_the_builtins_of_every_kind():
    registry = load_registry()
    assert {"upbit", "binance"} <= set(registry.exchanges)
    assert {"simulator", "replay"} <= set(registry.market_sources)
    assert {"enabled", "allowed_symbols", "min_account_balance", "max_daily_loss",
            "max_notional_per_trade"} <= set(registry.guard_rules)
