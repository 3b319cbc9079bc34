"""``arb run`` end to end: paper sessions on the simulator, exit codes, the
summary JSON, JSON logs, and a clean stop on SIGTERM / Ctrl-C.

Paper sessions run the simulator with ``realtime: false`` and a simulated
``duration_s``, so 90 simulated seconds take about a second and every number
is the same on every run (seeded).
"""

from __future__ import annotations

import copy
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from arb.cli import app

REQUIRED = ("duration_s", "loops", "trades_opened", "trades_closed", "total_pnl", "active_orders",
            "avg_loop_ms", "exit_reason", "guard")
GUARD_REQUIRED = ("checks", "allowed", "blocked", "blocked_by_rule", "session_stop", "session_stops")
RULES = ["enabled", "allowed_symbols", "min_account_balance", "max_daily_loss", "max_notional_per_trade"]
ALL_SYMBOLS = ["KRW-BTC", "BTCUSDT", "KRW-ETH", "ETHUSDT", "KRW-XRP", "XRPUSDT"]
KEY_VARS = ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY", "BINANCE_API_KEY", "BINANCE_SECRET_KEY")
NO_KEYS = {var: None for var in KEY_VARS}

BASE = {
    "mode": "paper",
    "pairs": [{"asset": "BTC"}, {"asset": "ETH"}, {"asset": "XRP"}],
    "strategy": {"entry_premium_pct": 1.0, "exit_premium_pct": 0.3, "trade_notional": 40},
    "market": {"source": "simulator",
               "simulator": {"scenario": "cycle", "seed": 7, "updates_per_second": 10,
                             "realtime": False, "duration_s": 90}},
    "paper": {"run_guards": True},
    "live_trading": {"enabled": True, "allowed_symbols": ALL_SYMBOLS},
}
# 90 simulated seconds x 10 steps/s x (1 fx book + 2 books per pair x 3 pairs)
FULL_RUN_LOOPS = 90 * 10 * (1 + 2 * 3)


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_config(tmp_path: Path, name: str = "config.yaml", **override) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(_merge(BASE, override), sort_keys=False), encoding="utf-8")
    return path


def invoke(*args: str, env: dict | None = None):
    result = CliRunner().invoke(app, list(args), env={**NO_KEYS, **(env or {})})
    # A crash inside a command is caught by the runner: it must never happen.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def run_session(tmp_path: Path, config: Path, *extra: str) -> tuple[object, dict]:
    summary_path = tmp_path / "summary.json"
    result = invoke("run", "--config", str(config), "--summary-json", str(summary_path), *extra)
    return result, json.loads(summary_path.read_text(encoding="utf-8"))


def test_paper_session_opens_and_closes_trades(tmp_path):
    result, summary = run_session(tmp_path, write_config(tmp_path))
    assert result.exit_code == 0, result.output
    for key in REQUIRED:
        assert key in summary, key
    assert summary["mode"] == "paper"
    assert summary["exit_reason"] == "market data ended"
    assert summary["loops"] == FULL_RUN_LOOPS
    assert summary["trades_opened"] >= 2
    assert 1 <= summary["trades_closed"] <= summary["trades_opened"]
    assert summary["trades_opened"] - summary["trades_closed"] == summary["open_trades"]
    assert summary["realized_pnl"] != 0
    assert summary["total_pnl"] == pytest.approx(summary["realized_pnl"] + summary["unrealized_pnl"], abs=1e-5)
    assert summary["active_orders"] == 0
    assert 0 < summary["avg_loop_ms"] < 50
    assert 0 < summary["duration_s"] < 60
    guard = summary["guard"]
    for key in GUARD_REQUIRED:
        assert key in guard, key
    assert guard["active"] is True
    assert guard["rules"] == RULES
    # Each opening and closing is two legs, each checked.
    assert guard["checks"] == 2 * (summary["trades_opened"] + summary["trades_closed"])
    assert guard["allowed"] == guard["checks"]
    assert guard["blocked"] == 0 and guard["blocked_by_rule"] == {}
    assert guard["session_stop"] is False and guard["session_stops"] == 0
    # ...and the person at the terminal sees the same numbers.
    assert "Session summary" in result.stdout
    assert f"{summary['trades_opened']} / {summary['trades_closed']}" in result.stdout


def test_summary_without_rehearsal_says_the_guard_did_not_run(tmp_path):
    result, summary = run_session(tmp_path, write_config(tmp_path, paper={"run_guards": False},
                                                         pairs=[{"asset": "BTC"}]))
    assert result.exit_code == 0, result.output
    assert summary["trades_opened"] >= 1
    assert summary["guard"]["active"] is False
    assert summary["guard"]["checks"] == 0
    assert "not run in this mode" in result.stdout


