"""``arb journal``: what the journal holds, for people (tables) and scripts (``--json``),
and the operator's explicit, journaled commands: ``clear-stop`` (past a
daily-loss stop) and ``clear-exposure`` (an unhedged position flattened by hand)."""

# Annotations stay evaluated here, as in arb.cli (typer reads them on every start).

import functools
import getpass
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

journal_app = typer.Typer(no_args_is_help=True, help="Show the journal: sessions, trades, guard blocks, stops, "
                                                     "the live position; clear a daily-loss stop or an exposure.")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="Read journal.path from this config.",
                                                   show_default=False)]
PathOpt = Annotated[Optional[Path], typer.Option("--path", help="The journal file itself.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON for scripts instead of a table.")]
LimitOpt = Annotated[int, typer.Option(min=1, max=100_000, help="Newest N rows.")]
SessionOpt = Annotated[Optional[str], typer.Option("--session", help="Only this session id.", show_default=False)]


def _guarded(command: Callable) -> Callable:
    # arb.cli's guard (exit 2 on bad input, never a traceback), looked up
    # when called: arb.cli imports this module to register the sub-app.
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from arb.cli import _guarded as guarded
        return guarded(command)(*args, **kwargs)
    return wrapper


def _journal_file(config: Path | None, path: Path | None) -> Path:
    from arb.cli import _fail, _load
    from arb.journal import default_path, journal_path

    if config is not None and path is not None:
        raise _fail("give --config or --path, not both")
    if path is not None:
        return path
    if config is not None:
        return journal_path(_load(config).journal)
    return default_path()


def _query(config: Path | None, path: Path | None, read: Callable) -> list[dict[str, Any]]:
    from arb.cli import _fail
    from arb.journal import connect
    from arb.journal_schema import JournalError

    file = _journal_file(config, path)
    try:
        conn = connect(file, create=False)
    except JournalError as exc:
        raise _fail(str(exc)) from None
    try:
        return read(conn)
    finally:
        conn.close()


def _show(rows: list[dict[str, Any]], as_json: bool, title: str, columns: dict[str, Callable[[dict], str]]) -> None:
    from arb.journal_queries import iso

    if as_json:
        for row in rows:
            for key in [k for k in row if k.endswith("_ms")]:
                row[key[:-3] + "_utc"] = iso(row[key]) if row[key] is not None else None
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    from arb.cli import out

    table = Table(title=title)
    for name in columns:
        table.add_column(name)
    for row in rows:
        table.add_row(*(columns[name](row) for name in columns))
    (out if out.is_terminal else Console(width=200)).print(table)
    if not rows:
        typer.echo("(nothing journaled yet)")


def _t(key: str) -> Callable[[dict], str]:
    from arb.journal_queries import iso
    return lambda row: iso(row[key])


def _f(key: str, fmt: str = "{:+.4f}") -> Callable[[dict], str]:
    return lambda row: "" if row[key] is None else fmt.format(row[key])


def _s(key: str) -> Callable[[dict], str]:
    return lambda row: "" if row[key] is None else str(row[key])


@journal_app.command()
@_guarded
def sessions(config: ConfigOpt = None, path: PathOpt = None, as_json: JsonOpt = False, limit: LimitOpt = 20) -> None:
    """Sessions, newest first: mode, clock, start and end, trades, realized PnL, why each ended."""
    from arb.journal_queries import sessions as read

    rows = _query(config, path, lambda conn: read(conn, limit))
    _show(rows, as_json, "arb sessions", {
        "session": _s("session"), "mode": _s("mode"), "clock": _s("clock"), "started (UTC)": _t("started_ms"),
        "ended (UTC)": _t("ended_ms"),
        "exit": lambda r: r["exit_reason"] or "(no end recorded: crashed or still running)",
        "opened/closed": lambda r: f"{r['trades_opened']}/{r['trades_closed']}", "orders": _s("orders"),
        "realized PnL": _f("realized_pnl"),
        "note": lambda r: r["stop_reason"] or r["entries_refused"] or ""})


@journal_app.command()
@_guarded
def trades(config: ConfigOpt = None, path: PathOpt = None, as_json: JsonOpt = False, limit: LimitOpt = 20,
           session: SessionOpt = None) -> None:
    """Trades, newest first: both legs' premiums and the PnL each realized."""
    from arb.journal_queries import trades as read

    rows = _query(config, path, lambda conn: read(conn, limit, session))
    _show(rows, as_json, "arb trades", {
        "session": _s("session"), "trade": _s("trade"), "asset": _s("asset"), "direction": _s("direction"),
        "quantity": _f("quantity", "{:g}"), "opened (UTC)": _t("opened_ms"), "closed (UTC)": _t("closed_ms"),
        "entry %": _f("entry_premium_pct", "{:+.3f}"), "exit %": _f("exit_premium_pct", "{:+.3f}"),
        "PnL": _f("realized_pnl"), "day": _s("trading_day")})


@journal_app.command()
@_guarded
def blocks(config: ConfigOpt = None, path: PathOpt = None, as_json: JsonOpt = False, limit: LimitOpt = 20,
           session: SessionOpt = None) -> None:
    """Plans the guard chain refused (and skipped or shadow ones); repeats are counted in one row."""
    from arb.journal_queries import blocks as read

    rows = _query(config, path, lambda conn: read(conn, limit, session))
    _show(rows, as_json, "arb guard blocks", {
        "session": _s("session"), "last (UTC)": _t("last_ms"), "count": _s("count"), "outcome": _s("outcome"),
        "plan": lambda r: f"{r['plan_kind']} {r['asset']}", "rule": _s("rule"), "reason": _s("reason"),
        "stop": lambda r: "session stop" if r["session_stop"] else ""})


