"""Finding plugins through entry points and recording what each one gave.

Nothing is loaded at import time: every command, and every test, builds its
own registry with :func:`load_registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping

import pluggy

from arb import hookspecs
from arb.guard import ESSENTIAL_RULES, GuardChain, GuardChainError, GuardLimits
from arb.specs import ExchangeSpec, GuardRuleSpec, MarketSourceSpec, NotifierSpec, SpecError

ENTRY_POINT_GROUP = "arb"
CORE_DISTRIBUTION = "arb"


class PluginError(RuntimeError):
    """A plugin is missing, broken or in conflict with another."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str


@dataclass(frozen=True)
class Registration:
    kind: str  # "exchange" | "guard_rule" | "market_source" | "notifier"
    name: str
    plugin: PluginInfo
    spec: Any


@dataclass
class PluginRegistry:
    plugins: list[PluginInfo] = field(default_factory=list)
    exchanges: dict[str, Registration] = field(default_factory=dict)
    guard_rules: dict[str, Registration] = field(default_factory=dict)
    market_sources: dict[str, Registration] = field(default_factory=dict)
    notifiers: dict[str, Registration] = field(default_factory=dict)

    def rows(self) -> list[Registration]:
        rules = sorted(self.guard_rules.values(), key=lambda r: (r.spec.order, r.name))
        return [*self.exchanges.values(), *self.market_sources.values(), *rules, *self.notifiers.values()]

    def exchange(self, name: str) -> ExchangeSpec:
        try:
            return self.exchanges[name].spec
        except KeyError:
            raise PluginError(f"no exchange plugin named {name!r} is installed "
                              f"(installed: {', '.join(sorted(self.exchanges)) or 'none'})") from None

    def market_source(self, name: str) -> MarketSourceSpec:
        try:
            return self.market_sources[name].spec
        except KeyError:
            raise PluginError(f"no market source named {name!r} is installed "
                              f"(installed: {', '.join(sorted(self.market_sources)) or 'none'})") from None


