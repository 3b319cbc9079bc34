"""The Binance book stream against the emulator's real WebSocket server.

Every wait is a bounded poll on a condition (tiny intervals), never a fixed
sleep, and the whole file stays well under ten seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import pytest

from arb.backoff import Backoff
from arb.book import OrderBook

from arb_binance.client import BinanceClient
from arb_binance.emulator import BinanceEmulator
from arb_binance.stream import BinanceBookStream, stream_url

DEADLINE_S = 5.0


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Recorder:
    def __init__(self) -> None:
        self.books: list[OrderBook] = []
        self.statuses: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def on_book(self, book: OrderBook) -> None:
        with self._lock:
            self.books.append(book)

    def on_status(self, state: str, detail: str) -> None:
        with self._lock:
            self.statuses.append((state, detail))

    def asks(self, symbol: str) -> list[list[tuple[float, float]]]:
        with self._lock:
            return [b.asks for b in self.books if b.symbol == symbol]

    def states(self) -> list[str]:
        with self._lock:
            return [state for state, _ in self.statuses]


@pytest.fixture
def emulator() -> Iterator[BinanceEmulator]:
    with BinanceEmulator() as emu:
        emu.set_book("BTCUSDT", [(50000.0, 1.0)], [(50010.0, 1.0)])
        emu.set_book("ETHUSDT", [(3000.0, 5.0)], [(3000.5, 5.0)])
        yield emu


@pytest.fixture
def running(emulator) -> Iterator[tuple[BinanceEmulator, BinanceBookStream, Recorder]]:
    client = BinanceClient(emulator.rest_url, emulator.ws_url, timeout_s=2.0,
                           stream_backoff=lambda: Backoff(base_s=0.02, cap_s=0.1))
    recorder = Recorder()
    stream = client.book_stream(["BTCUSDT", "ETHUSDT"], recorder.on_book, recorder.on_status)
    stream.start()
    try:
        yield emulator, stream, recorder
    finally:
        client.close()    # stops the stream too


def test_stream_url_is_combined_and_lower_case():
    assert stream_url("wss://stream.binance.com:9443/", ["BTCUSDT", "ETHUSDT"]) == \
        "wss://stream.binance.com:9443/stream?streams=btcusdt@depth20@100ms/ethusdt@depth20@100ms"


def test_delivers_snapshots_then_changes(running):
    emulator, stream, recorder = running
    wait_for(lambda: recorder.asks("BTCUSDT") and recorder.asks("ETHUSDT"), "first books")
    assert stream.connected and recorder.states()[0] == "connected"
    first = recorder.books[0]
    assert first.exchange == "binance" and first.received_ms > 0 and first.problem() is None
    emulator.set_book("BTCUSDT", [(50001.0, 2.0)], [(50005.0, 0.5)])
    wait_for(lambda: [(50005.0, 0.5)] in recorder.asks("BTCUSDT"), "the changed book")


def test_each_connect_fetches_a_rest_snapshot_per_symbol(running):
    emulator, stream, recorder = running
    wait_for(lambda: len(emulator.requests_to("GET", "/api/v3/depth")) >= 2, "REST snapshots")
    symbols = {r.query.split("&")[0] for r in emulator.requests_to("GET", "/api/v3/depth")}
    assert symbols == {"symbol=BTCUSDT", "symbol=ETHUSDT"}


def test_reconnects_after_a_drop_and_delivers_again(running):
    emulator, stream, recorder = running
    wait_for(lambda: stream.connected and recorder.asks("BTCUSDT"), "connection")
    emulator.drop_websockets()
    wait_for(lambda: stream.reconnects >= 1 and stream.connected, "reconnect after drop")
    assert "disconnected" in recorder.states() and "reconnecting" in recorder.states()
    emulator.set_book("BTCUSDT", [(49000.0, 1.0)], [(49001.0, 1.0)])
    wait_for(lambda: [(49001.0, 1.0)] in recorder.asks("BTCUSDT"), "a book after the reconnect")


def test_server_shutdown_event_makes_it_reconnect(running):
    emulator, stream, recorder = running
    wait_for(lambda: stream.connected and len(emulator.ws_connections) == 1, "connection")
    emulator.server_shutdown(close=False)   # only the event: leaving is up to the client
    wait_for(lambda: stream.reconnects >= 1 and stream.connected, "reconnect after serverShutdown")
    assert ("disconnected", "serverShutdown") in recorder.statuses
    emulator.set_book("ETHUSDT", [(2999.0, 1.0)], [(2999.5, 1.0)])
    wait_for(lambda: [(2999.5, 1.0)] in recorder.asks("ETHUSDT"), "a book after the reconnect")


def test_gap_after_reconnect_is_filled_by_rest(running):
    emulator, stream, recorder = running
    wait_for(lambda: stream.connected, "connection")
    before = len(emulator.requests_to("GET", "/api/v3/depth"))
    emulator.drop_websockets()
    wait_for(lambda: stream.reconnects >= 1 and len(emulator.requests_to("GET", "/api/v3/depth")) >= before + 2,
             "REST snapshots after the reconnect")


def test_stop_is_prompt_and_final(running):
    emulator, stream, recorder = running
    wait_for(lambda: stream.connected, "connection")
    started = time.monotonic()
    stream.stop()
    assert time.monotonic() - started < 2.0
    assert not stream.connected and recorder.states()[-1] == "disconnected"
    wait_for(lambda: not emulator.ws_connections, "the server to see the close")


def test_a_failing_consumer_does_not_kill_the_feed(emulator):
    client = BinanceClient(emulator.rest_url, emulator.ws_url, timeout_s=2.0)
    seen: list[OrderBook] = []

    def flaky(book: OrderBook) -> None:
        seen.append(book)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    stream = client.book_stream(["BTCUSDT"], flaky, lambda *_: None)
    stream.start()
    try:
        wait_for(lambda: len(seen) >= 2, "books after the consumer failed")
        emulator.set_book("BTCUSDT", [(1.0, 1.0)], [(2.0, 1.0)])
        wait_for(lambda: any(b.asks == [(2.0, 1.0)] for b in seen), "the next change")
    finally:
        client.close()


def test_keeps_retrying_while_the_server_is_down():
    # A port nobody listens on: the stream backs off and stays stoppable.
    statuses: list[str] = []
    stream = BinanceBookStream("ws://127.0.0.1:9", ["BTCUSDT"], lambda b: None,
                               lambda s, d: statuses.append(s), lambda s, n: (None, 0),
                               backoff=Backoff(base_s=0.01, cap_s=0.02), open_timeout_s=0.5)
    stream.start()
    wait_for(lambda: statuses.count("reconnecting") >= 3, "several reconnect attempts")
    stream.stop()
    assert not stream.connected and stream.reconnects == 0 and "connected" not in statuses
