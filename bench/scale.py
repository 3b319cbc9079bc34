"""Benchmark 4: 200 pairs, each book updating 10 times a second, one process.

The books are generated before the clock starts (the simulator's own cost
is not the bot's), then replayed at their real pace: every 100 ms a fresh
snapshot of every market, stamped with the wall clock, goes through the
paper session's engine.  CPU share is process CPU time over wall time,
memory the peak resident set.  Target ≤ 25 % of one core and ≤ 200 MB.
The journal is on, as in a real session, in a temporary folder: a
benchmark must not write into the user's own journal.
"""

from __future__ import annotations

import itertools
import resource
import shutil
import tempfile
import time

from arb.config import parse_config
from arb.plugins import load_registry
from arb.session import build_session

from bench.common import emit

TARGET = {"cpu_share": 0.25, "rss_mb": 200}
STEP_S = 0.1


def _assets(n: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"Z{letters[i // 26 % 26]}{letters[i % 26]}" for i in range(n)]


def run(pairs: int = 200, seconds: float = 20.0, distinct_steps: int = 50) -> dict:
    assets = _assets(pairs)
    folder = tempfile.mkdtemp(prefix="arb-bench-journal-")
    try:
        return _measure(assets, folder, seconds, distinct_steps)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _measure(assets: list[str], folder: str, seconds: float, distinct_steps: int) -> dict:
    pairs = len(assets)
    config = parse_config(
        "mode: paper\n"
        f"pairs: [{', '.join('{asset: %s}' % a for a in assets)}]\n"
        f"market: {{source: simulator, simulator: {{scenario: cycle, seed: 3, realtime: false, "
        f"duration_s: {distinct_steps * STEP_S}, updates_per_second: {1 / STEP_S}}}}}\n"
        "paper: {run_guards: true, balances: {upbit: {KRW: 100000000}, binance: {USDT: 100000}}}\n"
        f"journal: {{path: {folder}/journal.sqlite}}\n")
    session = build_session(config, load_registry())
    markets = 1 + 2 * pairs
    books = [b for b in session.source.events() if b is not None]
    steps = [books[i:i + markets] for i in range(0, len(books), markets)]
    engine = session.engine
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    next_step = wall0
    for step in itertools.cycle(steps):
        now = time.perf_counter()
        if now >= deadline:
            break
        if next_step > now:
            time.sleep(next_step - now)
        stamp = time.time() * 1000
        for book in step:
            book.received_ms = stamp
            engine.on_book(book)
        next_step += STEP_S
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    session.close("benchmark done")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"pairs": pairs, "seconds": round(wall, 2), "updates": engine.updates,
               "updates_per_s": round(engine.updates / wall), "cpu_share": round(cpu / wall, 3),
               "rss_mb": round(rss_mb, 1)}
    met = figures["cpu_share"] <= TARGET["cpu_share"] and figures["rss_mb"] <= TARGET["rss_mb"]
    return emit("scale_200_pairs", figures, TARGET, met)


if __name__ == "__main__":
    run()
