"""The operator's explicit, journaled commands: each changes what later sessions
may do, so each is one transaction with the operator's name and reason."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from arb.journal import connect, now_ms
from arb.journal_queries import live_positions, net_positions
from arb.journal_schema import JournalError


def _transaction(path: Path, work) -> Any:
    conn = connect(path, create=False)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise JournalError(f"journal {path}: {exc}") from None
    finally:
        conn.close()
    return result


def _action(conn: sqlite3.Connection, at: float, action: str, operator: str, reason: str, detail: Any) -> None:
    conn.execute("INSERT INTO operator_actions (ts_ms, action, operator, reason, detail) VALUES (?, ?, ?, ?, ?)",
                 (at, action, operator, reason, json.dumps(detail)))

def clear_stops(path: Path, reason: str, operator: str) -> list[dict[str, Any]]:
    """Every uncleared session stop is cleared.  Returns the stops cleared."""
    def work(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        cur = conn.execute("SELECT id, session_id, ts_ms, trading_day, mode, rule, reason FROM session_stops "
                           "WHERE cleared_ms IS NULL ORDER BY id")
        names = [d[0] for d in cur.description]
        stops = [dict(zip(names, row)) for row in cur.fetchall()]
        at = now_ms()
        conn.executemany("UPDATE session_stops SET cleared_ms = ?, cleared_by = ?, cleared_reason = ? WHERE id = ?",
                         [(at, operator, reason, s["id"]) for s in stops])
        _action(conn, at, "clear_stop", operator, reason, {"cleared": [s["id"] for s in stops]})
        return stops
    return _transaction(path, work)


def clear_exposure(path: Path, reason: str, operator: str, assets: list[str] | None = None,
                   tolerance: float = 1e-12) -> dict[str, float]:
    """The operator says the unhedged live position of ``assets`` (all, when
    None) has been dealt with by hand: an adjustment brings each to zero, so
    later sessions may open trades again.  Returns what was cleared per asset."""
    def work(conn: sqlite3.Connection) -> dict[str, float]:
        net = net_positions(live_positions(conn))
        unknown = sorted(set(assets or ()) - set(net))
        if unknown:
            raise JournalError(f"no live position was ever journaled for {', '.join(unknown)}")
        cleared = {asset: qty for asset, qty in net.items()
                   if (assets is None or asset in assets) and abs(qty) > tolerance}
        at = now_ms()
        detail = json.dumps({"net_before": cleared})
        conn.executemany("INSERT INTO position_adjustments (ts_ms, mode, asset, quantity, operator, reason, detail) "
                         "VALUES (?, 'live_trading', ?, ?, ?, ?, ?)",
                         [(at, asset, -qty, operator, reason, detail) for asset, qty in cleared.items()])
        _action(conn, at, "clear_exposure", operator, reason, {"cleared": cleared})
        return cleared
    return _transaction(path, work)
