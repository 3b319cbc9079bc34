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
    # The portfolio's daily figures include what earlier sessions realized
    # today (so max_daily_loss sees it); the summary shows this session's own.
    pnl_by_day = dict(portfolio.realized_by_day)
    if session.carried_pnl:
        pnl_by_day[session.carried_day] = pnl_by_day.get(session.carried_day, 0.0) - session.carried_pnl
        if abs(pnl_by_day[session.carried_day]) < 1e-12:
            del pnl_by_day[session.carried_day]
    journal = session.journal
    return {
        "session_id": session.session_id,
        "mode": session.mode,
        "duration_s": round(session.elapsed_s(), 3),
        "loops": updates,
        "trades_opened": portfolio.trades_opened,
        "trades_closed": portfolio.trades_closed,
        "open_trades": len(portfolio.open_trades),
        # Hedged pairs earlier sessions left open, managed by this one (not counted as opened).
        "trades_adopted": portfolio.trades_adopted,
        "realized_pnl": round(portfolio.realized_pnl, 6),
        "unrealized_pnl": round(unrealized, 6),
        "total_pnl": round(portfolio.realized_pnl + unrealized, 6),
        "pnl_by_day": {day: round(v, 6) for day, v in sorted(pnl_by_day.items())},
        "daily_pnl_carried": round(session.carried_pnl, 6),
        "active_orders": gateway.active_orders(),
        "avg_loop_ms": round(engine.busy_ns / updates / 1e6, 6) if updates else 0.0,
        "exit_reason": session.exit_reason,
        "stop_reason": engine.halted or "",
        # Unhedged legs per asset and exchange (+ held, − owed), and in words.
        "exposure": engine.exposure(),
        "exposure_detail": engine.exposure_detail(),
        "entries_halted": engine.entries_halted or "",
        "entries_refused": "; ".join(filter(None, (session.exposure_refusal, session.entries_refused))),
        "inherited_exposure": dict(session.inherited_exposure),
        "reconciliation": session.reconciliation.as_dict() if session.reconciliation is not None else None,
        "stuck_trades": sorted(engine.stuck_trades),
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
        "journal": {"path": str(journal.path) if journal is not None else "",
                    "write_errors": journal.write_errors if journal is not None else 0},
    }
