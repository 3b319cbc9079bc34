"""Staying under Binance's request-weight and order-count limits.

Binance counts weight per IP in fixed windows (a calendar minute for
``REQUEST_WEIGHT``) and orders per account (10 s and 1 day), and reports
the counts so far on every answer (``X-MBX-USED-WEIGHT-1M``,
``X-MBX-ORDER-COUNT-10S``).  Going over earns a 429, and carrying on after
a 429 earns an IP ban (418) of minutes to days.  So we count ahead of the
server, let its headers correct us, and wait for the window to roll rather
than send a request that would cross ~90 % of the limit.

The clock and the sleep are injectable, so tests run minutes of windows in
no time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from arb.errors import Banned, RateLimited

log = logging.getLogger("arb.binance")

EXCHANGE = "binance"


@dataclass
class _Window:
    """A fixed window of ``length_s`` seconds and what was used in it."""

    length_s: float
    limit: float
    index: int = -1
    used: float = 0.0

    def roll(self, now: float) -> None:
        index = math.floor(now / self.length_s)
        if index != self.index:
            self.index, self.used = index, 0.0

    def wait_for(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` more fits, 0 if it fits now."""
        self.roll(now)
        if self.used + cost <= self.limit:
            return 0.0
        return (self.index + 1) * self.length_s - now

    def observe(self, sent_at: float, now: float, used: float) -> None:
        # An answer to a request sent in the previous window may count either
        # window: it says nothing reliable about this one.
        self.roll(now)
        if math.floor(sent_at / self.length_s) != self.index:
            return
        # The server also counts other clients on our IP; we also count our
        # own requests still in flight: the larger figure is the safe one.
        self.used = max(self.used, used)


class RateLimiter:
    def __init__(self, *, weight_per_minute: int = 6000, orders_per_10s: int = 50,
                 headroom: float = 0.9, max_wait_s: float = 65.0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self._weight = _Window(60.0, weight_per_minute * headroom)
        self._orders = _Window(10.0, orders_per_10s)
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = 0.0     # after a 429: nothing before this
        self._banned_until = 0.0     # after a 418: refuse, do not wait

    @property
    def banned_until(self) -> float:
        return self._banned_until

    def acquire(self, weight: int, is_order: bool = False) -> float:
        """Reserve room for one request, waiting (bounded) for it if needed;
        returns the time it was reserved at (give it back to :meth:`observe`).

        Raises Banned while a ban lasts, and RateLimited if the wait would
        exceed ``max_wait_s`` (nothing is sent in either case).
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                if now < self._banned_until:
                    left = self._banned_until - now
                    raise Banned(EXCHANGE, f"IP banned by Binance for another {left:.0f} s; not sending",
                                 retry_after_s=left, status=418)
                wait = max(self._paused_until - now, self._weight.wait_for(now, weight),
                           self._orders.wait_for(now, 1) if is_order else 0.0)
                if wait <= 0:
                    self._weight.used += weight
                    if is_order:
                        self._orders.used += 1
                    return now
            if waited + wait > self._max_wait_s:
                raise RateLimited(EXCHANGE, f"request would exceed the rate limit for {wait:.0f} s more; "
                                  "not sending", retry_after_s=wait)
            log.info("binance rate limit: waiting %.2f s for the window to roll", wait)
            self._sleep(wait)
            waited += wait

    def observe(self, headers: Mapping[str, str], sent_at: float) -> None:
        """Take the server's counts from the headers of an answer to a
        request reserved at ``sent_at``."""
        weight = _header_number(headers, "X-MBX-USED-WEIGHT-1M")
        orders = _header_number(headers, "X-MBX-ORDER-COUNT-10S")
        with self._lock:
            now = self._clock()
            if weight is not None:
                self._weight.observe(sent_at, now, weight)
            if orders is not None:
                self._orders.observe(sent_at, now, orders)

    def pause(self, seconds: float) -> None:
        """A 429: send nothing for ``seconds`` (Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def ban(self, seconds: float) -> None:
        """A 418: refuse every request for ``seconds``."""
        with self._lock:
            self._banned_until = max(self._banned_until, self._clock() + seconds)
        log.error("binance banned this IP for %.0f s; no request will be sent until then", seconds)

    # --- read-only views, for monitoring ---------------------------------------------

    def headroom(self) -> dict[str, dict[str, float]]:
        """``request_weight_1m`` and ``orders_10s``: ``used`` in the current
        window (ours or the server's count, the larger), the ``limit`` this
        client holds requests back at (weight: 90 % of Binance's), and what
        ``remaining`` could go now (0 while a 429 pause lasts)."""
        with self._lock:
            now = self._clock()
            paused = now < self._paused_until
            return {"request_weight_1m": _usage(self._weight, now, paused),
                    "orders_10s": _usage(self._orders, now, paused)}

    def banned_for_s(self) -> float:
        """Seconds an HTTP 418 ban still lasts (0 when there is none)."""
        with self._lock:
            return max(0.0, self._banned_until - self._clock())


def _usage(window: _Window, now: float, paused: bool) -> dict[str, float]:
    # Read without rolling the window: looking must not change what acquire sees.
    used = window.used if math.floor(now / window.length_s) == window.index else 0.0
    remaining = 0.0 if paused else max(0.0, window.limit - used)
    return {"used": used, "limit": window.limit, "remaining": remaining}


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
