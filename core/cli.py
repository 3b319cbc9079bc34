"""The ``arb`` command: thin wrappers that hand off to the core and report.

Exit codes: 0 normal end, 1 unexpected error or a live session that may not
start (start-up reconciliation left an order unknown), 2 bad config or usage,
3 session stopped by a guard (``check-order``: order vetoed).

The CLI modules leave annotations evaluated (no ``from __future__ import
annotations``): typer reads every command's signature on each start, and
would evaluate each string annotation twice.
"""

import functools
import json
import logging
import math
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

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


#: Set by ``arb run --log-format json``: then errors go to stderr as JSON lines too.
_json_errors = False


def _emit_error(message: str, problems: list[str] | None = None) -> None:
    if _json_errors:
        entry: dict = {"level": "ERROR", "logger": "arb.cli", "message": message}
        if problems:
            entry["problems"] = problems
        sys.stderr.write(json.dumps(entry, ensure_ascii=False) + "\n")
        sys.stderr.flush()
        return
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    for problem in problems or ():
        err.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    _emit_error(message)
    return typer.Exit(code)


def _guarded(command):
    """Bad input ends with a message and exit 2; anything else unexpected with
    a one-line message and exit 1, never a traceback (``ARB_TRACEBACK=1`` shows it)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        global _json_errors
        _json_errors = False  # per command: CliRunner and embedders call several in one process
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("ARB_TRACEBACK"):
                raise
            logging.getLogger("arb").debug("unexpected error", exc_info=True)
            raise _fail(f"unexpected error: {type(exc).__name__}: {exc} (this is a bug in arb; "
                        "ARB_TRACEBACK=1 shows the traceback)", EXIT_ERROR) from None
    return wrapper


def _load(config_path: Path, mode: Optional["Mode"] = None):
    from arb.config import ConfigError, load_config
    try:
        cfg = load_config(config_path)
        return cfg.with_mode(mode.value) if mode else cfg
    except ConfigError as exc:
        _emit_error(f"config error in {exc.source}:", exc.problems)
        raise typer.Exit(EXIT_USAGE) from None


def _finite(label: str, value: float | None, *, positive: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise _fail(f"{label} must be a finite number, got {value}")
    if positive and not value > 0:
        raise _fail(f"{label} must be positive, got {value:g}")


def _check_writable(path: Path) -> None:
    """Fail before the session, not after it, if the summary cannot be written."""
    existed = path.exists()
    if path.is_dir():
        raise _fail(f"--summary-json {path}: is a directory; give a file name")
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise _fail(f"--summary-json {path}: cannot write there: {exc.strerror or type(exc).__name__}") from None
    if not existed:
        try:
            path.unlink()
        except OSError:
            pass


def _registry():
    from arb.plugins import PluginError, load_registry
    try:
        return load_registry()
    except PluginError as exc:
        raise _fail(str(exc)) from None


@app.command()
@_guarded
def run(
    config: ConfigArg,
    mode: Annotated[Optional[Mode], typer.Option(help="Override the config's mode.")] = None,
    max_runtime_seconds: Annotated[Optional[float], typer.Option(min=0.001, help="Stop after this long.")] = None,
    log_level: Annotated[Optional[LogLevel], typer.Option(help="Default: the config's logging.level.")] = None,
    log_format: Annotated[Optional[LogFormat], typer.Option(help="text for people, json for machines.")] = None,
    summary_json: Annotated[Optional[Path], typer.Option(help="Also write the summary as JSON here.")] = None,
) -> None:
    """Run a trading session until the time limit, Ctrl-C, SIGTERM or a guard's session stop."""
    global _json_errors
    from arb.logs import setup_logging

    _json_errors = log_format == LogFormat.json
    _finite("--max-runtime-seconds", max_runtime_seconds)
    cfg = _load(config, mode)
    fmt = log_format.value if log_format else cfg.log_format
    _json_errors = fmt == "json"
    restore_logging = setup_logging((log_level.value if log_level else cfg.log_level), fmt)
    try:
        _run_session(cfg, fmt, max_runtime_seconds, summary_json)
    finally:
        restore_logging()


