"""Exponential backoff with full jitter, for reconnects and idempotent retries."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float = 0.2, cap_s: float = 30.0, rng: random.Random | None = None):
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^attempt)], so many
        clients dropped together do not come back together."""
        ceiling = min(self.cap_s, self.base_s * (2 ** self.attempt))
        self.attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