def load_registry(*, entry_points: bool = True,
                  extra: Iterable[tuple[str, object]] = ()) -> PluginRegistry:
    """Load plugins from the ``arb`` entry-point group plus ``extra`` ones.

    ``extra`` takes ``(name, module_or_object)`` pairs; tests and embedding
    applications use it to add plugins without installing them.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = PluginRegistry()
    if entry_points:
        origins: dict[int, tuple[str, str]] = {}
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            info = PluginInfo(ep.name, ep.value, *_origin(ep.dist, origins))
            _register(pm, registry, info, lambda ep=ep: ep.load())
    for name, obj in extra:
        info = PluginInfo(name, getattr(obj, "__name__", type(obj).__name__), "(registered in process)", "-")
        _register(pm, registry, info, lambda obj=obj: obj)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin implements an unknown hook (misspelt?): {exc}") from None

    by_name = {info.name: info for info in registry.plugins}
    _collect(pm.hook.arb_register_exchanges, "exchange", ExchangeSpec, registry.exchanges, by_name)
    _collect(pm.hook.arb_register_market_sources, "market_source", MarketSourceSpec,
             registry.market_sources, by_name)
    _collect(pm.hook.arb_register_notifiers, "notifier", NotifierSpec, registry.notifiers, by_name)
    _collect(pm.hook.arb_register_guard_rules, "guard_rule", GuardRuleSpec, registry.guard_rules, by_name)
    _check_rule_orders(registry)
    return registry


def _origin(dist: metadata.Distribution | None, seen: dict[int, tuple[str, str]]) -> tuple[str, str]:
    """Name and version of the distribution an entry point comes from.

    Each of ``dist.name`` and ``dist.version`` parses the whole metadata file
    (arb's holds its README), and one distribution gives many entry points.
    """
    if dist is None:
        return "?", "?"
    if id(dist) not in seen:
        meta = dist.metadata
        seen[id(dist)] = (meta["Name"], meta["Version"])
    return seen[id(dist)]


def _register(pm: pluggy.PluginManager, registry: PluginRegistry, info: PluginInfo,
              load: Callable[[], object]) -> None:
    existing = next((p for p in registry.plugins if p.name == info.name), None)
    if existing is not None:
        raise PluginError(f"two plugins are named {info.name!r}: one from {existing.distribution}, "
                          f"one from {info.distribution}; uninstall or rename one")
    try:
        plugin = load()
    except Exception as exc:
        raise PluginError(f"plugin {info.name!r} from {info.distribution} failed to load: "
                          f"{type(exc).__name__}: {exc}") from None
    # pluggy silently ignores an undecorated function, so a forgotten
    # @hookimpl would make a guard rule vanish without a word.
    for attr in dir(plugin):
        if attr.startswith("arb_") and callable(getattr(plugin, attr, None)) \
                and not hasattr(getattr(plugin, attr), f"{hookspecs.PROJECT}_impl"):
            raise PluginError(f"plugin {info.name!r} from {info.distribution} defines {attr} "
                              "without the @arb.hookimpl decorator")
    try:
        pm.register(plugin, name=info.name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise PluginError(f"plugin {info.name!r} from {info.distribution} is invalid: {exc}") from None
    registry.plugins.append(info)


def _collect(hook: Any, kind: str, spec_type: type, into: dict[str, Registration],
             by_name: Mapping[str, PluginInfo]) -> None:
    # Each implementation is called on its own so every spec is tagged with
    # the plugin that gave it (``arb plugins`` shows where a rule came from).
    for impl in hook.get_hookimpls():
        info = by_name[impl.plugin_name]

        def register(spec: object, info: PluginInfo = info) -> None:
            if not isinstance(spec, spec_type):
                raise PluginError(f"plugin {info.name!r} registered {type(spec).__name__}, "
                                  f"expected {spec_type.__name__}")
            if spec.name in into:
                other = into[spec.name].plugin
                raise PluginError(f"{kind.replace('_', ' ')} {spec.name!r} is registered by both "
                                  f"{other.name!r} ({other.distribution}) and {info.name!r} ({info.distribution})")
            into[spec.name] = Registration(kind, spec.name, info, spec)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except SpecError as exc:
            raise PluginError(f"plugin {info.name!r} from {info.distribution} registered an invalid spec: "
                              f"{exc}") from None
        except Exception as exc:
            raise PluginError(f"plugin {info.name!r} failed while registering: "
                              f"{type(exc).__name__}: {exc}") from None


def _check_rule_orders(registry: PluginRegistry) -> None:
    taken: dict[int, Registration] = {}
    for reg in registry.guard_rules.values():
        other = taken.get(reg.spec.order)
        if other is not None:
            raise PluginError(f"guard rules {other.name!r} ({other.plugin.distribution}) and {reg.name!r} "
                              f"({reg.plugin.distribution}) both want order {reg.spec.order}")
        taken[reg.spec.order] = reg


def is_essential(reg: Registration) -> bool:
    return reg.name in ESSENTIAL_RULES and reg.plugin.distribution == CORE_DISTRIBUTION


def build_guard_chain(registry: PluginRegistry, limits: GuardLimits,
                      rule_options: Mapping[str, Mapping[str, Any]], *, require_essential: bool) -> GuardChain:
    """Assemble the chain a session runs.

    With ``require_essential`` (live trading) the five built-in rules must all
    be installed from arb itself and switched on; anything less refuses.
    """
    unknown = sorted(set(rule_options) - set(registry.guard_rules))
    if unknown:
        raise GuardChainError(f"config sets options for guard rule(s) {', '.join(unknown)}, "
                              "but no such rule is installed (see `arb plugins`)")
    if require_essential:
        problems = []
        for name in ESSENTIAL_RULES:
            reg = registry.guard_rules.get(name)
            if reg is None:
                problems.append(f"{name} is not installed")
            elif not is_essential(reg):
                problems.append(f"{name} comes from {reg.plugin.distribution}, not from arb")
            elif rule_options.get(name, {}).get("enabled", True) is not True:
                problems.append(f"{name} is disabled in the config")
        if problems:
            raise GuardChainError("live_trading refuses to start: the built-in guard rules are mandatory ("
                                  + "; ".join(problems) + ")")
    rules = []
    for name, reg in registry.guard_rules.items():
        options = dict(rule_options.get(name, {}))
        if options.pop("enabled", not reg.spec.optional) is not True:
            continue
        try:
            rule = reg.spec.build(limits, options)
        except Exception as exc:
            raise GuardChainError(f"guard rule {name!r} could not be built from its options: "
                                  f"{type(exc).__name__}: {exc}") from None
        # The registered spec is what `arb plugins` shows and what order
        # clashes were checked against; a rule object claiming another place
        # would run somewhere nobody reviewed.
        if getattr(rule, "name", None) != name or getattr(rule, "order", None) != reg.spec.order:
            raise GuardChainError(f"guard rule {name!r} was registered at order {reg.spec.order}, but its rule "
                                  f"object says name={getattr(rule, 'name', None)!r} "
                                  f"order={getattr(rule, 'order', None)!r}")
        rules.append(rule)
    return GuardChain(rules)
