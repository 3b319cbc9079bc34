"""``arb validate-config``: the pre-flight checklist, item by item."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from arb.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "live" / "arbitrage_live_paper_example.yaml"
READONLY = ROOT / "configs" / "live" / "arbitrage_live_upbit_binance_readonly.yaml"
TRADING = ROOT / "configs" / "live" / "arbitrage_live_upbit_binance_trading.yaml"
KEY_VARS = ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY", "BINANCE_API_KEY", "BINANCE_SECRET_KEY")
FAKE_KEYS = {var: f"fake-{var.lower()}-Zq81vXw3Lp0" for var in KEY_VARS}


def validate(*args: str, env: dict | None = None):
    env = {**{var: None for var in KEY_VARS}, **(env or {})}
    result = CliRunner().invoke(app, ["validate-config", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def items(output: str) -> dict[str, tuple[str, str]]:
    """``{item name: (status, detail)}`` from the checklist lines."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"(PASS|FAIL|SKIP)  (.+?): (.*)$", line)
        if match:
            found[match.group(2)] = (match.group(1), match.group(3))
    return found


def trading_config(tmp_path: Path, **live) -> Path:
    data = yaml.safe_load(TRADING.read_text(encoding="utf-8"))
    data["live_trading"].update(live)
    path = tmp_path / "trading.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_shipped_paper_config_passes():
    result = validate(str(PAPER))
    assert result.exit_code == 0, result.output
    checks = items(result.stdout)
    assert checks["config schema"][0] == "PASS"
    assert checks["market source simulator"][0] == "PASS"
    assert checks["guard rules"][0] == "PASS"
    assert checks["API keys in environment"][0] == "SKIP"
    assert not [name for name, (status, _) in checks.items() if status == "FAIL"]
    assert result.stdout.rstrip().endswith("all checks passed")


def test_shipped_trading_config_fails_and_says_why():
    result = validate(str(TRADING))
    assert result.exit_code == 2, result.output
    checks = items(result.stdout)
    assert checks["live_trading.enabled"][0] == "FAIL"
    assert "false" in checks["live_trading.enabled"][1]
    assert checks["allowed_symbols"] == ("FAIL", "empty: every symbol is blocked")
    status, detail = checks["minimum order after dry_run_scale"]
    assert status == "FAIL"
    assert "dry_run_scale 0.01 = 0.40 USDT" in detail and "BTCUSDT minimum is 5.00 USDT" in detail
    for exchange, key, var in (("upbit", "api_key_env", "UPBIT_ACCESS_KEY"),
                               ("upbit", "secret_key_env", "UPBIT_SECRET_KEY"),
                               ("binance", "api_key_env", "BINANCE_API_KEY"),
                               ("binance", "secret_key_env", "BINANCE_SECRET_KEY")):
        assert checks[f"{exchange} {key}"] == ("FAIL", f"${var} is not set")
    # The money limits themselves are consistent: that item passes.
    assert checks["money limits"][0] == "PASS"
    failed = [name for name, (status, _) in checks.items() if status == "FAIL"]
    assert re.search(rf"{len(failed)} check\(s\) failed", result.stdout)


@pytest.mark.parametrize("config", [TRADING, READONLY], ids=["trading", "readonly"])
def test_env_var_names_are_shown_but_never_their_values(config):
    result = validate(str(config), env=FAKE_KEYS)
    checks = items(result.stdout)
    for var in KEY_VARS:
        assert f"${var} is set" in result.output
    for value in FAKE_KEYS.values():
        assert value not in result.output
        assert value[:12] not in result.output  # not even a prefix
    assert checks["upbit api_key_env"][0] == "PASS"


def test_keys_set_only_clears_the_key_items(tmp_path):
    result = validate(str(TRADING), env=FAKE_KEYS)
    assert result.exit_code == 2  # still not ready: disabled, empty whitelist, tiny size
    checks = items(result.stdout)
    assert all(checks[f"{e} {k}"][0] == "PASS" for e in ("upbit", "binance") for k in ("api_key_env", "secret_key_env"))
    assert checks["live_trading.enabled"][0] == "FAIL"


def test_safe_but_complete_trading_config_passes(tmp_path):
    config = trading_config(tmp_path, enabled=True, allowed_symbols=["KRW-BTC", "BTCUSDT"], dry_run_scale=1.0)
    result = validate(str(config), env=FAKE_KEYS)
    assert result.exit_code == 0, result.output
    checks = items(result.stdout)
    assert checks["live_trading.enabled"][0] == "PASS"
    assert checks["allowed_symbols"] == ("PASS", "BTCUSDT, KRW-BTC")
    assert checks["minimum order after dry_run_scale"][0] == "PASS"
    assert not [name for name, (status, _) in checks.items() if status == "FAIL"]
    assert "all checks passed" in result.stdout
    for value in FAKE_KEYS.values():
        assert value not in result.output


def test_same_config_without_keys_fails_only_on_keys(tmp_path):
    config = trading_config(tmp_path, enabled=True, allowed_symbols=["KRW-BTC", "BTCUSDT"], dry_run_scale=1.0)
    result = validate(str(config))
    assert result.exit_code == 2
    failed = {name for name, (status, _) in items(result.stdout).items() if status == "FAIL"}
    assert failed == {"upbit api_key_env", "upbit secret_key_env", "binance api_key_env", "binance secret_key_env"}


