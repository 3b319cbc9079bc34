"""Charts for ``arb report``, drawn as inline SVG by hand.

Why no chart library: a report is an audit artefact, mailed and attached to
incident notes long after the session, so it has to open anywhere, offline,
for years.  Plotly would inline about 4 MB of JavaScript into every report
and add a dependency to a trading bot's supply chain for the sake of zoom;
SVG written here needs nothing, keeps a report to tens of kilobytes, runs no
script at all (so it opens in viewers that block JavaScript), prints well,
and is deterministic text a test can read.  What it gives up is zoom and
pan: long series are thinned to each pixel column's minimum and maximum, so
spikes survive, and every marker carries a native tooltip (``<title>``).

The drawing functions return an ``<svg>`` element as a string, the
``*_figure`` functions a ``<figure>`` for the page; :data:`CSS` styles them.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, Callable, Sequence

from arb.journal_queries import iso

if TYPE_CHECKING:
    from arb.report import ReportData

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
#: The plot area's margins: left (y labels), right, top, bottom (x labels).
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 12, 28
Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    """One line; each segment is drawn apart (a gap between sessions is not bridged)."""

    name: str
    color: str
    segments: Sequence[Sequence[Point]]
    step: bool = False
    dots: bool = False


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    kind: str  # "entry" (triangle up, filled) or "exit" (triangle down, hollow)
    color: str
    title: str
    attrs: dict[str, str] = field(default_factory=dict)


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def thin(points: Sequence[Point], buckets: int) -> list[Point]:
    """At most ~2 x ``buckets`` points: each bucket's lowest and highest, in time order."""
    if len(points) <= 2 * buckets:
        return list(points)
    lo_x, hi_x = points[0][0], points[-1][0]
    width = (hi_x - lo_x) / buckets or 1.0
    out: list[Point] = []
    group: list[Point] = []
    edge = lo_x + width
    for point in points:
        if point[0] > edge and group:
            out.extend(_extremes(group))
            group = []
            edge = lo_x + (math.floor((point[0] - lo_x) / width) + 1) * width
        group.append(point)
    out.extend(_extremes(group))
    return out


def _extremes(group: list[Point]) -> list[Point]:
    low = min(group, key=lambda p: p[1])
    high = max(group, key=lambda p: p[1])
    return [low] if low is high else sorted((low, high))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


