"""Pacing simulated time against the wall clock, or not at all.

Both paper sources share this so "realtime" means the same thing for each:
wait on the stop event (never ``time.sleep``) so ``close()`` takes effect at
once, and stamp books with the wall clock the rest of the session ages them by.
"""

from __future__ import annotations

import threading
import time


class Pacer:
    def __init__(self, stop: threading.Event, realtime: bool):
        self._stop = stop
        self._realtime = realtime
        self._origin: float | None = None  # monotonic time of simulated offset 0

    def wait_until(self, offset_s: float) -> bool:
        """Wait until ``offset_s`` simulated seconds after the first call.

        Returns False once the source is stopped.  A consumer that falls
        behind is not waited for: the next books come at once until caught up.
        """
        if self._stop.is_set():
            return False
        if not self._realtime:
            return True
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - offset_s
        delay = self._origin + offset_s - now
        if delay > 0 and self._stop.wait(delay):
            return False
        return not self._stop.is_set()

    def received_ms(self, simulated_ms: float) -> float:
        return time.time() * 1000.0 if self._realtime else simulated_ms