def test_empty_whitelist_in_live_trading_is_exit_2(tmp_path):
    config = trading_config(tmp_path, enabled=True, allowed_symbols=[], dry_run_scale=1.0)
    result = validate(str(config), env=FAKE_KEYS)
    assert result.exit_code == 2
    failed = {name for name, (status, _) in items(result.stdout).items() if status == "FAIL"}
    assert failed == {"allowed_symbols"}


def test_mode_override_to_live_trading_runs_the_live_checklist():
    result = validate(str(PAPER), "--mode", "live_trading")
    assert result.exit_code == 2
    checks = items(result.stdout)
    assert "(mode live_trading)" in checks["config schema"][1]
    assert checks["live_trading.enabled"][0] == "PASS"  # the paper rehearsal has it on
    assert checks["minimum order after dry_run_scale"][0] == "FAIL"  # default scale 0.01
    assert checks["upbit api_key_env"][0] == "FAIL"


def test_mode_override_to_paper_skips_the_live_checklist():
    result = validate(str(TRADING), "--mode", "paper")
    assert result.exit_code == 0, result.output
    checks = items(result.stdout)
    assert "(mode paper)" in checks["config schema"][1]
    for name in ("live_trading.enabled", "allowed_symbols", "money limits", "minimum order after dry_run_scale"):
        assert checks[name][0] == "SKIP"
    assert checks["API keys in environment"][0] == "SKIP"


def test_readonly_mode_needs_keys_but_not_the_live_limits():
    result = validate(str(READONLY), env=FAKE_KEYS)
    assert result.exit_code == 0, result.output
    checks = items(result.stdout)
    assert checks["allowed_symbols"][0] == "SKIP"


def test_unknown_mode_is_a_usage_error():
    result = validate(str(PAPER), "--mode", "yolo")
    assert result.exit_code == 2
    assert "yolo" in result.output


def test_missing_file_is_exit_2(tmp_path):
    result = validate(str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "file not found" in result.stderr


def test_a_replay_file_that_is_not_there_fails_the_checklist(tmp_path):
    config = tmp_path / "replay.yaml"
    config.write_text(f"pairs: [{{asset: BTC}}]\nmarket: {{source: replay, replay: {{path: {tmp_path}/none.jsonl}}}}\n",
                      encoding="utf-8")
    result = validate(str(config))
    assert result.exit_code == 2
    status, detail = items(result.stdout)["market source replay"]
    assert status == "FAIL" and "cannot be read" in detail


def test_item_lines_are_not_wrapped(tmp_path):
    # Long details stay on one line, so scripts (and these tests) can read them.
    result = CliRunner().invoke(app, ["validate-config", str(TRADING)], env={"COLUMNS": "40"})
    line = next(l for l in result.stdout.splitlines() if l.startswith("FAIL  minimum order"))
    assert line.endswith("nothing would be sent")


def test_an_unexpected_error_is_exit_1_with_one_line_and_no_traceback(monkeypatch):
    import arb.preflight

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(arb.preflight, "preflight", broken)
    monkeypatch.delenv("ARB_TRACEBACK", raising=False)
    result = CliRunner().invoke(app, ["validate-config", str(PAPER)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "unexpected error: RuntimeError: simulated bug" in result.stderr
    assert "Traceback" not in result.output


def test_the_checklist_tells_what_earlier_live_sessions_left(tmp_path):
    """Read-only: the journal is not changed by validating."""
    import time
    from types import SimpleNamespace

    from arb.journal import Journal
    from arb.models import Fill, Order, OrderIntent, OrderStatus, Side

    config = trading_config(tmp_path, enabled=True, allowed_symbols=["KRW-BTC", "BTCUSDT"], dry_run_scale=1.0)
    journal = tmp_path / "journal.sqlite"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["journal"] = {"path": str(journal)}
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert items(validate(str(config), env=FAKE_KEYS).stdout)["earlier live sessions"][0] == "PASS"

    earlier = Journal(journal, session_id="c0ffee02", mode="live_trading", clock="wall", durable=False)
    sold = OrderIntent("upbit", "KRW-BTC", Side.SELL, 0.0002, 1.0, 1.0, "arbc0ffee02-1")
    lost = OrderIntent("binance", "BTCUSDT", Side.BUY, 0.0002, 1.0, 1.0, "arbc0ffee02-2")
    earlier.start_session("c.yaml", 0.0, "")
    earlier.record_intents(SimpleNamespace(kind="open", asset="BTC", trade_id=1), [sold, lost], time.time() * 1000)
    earlier.order_update(Order(sold, "1", OrderStatus.FILLED, [Fill(0.0002, 1.0, 0.0, 0.0)]))
    earlier.close()
    before = journal.read_bytes()

    result = validate(str(config), env=FAKE_KEYS)
    assert result.exit_code == 0, result.output  # a warning, not a failure: the session deals with it
    line = next(l for l in result.stdout.splitlines() if "earlier live sessions" in l)
    assert line.startswith("WARN")
    assert "1 order(s) without a final state will be reconciled" in line
    assert "unhedged position BTC -0.0002" in line
    assert journal.read_bytes() == before
