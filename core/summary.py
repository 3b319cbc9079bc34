"""The session summary: what a person reads at the end, and what scripts parse."""

from __future__ import annotations

from typing import Any

from arb.session import Session

NO_GUARD = {"active": False, "rules": [], "checks": 0, "allowed": 0, "blocked": 0,
            "blocked_by_rule": {}, "session_stops": 0, "session_stop": False}


def session_summary(session: Session) -> dict[str, Any]:
    engine = session.engine
    portfolio = engine.portfolio
    pipeline = session.pipeline
    gateway = pipeline.gateway
    updates = engine.updates
    unrealized = engine.unrealized_pnl()
    guard = dict(NO_GUARD)
    if session.chain is not None:
        guard = {"active": True, **session.chain.summary()}
    return {
        "session_id": session.session_id,
        "mode": session.mode,
        "duration_s": round(session.elapsed_s(), 3),
        "loops": updates,
        "trades_opened": portfolio.trades_opened,
        "trades_closed": portfolio.trades_closed,
        "open_trades": len(portfolio.open_trades),
        "realized_pnl": round(portfolio.realized_pnl, 6),
        "unrealized_pnl": round(unrealized, 6),
        "total_pnl": round(portfolio.realized_pnl + unrealized, 6),
        "pnl_by_day": {day: round(v, 6) for day, v in sorted(portfolio.realized_by_day.items())},
        "active_orders": gateway.active_orders(),
        "avg_loop_ms": round(engine.busy_ns / updates / 1e6, 6) if updates else 0.0,
        "exit_reason": session.exit_reason,
        "stop_reason": engine.halted or "",
        "exposure": engine.entries_halted or "",
        "shadow_trades": pipeline.shadow_trades,
        "plans_blocked": pipeline.plans_blocked,
        "plans_skipped": pipeline.plans_skipped,
        "evaluations_skipped": dict(sorted(engine.pricer.skips.items())),
        "orders": {"sent": getattr(gateway, "orders_sent", 0),
                   "filled": getattr(gateway, "orders_filled", 0),
                   "cancelled": getattr(gateway, "orders_cancelled", 0),
                   "rejected": getattr(gateway, "orders_rejected", 0)},
        "last_premium_pct": {k: round(v, 4) for k, v in engine.premiums().items()},
        "guard": guard,
    }
