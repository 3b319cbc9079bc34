"""What a live session settles before its first order.

1. No other live_trading session may be running on the same journal: its
   open orders would look like leftovers and be cancelled under it.
2. Start-up reconciliation (:mod:`arb.reconcile`): every order earlier
   sessions left unsettled is settled with the exchanges.  In live_trading a
   session with anything left unknown does not start.
3. The unhedged position earlier sessions left (a leg the leg-risk policy
   gave up on, a pair cut in half by a crash) is read from the journal: while
   it is not flat, no new trade opens, across restarts, until a person flattens
   it and says so with ``arb journal clear-exposure``.
4. Hedged pairs earlier live_trading sessions opened and never closed are
   adopted: this session closes them when the premium comes back, as if it
   had opened them, and realizes their PnL then.  A restart must not orphan
   a position the bot is responsible for.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from arb.journal import now_ms
from arb.journal_queries import iso, net_positions
from arb.legrisk import OUTCOME_UNKNOWN
from arb.reconcile import Reconciler

log = logging.getLogger("arb.startup")


class StartupRefused(RuntimeError):
    """The session must not start; the message says why and what to do."""


def settle_start(session: Any) -> None:
    journal = session.journal
    trading = session.mode == "live_trading"
    if trading:
        _refuse_a_running_sibling(journal)
    markets = [m for pair in session.request.pairs for m in (pair.local, pair.reference)]
    symbols: dict[str, list[str]] = {}
    for market in [*markets, session.request.fx]:
        symbols.setdefault(market.exchange, []).append(market.symbol)
    asset_of = {(m.exchange, m.symbol): pair.asset for pair in session.request.pairs
                for m in (pair.local, pair.reference)}
    reconciler = Reconciler(session.clients, cancel=trading, record=journal.order_update, adopt=journal.adopt,
                            asset_of=asset_of)
    result = reconciler.run(journal.unsettled_intents(OUTCOME_UNKNOWN), symbols, journal.live_intent)
    session.reconciliation = result
    if result.settlements or result.unknown:
        session.events.publish("reconciled", now_ms(), **result.as_dict())
    if not journal.flush() and trading:
        raise StartupRefused(f"the journal {journal.path} did not confirm what start-up reconciliation recorded "
                             "within 10 s; nothing is sent on an unconfirmed record")
    if result.others_open:
        log.info("[ARB_RECONCILE] %d open order(s) at the exchanges were not placed by arb; left alone",
                 result.others_open)
    if result.unknown:
        listed = "; ".join(result.unknown)
        if trading:
            raise StartupRefused(
                f"start-up reconciliation could not settle what earlier sessions left ({listed}). "
                "Nothing is sent while an order's state is unknown; run again once the exchange answers")
        log.error("[ARB_RECONCILE] could not settle: %s (live_readonly sends nothing, so it runs on)", listed)
    if result.counts().get("cancelled"):
        session.pipeline.gateway.refresh_balances()  # the cancels freed what those orders held
    _pick_up_exposure(session, markets)
    if trading:
        _adopt_open_trades(session)


def _adopt_open_trades(session: Any) -> None:
    from arb.strategy import Direction

    traded = {pair.asset for pair in session.request.pairs}
    portfolio = session.engine.portfolio
    for row in session.journal.open_live_trades():
        origin = f"trade {row['trade_id']} of session {row['session_id']}"
        if row["asset"] not in traded:
            log.warning("[ARB_RECONCILE] %s (%s, %g) is not in this config's pairs: left open, not managed",
                        origin, row["asset"], row["quantity"])
            continue
        trade = portfolio.adopt(row["asset"], Direction(row["direction"]), row["quantity"], row["opened_ms"],
                                row["entry_premium_pct"] or 0.0, row["open_cashflow"] or 0.0)
        session.events.publish("trade_adopted", now_ms(), trade_id=trade.id, asset=trade.asset,
                               direction=trade.direction.value, quantity=trade.quantity,
                               from_session=row["session_id"], from_trade=row["trade_id"])
        log.warning("[ARB_RECONCILE] adopted %s: %s %s %g; it closes here when the premium comes back",
                    origin, trade.direction.value, trade.asset, trade.quantity)


def _pick_up_exposure(session: Any, markets: list) -> None:
    rows = session.journal.live_positions()
    steps: dict[str, float] = {}
    for market in markets:
        base = market.rules.base
        steps[base] = min(steps.get(base, market.rules.lot_step), market.rules.lot_step)
    # Float sums of exchange decimals: anything under half a lot step is noise.
    unhedged = {asset: qty for asset, qty in net_positions(rows).items() if abs(qty) >= steps.get(asset, 1e-8) / 2}
    session.inherited_exposure = unhedged
    if not unhedged:
        return
    where = {}
    for row in rows:
        if row["asset"] in unhedged and row["quantity"]:
            where.setdefault(row["asset"], []).append(f"{row['exchange']} {row['quantity']:+g}")
    detail = "; ".join(f"{asset} {qty:+g} ({', '.join(where[asset])})" for asset, qty in sorted(unhedged.items()))
    text = (f"unhedged position left by earlier live_trading sessions: {detail}. No new trade opens until it is "
            "flat: flatten it on the exchange, then run `arb journal clear-exposure --reason ...`")
    session.exposure_refusal = text
    session.events.publish("inherited_exposure", now_ms(), net=unhedged, detail=text)
    engine = session.engine
    engine.entries_halted = text
    if session.mode == "live_trading":
        log.error("[ARB_EXPOSURE] %s", text)
        session.journal.note_entries_refused("; ".join(filter(None, (text, session.entries_refused))))
    else:
        log.warning("[ARB_EXPOSURE] %s", text)


def _refuse_a_running_sibling(journal: Any) -> None:
    for row in journal.other_sessions_running():
        pid = row["pid"]
        if pid and pid != os.getpid() and _arb_running(int(pid)):
            raise StartupRefused(
                f"live_trading session {row['id']} (pid {pid}, started {iso(row['started_ms'])} UTC) on journal "
                f"{journal.path} has no recorded end and its process is running; a second session would take its "
                "open orders for leftovers and cancel them. Stop it first (or give this one another journal.path)")


def _arb_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        # A recycled pid that now runs something else is not a session.
        return b"arb" in cmdline.read_bytes()
    except OSError:
        return not cmdline.parent.parent.is_dir()  # no /proc here: assume it is
