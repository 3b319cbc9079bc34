"""Run every benchmark and print one JSON line each.

    python bench/run.py            # full sizes (a few minutes)
    python bench/run.py --quick    # tiny sizes: checks they run, figures not meaningful
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import decision, replay, scale, startup  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI smoke runs")
    parser.add_argument("--only", action="append", default=[],
                        help="run only these (decision, replay, tick_to_order, scale, startup)")
    args = parser.parse_args(argv)
    q = args.quick
    plan = {
        "decision": lambda: decision.run(updates=2_000 if q else 100_000),
        "replay": lambda: replay.run(updates=5_000 if q else 300_000),
        "scale": lambda: scale.run(pairs=20 if q else 200, seconds=1.0 if q else 20.0,
                                   distinct_steps=5 if q else 50),
        "startup": lambda: startup.run(repeats=1 if q else 7),
    }
    try:
        from bench import tick_to_order
        plan["tick_to_order"] = lambda: tick_to_order.run(opportunities=20 if q else 1_000, quick=q)
    except ImportError:
        pass
    for name, bench in plan.items():
        if not args.only or name in args.only:
            bench()
    return 0


if __name__ == "__main__":
    sys.exit(main())
