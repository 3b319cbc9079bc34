"""The ``arb`` command: thin wrappers that hand off to the core and report.

Exit codes: 0 normal end, 1 unexpected error, 2 bad config or usage,
3 session stopped by a guard (``check-order``: order vetoed).
"""

from __future__ import annotations

import json
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GUARD = 0, 1, 2, 3

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Upbit/Binance arbitrage with a fail-closed live safety guard.")
out = Console()
err = Console(stderr=True)


class Mode(str, Enum):
    paper = "paper"
    live_readonly = "live_readonly"
    live_trading = "live_trading"


class LogLevel(str, Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogFormat(str, Enum):
    text = "text"
    json = "json"


class OrderSide(str, Enum):
    buy = "buy"
    sell = "sell"


ConfigArg = Annotated[Path, typer.Option("--config", "-c", help="YAML config file.", show_default=False)]


def _version(value: bool) -> None:
    if value:
        from arb import __version__
        out.print(f"arb {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
) -> None:
    """arb: kimchi-premium arbitrage between Upbit (KRW) and Binance (USDT)."""


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _load(config_path: Path):
    from arb.config import ConfigError, load_config
    try:
        return load_config(config_path)
    except ConfigError as exc:
        err.print(exc.report(), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


def _registry():
    from arb.plugins import PluginError, load_registry
    try:
        return load_registry()
    except PluginError as exc:
        raise _fail(str(exc)) from None


@app.command()
def run(
    config: ConfigArg,
    mode: Annotated[Optional[Mode], typer.Option(help="Override the config's mode.")] = None,
    max_runtime_seconds: Annotated[Optional[float], typer.Option(min=0.001, help="Stop after this long.")] = None,
    log_level: Annotated[Optional[LogLevel], typer.Option(help="Default: the config's logging.level.")] = None,
    log_format: Annotated[Optional[LogFormat], typer.Option(help="text for people, json for machines.")] = None,
    summary_json: Annotated[Optional[Path], typer.Option(help="Also write the summary as JSON here.")] = None,
) -> None:
    """Run a trading session until the time limit, Ctrl-C, SIGTERM or a guard's session stop."""
    from arb.logs import setup_logging
    from arb.session import SessionError, build_session
    from arb.summary import session_summary

    cfg = _load(config)
    setup_logging((log_level.value if log_level else cfg.log_level),
                  (log_format.value if log_format else cfg.log_format))
    registry = _registry()
    try:
        session = build_session(cfg, registry, mode.value if mode else None)
    except SessionError as exc:
        raise _fail(str(exc)) from None
    _handle_signals(session.stop_event)
    try:
        _run_with_display(session, max_runtime_seconds, show_panel=out.is_terminal and log_format != LogFormat.json)
    except Exception as exc:  # keep the traceback out of the user's face, but not out of the log
        import logging
        logging.getLogger("arb").debug("session failed", exc_info=True)
        raise _fail(f"session failed: {type(exc).__name__}: {exc} (--log-level DEBUG shows details)",
                    EXIT_ERROR) from None
    summary = session_summary(session)
    from arb.display import print_summary
    print_summary(summary, out)
    if summary_json:
        try:
            summary_json.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write {summary_json}: {exc.strerror}", EXIT_ERROR) from None
    raise typer.Exit(EXIT_GUARD if session.exit_reason == "session_stop" else EXIT_OK)


def _run_with_display(session, max_runtime: float | None, show_panel: bool) -> None:
    if not show_panel:
        session.run(max_runtime)
        return
    from rich.live import Live

    from arb.display import status_panel
    with Live(get_renderable=lambda: status_panel(session), console=out, refresh_per_second=4,
              transient=True):
        session.run(max_runtime)


def _handle_signals(stop_event) -> None:
    """First Ctrl-C or SIGTERM: stop cleanly and print the summary.  Second: leave now."""
    def handler(signum, frame):
        if stop_event.is_set():
            raise SystemExit(128 + signum)
        stop_event.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@app.command("validate-config")
def validate_config(
    config: Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)],
    mode: Annotated[Optional[Mode], typer.Option(help="Check for this mode instead of the config's.")] = None,
) -> None:
    """Pre-flight checklist: schema, plugins, live limits, keys. Non-zero exit on any failure."""
    from arb.preflight import FAIL, PASS, preflight

    cfg = _load(config)
    registry = _registry()
    items = preflight(cfg, registry, mode.value if mode else None)
    marks = {PASS: "[green]PASS[/]", FAIL: "[bold red]FAIL[/]"}
    for item in items:
        out.print(f"{marks.get(item.status, '[dim]SKIP[/]')}  {item.name}: {item.detail}", highlight=False)
    failed = [i for i in items if i.status == FAIL]
    if failed:
        out.print(f"{len(failed)} check(s) failed", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    out.print("all checks passed", highlight=False)


@app.command()
def plugins() -> None:
    """List loaded plugins: name, kind, version, origin, and each guard rule's order."""
    from rich.table import Table

    from arb.plugins import is_essential

    registry = _registry()
    table = Table(title="arb plugins")
    for column in ("plugin", "kind", "provides", "order", "mandatory", "version", "origin"):
        table.add_column(column)
    given = set()
    for reg in registry.rows():
        given.add(reg.plugin.name)
        order = str(reg.spec.order) if reg.kind == "guard_rule" else ""
        mandatory = ("yes" if is_essential(reg) else ("optional" if reg.spec.optional else "no")) \
            if reg.kind == "guard_rule" else ""
        table.add_row(reg.plugin.name, reg.kind, reg.name, order, mandatory, reg.plugin.version,
                      f"{reg.plugin.distribution} ({reg.plugin.module})")
    for info in registry.plugins:
        if info.name not in given:
            table.add_row(info.name, "-", "(nothing)", "", "", info.version, f"{info.distribution} ({info.module})")
    Console(width=160).print(table) if not out.is_terminal else out.print(table)


@app.command("check-order")
def check_order(
    config: ConfigArg,
    symbol: Annotated[str, typer.Option(help="Exchange symbol, e.g. KRW-BTC or BTCUSDT.", show_default=False)],
    side: Annotated[OrderSide, typer.Option(show_default=False)],
    quantity: Annotated[float, typer.Option(show_default=False)],
    price: Annotated[float, typer.Option(show_default=False)],
    balance: Annotated[Optional[float], typer.Option(help="Account equity, reference currency. "
                                                          "Default: exactly min_account_balance.")] = None,
    daily_pnl: Annotated[float, typer.Option(help="Today's PnL, reference currency.")] = 0.0,
    fx_rate: Annotated[Optional[float], typer.Option(help="KRW per USDT. Default: fx.assumed_rate.")] = None,
) -> None:
    """Would the guards let this order through? Runs the live_trading chain without trading."""
    from arb.guard import GuardChainError, OrderCheck
    from arb.models import Side
    from arb.plugins import build_guard_chain
    from arb.scaling import scaled_quantity

    cfg = _load(config)
    registry = _registry()
    markets = {}
    for name in cfg.exchange_names:
        spec = registry.exchanges[name].spec if name in registry.exchanges else None
        if spec is None:
            continue
        for asset in cfg.assets:
            markets.setdefault(spec.symbol_for(asset), spec)
    if cfg.fx_exchange in registry.exchanges:
        markets.setdefault(cfg.fx_symbol, registry.exchanges[cfg.fx_exchange].spec)
    if symbol not in markets:
        raise _fail(f"symbol {symbol!r} is not a market of this config (known: {', '.join(sorted(markets))})")
    for label, value in (("quantity", quantity), ("price", price)):
        if not value > 0:
            raise _fail(f"--{label} must be positive, got {value}")
    try:
        chain = build_guard_chain(registry, cfg.limits, cfg.guard_options, require_essential=True)
    except GuardChainError as exc:
        raise _fail(str(exc)) from None
    spec = markets[symbol]
    rules = spec.paper_rules(symbol)
    rate = fx_rate or cfg.fx_assumed_rate
    notional = quantity * price / (rate if rules.quote != cfg.reference_currency else 1.0)
    assumed = balance is None
    equity = cfg.limits.min_account_balance if assumed else balance
    check = OrderCheck(spec.name, symbol, Side(side.value), quantity, price, notional, equity, daily_pnl)
    result = chain.evaluate(check, all_rules=True)
    out.print(f"order: {check.describe()} ({cfg.reference_currency}"
              f"{f', at {rate:g} {rules.quote}/{cfg.reference_currency}' if rules.quote != cfg.reference_currency else ''}"
              f"{'; balance assumed = min_account_balance' if assumed else ''})", highlight=False)
    first = result.veto
    for rule, decision in zip(chain.rules, result.decisions):
        verdict = "[green]allow[/]" if decision.allowed else "[bold red]VETO[/]"
        mark = "  <- first veto, decides" if decision is first else ""
        stop = " (session stop)" if decision.session_stop else ""
        out.print(f"  {rule.order:>4}  {rule.name:<24} {verdict}  {decision.reason}{stop}{mark}", highlight=False)
    scaled = scaled_quantity(quantity, cfg.limits.dry_run_scale, rules.lot_step)
    problem = rules.violation(scaled, price)
    out.print(f"after dry_run_scale {cfg.limits.dry_run_scale:g}: quantity {rules.format_qty(scaled)}"
              + (f" would not be sent: {problem}" if problem else " would be sent"), highlight=False)
    if first is not None:
        out.print(f"result: BLOCKED by {first.rule}", highlight=False)
        raise typer.Exit(EXIT_GUARD)
    out.print("result: ALLOWED", highlight=False)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
