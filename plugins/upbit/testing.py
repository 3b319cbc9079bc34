"""Helpers for tests against the Upbit emulator (ours and plugin authors').

``running_emulator`` bounds an emulator's life: if a test hangs, a watchdog
stops the servers, so the client under test gets connection errors instead
of waiting forever.  ``Recorder`` collects stream callbacks and lets a test
wait on a condition without fixed sleeps.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterator

from arb.book import OrderBook

from arb_upbit.client import UpbitClient
from arb_upbit.emulator import UpbitEmulator


@contextlib.contextmanager
def running_emulator(max_s: float = 60.0, **options: Any) -> Iterator[UpbitEmulator]:
    emulator = UpbitEmulator(**options).start()
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            emulator.stop()

    watchdog = threading.Timer(max_s, stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield emulator
    finally:
        watchdog.cancel()
        stop()


def client_for(emulator: UpbitEmulator, *, keys: bool = True, **options: Any) -> UpbitClient:
    options.setdefault("timeout_s", 2.0)
    if keys:
        options.setdefault("access_key", emulator.access_key)
        options.setdefault("secret_key", emulator.secret_key)
    return UpbitClient(emulator.rest_url, emulator.ws_url, **options)


class Recorder:
    """Thread-safe sink for ``on_book`` / ``on_status``."""

    def __init__(self) -> None:
        self.books: list[OrderBook] = []
        self.statuses: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def on_book(self, book: OrderBook) -> None:
        with self._cond:
            self.books.append(book)
            self._cond.notify_all()

    def on_status(self, state: str, detail: str) -> None:
        with self._cond:
            self.statuses.append((state, detail))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Wait until ``predicate()`` (checked on every callback), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Woken by every callback; the short cap also catches state
                # that changes without one (a counter on the stream object).
                self._cond.wait(min(left, 0.05))
        return True
