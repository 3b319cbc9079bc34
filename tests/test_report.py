"""``arb report`` end to end: a real paper session through ``python -m arb run``, then the
HTML report of its journal, read back: self-contained, the summary as printed, one chart per
figure, every trade's entry and exit marked, the guard rules that refused plans.

The session is the seeded simulator (``realtime: false``): 90 simulated seconds in about two
real ones.  Its whitelist leaves out XRPUSDT and its notional limit sits inside the range the
simulator's prices move through, so the guard chain refuses plans by two rules.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from arb.cli import app

SYMBOLS = ["KRW-BTC", "BTCUSDT", "KRW-ETH", "ETHUSDT", "KRW-XRP"]  # not XRPUSDT: XRP is refused
CONFIG = {
    "mode": "paper",
    "pairs": [{"asset": "BTC"}, {"asset": "ETH"}, {"asset": "XRP"}],
    "strategy": {"entry_premium_pct": 1.0, "exit_premium_pct": 0.3, "trade_notional": 40},
    "market": {"source": "simulator",
               "simulator": {"scenario": "cycle", "seed": 7, "updates_per_second": 10, "realtime": False,
                             "duration_s": 90}},
    "paper": {"run_guards": True},
    "live_trading": {"enabled": True, "allowed_symbols": SYMBOLS, "max_notional_per_trade": 40.35},
    "journal": {"path": "journal.sqlite"},  # relative: next to the config
}
FIGURES = ("premium", "pnl", "guard-blocks", "latency")
KEY_VARS = ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY", "BINANCE_API_KEY", "BINANCE_SECRET_KEY", "ARB_TRACEBACK")


def _arb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    return subprocess.run([sys.executable, "-m", "arb", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One recorded paper session: (folder, config, journal, summary, printed output)."""
    folder = tmp_path_factory.mktemp("session")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    run = _arb("run", "--config", str(config), "--summary-json", str(folder / "summary.json"), cwd=folder)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return folder, config, folder / "journal.sqlite", summary, run.stdout


@pytest.fixture(scope="module")
def report(recorded):
    folder, config, journal, summary, _ = recorded
    before = hashlib.sha256(journal.read_bytes()).hexdigest()
    made = _arb("report", "--config", str(config), "--out", str(folder / "report.html"), cwd=folder)
    assert made.returncode == 0, made.stdout + made.stderr
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before, "the report wrote to the journal"
    assert f"({summary['session_id']})" in made.stdout
    return (folder / "report.html").read_text(encoding="utf-8")


def _figure(html: str, fid: str) -> str:
    found = re.search(rf'<figure id="{fid}">(.*?)</figure>', html, re.S)
    assert found, f"no figure {fid!r} in the report"
    return found.group(1)


def _samples(journal: Path) -> int:
    with sqlite3.connect(journal) as conn:
        return conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'premium_sample'").fetchone()[0]


def test_the_report_is_self_contained(report):
    assert report.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script|<link|<iframe|<img|@import", report, re.I), "the report loads something"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", report, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", report, re.I)


def test_the_summary_table_shows_the_figures_the_session_printed(recorded, report):
    _, _, _, summary, printed = recorded
    assert summary["trades_opened"] > 0 and summary["trades_closed"] > 0, "the session must trade"
    total = f"{summary['total_pnl']:+.4f}"
    assert total in printed  # as print_summary shows it
    row = re.search(rf'<tr class="session" data-session="{summary["session_id"]}">(.*?)</tr>', report, re.S)
    assert row, "the session has no row in the summary table"
    assert f'<td class="num trades">{summary["trades_opened"]} / {summary["trades_closed"]}</td>' in row.group(1)
    assert re.search(rf'class="num total-pnl"><span[^>]*>{re.escape(total)}</span>', row.group(1))
    assert f"arb report: session {summary['session_id']}" in report


def test_one_chart_per_figure(report):
    for fid in FIGURES:
        assert "<svg" in _figure(report, fid), f"figure {fid!r} has no chart"
    assert len(re.findall(r'<figure id="', report)) == len(FIGURES)


def test_the_premium_chart_marks_every_entry_and_exit(recorded, report):
    _, _, journal, summary, _ = recorded
    premium = _figure(report, "premium")
    for asset in ("BTC", "ETH", "XRP"):
        assert f'data-asset="{asset}"' in premium
    assert premium.count('class="marker entry"') == summary["trades_opened"]
    assert premium.count('class="marker exit"') == summary["trades_closed"]
    fallback = "No premium samples were journaled" in premium
    assert fallback == (_samples(journal) == 0)  # the chart says where its line comes from


def test_the_guard_blocks_name_the_rules(recorded, report):
    _, _, _, summary, _ = recorded
    assert summary["guard"]["blocked"] > 0
    blocks = _figure(report, "guard-blocks")
    with sqlite3.connect(recorded[2]) as conn:
        rules = {r for (r,) in conn.execute("SELECT DISTINCT rule FROM guard_decisions WHERE outcome = 'blocked'")}
    assert "allowed_symbols" in rules
    for rule in rules:
        assert f"{rule} · blocked" in blocks and f"<code>{rule}</code>" in blocks


