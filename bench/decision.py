"""Benchmark 1: one book update that makes an opportunity → both legs guarded,
sized, rounded and scaled, in process.  Target p50 ≤ 25 µs, p99 ≤ 100 µs."""

from __future__ import annotations

import gc
import time

from bench.common import emit, percentile
from bench.fixtures import books_for, live_engine

TARGET = {"p50_us": 25.0, "p99_us": 100.0}


def run(updates: int = 100_000) -> dict:
    engine, pairs, fx_market, gateway = live_engine()
    pair = pairs[0]
    fx, local, ref = books_for(95_000.0, 0.02, 0.0, pair, fx_market)
    engine.on_book(fx)
    engine.on_book(ref)
    # Two opportunity books, alternated, so each update is a real change.
    _, local_b, _ = books_for(95_000.0, 0.021, 0.0, pair, fx_market)
    samples = []
    perf = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i in range(updates):
            book = local if i & 1 else local_b
            now = i * 0.001
            book.received_ms = now
            fx.received_ms = ref.received_ms = now
            start = perf()
            engine.on_book(book)
            samples.append(perf() - start)
    finally:
        gc.enable()
    if gateway.submitted != updates:
        raise SystemExit(f"decision benchmark broken: {gateway.submitted} of {updates} updates produced orders "
                         f"(blocked: {engine.pipeline.last_block_reason})")
    samples.sort()
    figures = {"updates": updates, "p50_us": round(percentile(samples, 50) / 1000, 2),
               "p99_us": round(percentile(samples, 99) / 1000, 2),
               "mean_us": round(sum(samples) / len(samples) / 1000, 2)}
    met = figures["p50_us"] <= TARGET["p50_us"] and figures["p99_us"] <= TARGET["p99_us"]
    return emit("decision_latency", figures, TARGET, met)


if __name__ == "__main__":
    run()
