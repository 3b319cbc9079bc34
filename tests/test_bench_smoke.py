"""Every benchmark runs at tiny sizes and prints its JSON line (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {"decision_latency": "p50_us", "replay_throughput": "updates_per_s", "scale_200_pairs": "cpu_share",
            "startup_validate_config": "wall_ms", "tick_to_order": "p50_ms"}


def test_every_benchmark_prints_its_line():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    by_name = {line["benchmark"]: line for line in lines}
    assert set(by_name) == set(EXPECTED)
    for name, key in EXPECTED.items():
        line = by_name[name]
        assert isinstance(line[key], (int, float)), (name, line)
        assert line["target"] and line["machine"]["python"]
        assert "target_met" in line
    assert by_name["tick_to_order"]["measured"] > 0