def test_latency_and_pnl_show_what_the_journal_holds(recorded, report):
    summary = recorded[3]
    latency = _figure(report, "latency")
    assert f"{summary['orders']['sent']} order(s)" in latency
    assert "paper orders fill at once" in latency  # paper latency is 0 on the session clock
    assert f"{summary['realized_pnl']:+.4f} after" in _figure(report, "pnl")


def test_premium_samples_draw_the_line_when_journaled(recorded, tmp_path):
    """The session's premium publisher (events of kind premium_sample) replaces the fallback."""
    _, _, journal, summary, _ = recorded
    copy = tmp_path / "journal.sqlite"
    shutil.copy(journal, copy)
    with sqlite3.connect(copy) as conn:
        start, end = conn.execute("SELECT MIN(opened_ms), MAX(closed_ms) FROM trades").fetchone()
        conn.execute("DELETE FROM events WHERE kind = 'premium_sample'")
        conn.executemany("INSERT INTO events (session_id, ts_ms, kind, detail) VALUES (?, ?, 'premium_sample', ?)",
                         [(summary["session_id"], ts, json.dumps({"premiums": {"BTC": 1.0 + i / 1000, "ETH": 0.5}}))
                          for i, ts in enumerate(range(int(start), int(end) + 1, 1000))])
    result = _invoke("report", "--path", str(copy), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    premium = _figure((tmp_path / "r.html").read_text(encoding="utf-8"), "premium")
    assert "No premium samples" not in premium and "sampled about once a second" in premium
    assert 'data-asset="BTC"' in premium and 'data-asset="ETH"' in premium
    assert premium.count('class="marker entry"') == summary["trades_opened"]


def test_default_is_the_latest_session_and_a_range_takes_every_session(recorded, tmp_path):
    _, _, journal, summary, _ = recorded
    copy = tmp_path / "journal.sqlite"
    shutil.copy(journal, copy)
    with sqlite3.connect(copy) as conn:
        started = conn.execute("SELECT started_ms FROM sessions").fetchone()[0]
        conn.execute("INSERT INTO sessions (id, mode, clock, config, started_ms) VALUES "
                     "('later', 'paper', 'simulated', 'x.yaml', ?)", (started + 1000.0,))
        # On the same simulated clock as the first session: drawn from when it started, after it.
        conn.execute("INSERT INTO pnl (session_id, ts_ms, trading_day, amount, source) "
                     "SELECT 'later', MIN(ts_ms), '2026-01-01', 1.0, 'trade_closed' FROM pnl")
    latest = tmp_path / "latest.html"
    assert _invoke("report", "--path", str(copy), "--out", str(latest)).exit_code == 0
    html = latest.read_text(encoding="utf-8")
    assert "arb report: session later" in html and summary["session_id"] not in html
    assert "(no end journaled" in html and "No trade was opened" in html
    day = time.strftime("%Y-%m-%d", time.gmtime(started / 1000.0))
    both = tmp_path / "both.html"
    result = _invoke("report", "--path", str(copy), "--from", day, "--to", day, "--out", str(both))
    assert result.exit_code == 0, result.output
    html = both.read_text(encoding="utf-8")
    assert "arb report: 2 sessions" in html and summary["session_id"] in html and 'data-session="later"' in html
    assert 'class="total"' in html
    pnl = _figure(html, "pnl")
    assert f"{summary['realized_pnl'] + 1.0:+.4f} after {summary['trades_closed'] + 1} booking(s)" in pnl
    xs = [float(point.split(",")[0]) for point in re.search(r'points="([^"]+)"', pnl).group(1).split()]
    assert xs == sorted(xs), "the cumulative PnL must run forward in time"


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.mark.parametrize("args, message", [
    (["--path", "{tmp}/missing.sqlite"], "no journal at"),
    (["--path", "{journal}", "--session", "nosuch"], "no session 'nosuch'"),
    (["--path", "{journal}", "--from", "2001-01-01", "--to", "2001-01-31"], "no session started from 2001-01-01"),
    (["--path", "{journal}", "--from", "2001-02-30"], "not a date"),
    (["--path", "{journal}", "--from", "2001-02-02", "--to", "2001-02-01"], "is after --to"),
    (["--path", "{journal}", "--session", "x", "--from", "2001-01-01"], "not both"),
    (["--path", "{journal}", "--config", "{tmp}/config.yaml"], "not both"),
    (["--path", "{tmp}/not-a-journal.sqlite"], "not an arb journal"),
    (["--path", "{journal}", "--out", "{tmp}"], "is a directory"),
])
def test_errors_exit_2_with_a_message(recorded, tmp_path, args, message):
    (tmp_path / "not-a-journal.sqlite").write_text("hello", encoding="utf-8")
    (tmp_path / "config.yaml").write_text("mode: paper\n", encoding="utf-8")
    fill = {"tmp": str(tmp_path), "journal": str(recorded[2])}
    result = _invoke("report", *(a.format(**fill) for a in args), *([] if "--out" in args else
                                                                    ["--out", str(tmp_path / "r.html")]))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_an_empty_journal_says_so(tmp_path):
    from arb.journal import connect

    connect(tmp_path / "empty.sqlite", create=True).close()
    result = _invoke("report", "--path", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "holds no session yet" in result.stderr
