"""`arb run` in the live modes, through the CLI, against both exchange emulators.

What the emulators actually received is the verdict: orders, their sizes
after dry_run_scale, and nothing at all from a vetoed plan or in read-only.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from arb_binance.emulator import BinanceEmulator
from arb_upbit.emulator import UpbitEmulator

from emulated import arb_run, binance_posts, premium_exchanges, running, upbit_posts, write_live_config

UPBIT_ACCESS, UPBIT_SECRET = "e2e-upbit-access-key-000000000000000001", "e2e-upbit-secret-key-000000000000000002"
RUN_SECONDS = 6


@pytest.fixture
def exchanges():
    with running(*premium_exchanges(access_key=UPBIT_ACCESS, secret_key=UPBIT_SECRET)) as both:
        yield both


def run_live(tmp_path: Path, upbit: UpbitEmulator, binance: BinanceEmulator, mode: str,
             **limits) -> tuple[subprocess.CompletedProcess, dict]:
    path = tmp_path / "live.yaml"
    keys = write_live_config(path, upbit, binance, "E2E", mode=mode, live_trading=limits)
    summary = tmp_path / "summary.json"
    proc = subprocess.run(arb_run(path, "--max-runtime-seconds", str(RUN_SECONDS), "--summary-json", str(summary)),
                          env={**os.environ, **keys}, capture_output=True, text=True, timeout=RUN_SECONDS + 60)
    for secret in keys.values():
        assert secret not in proc.stdout + proc.stderr
        if summary.exists():
            assert secret not in summary.read_text()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc, json.loads(summary.read_text()) if summary.exists() else {}


def test_live_trading_sends_both_legs_scaled_by_dry_run_scale(tmp_path, exchanges):
    upbit, binance = exchanges
    proc, summary = run_live(tmp_path, upbit, binance, "live_trading")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # One opening (max_open_trades 1, the premium never reverts): one order each.
    [body] = upbit_posts(upbit)
    [form] = binance_posts(binance)
    # 40 USDT / 95,000 = 0.000421 → 0.00042 on the coarser lot step; × 0.5 = 0.00021.
    assert body["side"] == "ask" and body["ord_type"] == "limit" and body["time_in_force"] == "ioc"
    assert float(body["volume"]) == pytest.approx(0.00021)
    assert form["side"] == "BUY" and form["type"] == "LIMIT" and form["timeInForce"] == "IOC"
    assert float(form["quantity"]) == pytest.approx(0.00021)
    assert body["identifier"] != form["newClientOrderId"]
    assert summary["trades_opened"] == 1
    assert summary["guard"]["allowed"] == 2 and summary["guard"]["blocked"] == 0
    assert summary["orders"]["sent"] == 2 and summary["orders"]["filled"] == 2
    assert summary["active_orders"] == 0


def test_live_trading_sends_nothing_when_a_leg_is_vetoed(tmp_path, exchanges):
    upbit, binance = exchanges
    # Each leg is ~39.9 USDT: above a 30 USDT cap, so the first leg is vetoed and neither goes out.
    proc, summary = run_live(tmp_path, upbit, binance, "live_trading", max_notional_per_trade=30.0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert upbit.requests_to("POST", "/v1/orders") == []
    assert binance.requests_to("POST", "/api/v3/order") == []
    assert summary["trades_opened"] == 0
    assert summary["guard"]["blocked_by_rule"].get("max_notional_per_trade", 0) >= 1
    assert "[ARB_GUARD] BLOCKED rule=max_notional_per_trade" in proc.stderr


def test_live_trading_with_defaults_disabled_sends_nothing(tmp_path, exchanges):
    upbit, binance = exchanges
    proc, summary = run_live(tmp_path, upbit, binance, "live_trading", enabled=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert upbit.requests_to("POST", "/v1/orders") == [] and binance.requests_to("POST", "/api/v3/order") == []
    assert summary["guard"]["blocked_by_rule"].get("enabled", 0) >= 1


def test_live_readonly_reads_real_data_and_never_sends(tmp_path, exchanges):
    upbit, binance = exchanges
    proc, summary = run_live(tmp_path, upbit, binance, "live_readonly")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert upbit.requests_to("POST", "/v1/orders") == [] and binance.requests_to("POST", "/api/v3/order") == []
    assert upbit.requests_to("GET", "/v1/accounts") and binance.requests_to("GET", "/api/v3/account")
    assert summary["shadow_trades"] >= 1
    assert summary["trades_opened"] == 0
    assert "[ARB_READONLY] order not sent" in proc.stderr


def test_live_mode_without_keys_refuses_to_start(tmp_path, exchanges):
    upbit, binance = exchanges
    config = tmp_path / "nokeys.yaml"
    config.write_text(json.dumps({
        "mode": "live_trading", "pairs": [{"asset": "BTC"}],
        "exchanges": {"upbit": {"rest_url": upbit.rest_url, "ws_url": upbit.ws_url,
                                "api_key_env": "E2E_ABSENT_KEY", "secret_key_env": "E2E_ABSENT_SECRET"},
                      "binance": {"rest_url": binance.rest_url, "ws_url": binance.ws_url}},
    }), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("E2E_", "BINANCE_"))}
    proc = subprocess.run(arb_run(config, "--max-runtime-seconds", "1"), env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "$E2E_ABSENT_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert upbit.requests == [] and binance.requests == []
