"""Reading the journal: what a new session carries over, and what people look at.

Only sessions on the wall clock carry anything over: a simulated market's
days are fiction, and a seeded rehearsal must replay the same however often
it has run.  PnL and stops carry over within one mode, so paper losses never
block live trading (nor the other way round).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Sequence

DAY_MS = 86_400_000


def day_window(at_ms: float, day_start_ms: int = 0) -> tuple[float, float]:
    """The trading day holding ``at_ms``: [start, end) in ms since the epoch."""
    start = (at_ms - day_start_ms) // DAY_MS * DAY_MS + day_start_ms
    return start, start + DAY_MS


def today_realized_pnl(conn: sqlite3.Connection, mode: str, start_ms: float, end_ms: float) -> float:
    row = conn.execute(
        "SELECT COALESCE(SUM(p.amount), 0) FROM pnl p JOIN sessions s ON s.id = p.session_id "
        "WHERE s.mode = ? AND s.clock = 'wall' AND p.ts_ms >= ? AND p.ts_ms < ?",
        (mode, start_ms, end_ms)).fetchone()
    return float(row[0])


def stops_in_force(conn: sqlite3.Connection, mode: str, start_ms: float, end_ms: float,
                   rules: Sequence[str]) -> list[dict[str, Any]]:
    marks = ", ".join("?" for _ in rules)
    return _rows(conn.execute(
        f"SELECT id, session_id, ts_ms, trading_day, rule, reason FROM session_stops "
        f"WHERE mode = ? AND clock = 'wall' AND cleared_ms IS NULL AND ts_ms >= ? AND ts_ms < ? "
        f"AND rule IN ({marks}) ORDER BY ts_ms", (mode, start_ms, end_ms, *rules)))


# --- what live_trading sessions left behind at the exchanges ------------------------------
#
# Only live_trading orders ever reached an exchange: paper fills are fiction
# and live_readonly sends nothing.

_LAST_STATE = ("(SELECT s.{col} FROM order_states s WHERE s.client_order_id = i.client_order_id "
               "ORDER BY s.id DESC LIMIT 1)")
_INTENT_COLUMNS = ("i.client_order_id, i.session_id, i.asset, i.exchange, i.symbol, i.side, i.order_type, "
                   "i.quantity, i.limit_price, i.expected_price")


def unsettled_intents(conn: sqlite3.Connection, final: Sequence[str], unknown_prefix: str) -> list[dict[str, Any]]:
    """Live orders the journal cannot call final: never answered (the
    process died, or the answer was lost) or last seen open."""
    rows = _rows(conn.execute(
        f"SELECT {_INTENT_COLUMNS}, {_LAST_STATE.format(col='status')} AS status, "
        f"{_LAST_STATE.format(col='reason')} AS reason "
        "FROM order_intents i JOIN sessions se ON se.id = i.session_id WHERE se.mode = 'live_trading' "
        "ORDER BY i.ts_ms"))
    return [r for r in rows if r["status"] not in final
            or (r["status"] == "rejected" and (r["reason"] or "").startswith(unknown_prefix))]


def live_intent(conn: sqlite3.Connection, client_order_id: str) -> dict[str, Any] | None:
    rows = _rows(conn.execute(
        f"SELECT {_INTENT_COLUMNS} FROM order_intents i JOIN sessions se ON se.id = i.session_id "
        "WHERE se.mode = 'live_trading' AND i.client_order_id = ?", (client_order_id,)))
    return rows[0] if rows else None


def live_positions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per asset and exchange, the base quantity our live orders bought minus
    what they sold (each order's last journaled fill total), since the first
    session; with the operator's adjustments per asset.

    A hedged trade moves the two exchanges in opposite directions, so an
    asset's total across exchanges is the unhedged position."""
    moved = _rows(conn.execute(
        "SELECT i.asset, i.exchange, SUM(CASE WHEN i.side = 'buy' THEN s.filled_qty ELSE -s.filled_qty END) "
        "AS quantity, COUNT(*) AS orders FROM order_intents i JOIN sessions se ON se.id = i.session_id "
        "JOIN order_states s ON s.id = (SELECT MAX(l.id) FROM order_states l "
        "WHERE l.client_order_id = i.client_order_id) "
        "WHERE se.mode = 'live_trading' AND s.filled_qty != 0 GROUP BY i.asset, i.exchange ORDER BY 1, 2"))
    adjusted = _rows(conn.execute(
        "SELECT asset, 'operator' AS exchange, SUM(quantity) AS quantity, COUNT(*) AS orders "
        "FROM position_adjustments WHERE mode = 'live_trading' GROUP BY asset ORDER BY 1"))
    return moved + adjusted