def test_same_seed_same_session(tmp_path):
    config = write_config(tmp_path, pairs=[{"asset": "BTC"}])
    _, first = run_session(tmp_path, config)
    _, second = run_session(tmp_path, config)
    keys = ("loops", "trades_opened", "trades_closed", "realized_pnl", "total_pnl")
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}
    assert first["session_id"] != second["session_id"]


def test_tiny_daily_loss_limit_stops_the_session_with_exit_3(tmp_path):
    # Opening a pair costs fees and spread at once, so the open trade is under
    # water by ~0.12 USDT; the next opening (another pair) breaches 0.01.
    config = write_config(tmp_path, live_trading={"max_daily_loss": 0.01})
    result, summary = run_session(tmp_path, config)
    assert result.exit_code == 3, result.output
    assert summary["exit_reason"] == "session_stop"
    assert "max_daily_loss" in summary["stop_reason"]
    assert summary["loops"] < FULL_RUN_LOOPS  # it really stopped early
    guard = summary["guard"]
    assert guard["session_stops"] >= 1 and guard["session_stop"] is True
    assert guard["blocked_by_rule"].get("max_daily_loss", 0) >= 1
    assert summary["trades_opened"] >= 1
    assert "[ARB_GUARD] BLOCKED rule=max_daily_loss" in result.stderr
    # Seeded: the same config stops at the same place.
    _, again = run_session(tmp_path, config)
    assert (again["loops"], again["trades_opened"], again["guard"]) == \
        (summary["loops"], summary["trades_opened"], summary["guard"])


def test_enabled_false_blocks_every_plan_in_a_rehearsal(tmp_path):
    result, summary = run_session(tmp_path, write_config(tmp_path, live_trading={"enabled": False},
                                                         market={"simulator": {"duration_s": 30}}))
    assert result.exit_code == 0, result.output
    assert summary["trades_opened"] == 0 and summary["trades_closed"] == 0
    assert summary["orders"]["sent"] == 0
    guard = summary["guard"]
    assert set(guard["blocked_by_rule"]) == {"enabled"}
    assert guard["blocked_by_rule"]["enabled"] >= 1
    assert guard["allowed"] == 0
    assert summary["plans_blocked"] >= 1
    assert summary["exit_reason"] == "market data ended"


@pytest.mark.parametrize("mode", ["live_trading", "live_readonly"])
def test_live_modes_without_keys_exit_2_with_a_message(tmp_path, mode):
    # No keys in the environment: the session must refuse before touching a network.
    result = invoke("run", "--config", str(write_config(tmp_path)), "--mode", mode,
                    "--max-runtime-seconds", "2")
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr
    assert ("live client" in result.stderr) or ("UPBIT_ACCESS_KEY" in result.stderr
                                               and "not set" in result.stderr), result.stderr
    assert "Session summary" not in result.stdout


def test_log_format_json_makes_every_stderr_line_json(tmp_path):
    config = write_config(tmp_path, pairs=[{"asset": "BTC"}],
                          market={"simulator": {"duration_s": 30}})
    result = invoke("run", "--config", str(config), "--log-format", "json", "--log-level", "DEBUG")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) >= 3
    records = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    for record in records:
        assert {"ts", "level", "logger", "message"} <= set(record)
    messages = [r["message"] for r in records]
    assert any(re.match(r"session \w+ started", m) for m in messages)
    assert any(m.startswith("[ARB_GUARD] allowed") for m in messages)  # DEBUG reached the log


