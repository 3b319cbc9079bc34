"""``arb validate-config``: the pre-flight checklist, item by item.

Each item passes, fails, or is skipped with the reason it does not apply.
Secret values are never read into a message: only whether a variable is set.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, replace
from typing import Mapping

from arb.config import Config, LIVE_MODES
from arb.guard import ESSENTIAL_RULES
from arb.plugins import PluginError, PluginRegistry, is_essential

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"


@dataclass(frozen=True)
class Item:
    name: str
    status: str
    detail: str


def preflight(config: Config, registry: PluginRegistry, mode: str | None = None,
              environ: Mapping[str, str] | None = None) -> list[Item]:
    mode = mode or config.mode
    env = os.environ if environ is None else environ
    items = [Item("config schema", PASS, f"{config.source} is valid (mode {mode})")]
    items += _plugins(config, registry, mode)
    live = mode == "live_trading"
    skip_reason = f"applies to live_trading; mode is {mode}"
    lt = config.limits
    if live:
        items.append(Item("live_trading.enabled", PASS if lt.enabled else FAIL,
                          "true: approved orders will be sent" if lt.enabled else
                          "false: every order will be blocked (the safe default); set true to trade"))
        items.append(_whitelist(config, registry))
        items += _limits(config, registry)
    else:
        for name in ("live_trading.enabled", "allowed_symbols", "money limits", "minimum order after dry_run_scale"):
            items.append(Item(name, SKIP, skip_reason))
    if mode in LIVE_MODES:
        items += _environment(config, registry, env)
    else:
        items.append(Item("API keys in environment", SKIP, "paper mode needs no keys"))
    if live:
        items.append(_journal_leftovers(config))
    return items


def _journal_leftovers(config: Config) -> Item:
    """What earlier live_trading sessions left that the next one must deal with
    first (read-only: validating never changes the journal)."""
    from arb.journal_queries import live_positions, net_positions, unsettled_intents
    from arb.journal_schema import JournalError, connect, journal_path
    from arb.models import OUTCOME_UNKNOWN, OrderStatus

    name = "earlier live sessions"
    if not config.journal.enabled:
        return Item(name, FAIL, "journal.enabled is false: live_trading needs the journal")
    path = journal_path(config.journal)
    if not path.exists():
        return Item(name, PASS, f"no journal at {path} yet: nothing carried over")
    try:
        conn = connect(path, create=False)
    except JournalError as exc:
        return Item(name, FAIL, str(exc))
    try:
        final = tuple(s.value for s in OrderStatus if s.is_final)
        unsettled = unsettled_intents(conn, final, OUTCOME_UNKNOWN)
        net = {a: q for a, q in net_positions(live_positions(conn)).items() if abs(q) > 1e-12}
    finally:
        conn.close()
    notes = []
    if unsettled:
        notes.append(f"{len(unsettled)} order(s) without a final state will be reconciled with the exchanges "
                     "before the first order")
    if net:
        held = ", ".join(f"{asset} {qty:+g}" for asset, qty in sorted(net.items()))
        notes.append(f"unhedged position {held}: no trade opens until it is flattened and "
                     "`arb journal clear-exposure` says so")
    return Item(name, WARN if notes else PASS, "; ".join(notes) or f"{path}: nothing unsettled, no unhedged position")


def unknown_guard_rules(config: Config, registry: PluginRegistry) -> list[str]:
    """Rule names in the config's ``guards`` section that no plugin provides,
    each with a suggestion when it looks like a typo."""
    known = sorted(registry.guard_rules)
    out = []
    for name in sorted(set(config.guard_options) - set(known)):
        hint = difflib.get_close_matches(name, known, n=1)
        out.append(f"{name} (did you mean {hint[0]!r}?)" if hint else name)
    return out


def _plugins(config: Config, registry: PluginRegistry, mode: str) -> list[Item]:
    items = []
    for name in config.exchange_names:
        reg = registry.exchanges.get(name)
        if reg is None:
            installed = ", ".join(sorted(registry.exchanges)) or "none"
            items.append(Item(f"exchange plugin {name}", FAIL, f"no exchange plugin named {name!r} is installed "
                                                               f"(installed: {installed}; see `arb plugins`)"))
        elif mode in LIVE_MODES and reg.spec.create_client is None:
            items.append(Item(f"exchange plugin {name}", FAIL,
                              f"{reg.plugin.distribution} {reg.plugin.version} has no live client"))
        else:
            items.append(Item(f"exchange plugin {name}", PASS, f"{reg.plugin.distribution} {reg.plugin.version}"))
    if mode == "paper":
        items.append(_market_source(config, registry))
    missing = [n for n in ESSENTIAL_RULES if n not in registry.guard_rules
               or not is_essential(registry.guard_rules[n])]
    disabled = [n for n in ESSENTIAL_RULES if config.guard_options.get(n, {}).get("enabled") is False]
    unknown = unknown_guard_rules(config, registry)
    problems = ([f"missing: {', '.join(missing)}"] if missing else []) + \
               ([f"disabled in config: {', '.join(disabled)}"] if disabled else []) + \
               ([f"options for uninstalled rule(s): {'; '.join(unknown)}"] if unknown else [])
    needed = mode == "live_trading"
    status = FAIL if problems and (needed or unknown) else PASS
    detail = "; ".join(problems) if problems else f"all {len(ESSENTIAL_RULES)} built-in rules present"
    if (missing or disabled) and needed:
        detail += " (the built-in guard rules are mandatory in live_trading)"
    elif problems and not needed and not unknown:
        detail += " (allowed outside live_trading)"
    items.append(Item("guard rules", status, detail))
    return items


def _market_source(config: Config, registry: PluginRegistry) -> Item:
    """Build the paper session without running it: the market source checks
    its options (a replay file that is not there, say) exactly as ``arb run`` would."""
    name = f"market source {config.market_source}"
    try:
        registry.market_source(config.market_source)
    except PluginError as exc:
        return Item(name, FAIL, f"{exc} (see `arb plugins`)")
    if any(n not in registry.exchanges for n in config.exchange_names):
        return Item(name, SKIP, "needs the exchange plugins above")
    from arb.session import SessionError, build_session
    try:
        session = build_session(replace(config, paper_run_guards=False), registry, "paper")
    except SessionError as exc:
        return Item(name, FAIL, str(exc))
    except Exception as exc:  # a third-party source that raises something else still fails here, not at run
        return Item(name, FAIL, f"cannot be built from its options: {type(exc).__name__}: {exc}")
    session.close_unstarted()  # releases the journal and gateway too, not just the source
    return Item(name, PASS, "installed; options accepted")


def configured_symbols(config: Config, registry: PluginRegistry) -> list[str]:
    symbols = []
    for asset in config.assets:
        for name in (config.local_exchange, config.reference_exchange):
            reg = registry.exchanges.get(name)
            if reg is not None:
                symbols.append(reg.spec.symbol_for(asset))
    return symbols


def _whitelist(config: Config, registry: PluginRegistry) -> Item:
    allowed = set(config.limits.allowed_symbols)
    if not allowed:
        return Item("allowed_symbols", FAIL, "empty: every symbol is blocked")
    missing = [s for s in configured_symbols(config, registry) if s not in allowed]
    if missing:
        return Item("allowed_symbols", FAIL, f"configured pairs need {', '.join(missing)}, which are not "
                                             "whitelisted: those trades would always be blocked")
    return Item("allowed_symbols", PASS, ", ".join(sorted(allowed)))


def _limits(config: Config, registry: PluginRegistry) -> list[Item]:
    lt = config.limits
    trade = config.strategy.trade_notional
    problems = []
    if trade > lt.max_notional_per_trade:
        problems.append(f"strategy.trade_notional {trade:g} exceeds max_notional_per_trade "
                        f"{lt.max_notional_per_trade:g}: every opening would be blocked")
    if lt.max_daily_loss >= lt.min_account_balance > 0:
        problems.append(f"max_daily_loss {lt.max_daily_loss:g} is not below min_account_balance "
                        f"{lt.min_account_balance:g}")
    items = [Item("money limits", FAIL if problems else PASS, "; ".join(problems) or
                  f"trade {trade:g} ≤ max_notional_per_trade {lt.max_notional_per_trade:g}, "
                  f"max_daily_loss {lt.max_daily_loss:g}, min_account_balance {lt.min_account_balance:g} "
                  f"{config.reference_currency}")]
    sent = min(trade, lt.max_notional_per_trade) * lt.dry_run_scale
    too_small: list[str] = []
    for asset in config.assets:
        for name in (config.local_exchange, config.reference_exchange):
            reg = registry.exchanges.get(name)
            if reg is None:
                continue
            rules = reg.spec.paper_rules(reg.spec.symbol_for(asset))
            minimum = rules.min_notional
            if rules.quote != config.reference_currency:
                minimum /= config.fx_assumed_rate
            message = f"{rules.symbol} minimum is {minimum:.2f} {config.reference_currency}"
            if sent < minimum and message not in too_small:
                too_small.append(message)
    detail = (f"{min(trade, lt.max_notional_per_trade):g} × dry_run_scale {lt.dry_run_scale:g} = {sent:.2f} "
              f"{config.reference_currency}")
    if too_small:
        items.append(Item("minimum order after dry_run_scale", FAIL,
                          f"{detail}, below the exchange minimum ({'; '.join(too_small)}): nothing would be sent"))
    else:
        items.append(Item("minimum order after dry_run_scale", PASS, f"{detail} meets both exchange minimums"))
    return items


def _environment(config: Config, registry: PluginRegistry, env: Mapping[str, str]) -> list[Item]:
    items = []
    for name in (config.local_exchange, config.reference_exchange):
        reg = registry.exchanges.get(name)
        defaults = reg.spec.default_settings if reg else {}
        settings = {**defaults, **config.exchanges.get(name, {})}
        for key in ("api_key_env", "secret_key_env"):
            var = settings.get(key)
            if not var:
                continue
            present = bool(env.get(var))
            items.append(Item(f"{name} {key}", PASS if present else FAIL,
                              f"${var} is set" if present else f"${var} is not set"))
    return items