_TIME_STEPS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
                 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def time_ticks(lo_ms: float, hi_ms: float, count: int = 6) -> tuple[list[float], Callable[[float], str]]:
    """Tick positions on round UTC times, and how to label them."""
    span_s = max((hi_ms - lo_ms) / 1000.0, 1e-3)
    step = next((s for s in _TIME_STEPS_S if span_s / s <= count), _TIME_STEPS_S[-1]) * 1000.0
    first = math.ceil(lo_ms / step) * step
    ticks = [first + i * step for i in range(int((hi_ms - first) // step) + 1)]
    days = {time.gmtime(t / 1000.0)[:3] for t in ticks}
    if span_s >= 86400 or len(days) > 1:
        pattern = "%m-%d %H:%M"
    else:
        pattern = "%H:%M:%S" if step < 60_000 or span_s < 600 else "%H:%M"
    if step < 1000:  # a burst of orders: the seconds alone would not tell ticks apart
        return ticks, lambda ms: time.strftime("%H:%M:%S", time.gmtime(round(ms) // 1000)) + f".{round(ms) % 1000:03d}"
    return ticks, lambda ms: time.strftime(pattern, time.gmtime(ms / 1000.0))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _label(value: float) -> str:
    return f"{value:,.6g}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


class _Frame:
    """Maps data to pixels inside the margins and draws the axes."""

    def __init__(self, width: int, height: int, x_range: Point, y_range: Point):
        self.width, self.height = width, height
        self.x0, self.x1 = x_range
        lo, hi = y_range
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 1e-6)
        self.y0, self.y1 = lo - pad, hi + pad
        self.w = width - _LEFT - _RIGHT
        self.h = height - _TOP - _BOTTOM

    def px(self, x: float) -> float:
        return _LEFT + (x - self.x0) / ((self.x1 - self.x0) or 1.0) * self.w

    def py(self, y: float) -> float:
        return _TOP + (self.y1 - y) / ((self.y1 - self.y0) or 1.0) * self.h

    def axes(self, x_ticks: Sequence[float], x_label: Callable[[float], str], y_label: Callable[[float], str],
             zero_line: bool) -> list[str]:
        parts = [f'<g class="axis">']
        for y in nice_ticks(self.y0, self.y1, 4):
            py = _num(self.py(y))
            parts.append(f'<line class="gridline" x1="{_LEFT}" x2="{_LEFT + self.w}" y1="{py}" y2="{py}"/>'
                         f'<text x="{_LEFT - 6}" y="{py}" text-anchor="end" dy="0.32em">{escape(y_label(y))}</text>')
        for x in x_ticks:
            px = _num(self.px(x))
            parts.append(f'<line class="tick" x1="{px}" x2="{px}" y1="{_TOP + self.h}" y2="{_TOP + self.h + 4}"/>'
                         f'<text x="{px}" y="{self.height - 8}" text-anchor="middle">{escape(x_label(x))}</text>')
        if zero_line and self.y0 < 0 < self.y1:
            py = _num(self.py(0.0))
            parts.append(f'<line class="zero" x1="{_LEFT}" x2="{_LEFT + self.w}" y1="{py}" y2="{py}"/>')
        parts.append(f'<rect class="frame" x="{_LEFT}" y="{_TOP}" width="{self.w}" height="{self.h}"/></g>')
        return parts


def _svg(width: int, height: int, css_class: str, label: str, body: list[str]) -> str:
    return (f'<svg class="{css_class}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>")


def time_chart(series: Sequence[Series], markers: Sequence[Marker] = (), *, x_range: Point, label: str,
               y_format: Callable[[float], str] = _label, width: int = 1180, height: int = 160,
               zero_line: bool = True) -> str:
    """Lines over time (x in ms since the epoch, UTC), with trade markers on top."""
    ys = [y for s in series for seg in s.segments for _, y in seg] + [m.y for m in markers]
    frame = _Frame(width, height, x_range, (min(ys), max(ys)) if ys else (0.0, 1.0))
    ticks, x_label = time_ticks(*x_range)
    body = frame.axes(ticks, x_label, y_format, zero_line)
    for s in series:
        for segment in s.segments:
            points = thin(segment, max(frame.w // 2, 1))
            if s.step:
                points = [p for a, b in zip(points, points[1:]) for p in (a, (b[0], a[1]))] + points[-1:]
            path = " ".join(f"{_num(frame.px(x))},{_num(frame.py(y))}" for x, y in points)
            body.append(f'<polyline class="series" stroke="{s.color}" points="{path}"><title>{escape(s.name)}'
                        "</title></polyline>")
            if s.dots:
                body.extend(f'<circle class="dot" cx="{_num(frame.px(x))}" cy="{_num(frame.py(y))}" r="2" '
                            f'fill="{s.color}"/>' for x, y in points)
    for m in markers:
        x, y = frame.px(m.x), frame.py(m.y)
        tip = -6 if m.kind == "entry" else 6
        shape = f"M{_num(x)},{_num(y + tip)} L{_num(x - 5)},{_num(y - tip)} L{_num(x + 5)},{_num(y - tip)} Z"
        extra = "".join(f' {k}="{escape(v)}"' for k, v in m.attrs.items())
        body.append(f'<path class="marker {m.kind}" d="{shape}" stroke="{m.color}" '
                    f'fill="{m.color if m.kind == "entry" else "#fff"}"{extra}><title>{escape(m.title)}</title></path>')
    return _svg(width, height, "chart time", label, body)


def bar_chart(rows: Sequence[tuple[str, float, str]], *, label: str, width: int = 560) -> str:
    """Horizontal bars: (label, value, colour), largest first as given."""
    row_h, left = 26, 230
    height = _TOP + row_h * max(len(rows), 1) + _BOTTOM
    top = max((v for _, v, _ in rows), default=1.0) or 1.0
    span = width - left - 70
    body = []
    for i, (name, value, fill) in enumerate(rows):
        y = _TOP + i * row_h
        w = max(value / top * span, 1.0)
        body.append(f'<g class="bar"><text class="name" x="{left - 8}" y="{y + row_h / 2}" text-anchor="end" '
                    f'dy="0.32em">{escape(name)}</text><rect x="{left}" y="{y + 4}" width="{_num(w)}" '
                    f'height="{row_h - 8}" fill="{fill}"><title>{escape(name)}: {value:,.0f}</title></rect>'
                    f'<text class="value" x="{_num(left + w + 6)}" y="{y + row_h / 2}" dy="0.32em">{value:,.0f}'
                    "</text></g>")
    return _svg(width, height, "chart bars", label, body)


def histogram(values: Sequence[float], *, label: str, unit: str = "ms", width: int = 560, height: int = 220) -> str:
    """A histogram of ``values``; one bar when they are all the same."""
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    if hi - lo < 1e-9:  # all alike (paper orders: 0 ms): one narrow bar on a short axis
        edges = [lo, lo + 1.0]
    else:
        ticks = nice_ticks(lo, hi, 20)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else hi - lo
        start = math.floor(lo / step) * step
        edges = [start + i * step for i in range(int((hi - start) / step) + 2)]
    counts = [0] * (len(edges) - 1)
    for v in values:
        counts[min(int((v - edges[0]) / (edges[1] - edges[0])), len(counts) - 1)] += 1
    x_range = (edges[0], edges[-1]) if len(counts) > 1 else (lo - 0.5, lo + 10.0)
    frame = _Frame(width, height, x_range, (0.0, max(counts, default=1) / 1.08))
    frame.y0 = 0.0
    x_ticks = nice_ticks(max(x_range[0], 0.0) if lo >= 0 else x_range[0], x_range[1], 5)
    body = frame.axes(x_ticks, lambda v: f"{_label(v)} {unit}", lambda c: f"{c:g}" if c == int(c) else "", False)
    for left, right, count in zip(edges, edges[1:], counts):
        if count:
            x, w = frame.px(left), max(frame.px(right) - frame.px(left) - 1, 1.0)
            body.append(f'<rect class="bin" x="{_num(x)}" y="{_num(frame.py(count))}" width="{_num(w)}" '
                        f'height="{_num(frame.py(0) - frame.py(count))}"><title>{_label(left)}–{_label(right)} '
                        f"{unit}: {count} order(s)</title></rect>")
    return _svg(width, height, "chart histogram", label, body)


def message(text: str, *, label: str, width: int = 560, height: int = 80) -> str:
    """A chart-sized box that says why there is nothing to draw."""
    return _svg(width, height, "chart empty", label,
                [f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" dy="0.32em">{escape(text)}</text>'])


# --- the report's figures ------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#222;
 margin:0 auto;padding:16px 24px;max-width:1200px;background:#fff}
h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:0 0 6px}h3{font-size:13px;margin:4px 0 0}
.meta,figcaption{color:#555;font-size:12.5px}figure{margin:18px 0 0}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:600;border-top:1px solid #999}
.pos{color:#1a7f37}.neg{color:#c62828}.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 32px}
svg.chart{display:block;max-width:100%;height:auto;font:11px sans-serif}
svg .axis text{fill:#555}svg .gridline{stroke:#eee}svg .tick{stroke:#999}svg .frame{fill:none;stroke:#ccc}
svg .zero{stroke:#999;stroke-dasharray:4 3}svg .series{fill:none;stroke-width:1.5}
svg .marker{stroke-width:1.5}svg .bin{fill:#1f77b4}svg .bar .value,svg .bar .name{fill:#333}
svg.empty text{fill:#777;font-size:13px}dl.details{display:grid;grid-template-columns:repeat(2,max-content 1fr);
 gap:3px 14px;font-size:13px;margin:8px 0 0}dl.details dt{font-weight:600}dl.details dd{margin:0}
"""
_OUTCOME_COLORS = {"blocked": "#d62728", "skipped": "#ff7f0e", "shadow": "#7f7f7f"}


def figure(fid: str, title: str, body: str, caption: str) -> str:
    return f'<figure id="{fid}"><h2>{escape(title)}</h2>{body}<figcaption>{caption}</figcaption></figure>'


def premium_figure(data: ReportData) -> str:
    assets = sorted(set(data.premiums) | {t["asset"] for t in data.trades})
    panels = []
    for i, asset in enumerate(assets):
        tint = color(i)
        markers = []
        for t in (t for t in data.trades if t["asset"] == asset):
            name = f"trade {t['trade_id']} {asset} {t['direction']} (session {t['session_id']})"
            attrs = {"data-trade": str(t["trade_id"]), "data-session": t["session_id"]}
            if t["entry_premium_pct"] is not None:
                markers.append(Marker(t["opened_ms"], t["entry_premium_pct"], "entry", tint,
                                      f"{name}: entry at {t['entry_premium_pct']:+.3f}%, {iso(t['opened_ms'])}", attrs))
            if t["closed_ms"] is not None and t["exit_premium_pct"] is not None:
                pnl = "" if t["realized_pnl"] is None else f", PnL {t['realized_pnl']:+.4f}"
                markers.append(Marker(t["closed_ms"], t["exit_premium_pct"], "exit", tint,
                                      f"{name}: exit at {t['exit_premium_pct']:+.3f}%, {iso(t['closed_ms'])}{pnl}",
                                      attrs))
        series = [Series(f"{asset} premium", tint, data.premiums.get(asset, []), dots=bool(data.unsampled))]
        chart = time_chart(series, markers, x_range=data.x_range, label=f"{asset} premium, %",
                           y_format=lambda v: f"{v:+.2f}%")
        panels.append(f'<div class="panel" data-asset="{escape(asset)}"><h3>{escape(asset)}</h3>{chart}</div>')
    if not panels:
        panels.append(message("no premium was journaled: no sample, no plan, no trade", label="premium",
                              width=1180))
    caption = "Premium, %, at the FX rate of the moment; ▲ trade entries, ▽ exits (hover for the trade). "
    if len(data.unsampled) < len(data.sessions):
        caption += "The line is the premium sampled about once a second. "
    if data.unsampled:
        which = ("this report" if len(data.unsampled) == len(data.sessions) else
                 "session(s) " + ", ".join(data.unsampled))
        caption += (f"<strong>No premium samples were journaled</strong> for {escape(which)}, so there the line "
                    "joins the premiums seen when a plan met the guard chain and at trade entries and exits: it "
                    "shows the premium only at those moments.")
    return figure("premium", "Premium per pair over time", "".join(panels), caption)


def pnl_figure(data: ReportData) -> str:
    if not data.pnl:
        return figure("pnl", "Cumulative realized PnL", message("no PnL was booked", label="PnL", width=1180), "")
    points = [(data.x_range[0], 0.0)] + [(x, total) for x, total, _, _ in data.pnl]
    final = data.pnl[-1][1]
    chart = time_chart([Series("cumulative realized PnL", "#1a7f37" if final >= 0 else "#c62828", [points],
                               step=True)], x_range=data.x_range, label="cumulative realized PnL", height=200)
    sources = sorted({source for _, _, _, source in data.pnl})
    return figure("pnl", "Cumulative realized PnL", chart,
                  f"Every change of realized PnL, in the reference currency, summed: {final:+.4f} after "
                  f"{len(data.pnl)} booking(s) ({escape(', '.join(sources))}).")


def blocks_figure(data: ReportData) -> str:
    refused = sum(n for _, _, n, _ in data.refusals)
    stops = sum(s for _, _, _, s in data.refusals)
    if not data.refusals:
        text = (f"no plan refused: {data.plans_allowed} allowed" if data.plans_allowed
                else "no guard decision journaled (the chain does not run on paper unless paper.run_guards)")
        return figure("guard-blocks", "Guard blocks by rule", message(text, label="guard blocks"), "")
    rows = [(f"{rule or '(no rule)'} · {outcome}", float(n), _OUTCOME_COLORS.get(outcome, "#7f7f7f"))
            for outcome, rule, n, _ in data.refusals]
    listing = ", ".join(f"<code>{escape(rule or '-')}</code> {escape(outcome)} {n:,}" for outcome, rule, n, _ in
                        data.refusals)
    return figure("guard-blocks", "Guard blocks by rule", bar_chart(rows, label="guard blocks by rule"),
                  f"{refused:,} plan(s) refused, {data.plans_allowed:,} allowed; session stops: {stops}. "
                  f"By the rule that refused first: {listing}.")


def latency_stats(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {}
    at = lambda q: ordered[min(int(q * len(ordered)), len(ordered) - 1)]  # noqa: E731
    return {"n": len(ordered), "p50": statistics.median(ordered), "p90": at(0.9), "p99": at(0.99),
            "max": ordered[-1]}


def latency_figure(data: ReportData) -> str:
    values = [ms for _, ms in data.latencies]
    missing = (f" {data.orders_without_state} order(s) have no state journaled (never answered, or the "
               "session crashed)." if data.orders_without_state else "")
    if not values:
        return figure("latency", "Order latency", message("no order was sent", label="order latency"), missing)
    stats = latency_stats(values)
    by_exchange = {ex: latency_stats([ms for e, ms in data.latencies if e == ex])
                   for ex in sorted({e for e, _ in data.latencies})}
    per = "; ".join(f"{escape(ex)}: {s['n']} order(s), median {s['p50']:.1f} ms" for ex, s in by_exchange.items())
    caption = (f"From each order's intent to its first journaled state: {stats['n']} order(s), median "
               f"{stats['p50']:.1f} ms, p90 {stats['p90']:.1f}, p99 {stats['p99']:.1f}, max {stats['max']:.1f} ms "
               f"({per}).{missing}")
    if stats["max"] == 0:
        caption += (" Every first state carries its intent's timestamp: paper orders fill at once on the "
                    "session clock.")
    return figure("latency", "Order latency distribution", histogram(values, label="order latency, ms"), caption)
