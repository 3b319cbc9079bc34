"""``arb report``: one session (or the sessions of a date range) from the journal, as one HTML file.

The file is self-contained: the stylesheet is inline, the charts are inline
SVG (:mod:`arb.report_charts` says why no chart library), and nothing is
fetched when it opens, so it can be mailed, archived and opened offline.

The journal is opened read-only (``mode=ro``): a report can be made while a
session is still writing, and never changes what it reads (SQLite may leave
the empty ``-wal`` and ``-shm`` files a WAL database keeps beside it).  Timestamps are
the session's own clock: for a simulated market that is the simulated time.
A report over several sessions draws each simulated session from the moment
it started, so their fictional clocks do not pile up on one another.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from arb.journal_queries import DAY_MS, iso
from arb.journal_schema import LATEST, current_version


class ReportError(RuntimeError):
    """No report can be made; the message says why and what to do."""


@dataclass(frozen=True)
class Scope:
    """Which sessions: one by id, those started in [day_from, day_to] (UTC days), or else the latest."""

    session: str | None = None
    day_from: date | None = None
    day_to: date | None = None

    def describe(self) -> str:
        if self.session:
            return f"session {self.session}"
        if self.day_from or self.day_to:
            return f"sessions started {self.day_from or '…'} to {self.day_to or '…'} (UTC)"
        return "the latest session"


@dataclass
class ReportData:
    journal: Path
    scope: Scope
    sessions: list[dict[str, Any]]
    trades: list[dict[str, Any]] = field(default_factory=list)
    #: asset -> one list of (x, premium %) per session
    premiums: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)
    #: Sessions without premium_sample events: their line joins the premiums at plans and trades.
    unsampled: list[str] = field(default_factory=list)
    #: (x, cumulative realized PnL, amount, source), in time order
    pnl: list[tuple[float, float, float, str]] = field(default_factory=list)
    #: (outcome, rule, plans, of which session stops), most first
    refusals: list[tuple[str, str, int, int]] = field(default_factory=list)
    plans_allowed: int = 0
    #: (exchange, ms from intent to the order's first journaled state)
    latencies: list[tuple[str, float]] = field(default_factory=list)
    orders_without_state: int = 0
    x_range: tuple[float, float] = (0.0, 1.0)


def open_readonly(path: Path) -> sqlite3.Connection:
    """The journal, read-only; :class:`ReportError` if it is missing or not an arb journal."""
    if not path.is_file():
        raise ReportError(f"no journal at {path} (no session has written one yet, or the wrong path: "
                          "give --config or --path)")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        version = current_version(conn)
    except sqlite3.Error as exc:
        raise ReportError(f"journal {path} cannot be read: {exc} (not an arb journal?)") from None
    if version == 0 or version > LATEST:
        conn.close()
        raise ReportError(f"{path} is not an arb journal this arb can read (schema version {version}, "
                          f"this arb knows 1 to {LATEST})")
    conn.row_factory = sqlite3.Row
    return conn


def parse_day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise ReportError(f"{text!r} is not a date: give YYYY-MM-DD (a UTC day)") from None


def load(path: Path, scope: Scope) -> ReportData:
    conn = open_readonly(path)
    try:
        return _load(conn, path, scope)
    except sqlite3.Error as exc:
        raise ReportError(f"journal {path} cannot be read: {exc}") from None
    finally:
        conn.close()


_SESSIONS = (
    "SELECT s.id, s.mode, s.clock, s.config, s.started_ms, s.ended_ms, s.exit_reason, s.stop_reason, "
    "s.entries_refused, s.summary, "
    "(SELECT COUNT(*) FROM trades t WHERE t.session_id = s.id) AS trades_opened, "
    "(SELECT COUNT(*) FROM trades t WHERE t.session_id = s.id AND t.closed_ms IS NOT NULL) AS trades_closed, "
    "(SELECT COALESCE(SUM(p.amount), 0) FROM pnl p WHERE p.session_id = s.id) AS realized_pnl, "
    "(SELECT COUNT(*) FROM order_intents o WHERE o.session_id = s.id) AS orders FROM sessions s ")


def _select_sessions(conn: sqlite3.Connection, path: Path, scope: Scope) -> list[dict[str, Any]]:
    if scope.session is not None and (scope.day_from or scope.day_to):
        raise ReportError("give --session or --from/--to, not both")
    if scope.day_from and scope.day_to and scope.day_from > scope.day_to:
        raise ReportError(f"--from {scope.day_from} is after --to {scope.day_to}")
    if scope.session is not None:
        rows = conn.execute(_SESSIONS + "WHERE s.id = ?", (scope.session,)).fetchall()
        if not rows:
            raise ReportError(f"no session {scope.session!r} in journal {path} (`arb journal sessions` lists them)")
    elif scope.day_from or scope.day_to:
        start = _day_ms(scope.day_from) if scope.day_from else float("-inf")
        end = _day_ms(scope.day_to) + DAY_MS if scope.day_to else float("inf")
        rows = conn.execute(_SESSIONS + "WHERE s.started_ms >= ? AND s.started_ms < ? ORDER BY s.started_ms",
                            (start, end)).fetchall()
        if not rows:
            raise ReportError(f"no session started from {scope.day_from or 'the first'} to "
                              f"{scope.day_to or 'the last'} (UTC days) in journal {path}")
    else:
        rows = conn.execute(_SESSIONS + "ORDER BY s.started_ms DESC LIMIT 1").fetchall()
        if not rows:
            raise ReportError(f"journal {path} holds no session yet")
    sessions = [dict(row) for row in rows]
    for s in sessions:
        try:
            s["summary"] = json.loads(s["summary"]) if s["summary"] else None
        except ValueError:
            s["summary"] = None
    return sessions


def _day_ms(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000.0


def _load(conn: sqlite3.Connection, path: Path, scope: Scope) -> ReportData:
    sessions = _select_sessions(conn, path, scope)
    ids = [s["id"] for s in sessions]
    where = f"session_id IN ({', '.join('?' for _ in ids)})"
    data = ReportData(path, scope, sessions)
    data.trades = [dict(r) for r in conn.execute(
        "SELECT session_id, trade_id, asset, direction, quantity, opened_ms, entry_premium_pct, closed_ms, "
        f"exit_premium_pct, realized_pnl FROM trades WHERE {where} ORDER BY opened_ms, trade_id", ids)]
    samples = conn.execute(f"SELECT session_id, ts_ms, detail FROM events WHERE kind = 'premium_sample' AND {where} "
                           "ORDER BY ts_ms, id", ids).fetchall()
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in samples:
        for asset, pct in _sample_premiums(row["detail"]).items():
            points.setdefault((asset, row["session_id"]), []).append((row["ts_ms"], pct))
    sampled = {sid for _, sid in points}
    data.unsampled = [sid for sid in ids if sid not in sampled]
    for row in conn.execute(f"SELECT session_id, ts_ms, asset, premium_pct FROM guard_decisions WHERE {where} "
                            "AND premium_pct IS NOT NULL", ids):
        if row["session_id"] not in sampled:
            points.setdefault((row["asset"], row["session_id"]), []).append((row["ts_ms"], row["premium_pct"]))
    for t in (t for t in data.trades if t["session_id"] not in sampled):
        for ts, pct in ((t["opened_ms"], t["entry_premium_pct"]), (t["closed_ms"], t["exit_premium_pct"])):
            if ts is not None and pct is not None:
                points.setdefault((t["asset"], t["session_id"]), []).append((ts, pct))
    pnl = conn.execute(f"SELECT session_id, ts_ms, amount, source FROM pnl WHERE {where} ORDER BY ts_ms, id",
                       ids).fetchall()
    for row in conn.execute(f"SELECT outcome, COALESCE(rule, '') AS rule, SUM(count) AS n, "
                            f"SUM(session_stop) AS stops FROM guard_decisions WHERE {where} "
                            "GROUP BY outcome, rule ORDER BY n DESC, outcome, rule", ids):
        if row["outcome"] == "allowed":
            data.plans_allowed += row["n"]
        else:
            data.refusals.append((row["outcome"], row["rule"], row["n"], row["stops"]))
    orders = conn.execute(
        "SELECT i.session_id, i.exchange, i.ts_ms, (SELECT MIN(s.ts_ms) FROM order_states s "
        f"WHERE s.client_order_id = i.client_order_id) AS first_ms FROM order_intents i WHERE i.{where}",
        ids).fetchall()
    data.latencies = [(o["exchange"], max(o["first_ms"] - o["ts_ms"], 0.0)) for o in orders
                      if o["first_ms"] is not None]
    data.orders_without_state = sum(1 for o in orders if o["first_ms"] is None)
    _place_on_timeline(data, points, pnl, [(o["session_id"], o["ts_ms"]) for o in orders])
    return data


def _sample_premiums(detail: str | None) -> dict[str, float]:
    try:
        value = json.loads(detail or "{}")
    except ValueError:
        return {}
    value = value.get("premiums", value) if isinstance(value, dict) else {}
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _place_on_timeline(data: ReportData, points: dict, pnl: list, orders: list[tuple[str, float]]) -> None:
    """Shift simulated sessions to where they started (several sessions only), then fill the series."""
    first: dict[str, float] = {}
    seen = [(sid, p[0]) for (_, sid), pts in points.items() for p in pts] + orders
    seen += [(r["session_id"], r["ts_ms"]) for r in pnl] + [(t["session_id"], t["opened_ms"]) for t in data.trades]
    for sid, ts in seen:
        first[sid] = min(ts, first.get(sid, ts))
    shift = {s["id"]: (s["started_ms"] - first[s["id"]] if len(data.sessions) > 1 and s["clock"] == "simulated"
                       and s["id"] in first else 0.0) for s in data.sessions}
    for t in data.trades:
        for key in ("opened_ms", "closed_ms"):
            if t[key] is not None:
                t[key] += shift[t["session_id"]]
    order = {s["id"]: i for i, s in enumerate(data.sessions)}
    for (asset, sid), pts in sorted(points.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        data.premiums.setdefault(asset, []).append(sorted((ts + shift[sid], pct) for ts, pct in pts))
    total = 0.0
    for x, amount, source in sorted((r["ts_ms"] + shift[r["session_id"]], r["amount"], r["source"]) for r in pnl):
        total += amount
        data.pnl.append((x, total, amount, source))
    xs = [x for segs in data.premiums.values() for seg in segs for x, _ in seg] + [p[0] for p in data.pnl]
    xs += [t[k] for t in data.trades for k in ("opened_ms", "closed_ms") if t[k] is not None]
    if not xs:
        xs = [s["started_ms"] for s in data.sessions] + [s["ended_ms"] or s["started_ms"] for s in data.sessions]
    lo, hi = min(xs), max(xs)
    margin = (hi - lo) * 0.01 or 500.0  # so a marker at either end is not cut in half
    data.x_range = (lo - margin, hi + margin)


def session_figures(s: dict[str, Any]) -> dict[str, Any]:
    """What the summary table shows for one session: the figures its summary printed, where it has one."""
    summary = s["summary"] or {}
    end = s["ended_ms"]
    return {
        "trades_opened": summary.get("trades_opened", s["trades_opened"]),
        "trades_closed": summary.get("trades_closed", s["trades_closed"]),
        "realized_pnl": summary.get("realized_pnl", s["realized_pnl"]),
        "total_pnl": summary.get("total_pnl", s["realized_pnl"]),
        "duration_s": summary.get("duration_s", (end - s["started_ms"]) / 1000.0 if end else None),
        "exit": (s["exit_reason"] or "(no end journaled: crashed or still running)")
        + (f" ({s['stop_reason']})" if s["stop_reason"] else ""),
    }


def build_report(path: Path, scope: Scope, generated_ms: float | None = None) -> tuple[str, ReportData]:
    """The report's HTML, and the data it was drawn from."""
    data = load(path, scope)
    return render(data, time.time() * 1000.0 if generated_ms is None else generated_ms), data


