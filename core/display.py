"""What a person sees in a terminal: the live status panel and the summary table."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from arb.session import Session


def status_panel(session: Session) -> Panel:
    engine = session.engine
    portfolio = engine.portfolio
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    pnl = portfolio.realized_pnl + engine.unrealized_pnl()
    table.add_row("elapsed", f"{session.elapsed_s():.1f} s")
    table.add_row("updates", f"{engine.updates:,}")
    premiums = "  ".join(f"{a} {p:+.2f}%" for a, p in engine.premiums().items()) or "-"
    table.add_row("premium", premiums)
    table.add_row("trades", f"opened {portfolio.trades_opened}  closed {portfolio.trades_closed}  "
                            f"open {len(portfolio.open_trades)}")
    table.add_row("PnL", f"{pnl:+.4f} {session.config.reference_currency}")
    table.add_row("last block", session.activity.last_block_reason or "-")
    return Panel(table, title=f"arb {session.mode} · {session.session_id}", expand=False)


def summary_renderable(summary: dict[str, Any]) -> Group:
    table = Table(title="Session summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    guard = summary["guard"]
    rows = [
        ("mode", summary["mode"]),
        ("duration", f"{summary['duration_s']:.1f} s"),
        ("loops (book updates)", f"{summary['loops']:,}"),
        ("trades opened / closed", f"{summary['trades_opened']} / {summary['trades_closed']}"
                                   + (f" ({summary['open_trades']} still open)" if summary.get("open_trades") else "")
                                   + (f", {summary['trades_adopted']} adopted from earlier sessions"
                                      if summary.get("trades_adopted") else "")),
        ("total PnL", f"{summary['total_pnl']:+.4f} (realized {summary['realized_pnl']:+.4f})"),
        ("active orders", str(summary["active_orders"])),
        ("avg loop time", f"{summary['avg_loop_ms'] * 1000:.1f} µs"),
        ("exit reason", summary["exit_reason"] + (f" ({summary['stop_reason']})" if summary["stop_reason"] else "")),
    ]
    if summary.get("daily_pnl_carried"):
        rows.append(("earlier today (carried)", f"{summary['daily_pnl_carried']:+.4f} counts toward max_daily_loss"))
    reconciled = summary.get("reconciliation")
    if reconciled and (reconciled["counts"] or reconciled["unknown"]):
        counts = ", ".join(f"{n} {action}" for action, n in sorted(reconciled["counts"].items()))
        rows.append(("start-up reconciliation", counts + (f"; {len(reconciled['unknown'])} UNKNOWN"
                                                           if reconciled["unknown"] else "")))
    if summary.get("entries_refused"):
        rows.append(("new trades refused", summary["entries_refused"]))
    if summary["shadow_trades"]:
        rows.append(("shadow trades", str(summary["shadow_trades"])))
    if summary["exposure"]:
        held = "; ".join(f"{asset} " + ", ".join(f"{ex} {qty:+g}" for ex, qty in by_exchange.items())
                         for asset, by_exchange in summary["exposure"].items())
        rows.append(("UNHEDGED EXPOSURE", f"{held} ({summary['exposure_detail']})"))
    elif summary.get("entries_halted") and summary["entries_halted"] not in summary.get("entries_refused", ""):
        rows.append(("new trades halted", summary["entries_halted"]))
    if summary.get("stuck_trades"):
        rows.append(("trades not closed automatically", ", ".join(map(str, summary["stuck_trades"]))))
    if guard["active"]:
        blocked = ", ".join(f"{k}={v}" for k, v in guard["blocked_by_rule"].items()) or "none"
        rows.append(("guard", f"checks {guard['checks']}  allowed {guard['allowed']}  blocked {guard['blocked']} "
                              f"({blocked})  session stops {guard['session_stops']}"))
    else:
        rows.append(("guard", "not run in this mode"))
    for key, value in rows:
        table.add_row(key, value)
    return Group(table)


def print_summary(summary: dict[str, Any], console: Console) -> None:
    console.print(summary_renderable(summary))
