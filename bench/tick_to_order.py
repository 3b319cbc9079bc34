"""Benchmark 3: tick to order on loopback.

Both exchange emulators run in this process; `arb run --mode live_trading`
runs as its own process against them.  Each round moves the Upbit KRW-BTC
book so the premium appears (arb opens) or goes away (arb closes); the
latency is from just before the emulator pushes that WebSocket update to
the moment it has read the first order POST that answers it.
Target p50 ≤ 2 ms, p99 ≤ 10 ms.

Rounds are paced under Binance's 50 orders / 10 s and Upbit's 12 orders/s,
as a real account would have to be; books other than KRW-BTC do not move,
so the config allows old books (freshness is not what is measured here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY, BinanceEmulator
from arb_upbit.emulator import UpbitEmulator

from bench.common import emit, percentile

TARGET = {"p50_ms": 2.0, "p99_ms": 10.0}
UPBIT_KEYS = ("bench-upbit-access-key-000000000000000001", "bench-upbit-secret-key-000000000000000002")
ROUND_S = 0.22          # ≤ 4.5 orders/s per exchange: under Binance's 5/s
BTC_USDT = 95_000.0
FX = 1_400.0


def ladder(best: float, step: float, size: float, levels: int = 10) -> list[tuple[float, float]]:
    return [(best + i * step, size) for i in range(levels)]


def upbit_book(premium: float) -> tuple[list, list]:
    bid = round(BTC_USDT * FX * (1 + premium), -3)
    return ladder(bid, -1000, 0.5), ladder(bid + 1000, 1000, 0.5)


def start_exchanges() -> tuple[UpbitEmulator, BinanceEmulator]:
    upbit = UpbitEmulator(access_key=UPBIT_KEYS[0], secret_key=UPBIT_KEYS[1],
                          balances={"KRW": 1e9, "BTC": 10.0, "USDT": 0.0}, books={})
    upbit.set_book("KRW-BTC", *upbit_book(0.0))
    upbit.set_book("KRW-USDT", ladder(FX - 1, -1, 1e6), ladder(FX + 1, 1, 1e6))
    binance = BinanceEmulator(balances={"USDT": "1000000", "BTC": "10"})
    binance.set_book("BTCUSDT", ladder(BTC_USDT - 0.01, -0.01, 5.0), ladder(BTC_USDT, 0.01, 5.0))
    return upbit.start(), binance.start()


def config_for(upbit: UpbitEmulator, binance: BinanceEmulator, workdir: Path) -> Path:
    config = {
        "mode": "live_trading",
        "pairs": [{"asset": "BTC"}],
        "exchanges": {
            "upbit": {"rest_url": upbit.rest_url, "ws_url": upbit.ws_url,
                      "api_key_env": "BENCH_UPBIT_KEY", "secret_key_env": "BENCH_UPBIT_SECRET"},
            "binance": {"rest_url": binance.rest_url, "ws_url": binance.ws_url,
                        "api_key_env": "BENCH_BINANCE_KEY", "secret_key_env": "BENCH_BINANCE_SECRET"}},
        "strategy": {"entry_premium_pct": 1.0, "exit_premium_pct": 0.3, "trade_notional": 20,
                     "max_book_age_ms": 3_600_000},
        "live_trading": {"enabled": True, "dry_run_scale": 1.0, "allowed_symbols": ["KRW-BTC", "BTCUSDT"],
                         "min_account_balance": 50, "max_daily_loss": 1_000_000, "max_notional_per_trade": 50},
        "logging": {"level": "WARNING"},
        "monitoring": {"metrics": {"enabled": False}},
    }
    path = workdir / "tick_to_order.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def order_posts(upbit: UpbitEmulator, binance: BinanceEmulator) -> list[float]:
    return sorted(r.received_at for r in upbit.requests_to("POST", "/v1/orders")
                  + binance.requests_to("POST", "/api/v3/order"))


def wait_for_post(upbit, binance, after: float, timeout_s: float = 5.0) -> float | None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        later = [t for t in order_posts(upbit, binance) if t > after]
        if later:
            return later[0]
        time.sleep(0.0002)
    return None


def drive_rounds(upbit, binance, opportunities: int) -> tuple[list[float], int]:
    """Alternate the Upbit book between a 2 % premium and none; time each
    push to the first order POST that answers it (ms)."""
    latencies, missed = [], 0
    premium = 0.02
    for _ in range(opportunities):
        t0 = time.monotonic()
        upbit.set_book("KRW-BTC", *upbit_book(premium))
        arrived = wait_for_post(upbit, binance, t0)
        if arrived is None:
            missed += 1
        else:
            latencies.append((arrived - t0) * 1000)
        premium = 0.0 if premium else 0.02
        time.sleep(max(0.0, ROUND_S - (time.monotonic() - t0)))
    return latencies, missed


def measure_arb(upbit, binance, opportunities: int, workdir: Path) -> tuple[list[float], int]:
    env = {**os.environ, "BENCH_UPBIT_KEY": UPBIT_KEYS[0], "BENCH_UPBIT_SECRET": UPBIT_KEYS[1],
           "BENCH_BINANCE_KEY": EMULATOR_API_KEY, "BENCH_BINANCE_SECRET": EMULATOR_SECRET_KEY,
           "XDG_STATE_HOME": str(workdir)}
    proc = subprocess.Popen([sys.executable, "-m", "arb", "run", "--config", str(config_for(upbit, binance, workdir)),
                             "--summary-json", str(workdir / "summary.json")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    latencies, missed = [], 0
    try:
        # Ready once its streams have asked for the books.
        end = time.monotonic() + 30
        while not (upbit.ws_connections and binance.ws_connections) and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(1.0)  # let the subscription snapshots land before the first round
        latencies, missed = drive_rounds(upbit, binance, opportunities)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return latencies, missed


def run(opportunities: int = 1_000, quick: bool = False) -> dict:
    upbit, binance = start_exchanges()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            latencies, missed = measure_arb(upbit, binance, opportunities, Path(tmp))
    finally:
        upbit.stop()
        binance.stop()
    latencies.sort()
    figures = {"opportunities": opportunities, "measured": len(latencies), "missed": missed,
               "p50_ms": round(percentile(latencies, 50), 3), "p99_ms": round(percentile(latencies, 99), 3)}
    try:
        from bench import ccxt_baseline
        baseline = ccxt_baseline.run(opportunities=max(10, opportunities // (5 if not quick else 1)))
        figures.update({"ccxt_p50_ms": baseline["p50_ms"], "ccxt_p99_ms": baseline["p99_ms"],
                        "ccxt_measured": baseline["measured"],
                        "p50_ratio_to_ccxt": round(figures["p50_ms"] / baseline["p50_ms"], 3)
                        if baseline["p50_ms"] else None})
    except ImportError as exc:
        figures["ccxt"] = f"not measured: {exc}"
    met = bool(latencies) and figures["p50_ms"] <= TARGET["p50_ms"] and figures["p99_ms"] <= TARGET["p99_ms"]
    return emit("tick_to_order", figures, TARGET, met)


if __name__ == "__main__":
    run(opportunities=int(sys.argv[1]) if len(sys.argv) > 1 else 1_000)