def write_report(path: Path, scope: Scope, out: Path) -> ReportData:
    """Write the report to ``out`` (whole or not at all); :class:`ReportError` if it cannot."""
    if out.is_dir():
        raise ReportError(f"--out {out} is a directory; give a file name")
    html, data = build_report(path, scope)
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text(html, encoding="utf-8")
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ReportError(f"cannot write {out}: {exc.strerror or exc}") from None
    return data


# --- the page ------------------------------------------------------------------------------


def render(data: ReportData, generated_ms: float) -> str:
    from arb import __version__
    from arb.report_charts import CSS, blocks_figure, latency_figure, pnl_figure, premium_figure

    ids = [s["id"] for s in data.sessions]
    title = f"arb report: session {ids[0]}" if len(ids) == 1 else f"arb report: {len(ids)} sessions"
    clock = "times are UTC, on each session's own clock"
    if any(s["clock"] == "simulated" for s in data.sessions):
        clock += (" (simulated time for a simulated market; each drawn from when it started)" if len(ids) > 1
                  else " (simulated time: a simulated market)")
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f'<header><h1>{escape(title)}</h1><p class="meta">{escape(data.scope.describe())} · journal '
        f"<code>{escape(str(data.journal))}</code> · generated {iso(generated_ms)} UTC by arb {escape(__version__)}"
        f" · {escape(clock)}</p></header>",
        _summary(data), premium_figure(data), pnl_figure(data),
        f'<div class="grid">{blocks_figure(data)}{latency_figure(data)}</div>', _trades(data),
        "</body></html>\n",
    ])