def net_positions(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``live_positions`` summed per asset: what is unhedged."""
    net: dict[str, float] = {}
    for row in rows:
        net[row["asset"]] = net.get(row["asset"], 0.0) + float(row["quantity"] or 0.0)
    return net


def open_live_trades(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Hedged pairs live_trading sessions opened and no session closed.

    One adopted earlier and still open is adopted again: its adopter has ended,
    since a live_trading session does not start while another one runs."""
    return _rows(conn.execute(
        "SELECT t.session_id, t.trade_id, t.asset, t.direction, t.quantity, t.opened_ms, t.entry_premium_pct, "
        "t.open_cashflow FROM trades t JOIN sessions s ON s.id = t.session_id WHERE s.mode = 'live_trading' "
        "AND t.closed_ms IS NULL ORDER BY t.opened_ms"))


def running_sessions(conn: sqlite3.Connection, mode: str) -> list[dict[str, Any]]:
    """Sessions of ``mode`` with no end recorded: crashed, or still running."""
    return _rows(conn.execute(
        "SELECT id, pid, started_ms FROM sessions WHERE mode = ? AND ended_ms IS NULL", (mode,)))


# --- for people and scripts (`arb journal ...`), newest first ------------------------------


def sessions(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    return _rows(conn.execute(
        "SELECT s.id AS session, s.mode, s.clock, s.started_ms, s.ended_ms, s.exit_reason, s.stop_reason, "
        "s.entries_refused, s.carried_pnl, "
        "(SELECT COUNT(*) FROM trades t WHERE t.session_id = s.id) AS trades_opened, "
        "(SELECT COUNT(*) FROM trades t WHERE t.session_id = s.id AND t.closed_ms IS NOT NULL) AS trades_closed, "
        "(SELECT COALESCE(SUM(p.amount), 0) FROM pnl p WHERE p.session_id = s.id) AS realized_pnl, "
        "(SELECT COUNT(*) FROM order_intents o WHERE o.session_id = s.id) AS orders, s.config "
        "FROM sessions s ORDER BY s.started_ms DESC LIMIT ?", (limit,)))


def trades(conn: sqlite3.Connection, limit: int, session: str | None = None) -> list[dict[str, Any]]:
    return _rows(conn.execute(
        "SELECT session_id AS session, trade_id AS trade, asset, direction, quantity, opened_ms, closed_ms, "
        "entry_premium_pct, exit_premium_pct, realized_pnl, trading_day, open_orders, close_orders "
        "FROM trades WHERE ? IS NULL OR session_id = ? ORDER BY opened_ms DESC LIMIT ?",
        (session, session, limit)), json_columns=("open_orders", "close_orders"))


def blocks(conn: sqlite3.Connection, limit: int, session: str | None = None) -> list[dict[str, Any]]:
    """Guard refusals: blocked, skipped (dry_run_scale) and shadow (read-only) plans."""
    return _rows(conn.execute(
        "SELECT session_id AS session, ts_ms, last_ms, count, outcome, plan_kind, asset, rule, reason, "
        "session_stop, premium_pct FROM guard_decisions WHERE outcome != 'allowed' "
        "AND (? IS NULL OR session_id = ?) ORDER BY last_ms DESC LIMIT ?", (session, session, limit)))


def stops(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    return _rows(conn.execute(
        "SELECT id, session_id AS session, ts_ms, trading_day, mode, clock, rule, reason, cleared_ms, cleared_by, "
        "cleared_reason FROM session_stops ORDER BY ts_ms DESC LIMIT ?", (limit,)))


def operator_actions(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    return _rows(conn.execute(
        "SELECT ts_ms, action, operator, reason, detail FROM operator_actions ORDER BY ts_ms DESC LIMIT ?",
        (limit,)), json_columns=("detail",))


def iso(ms: float | None) -> str:
    """UTC, to the second, for people: ``2026-11-25 23:37:57``."""
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000.0))


def _rows(cur: sqlite3.Cursor, json_columns: Sequence[str] = ()) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        record = dict(zip(names, row))
        for column in json_columns:
            if record.get(column):
                record[column] = json.loads(record[column])
        out.append(record)
    return out
