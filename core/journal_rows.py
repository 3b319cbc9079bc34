"""What each queued journal record becomes in the tables (runs on the writer thread).

The engine thread hands over events as they are; turning them into rows,
JSON and all, happens here, off the decision path, and before the writer
takes the database: :meth:`RowWriter.statements` touches no connection, so
an order intent waiting to commit waits only for SQL, never for Python.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from arb.models import Order
from arb.portfolio import trading_day

_OUTCOMES = {"plan_allowed": "allowed", "plan_blocked": "blocked", "plan_skipped": "skipped",
             "shadow_trade": "shadow"}
#: Records the journal makes itself (the rest are events, kept as JSON).
_RECORDS = ("order", "trade_opened", "trade_closed", "trade_adopted", "pnl", "session_end")


Statement = tuple[str, tuple]


class RowWriter:
    def __init__(self, session_id: str, day_start_ms: int):
        self.session_id = session_id
        self.day_start_ms = day_start_ms
        # (asset, plan kind) -> (outcome, rule) of its last decision if a refusal, to fold repeats into it.
        self._last_refusal: dict[tuple[str, str], tuple[str, str]] = {}
        # client order id -> (status, filled qty, fills written) last journaled.
        self._order_seen: dict[str, tuple[str, float, int]] = {}
        # This session's id of a trade adopted from an earlier one -> its row (session, trade id).
        self._adopted: dict[int, tuple[str, int]] = {}

    def statements(self, kind: str, ts_ms: float, data: Any) -> list[Statement]:
        if kind in _OUTCOMES:
            return self._decision(_OUTCOMES[kind], ts_ms, data)
        if kind in _RECORDS:
            return getattr(self, "_" + kind)(ts_ms, data)
        return [("INSERT INTO events (session_id, ts_ms, kind, detail) VALUES (?, ?, ?, ?)",
                 (self.session_id, ts_ms, kind, _json(data)))]

    def _decision(self, outcome: str, ts_ms: float, data: dict[str, Any]) -> list[Statement]:
        plan = data["plan"]
        result = data.get("result")
        veto = getattr(result, "veto", None)
        rule = veto.rule if veto is not None else ("dry_run_scale" if outcome == "skipped" else "")
        reason = veto.reason if veto is not None else data.get("reason", "")
        if outcome == "shadow":
            reason = "live_readonly: orders are never sent"
        key = (plan.asset, plan.kind)
        if outcome != "allowed" and self._last_refusal.get(key) == (outcome, rule):
            return [("UPDATE guard_decisions SET count = count + 1, last_ms = ?, reason = ? WHERE id = "
                     "(SELECT MAX(id) FROM guard_decisions WHERE session_id = ? AND asset = ? AND plan_kind = ?)",
                     (ts_ms, reason, self.session_id, plan.asset, plan.kind))]
        checks = [_check(r.check) for r in getattr(result, "results", ())]
        detail = {"direction": _plain(plan.direction), "quantity": plan.quantity, "trade_id": plan.trade_id,
                  "net_premium_pct": plan.net_premium_pct, "fx_rate": plan.fx_rate, "checks": checks}
        if outcome == "allowed":
            self._last_refusal.pop(key, None)
        else:
            self._last_refusal[key] = (outcome, rule)
        return [("INSERT INTO guard_decisions (session_id, ts_ms, last_ms, outcome, plan_kind, asset, rule, reason, "
                 "session_stop, premium_pct, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (self.session_id, ts_ms, ts_ms, outcome, plan.kind, plan.asset, rule or None, reason or None,
                  int(bool(getattr(result, "session_stop", False))), plan.premium_pct, json.dumps(detail)))]

    def _order(self, ts_ms: float, state: tuple) -> list[Statement]:
        coid, status, exchange_id, quantity, price, fills, reason = state
        filled = sum(f.quantity for f in fills)
        seen = self._order_seen.get(coid)
        if seen is not None and seen[:2] == (status, filled):
            return []  # the same state again (a live order is reported by its update and by its plan)
        self._order_seen[coid] = (status, filled, len(fills))
        quote = sum(f.quantity * f.price for f in fills)
        written = seen[2] if seen is not None else 0
        return [("INSERT INTO order_states (client_order_id, session_id, ts_ms, status, exchange_order_id, quantity, "
                 "limit_price, filled_qty, avg_price, fees, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (coid, self.session_id, ts_ms, status, exchange_id or None, quantity, price, filled,
                  quote / filled if filled else 0.0, sum(f.fee for f in fills), reason or None))] + [
                ("INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (coid, seq, self.session_id, f.ts_ms, f.quantity, f.price, f.fee))
                for seq, f in enumerate(fills) if seq >= written]

    def _trade_opened(self, ts_ms: float, t: tuple) -> list[Statement]:
        trade_id, asset, direction, quantity, opened_ms, premium, cashflow, orders = t
        return [(
            "INSERT OR REPLACE INTO trades (session_id, trade_id, asset, direction, quantity, opened_ms, "
            "entry_premium_pct, open_cashflow, open_orders) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.session_id, trade_id, asset, direction, quantity, opened_ms, premium, cashflow, json.dumps(orders)))]

    def _trade_closed(self, ts_ms: float, t: tuple) -> list[Statement]:
        trade_id, closed_ms, premium, pnl, orders = t
        # An adopted trade keeps the row of the session that opened it.
        session, row_id = self._adopted.get(trade_id, (self.session_id, trade_id))
        # A partial close (leg-risk repairs) adds to what was realized before.
        return [(
            "UPDATE trades SET closed_ms = ?, exit_premium_pct = ?, realized_pnl = COALESCE(realized_pnl, 0) + ?, "
            "trading_day = ?, close_orders = ? WHERE session_id = ? AND trade_id = ?",
            (closed_ms, premium, pnl, trading_day(closed_ms, self.day_start_ms), json.dumps(orders),
             session, row_id))]

    def _trade_adopted(self, ts_ms: float, data: dict[str, Any]) -> list[Statement]:
        self._adopted[data["trade_id"]] = (data["from_session"], data["from_trade"])
        return [("UPDATE trades SET adopted_by = ? WHERE session_id = ? AND trade_id = ?",
                 (f"{self.session_id}/{data['trade_id']}", data["from_session"], data["from_trade"]))]

    def _pnl(self, ts_ms: float, data: tuple) -> list[Statement]:
        amount, source = data
        return [("INSERT INTO pnl (session_id, ts_ms, trading_day, amount, source) VALUES (?, ?, ?, ?, ?)",
                 (self.session_id, ts_ms, trading_day(ts_ms, self.day_start_ms), amount, source))]

    def _session_end(self, ts_ms: float, data: tuple) -> list[Statement]:
        exit_reason, summary = data
        return [(
            "UPDATE sessions SET ended_ms = ?, exit_reason = ?, stop_reason = ?, realized_pnl = ?, summary = ? "
            "WHERE id = ?", (ts_ms, exit_reason, summary.get("stop_reason") or None, summary.get("realized_pnl"),
                             json.dumps(summary, sort_keys=True, default=str), self.session_id))]


def _check(check: Any) -> dict[str, Any]:
    return {"exchange": check.exchange, "symbol": check.symbol, "side": _plain(check.side),
            "quantity": check.quantity, "price": check.price, "notional": check.notional,
            "balance": check.balance, "daily_pnl": check.daily_pnl,
            "data_age_ms": getattr(check, "data_age_ms", 0.0)}


def _json(data: Any) -> str:
    return json.dumps(_plain(data), sort_keys=True)


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-able picture of an event value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Enum):
        return value.value
    if depth > 3:
        return str(value)[:200]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, Order):
        intent = value.intent
        return {"client_order_id": intent.client_order_id, "exchange": intent.exchange, "symbol": intent.symbol,
                "side": intent.side.value, "quantity": intent.quantity, "status": value.status.value,
                "filled_qty": value.filled_qty, "reason": value.reason}
    if hasattr(value, "legs") and hasattr(value, "kind"):  # a Plan
        return {"kind": value.kind, "asset": value.asset, "direction": _plain(value.direction),
                "quantity": value.quantity, "premium_pct": value.premium_pct, "trade_id": value.trade_id,
                "legs": [leg.client_order_id for leg in value.legs]}
    return str(value)[:500]
