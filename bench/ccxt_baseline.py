"""The bot most people would write instead: ccxt's async WebSocket client
watching the books, its REST client placing the order (benchmark only).

Same emulators, same rounds as bench.tick_to_order.  One difference, stated
rather than hidden: the Binance emulator serves the combined partial-depth
stream arb uses, not the diff-depth stream ccxt's watch_order_book expects,
so this bot watches Upbit (the book that moves in these rounds) over
WebSocket and takes Binance's book from one REST snapshot.
"""

from __future__ import annotations

import asyncio
import threading
import time

import ccxt.pro as ccxtpro

from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY

from bench.common import percentile
from bench.tick_to_order import UPBIT_KEYS, drive_rounds, start_exchanges, upbit_book

ENTRY = 0.01


async def bot(upbit_emu, binance_emu, stop: threading.Event, ready: threading.Event) -> None:
    up = ccxtpro.upbit({"apiKey": UPBIT_KEYS[0], "secret": UPBIT_KEYS[1]})
    up.urls["api"] = {"public": upbit_emu.rest_url, "private": upbit_emu.rest_url, "ws": upbit_emu.ws_url}
    bn = ccxtpro.binance({"apiKey": EMULATOR_API_KEY, "secret": EMULATOR_SECRET_KEY,
                          "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                                      "fetchCurrencies": False, "fetchMargins": False,
                                      "adjustForTimeDifference": True}})
    bn.urls["api"]["public"] = bn.urls["api"]["private"] = binance_emu.rest_url + "/api/v3"
    try:
        await up.load_markets()
        await bn.load_markets()
        ref = await bn.fetch_order_book("BTC/USDT")
        fx_book = await up.fetch_order_book("USDT/KRW")
        fx = (fx_book["bids"][0][0] + fx_book["asks"][0][0]) / 2
        holding = False
        ready.set()
        while not stop.is_set():
            book = await up.watch_order_book("BTC/KRW")
            premium = book["bids"][0][0] / fx / ref["asks"][0][0] - 1
            if not holding and premium >= ENTRY:
                await asyncio.gather(up.create_order("BTC/KRW", "limit", "sell", 0.0002, book["bids"][0][0]),
                                     bn.create_order("BTC/USDT", "limit", "buy", 0.0002, ref["asks"][0][0]))
                holding = True
            elif holding and premium < 0.003:
                await asyncio.gather(up.create_order("BTC/KRW", "limit", "buy", 0.0002, book["asks"][0][0]),
                                     bn.create_order("BTC/USDT", "limit", "sell", 0.0002, ref["bids"][0][0]))
                holding = False
    finally:
        await up.close()
        await bn.close()


def run(opportunities: int = 200) -> dict:
    upbit, binance = start_exchanges()
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def thread_main() -> None:
        try:
            asyncio.run(bot(upbit, binance, stop, ready))
        except BaseException as exc:  # reported below, the benchmark must not hang
            errors.append(exc)
            ready.set()

    worker = threading.Thread(target=thread_main, daemon=True)
    worker.start()
    latencies, missed = [], 0
    try:
        if not ready.wait(30) or errors:
            raise RuntimeError(f"ccxt bot did not start: {errors[0] if errors else 'timeout'}")
        time.sleep(1.0)
        latencies, missed = drive_rounds(upbit, binance, opportunities)
    finally:
        stop.set()
        upbit.set_book("KRW-BTC", *upbit_book(0.0))  # wake the watcher so it sees stop
        worker.join(timeout=10)
        upbit.stop()
        binance.stop()
    if errors and not latencies:
        raise RuntimeError(f"ccxt bot failed: {errors[0]!r}")
    latencies.sort()
    return {"measured": len(latencies), "missed": missed,
            "p50_ms": round(percentile(latencies, 50), 3), "p99_ms": round(percentile(latencies, 99), 3)}


if __name__ == "__main__":
    print(run(20))