def test_log_format_json_errors_are_json_too(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs: [{asset: BTC}]\nlive_trading: {max_daily_los: 5}\n", encoding="utf-8")
    result = invoke("run", "--config", str(bad), "--log-format", "json")
    assert result.exit_code == 2
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(records) == 1
    assert records[0]["level"] == "ERROR"
    assert any("did you mean 'max_daily_loss'" in p for p in records[0]["problems"])


@pytest.mark.parametrize("where", ["missing_dir", "is_dir", "under_a_file"])
def test_unwritable_summary_path_fails_before_the_session(tmp_path, where):
    target = {"missing_dir": tmp_path / "no" / "such" / "dir" / "s.json",
              "is_dir": tmp_path,
              "under_a_file": tmp_path / "config.yaml" / "s.json"}[where]
    config = write_config(tmp_path)
    result = invoke("run", "--config", str(config), "--summary-json", str(target))
    assert result.exit_code == 2, result.output
    assert "--summary-json" in result.stderr and str(target) in result.stderr
    assert "Session summary" not in result.stdout  # refused up front, nothing ran
    assert not re.search(r"session \w+ started", result.stderr)


def test_summary_path_check_leaves_no_file_behind(tmp_path):
    # The writability probe must not leave an empty file when the run is refused later.
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs: [{asset: BTC}]\nguards: {no_such_rule: {enabled: true}}\n", encoding="utf-8")
    target = tmp_path / "s.json"
    result = invoke("run", "--config", str(bad), "--summary-json", str(target))
    assert result.exit_code == 2
    assert "no_such_rule" in result.stderr
    assert not target.exists()


def test_max_runtime_ends_a_realtime_session(tmp_path):
    config = write_config(tmp_path, pairs=[{"asset": "BTC"}],
                          market={"simulator": {"realtime": True, "duration_s": None}})
    started = time.monotonic()
    result, summary = run_session(tmp_path, config, "--max-runtime-seconds", "0.5")
    assert result.exit_code == 0, result.output
    assert summary["exit_reason"] == "max_runtime"
    assert 0.4 <= summary["duration_s"] < 5
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("value", ["nan", "0", "-1", "soon"])
def test_bad_runtime_is_a_usage_error(tmp_path, value):
    result = invoke("run", "--config", str(write_config(tmp_path)), "--max-runtime-seconds", value)
    assert result.exit_code == 2
    assert "--max-runtime-seconds" in result.stderr
    assert "Session summary" not in result.stdout


def test_missing_config_file_is_exit_2(tmp_path):
    result = invoke("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "file not found" in result.stderr


# --- real processes ---------------------------------------------------------------


def _arb(*args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS and k != "ARB_TRACEBACK"}
    return subprocess.Popen([sys.executable, "-m", "arb", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def _lines(stream) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue, pattern: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got:\n{''.join(seen)}")


def _drain(lines: queue.Queue, timeout: float = 10) -> str:
    """Everything left on a stream, up to its end (the process has exited)."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        if line is None:
            return "".join(out)
        out.append(line)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_a_realtime_run_cleanly(tmp_path, signum):
    config = write_config(tmp_path, pairs=[{"asset": "BTC"}],
                          market={"simulator": {"realtime": True, "duration_s": None}})
    summary_path = tmp_path / "summary.json"
    proc = _arb("run", "--config", str(config), "--summary-json", str(summary_path))
    try:
        stdout, stderr = _lines(proc.stdout), _lines(proc.stderr)
        _wait_for(stderr, r"session \w+ started", timeout=20)
        proc.send_signal(signum)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err, out = _drain(stderr), _drain(stdout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"received {signal.Signals(signum).name}" in err
    assert "Session summary" in out
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["exit_reason"] == "interrupted"
    assert summary["stop_reason"] == ""


def test_python_dash_m_arb_end_to_end(tmp_path):
    good = write_config(tmp_path, pairs=[{"asset": "BTC"}], market={"simulator": {"duration_s": 30}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs: [{asset: BTC}]\nlive_trading:\n  dry_run_scale: 1.5\n", encoding="utf-8")
    stop = write_config(tmp_path, "stop.yaml", live_trading={"max_daily_loss": 0.01})
    codes = {}
    for name, args in {"ok": ("run", "--config", str(good)),
                       "bad": ("run", "--config", str(bad)),
                       "stop": ("run", "--config", str(stop)),
                       "usage": ("run", "--config", str(good), "--mode", "sideways")}.items():
        proc = _arb(*args)
        out, err = proc.communicate(timeout=60)
        codes[name] = proc.returncode
        assert "Traceback" not in out + err, (name, err)
        if name == "bad":
            assert "live_trading.dry_run_scale (line 3): must be <= 1, got 1.5" in err
    assert codes == {"ok": 0, "bad": 2, "stop": 3, "usage": 2}


def test_an_in_process_run_leaves_logging_and_signals_as_it_found_them(tmp_path):
    import logging

    arb_logger = logging.getLogger("arb")
    before = (arb_logger.handlers[:], arb_logger.level, arb_logger.propagate,
              signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    result = invoke("run", "--config", str(write_config(tmp_path, pairs=[{"asset": "BTC"}],
                                                         market={"simulator": {"duration_s": 5}})),
                    "--log-level", "DEBUG")
    assert result.exit_code == 0
    after = (arb_logger.handlers[:], arb_logger.level, arb_logger.propagate,
             signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert after == before