def _signed(value: float | None, places: int = 4) -> str:
    if value is None:
        return ""
    css = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<span class="{css}">{value:+.{places}f}</span>'


def _summary(data: ReportData) -> str:
    head = ("<tr><th>session</th><th>mode</th><th>clock</th><th>started (UTC)</th><th class=num>duration</th>"
            "<th>exit</th><th class=num>trades opened / closed</th><th class=num>orders</th>"
            "<th class=num>realized PnL</th><th class=num>total PnL</th></tr>")
    rows, totals = [], {"trades_opened": 0, "trades_closed": 0, "orders": 0, "realized_pnl": 0.0, "total_pnl": 0.0}
    for s in data.sessions:
        f = session_figures(s)
        for key in totals:
            totals[key] += f.get(key, s.get(key)) or 0
        duration = _duration(f["duration_s"])
        rows.append(f'<tr class="session" data-session="{escape(s["id"])}"><td><code>{escape(s["id"])}</code></td>'
                    f"<td>{escape(s['mode'])}</td><td>{escape(s['clock'])}</td><td>{iso(s['started_ms'])}</td>"
                    f"<td class=num>{duration}</td><td>{escape(f['exit'])}</td>"
                    f'<td class="num trades">{f["trades_opened"]} / {f["trades_closed"]}</td>'
                    f"<td class=num>{s['orders']}</td><td class=num>{_signed(f['realized_pnl'])}</td>"
                    f'<td class="num total-pnl">{_signed(f["total_pnl"])}</td></tr>')
    if len(data.sessions) > 1:
        rows.append(f'<tr class="total"><td colspan=6>{len(data.sessions)} sessions</td>'
                    f"<td class=num>{totals['trades_opened']} / {totals['trades_closed']}</td>"
                    f"<td class=num>{totals['orders']}</td><td class=num>{_signed(totals['realized_pnl'])}</td>"
                    f"<td class=num>{_signed(totals['total_pnl'])}</td></tr>")
    details = _details(data.sessions[0]) if len(data.sessions) == 1 else ""
    table = f'<table class="summary">{head}{"".join(rows)}</table>'
    return f'<section id="summary"><h2>Summary</h2>{table}{details}</section>'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {seconds % 60:02.0f} s"


