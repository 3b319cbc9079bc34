"""The rate limiters' read-only views that /metrics shows as headroom."""

from __future__ import annotations

import pytest

from arb_binance.ratelimit import RateLimiter as BinanceLimiter
from arb_upbit.ratelimit import RateLimiter as UpbitLimiter


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_upbit_headroom_counts_our_requests_in_the_window():
    clock = Clock()
    limiter = UpbitLimiter(clock=clock, sleep=lambda s: None)
    assert limiter.headroom() == {}
    for _ in range(3):
        limiter.acquire("order")
    assert limiter.headroom()["order"] == {"used": 3, "limit": 12, "remaining": 9}
    clock.now += 1.2  # past the window (1 s plus margin)
    assert limiter.headroom()["order"] == {"used": 0, "limit": 12, "remaining": 12}


def test_upbit_headroom_follows_remaining_req_and_429_backoff():
    clock = Clock()
    limiter = UpbitLimiter(clock=clock, sleep=lambda s: None)
    limiter.acquire("default")
    limiter.observe("default", "group=default; min=1800; sec=4")
    limiter.acquire("default")
    # The server said 4 left; one sent since: 3, fewer than our own count allows.
    assert limiter.headroom()["default"] == {"used": 27, "limit": 30, "remaining": 3}
    limiter.too_many("default")
    assert limiter.headroom()["default"]["remaining"] == 0


def test_upbit_ban_time_left():
    clock = Clock()
    limiter = UpbitLimiter(clock=clock, sleep=lambda s: None)
    assert limiter.banned_for_s() == 0
    limiter.ban(30)
    clock.now += 10
    assert limiter.banned_for_s() == pytest.approx(20)


def test_binance_headroom_reads_without_rolling_the_window():
    clock = Clock(600.0)  # the start of a minute
    limiter = BinanceLimiter(weight_per_minute=1000, clock=clock, sleep=lambda s: None)
    limiter.acquire(100)
    limiter.acquire(1, is_order=True)
    view = limiter.headroom()
    assert view["request_weight_1m"] == {"used": 101, "limit": 900, "remaining": 799}
    assert view["orders_10s"] == {"used": 1, "limit": 50, "remaining": 49}
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "500"}, sent_at=600.0)
    assert limiter.headroom()["request_weight_1m"]["used"] == 500
    clock.now = 661.0  # the next minute: nothing used in it yet
    assert limiter.headroom()["request_weight_1m"] == {"used": 0, "limit": 900, "remaining": 900}
    limiter.pause(5)
    assert limiter.headroom()["request_weight_1m"]["remaining"] == 0
    assert limiter.banned_for_s() == 0
    limiter.ban(120)
    assert limiter.banned_for_s() == pytest.approx(120)