def _run_session(cfg, fmt: str, max_runtime_seconds: float | None, summary_json: Path | None) -> None:
    from arb.session import SessionError, build_session
    from arb.startup import StartupRefused
    from arb.summary import session_summary

    if summary_json is not None:
        _check_writable(summary_json)
    registry = _registry()
    _check_guard_config(cfg, registry)
    try:
        session = build_session(cfg, registry)
        _attach_watchers(session, cfg, registry)
    except SessionError as exc:
        raise _fail(str(exc)) from None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signals = _handle_signals(session.stop_event)
    try:
        try:
            _run_with_display(session, max_runtime_seconds, show_panel=out.is_terminal and fmt != "json")
        except StartupRefused as exc:
            raise _fail(str(exc), EXIT_ERROR) from None
        except Exception as exc:  # keep the traceback out of the user's face, but not out of the log
            logging.getLogger("arb").debug("session failed", exc_info=True)
            raise _fail(f"session failed: {type(exc).__name__}: {exc} (--log-level DEBUG shows details)",
                        EXIT_ERROR) from None
        finally:
            _restore_signals(previous)
        if signals and session.exit_reason != "session_stop":
            # A source stopped by the signal simply ends; the CLI knows why.
            session.exit_reason = "interrupted"
        summary = session_summary(session)
        from arb.display import print_summary
        print_summary(summary, out)
        notifications = session.extra.get("notifications")
        if notifications is not None:
            notifications.session_ended(summary)
        if summary_json:
            try:
                summary_json.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            except OSError as exc:
                raise _fail(f"cannot write {summary_json}: {exc.strerror}", EXIT_ERROR) from None
    finally:
        _detach_watchers(session)
    raise typer.Exit(EXIT_GUARD if session.exit_reason == "session_stop" else EXIT_OK)


def _attach_watchers(session, cfg, registry) -> None:
    """Metrics endpoint and alert channels: beside the session, never in its way."""
    from arb.metrics import attach_metrics
    from arb.notify import NotifierConfigError, build_notifiers
    from arb.session import SessionError

    try:
        router = build_notifiers(cfg, registry)
    except NotifierConfigError as exc:
        session.close_unstarted()
        raise SessionError(str(exc)) from None
    router.attach(session.events)
    session.extra["notifications"] = router
    if hasattr(session.source, "on_stream_status"):
        session.source.on_stream_status = router.stream_status
    try:
        attach_metrics(session)
    except SessionError:
        router.close(0)
        session.close_unstarted()
        raise


def _detach_watchers(session) -> None:
    from arb.metrics import detach_metrics

    detach_metrics(session)
    notifications = session.extra.pop("notifications", None)
    if notifications is not None:
        notifications.close(timeout_s=5.0)


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        try:
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        except ValueError:  # not the main thread: nothing was installed
            pass


def _check_guard_config(cfg, registry) -> None:
    """Guard problems first: a misspelt rule name is never ignored, and
    live_trading names a missing or disabled built-in rule before anything else."""
    from arb.guard import GuardChainError
    from arb.plugins import build_guard_chain
    from arb.preflight import unknown_guard_rules

    unknown = unknown_guard_rules(cfg, registry)
    if unknown:
        raise _fail(f"guards: options for guard rule(s) that are not installed: {'; '.join(unknown)} "
                    "(see `arb plugins`)")
    if cfg.mode == "live_trading":
        try:
            build_guard_chain(registry, cfg.limits, cfg.guard_options, require_essential=True)
        except GuardChainError as exc:
            raise _fail(str(exc)) from None


def _run_with_display(session, max_runtime: float | None, show_panel: bool) -> None:
    if not show_panel:
        session.run(max_runtime)
        return
    from rich.live import Live

    from arb.display import status_panel
    with Live(get_renderable=lambda: status_panel(session), console=out, refresh_per_second=4,
              transient=True):
        session.run(max_runtime)


