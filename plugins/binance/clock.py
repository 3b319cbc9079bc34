"""Our estimate of Binance's clock, for signed timestamps.

Binance refuses a signed request whose ``timestamp`` is more than 1000 ms
ahead of its clock or older than ``recvWindow``.  A local clock a few
seconds off would make every signed call fail, so we measure the offset
once (and again after a -1021) and stamp requests with local time + offset.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("arb.binance")


class ServerClock:
    """``fetch_server_ms`` asks the exchange for its time (``/api/v3/time``);
    ``local_s`` is our wall clock in seconds (injectable for tests)."""

    def __init__(self, fetch_server_ms: Callable[[], float], local_s: Callable[[], float]):
        self._fetch = fetch_server_ms
        self._local_s = local_s
        self._lock = threading.Lock()
        self.offset_ms: float | None = None

    def local_ms(self) -> float:
        return self._local_s() * 1000.0

    def sync(self) -> float:
        """Measure the offset, assuming the server read its clock halfway
        through the round trip; returns it in ms."""
        before = self.local_ms()
        server = self._fetch()
        after = self.local_ms()
        offset = server - (before + after) / 2.0
        with self._lock:
            self.offset_ms = offset
        log.debug("binance clock offset %+.0f ms (round trip %.0f ms)", offset, after - before)
        return offset

    def now_ms(self) -> int:
        """Binance's current time as best we know it; syncs on first use."""
        if self.offset_ms is None:
            self.sync()
        return int(self.local_ms() + (self.offset_ms or 0.0))
