"""Run every benchmark and print one JSON line each.

    python bench/run.py            # full sizes (a few minutes)
    python bench/run.py --quick    # tiny sizes: checks they run, figures not meaningful
    python -m bench.replay         # one benchmark alone, from the repository root

Each benchmark runs in its own Python process, so one's memory (replay
keeps its books in memory) never shows in another's peak RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def plan(quick: bool) -> dict[str, str]:
    q = quick
    return {
        "decision": f"decision.run(updates={2_000 if q else 100_000})",
        "replay": f"replay.run(updates={5_000 if q else 300_000})",
        "scale": f"scale.run(pairs={20 if q else 200}, seconds={1.0 if q else 20.0}, "
                 f"distinct_steps={5 if q else 50})",
        "startup": f"startup.run(repeats={1 if q else 7})",
        "tick_to_order": f"tick_to_order.run(opportunities={20 if q else 1_000}, quick={q})",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI smoke runs")
    parser.add_argument("--only", action="append", default=[],
                        help="run only these (decision, replay, scale, startup, tick_to_order)")
    args = parser.parse_args(argv)
    failed = 0
    for name, call in plan(args.quick).items():
        if args.only and name not in args.only:
            continue
        module = name if name != "tick_to_order" else "tick_to_order"
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench import {module}; {call}"
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT)
        failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
