"""Shared pieces of the benchmarks: machine facts, percentiles, one JSON line each."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def emit(name: str, figures: dict[str, Any], target: dict[str, Any], met: bool | None) -> dict[str, Any]:
    line = {"benchmark": name, **figures, "target": target, "target_met": met, "machine": machine()}
    print(json.dumps(line), flush=True)
    sys.stdout.flush()
    return line