def _details(s: dict[str, Any]) -> str:
    summary = s["summary"] or {}
    items = [("config", s["config"]), ("ended (UTC)", iso(s["ended_ms"]) or "(not journaled)")]
    if summary:
        orders = summary.get("orders") or {}
        guard = summary.get("guard") or {}
        items += [("book updates", f"{summary.get('loops', 0):,}, avg {summary.get('avg_loop_ms', 0) * 1000:.1f} µs"),
                  ("orders", ", ".join(f"{k} {orders[k]}" for k in ("sent", "filled", "cancelled", "rejected")
                                       if k in orders)),
                  ("guard (per order leg)", f"{guard.get('checks', 0)} checks, {guard.get('allowed', 0)} allowed, "
                                   f"{guard.get('blocked', 0)} blocked" if guard.get("active") else "not run"),
                  ("last premium", "  ".join(f"{k} {v:+.2f}%" for k, v in
                                             (summary.get("last_premium_pct") or {}).items())),
                  ("unhedged exposure", summary.get("exposure_detail") or "none"),
                  ("journal write errors", str((summary.get("journal") or {}).get("write_errors", 0)))]
    if s["entries_refused"]:
        items.append(("entries refused", s["entries_refused"]))
    cells = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items)
    return f'<dl class="details">{cells}</dl>'


def _trades(data: ReportData, limit: int = 500) -> str:
    head = ("<tr><th>session</th><th class=num>trade</th><th>asset</th><th>direction</th><th>opened</th>"
            "<th>closed</th><th class=num>entry %</th><th class=num>exit %</th><th class=num>PnL</th></tr>")
    rows = [f"<tr><td><code>{escape(t['session_id'])}</code></td><td class=num>{t['trade_id']}</td>"
            f"<td>{escape(t['asset'])}</td><td>{escape(t['direction'])}</td><td>{iso(t['opened_ms'])}</td>"
            f"<td>{iso(t['closed_ms']) or 'open'}</td><td class=num>{_signed(t['entry_premium_pct'], 3)}</td>"
            f"<td class=num>{_signed(t['exit_premium_pct'], 3)}</td><td class=num>{_signed(t['realized_pnl'])}</td>"
            "</tr>" for t in data.trades[:limit]]
    more = f"<p class=meta>… and {len(data.trades) - limit} more.</p>" if len(data.trades) > limit else ""
    body = f"<table>{head}{''.join(rows)}</table>{more}" if rows else "<p class=meta>No trade was opened.</p>"
    return f'<section id="trades"><h2>Trades</h2>{body}</section>'
