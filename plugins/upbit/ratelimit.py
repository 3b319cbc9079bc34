"""Client-side pacing for Upbit's per-group, per-second request limits.

Upbit counts requests per group (``orderbook`` 10/s, ``default`` 30/s,
``order`` 12/s...) and answers 429 when a second's budget is spent; clients
that keep going get 418 and a temporary ban that lengthens with repeats.  So
we pace ourselves before sending instead of learning from 429s:

* our own sliding window per group, slightly longer than a second so network
  jitter cannot squeeze eleven of our requests into one of the server's seconds;
* the server's ``Remaining-Req: group=...; sec=N`` (other processes may share
  the IP or pocket): after it says N, at most N more until a second has passed;
* after a 429 the group waits a second, doubling on repeats;
* after a 418 nothing at all is sent until the ban has passed.

Waiting is bounded: a wait longer than ``max_wait_s`` raises RateLimited
instead of blocking the caller.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping

from arb.errors import Banned, RateLimited

#: Published limits: group -> (requests, per seconds).
GROUP_LIMITS: dict[str, tuple[int, float]] = {
    "market": (10, 1.0),
    "candle": (10, 1.0),
    "trade": (10, 1.0),
    "ticker": (10, 1.0),
    "orderbook": (10, 1.0),
    "default": (30, 1.0),
    "order": (12, 1.0),
    "order-test": (8, 1.0),
    "order-cancel-all": (1, 2.0),
}

_QUOTATION_GROUPS = {
    "/v1/market/all": "market",
    "/v1/ticker": "ticker",
    "/v1/trades/ticks": "trade",
    "/v1/orderbook": "orderbook",
    "/v1/orderbook/instruments": "orderbook",
}


def group_for(method: str, path: str) -> str:
    """The rate-limit group Upbit counts a request in."""
    if path in _QUOTATION_GROUPS:
        return _QUOTATION_GROUPS[path]
    if path.startswith("/v1/candles"):
        return "candle"
    if method == "POST" and path == "/v1/orders":
        return "order"
    if method == "POST" and path == "/v1/orders/test":
        return "order-test"
    if method == "DELETE" and path == "/v1/orders/open":
        return "order-cancel-all"
    return "default"


_HEADER = re.compile(r"group=(?P<group>[\w-]+).*?sec=(?P<sec>\d+)")


def parse_remaining(header: str | None) -> tuple[str, int] | None:
    """``group=default; min=1800; sec=29`` -> ("default", 29); ``min`` is deprecated."""
    match = _HEADER.search(header or "")
    return (match["group"], int(match["sec"])) if match else None


@dataclass
class _Group:
    limit: int
    window_s: float
    sends: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0
    server_left: int | None = None
    server_at: float = 0.0
    sent_since_server: int = 0
    strikes: int = 0


class RateLimiter:
    """Thread-safe; shared by every session of one client."""

    def __init__(self, exchange: str = "upbit", limits: Mapping[str, tuple[int, float]] | None = None, *,
                 margin_s: float = 0.1, max_wait_s: float = 2.0, max_backoff_s: float = 8.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.exchange = exchange
        self._limits = dict(GROUP_LIMITS if limits is None else limits)
        self._margin_s = margin_s
        self._max_wait_s = max_wait_s
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._sleep = sleep
        self._groups: dict[str, _Group] = {}
        self._banned_until = 0.0
        self._lock = threading.Lock()

    def _group(self, name: str) -> _Group:
        group = self._groups.get(name)
        if group is None:
            limit, window = self._limits.get(name, self._limits.get("default", (30, 1.0)))
            group = self._groups[name] = _Group(limit, window + self._margin_s)
        return group

    def acquire(self, name: str) -> None:
        """Block (boundedly) until one more request of group ``name`` may go."""
        while True:
            with self._lock:
                now = self._clock()
                if now < self._banned_until:
                    left = self._banned_until - now
                    raise Banned(self.exchange, f"requests refused for {left:.1f} s more after an HTTP 418 ban",
                                 retry_after_s=left, status=418)
                group = self._group(name)
                wait = self._wait_needed(group, now)
                if wait <= 0:
                    group.sends.append(now)
                    group.sent_since_server += 1
                    return
                if wait > self._max_wait_s:
                    raise RateLimited(self.exchange, f"rate limit of group {name}: next slot in {wait:.2f} s",
                                      retry_after_s=wait)
            self._sleep(wait)

    def _wait_needed(self, group: _Group, now: float) -> float:
        while group.sends and group.sends[0] <= now - group.window_s:
            group.sends.popleft()
        waits = [group.blocked_until - now]
        if len(group.sends) >= group.limit:
            waits.append(group.sends[0] + group.window_s - now)
        if (group.server_left is not None and group.sent_since_server >= group.server_left
                and now < group.server_at + group.window_s):
            waits.append(group.server_at + group.window_s - now)
        return max(waits)

    def observe(self, name: str, header: str | None) -> None:
        """Take the server's view from a ``Remaining-Req`` header."""
        parsed = parse_remaining(header)
        if parsed is None:
            return
        server_group, left = parsed
        with self._lock:
            group = self._group(server_group if server_group in self._limits else name)
            group.server_left = left
            group.server_at = self._clock()
            group.sent_since_server = 0

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._group(name).strikes = 0

    def too_many(self, name: str) -> float:
        """Record a 429; returns how long the group now waits."""
        with self._lock:
            group = self._group(name)
            group.strikes += 1
            delay = min(self._max_backoff_s, 1.0 * 2 ** (group.strikes - 1))
            group.blocked_until = max(group.blocked_until, self._clock() + delay)
            return delay

    def ban(self, seconds: float) -> None:
        """Record a 418: refuse every request for ``seconds``."""
        with self._lock:
            self._banned_until = max(self._banned_until, self._clock() + seconds)

    # --- read-only views, for monitoring ---------------------------------------------

    def headroom(self) -> dict[str, dict[str, int]]:
        """Each group used so far: ``used`` and ``remaining`` requests in the
        current window, and its ``limit``.

        ``remaining`` is the smaller of our own count and the server's last
        ``Remaining-Req`` (less what we sent since), and 0 while a 429 backoff
        lasts: what could go out right now without waiting.
        """
        with self._lock:
            now = self._clock()
            views = {}
            for name, group in self._groups.items():
                own = sum(1 for sent in group.sends if sent > now - group.window_s)
                remaining = group.limit - own
                if group.server_left is not None and now < group.server_at + group.window_s:
                    remaining = min(remaining, group.server_left - group.sent_since_server)
                if now < group.blocked_until:
                    remaining = 0
                remaining = max(0, remaining)
                views[name] = {"used": group.limit - remaining, "limit": group.limit, "remaining": remaining}
            return views

    def banned_for_s(self) -> float:
        """Seconds an HTTP 418 ban still lasts (0 when there is none)."""
        with self._lock:
            return max(0.0, self._banned_until - self._clock())
