"""Benchmark 2: replay throughput of the whole paper pipeline on one core.

Book updates are generated up front by the simulator (the "cycle"
scenario: the premium swings through the entry and exit thresholds, so a
realistic share of updates are opportunities), then fed to a paper
session's engine: pricing, the guard chain, simulated fills, and the
journal (on, in a temporary folder, as in a real session: intents committed
before each order, everything else queued to its writer thread).  The time
to drain what is still queued after the last update is reported apart.
``--no-journal`` measures the same without it.
Target ≥ 200,000 updates/s.
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
import time

from arb.config import parse_config
from arb.plugins import load_registry
from arb.session import build_session

from bench.common import emit

TARGET = {"updates_per_s": 200_000}

CONFIG = """
mode: paper
pairs: [{asset: BTC}, {asset: ETH}, {asset: XRP}]
strategy: {entry_premium_pct: 1.0, exit_premium_pct: 0.3, trade_notional: 40}
market:
  source: simulator
  simulator: {scenario: cycle, seed: 11, realtime: false, duration_s: %(duration)s, updates_per_second: 10}
paper:
  run_guards: true
  balances:
    upbit: {KRW: 100000000, BTC: 10, ETH: 100, XRP: 100000}
    binance: {USDT: 100000, BTC: 10, ETH: 100, XRP: 100000}
journal: {enabled: %(journal)s, path: "%(journal_path)s"}
live_trading:
  enabled: true
  allowed_symbols: [KRW-BTC, BTCUSDT, KRW-ETH, ETHUSDT, KRW-XRP, XRPUSDT]
  min_account_balance: 50
  max_daily_loss: 1000000
  max_notional_per_trade: 50
"""


def run(updates: int = 300_000, journal: bool = True) -> dict:
    steps_per_s = 10 * 7  # 7 books per simulated step (fx + 3 pairs × 2), 10 steps/s
    duration = max(1, updates // steps_per_s)
    folder = tempfile.mkdtemp(prefix="arb-bench-journal-")
    try:
        config = CONFIG % {"duration": duration, "journal": str(journal).lower(),
                           "journal_path": f"{folder}/journal.sqlite"}
        session = build_session(parse_config(config), load_registry())
        books = list(b for b in session.source.events() if b is not None)
        engine = session.engine
        gc.collect()
        started = time.perf_counter()
        cpu_started = time.process_time()
        for book in books:
            engine.on_book(book)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        drain_started = time.perf_counter()
        session.close("bench")
        drain = time.perf_counter() - drain_started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    portfolio = engine.portfolio
    figures = {"updates": len(books), "updates_per_s": round(len(books) / elapsed),
               "cpu_s": round(cpu, 3), "trades_opened": portfolio.trades_opened,
               "trades_closed": portfolio.trades_closed, "journal": "on" if journal else "off"}
    if journal:
        figures["journal_drain_ms"] = round(drain * 1000, 1)
    return emit("replay_throughput", figures, TARGET, figures["updates_per_s"] >= TARGET["updates_per_s"])


if __name__ == "__main__":
    run(journal="--no-journal" not in sys.argv[1:])