@journal_app.command()
@_guarded
def stops(config: ConfigOpt = None, path: PathOpt = None, as_json: JsonOpt = False, limit: LimitOpt = 20) -> None:
    """Session stops, and who cleared them and why."""
    from arb.journal_queries import stops as read

    rows = _query(config, path, lambda conn: read(conn, limit))
    _show(rows, as_json, "arb session stops", {
        "id": _s("id"), "session": _s("session"), "when (UTC)": _t("ts_ms"), "day": _s("trading_day"),
        "mode": _s("mode"), "rule": _s("rule"), "reason": _s("reason"),
        "cleared": lambda r: (f"{r['cleared_by']}: {r['cleared_reason']}" if r["cleared_ms"] else "IN FORCE"
                              if r["clock"] == "wall" else "(simulated clock: never carried over)")})


@journal_app.command()
@_guarded
def exposure(config: ConfigOpt = None, path: PathOpt = None, as_json: JsonOpt = False) -> None:
    """The live position our live_trading orders left, per asset and exchange; an asset whose
    total is not zero is unhedged, and no session opens trades until it is cleared."""
    from arb.journal_queries import live_positions, net_positions

    rows = _query(config, path, live_positions)
    net = net_positions(rows)
    if as_json:
        typer.echo(json.dumps({"positions": rows, "net": net}, indent=2, sort_keys=True))
        return
    _show(rows, False, "arb live position (base asset: + bought, - sold)", {
        "asset": _s("asset"), "where": _s("exchange"), "quantity": _f("quantity", "{:+.8g}"),
        "orders/adjustments": _s("orders")})
    for asset, qty in sorted(net.items()):
        typer.echo(f"{asset}: flat" if abs(qty) < 1e-12 else f"{asset}: net {qty:+.8g}  UNHEDGED")


def _operator_command(reason: str, config: Path | None, path: Path | None, act: Callable[[Path, str, str], Any],
                      what: Callable[[Any], str]) -> tuple[Any, str]:
    """Run one journaled operator command; returns its result and the operator's name."""
    from arb.cli import _fail
    from arb.journal_schema import JournalError

    if not reason.strip():
        raise _fail("--reason must say why (it is journaled)")
    file = _journal_file(config, path)
    try:
        operator = getpass.getuser()
    except Exception:  # no user name in this environment
        operator = "unknown"
    try:
        result = act(file, reason.strip(), operator)
    except JournalError as exc:
        raise _fail(str(exc)) from None
    from arb.logs import setup_logging
    restore = setup_logging("INFO", "text")
    try:
        logging.getLogger("arb.journal").warning("[ARB_JOURNAL] operator %s %s in %s: %s",
                                                 operator, what(result), file, reason.strip())
    finally:
        restore()
    return result, operator


@journal_app.command("clear-exposure")
@_guarded
def clear_exposure(
    reason: Annotated[str, typer.Option(help="What was done to flatten it; journaled with your user name.",
                                        show_default=False)],
    asset: Annotated[Optional[list[str]], typer.Option(help="Only this asset (repeatable); default: all.",
                                                       show_default=False)] = None,
    config: ConfigOpt = None, path: PathOpt = None, as_json: JsonOpt = False,
) -> None:
    """Say an unhedged live position was flattened by hand, so sessions may open trades again."""
    from arb.journal_operator import clear_exposure as clear

    assets = [a.strip().upper() for a in asset] if asset else None
    cleared, operator = _operator_command(reason, config, path, lambda f, r, o: clear(f, r, o, assets),
                                          lambda c: f"cleared the unhedged position of {len(c)} asset(s)")
    if as_json:
        typer.echo(json.dumps({"cleared": cleared, "operator": operator, "reason": reason.strip()}, indent=2))
    elif cleared:
        for name, qty in sorted(cleared.items()):
            typer.echo(f"cleared {name} {qty:+.8g} (recorded as an adjustment of {-qty:+.8g})")
    else:
        typer.echo("no unhedged position was on record; the command is journaled all the same")


@journal_app.command("clear-stop")
@_guarded
def clear_stop(
    reason: Annotated[str, typer.Option(help="Why trading may resume today; journaled with your user name.",
                                        show_default=False)],
    config: ConfigOpt = None, path: PathOpt = None, as_json: JsonOpt = False,
) -> None:
    """Lift the daily-loss stops in force, so the next session may open trades today."""
    from arb.journal_operator import clear_stops

    cleared, operator = _operator_command(reason, config, path, clear_stops,
                                          lambda c: f"cleared {len(c)} session stop(s)")
    if as_json:
        typer.echo(json.dumps({"cleared": cleared, "operator": operator, "reason": reason.strip()}, indent=2))
    elif cleared:
        for stop in cleared:
            typer.echo(f"cleared stop {stop['id']} ({stop['mode']}, day {stop['trading_day']}, {stop['rule']}: "
                       f"{stop['reason']})")
    else:
        typer.echo("no session stop was in force; the command is journaled all the same")