def _handle_signals(stop_event) -> list[int]:
    """First Ctrl-C or SIGTERM: stop cleanly and print the summary.  Second: leave now.

    Returns the list the handler appends received signals to.
    """
    received: list[int] = []

    def handler(signum, frame):
        if received:
            # Leave now; any further signal must not cut the clean-up short
            # (cancelling orders, closing the journal) on its way out.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise SystemExit(128 + signum)
        received.append(signum)
        logging.getLogger("arb.cli").info("received %s: stopping the session",
                                          signal.Signals(signum).name)
        stop_event.set()

    try:
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use): no handlers, no harm
        pass
    return received


@app.command("validate-config")
@_guarded
def validate_config(
    config: Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)],
    mode: Annotated[Optional[Mode], typer.Option(help="Check for this mode instead of the config's.")] = None,
    online: Annotated[bool, typer.Option("--online", help="Also ask each exchange: reachable, clock skew, "
                                                          "keys accepted, key permissions.")] = False,
) -> None:
    """Pre-flight checklist: schema, plugins, live limits, keys. Non-zero exit on any failure."""
    from arb.preflight import FAIL, PASS, WARN, preflight

    cfg = _load(config, mode)
    registry = _registry()
    items = preflight(cfg, registry)
    if online:
        from arb.online import online_checks
        items += online_checks(cfg, registry)
    marks = {PASS: "[green]PASS[/]", FAIL: "[bold red]FAIL[/]", WARN: "[yellow]WARN[/]"}
    for item in items:
        out.print(f"{marks.get(item.status, '[dim]SKIP[/]')}  {escape(item.name)}: {escape(item.detail)}",
                  highlight=False, soft_wrap=True)
    failed = [i for i in items if i.status == FAIL]
    if failed:
        out.print(f"{len(failed)} check(s) failed: " + ", ".join(i.name for i in failed),
                  highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    out.print("all checks passed", highlight=False)


@app.command()
@_guarded
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
@_guarded
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

    for label, value in (("--quantity", quantity), ("--price", price), ("--fx-rate", fx_rate)):
        _finite(label, value, positive=True)
    for label, value in (("--balance", balance), ("--daily-pnl", daily_pnl)):
        _finite(label, value)
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
    fx_note = f", at {rate:g} {rules.quote}/{cfg.reference_currency}" if rules.quote != cfg.reference_currency else ""
    out.print(f"order: {check.describe()} ({cfg.reference_currency}{fx_note}"
              f"{'; balance assumed = min_account_balance' if assumed else ''})",
              highlight=False, markup=False, soft_wrap=True)
    first = result.veto
    for rule, decision in zip(chain.rules, result.decisions):
        verdict = "[green]allow[/]" if decision.allowed else "[bold red]VETO[/]"
        mark = "  <- first veto, decides" if decision is first else ""
        stop = " (session stop)" if decision.session_stop else ""
        out.print(f"  {rule.order:>4}  {escape(rule.name):<24} {verdict}  {escape(decision.reason)}{stop}{mark}",
                  highlight=False, soft_wrap=True)
    scaled = scaled_quantity(quantity, cfg.limits.dry_run_scale, rules.lot_step)
    problem = rules.violation(scaled, price)
    out.print(f"after dry_run_scale {cfg.limits.dry_run_scale:g}: quantity {rules.format_qty(scaled)}"
              + (f" would not be sent: {problem}" if problem else " would be sent"),
              highlight=False, markup=False, soft_wrap=True)
    if first is not None:
        out.print(f"result: BLOCKED by {first.rule}", highlight=False, markup=False)
        raise typer.Exit(EXIT_GUARD)
    out.print("result: ALLOWED", highlight=False)


from arb.cli_journal import journal_app  # noqa: E402  (its commands borrow this module's helpers)
app.add_typer(journal_app, name="journal")
from arb.cli_report import report; app.command("report")(report)  # noqa: E402, E702  (the same)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
