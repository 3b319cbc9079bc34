"""Benchmark 5: `arb validate-config` on the shipped trading config, wall time
of the whole process (interpreter start included).  Target ≤ 300 ms."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import emit

TARGET = {"wall_ms": 300}
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "live" / "arbitrage_live_upbit_binance_trading.yaml"


def run(repeats: int = 7) -> dict:
    arb = shutil.which("arb") or str(Path(sys.executable).with_name("arb"))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run([arb, "validate-config", str(CONFIG)], capture_output=True, text=True)
        times.append((time.perf_counter() - started) * 1000)
        if proc.returncode not in (0, 2) or "Traceback" in proc.stderr:
            raise SystemExit(f"validate-config failed unexpectedly: {proc.stderr[-500:]}")
    figures = {"runs": repeats, "wall_ms": round(statistics.median(times), 1),
               "min_ms": round(min(times), 1), "exit_code": proc.returncode}
    return emit("startup_validate_config", figures, TARGET, figures["wall_ms"] <= TARGET["wall_ms"])


if __name__ == "__main__":
    run()
