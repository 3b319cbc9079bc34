"""`arb validate-config --online` against the exchange emulators."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY, BinanceEmulator
from arb_upbit.emulator import UpbitEmulator

UPBIT_ACCESS, UPBIT_SECRET = "online-upbit-access-key-00000000000000001", "online-upbit-secret-key-0000000000000002"


@pytest.fixture
def exchanges():
    upbit = UpbitEmulator(access_key=UPBIT_ACCESS, secret_key=UPBIT_SECRET).start()
    binance = BinanceEmulator()
    binance.set_book("BTCUSDT", [(94_990.0, 1.0)], [(95_000.0, 1.0)])
    binance.start()
    yield upbit, binance
    upbit.stop()
    binance.stop()


def validate(tmp_path, upbit, binance, *, binance_secret=EMULATOR_SECRET_KEY):
    config = {
        "mode": "live_trading", "pairs": [{"asset": "BTC"}],
        "exchanges": {
            "upbit": {"rest_url": upbit.rest_url, "ws_url": upbit.ws_url,
                      "api_key_env": "ONLINE_UPBIT_KEY", "secret_key_env": "ONLINE_UPBIT_SECRET"},
            "binance": {"rest_url": binance.rest_url, "ws_url": binance.ws_url,
                        "api_key_env": "ONLINE_BINANCE_KEY", "secret_key_env": "ONLINE_BINANCE_SECRET"}},
        "strategy": {"trade_notional": 40},
        "live_trading": {"enabled": True, "dry_run_scale": 1.0, "allowed_symbols": ["KRW-BTC", "BTCUSDT"]},
    }
    path = tmp_path / "online.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "ONLINE_UPBIT_KEY": UPBIT_ACCESS, "ONLINE_UPBIT_SECRET": UPBIT_SECRET,
           "ONLINE_BINANCE_KEY": EMULATOR_API_KEY, "ONLINE_BINANCE_SECRET": binance_secret, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "arb", "validate-config", str(path), "--online"],
                          env=env, capture_output=True, text=True, timeout=60)
    for secret in (UPBIT_SECRET, binance_secret, EMULATOR_SECRET_KEY):
        assert secret not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = {line.split(":", 1)[0].strip(): line for line in proc.stdout.splitlines() if ":" in line}
    return proc, lines


def test_everything_in_order_passes(tmp_path, exchanges):
    proc, lines = validate(tmp_path, *exchanges)
    assert proc.returncode == 0, proc.stdout
    for item in ("upbit reachable", "binance reachable", "binance clock", "upbit keys", "binance keys"):
        assert lines[f"PASS  {item}"], item
    assert lines["SKIP  upbit clock"]


def test_withdrawal_permission_fails_the_checklist(tmp_path, exchanges):
    upbit, binance = exchanges
    binance.withdrawals_enabled = True
    proc, lines = validate(tmp_path, upbit, binance)
    assert proc.returncode == 2
    assert "withdraw" in lines["FAIL  binance key permissions"].lower()


def test_rejected_key_and_skewed_clock_are_named(tmp_path, exchanges):
    upbit, binance = exchanges
    binance.server_offset_ms = 30_000
    proc, lines = validate(tmp_path, upbit, binance, binance_secret="not-the-emulators-secret-000000")
    assert proc.returncode == 2
    assert "FAIL  binance clock" in lines
    skew = int(re.search(r"skew ([+-]\d+) ms", lines["FAIL  binance clock"]).group(1))
    assert 29_000 <= skew <= 31_000  # the emulator's +30 s, give or take the round trip
    assert "FAIL  binance keys" in lines
    assert "PASS  upbit keys" in lines


def test_unreachable_exchange_fails(tmp_path, exchanges):
    upbit, binance = exchanges
    gone = SimpleNamespace(rest_url=binance.rest_url, ws_url=binance.ws_url)
    binance.stop()
    proc, lines = validate(tmp_path, upbit, gone)
    assert proc.returncode == 2
    assert "FAIL  binance reachable" in lines
