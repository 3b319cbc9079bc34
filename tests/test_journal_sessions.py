"""The journal around whole sessions: limits that survive a restart or ``kill -9``,
the operator's clear-stop, and `arb journal` for people and scripts.

Sessions that must carry over run on the wall clock (the realtime
simulator): a simulated market's days are fiction.  The trading day is made
to start twelve hours from now, so no test straddles its boundary.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml
from typer.testing import CliRunner

from arb.cli import app
from arb.journal import connect
from arb.journal_queries import day_window

from emulated import (arb_run, binance_posts, kill_9_once_both_have_orders, kill_9_when, premium_exchanges,
                      running, upbit_posts, write_live_config)

ALL_SYMBOLS = ["KRW-BTC", "BTCUSDT", "KRW-ETH", "ETHUSDT", "KRW-XRP", "XRPUSDT"]
KEY_VARS = ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY", "BINANCE_API_KEY", "BINANCE_SECRET_KEY")


def far_from_the_boundary() -> str:
    hour = (time.gmtime().tm_hour + 12) % 24
    return f"{hour:02d}:00"


def config(tmp_path: Path, *, realtime: bool = True, name: str = "c.yaml", **override) -> Path:
    data = {
        "mode": "paper",
        "pairs": [{"asset": "BTC"}, {"asset": "ETH"}, {"asset": "XRP"}],
        "strategy": {"entry_premium_pct": 1.0, "exit_premium_pct": 0.3, "trade_notional": 40},
        "market": {"source": "simulator", "simulator": {"scenario": "cycle", "seed": 7, "updates_per_second": 10,
                                                        "realtime": realtime, "duration_s": None if realtime else 90}},
        "paper": {"run_guards": True},
        "live_trading": {"enabled": True, "allowed_symbols": ALL_SYMBOLS},
        "session": {"trading_day_start_utc": far_from_the_boundary()},
        "journal": {"path": str(tmp_path / "journal.sqlite")},
    }
    for key, value in override.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args), env={k: None for k in KEY_VARS})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def run(tmp_path: Path, cfg: Path, seconds: float) -> tuple[object, dict]:
    summary = tmp_path / "summary.json"
    summary.unlink(missing_ok=True)
    result = invoke("run", "--config", str(cfg), "--max-runtime-seconds", str(seconds), "--summary-json", str(summary))
    return result, json.loads(summary.read_text(encoding="utf-8"))


def query(path: Path, sql: str, *args):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_a_daily_loss_stop_holds_until_the_operator_clears_it(tmp_path):
    cfg = config(tmp_path, live_trading={"max_daily_loss": 0.01})
    # Opening a pair costs fees and spread at once, so the next opening breaches 0.01.
    first, summary = run(tmp_path, cfg, 20)
    assert first.exit_code == 3, first.output
    assert "max_daily_loss" in summary["stop_reason"] and summary["trades_opened"] >= 1

    again, summary = run(tmp_path, cfg, 2.5)  # entries at +1 % come ~0.6 s into the cycle
    assert again.exit_code == 0, again.output
    assert summary["trades_opened"] == 0 and summary["orders"]["sent"] == 0
    refused = summary["entries_refused"]
    assert "daily-loss stop in force" in refused and "max_daily_loss" in refused and "clear-stop" in refused
    assert "[ARB_JOURNAL] daily-loss stop in force" in again.stderr

    stops = json.loads(invoke("journal", "stops", "--config", str(cfg), "--json").stdout)
    assert len(stops) == 1 and stops[0]["rule"] == "max_daily_loss" and stops[0]["cleared_ms"] is None
    blocks = json.loads(invoke("journal", "blocks", "--config", str(cfg), "--json").stdout)
    assert any(b["rule"] == "max_daily_loss" and b["session_stop"] == 1 for b in blocks)

    assert invoke("journal", "clear-stop", "--config", str(cfg), "--reason", "  ").exit_code == 2
    cleared = invoke("journal", "clear-stop", "--config", str(cfg), "--reason", "fills checked; resume")
    assert cleared.exit_code == 0, cleared.output
    assert "cleared stop" in cleared.stdout and "fills checked; resume" in cleared.stderr

    third, summary = run(tmp_path, cfg, 20)
    assert summary["entries_refused"] == ""
    assert summary["trades_opened"] >= 1, third.output
    journal = tmp_path / "journal.sqlite"
    assert query(journal, "SELECT action, reason FROM operator_actions") == [("clear_stop", "fills checked; resume")]
    assert query(journal, "SELECT cleared_reason FROM session_stops WHERE id = ?", stops[0]["id"]) == \
        [("fills checked; resume",)]


def test_simulated_clock_sessions_carry_nothing_over(tmp_path):
    cfg = config(tmp_path, realtime=False, live_trading={"max_daily_loss": 0.01})
    _, first = run(tmp_path, cfg, 60)
    _, second = run(tmp_path, cfg, 60)
    assert first["exit_reason"] == second["exit_reason"] == "session_stop"
    assert second["entries_refused"] == "" and second["daily_pnl_carried"] == 0
    assert (first["loops"], first["trades_opened"], first["guard"]) == \
        (second["loops"], second["trades_opened"], second["guard"])
    assert query(tmp_path / "journal.sqlite", "SELECT DISTINCT clock FROM session_stops") == [("simulated",)]


def test_todays_losses_from_earlier_sessions_count_toward_max_daily_loss(tmp_path):
    journal = tmp_path / "journal.sqlite"
    now = time.time() * 1000
    conn = connect(journal, create=True)
    conn.execute("INSERT INTO sessions (id, mode, clock, config, started_ms) VALUES ('earlier', 'paper', 'wall', "
                 "'c.yaml', ?)", (now - 60_000,))
    conn.execute("INSERT INTO pnl (session_id, ts_ms, trading_day, amount, source) VALUES ('earlier', ?, 'today', "
                 "-25.0, 'trade_closed')", (now - 30_000,))
    conn.close()
    result, summary = run(tmp_path, config(tmp_path), 10)
    assert result.exit_code == 3, result.output  # the first opening breaches the default 20
    assert summary["daily_pnl_carried"] == -25.0
    assert summary["trades_opened"] == 0 and summary["pnl_by_day"] == {}
    assert "daily PnL -25" in summary["stop_reason"]


def test_live_trading_refuses_to_run_without_the_journal(tmp_path):
    cfg = config(tmp_path, journal={"enabled": False})
    result = invoke("run", "--config", str(cfg), "--mode", "live_trading", "--max-runtime-seconds", "1")
    assert result.exit_code == 2
    assert "live_trading needs the journal" in result.stderr


def test_journal_commands_for_people_and_scripts(tmp_path):
    cfg = config(tmp_path, realtime=False)
    run(tmp_path, cfg, 60)
    sessions = json.loads(invoke("journal", "sessions", "--config", str(cfg), "--json").stdout)
    assert len(sessions) == 1 and sessions[0]["exit_reason"] == "market data ended"
    assert sessions[0]["trades_opened"] >= 2 and sessions[0]["started_utc"]
    trades = json.loads(invoke("journal", "trades", "--path", str(tmp_path / "journal.sqlite"), "--json",
                               "--limit", "2").stdout)
    assert len(trades) == 2 and all(len(t["open_orders"]) == 2 for t in trades)
    table = invoke("journal", "sessions", "--config", str(cfg))
    assert table.exit_code == 0 and sessions[0]["session"] in table.stdout and "market data ended" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["--path", "{tmp}"], "is a directory"),
    (["--path", "{tmp}/none.sqlite"], "no journal at"),
    (["--path", "{tmp}/c.yaml"], "not usable"),
    (["--config", "{tmp}/missing.yaml"], "file not found"),
    (["--config", "{tmp}/c.yaml", "--path", "{tmp}/x"], "not both"),
])
def test_journal_commands_refuse_bad_paths_with_exit_2(tmp_path, args, message):
    config(tmp_path)
    for command in (["sessions"], ["trades", "--json"], ["blocks"], ["stops"], ["clear-stop", "--reason", "r"]):
        result = invoke("journal", *command, *[a.format(tmp=tmp_path) for a in args])
        assert result.exit_code == 2, (command, result.output)
        assert message in result.stderr
    assert not (tmp_path / "none.sqlite").exists()


# --- kill -9 -------------------------------------------------------------------------------


def journal_shows(journal: Path, sql: str) -> Callable[[], bool]:
    def shows() -> bool:
        try:
            return journal.exists() and bool(query(journal, sql)[0][0])
        except sqlite3.OperationalError:  # not created yet
            return False
    return shows


def assert_every_order_has_its_intent(journal: Path) -> set[str]:
    assert query(journal, "PRAGMA integrity_check") == [("ok",)]
    intents = {row[0] for row in query(journal, "SELECT client_order_id FROM order_intents")}
    states = {row[0] for row in query(journal, "SELECT client_order_id FROM order_states")}
    in_trades = set()
    for opened, closed in query(journal, "SELECT open_orders, close_orders FROM trades"):
        in_trades |= set(json.loads(opened)) | set(json.loads(closed or "[]"))
    assert states and in_trades
    assert states <= intents and in_trades <= intents
    return intents


def test_kill_9_loses_no_order_and_not_todays_pnl(tmp_path):
    cfg = config(tmp_path)
    journal = tmp_path / "journal.sqlite"
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    # The cycle opens pairs ~0.6 s in and closes them ~14 s in.
    closed = "SELECT COUNT(*) FROM trades WHERE closed_ms IS NOT NULL"
    kill_9_when(arb_run(cfg), env, journal_shows(journal, closed), closed)
    assert_every_order_has_its_intent(journal)
    killed = query(journal, "SELECT id, ended_ms FROM sessions")
    assert len(killed) == 1 and killed[0][1] is None  # it never got to say goodbye
    day_start = yaml.safe_load(cfg.read_text())["session"]["trading_day_start_utc"]
    start, end = day_window(time.time() * 1000, int(day_start[:2]) * 3_600_000)
    before = query(journal, "SELECT SUM(amount) FROM pnl WHERE ts_ms >= ? AND ts_ms < ?", start, end)[0][0]
    assert before
    _, summary = run(tmp_path, cfg, 0.5)
    assert summary["daily_pnl_carried"] == pytest.approx(before, abs=1e-6)


UPBIT_ACCESS, UPBIT_SECRET = "journal-upbit-access-key-00000000000001", "journal-upbit-secret-key-00000000000002"


@pytest.fixture
def exchanges():
    with running(*premium_exchanges(access_key=UPBIT_ACCESS, secret_key=UPBIT_SECRET)) as both:
        yield both


def test_kill_9_in_live_trading_every_order_an_exchange_saw_is_journaled(tmp_path, exchanges):
    upbit, binance = exchanges
    journal = tmp_path / "journal.sqlite"
    cfg = tmp_path / "live.yaml"
    secrets = write_live_config(cfg, upbit, binance, "J", journal={"path": str(journal)})
    kill_9_once_both_have_orders(cfg, upbit, binance, secrets)
    seen = {p["identifier"] for p in upbit_posts(upbit)} | {p["newClientOrderId"] for p in binance_posts(binance)}
    assert query(journal, "PRAGMA integrity_check") == [("ok",)]
    intents = {row[0] for row in query(journal, "SELECT client_order_id FROM order_intents")}
    assert len(seen) == 2 and seen <= intents
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite*"))
    for value in secrets.values():
        assert value.encode() not in stored
