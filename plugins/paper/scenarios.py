"""Named market scenarios: how the KRW premium moves over simulated time.

A scenario only decides the premium of the local (KRW) market over the
reference (USDT) market, plus how wild prices are and how deep books run.
Keeping prices and books out of here lets a scenario be read on one screen
and tested against the numbers a strategy's thresholds care about.

Scenarios may keep state (a jump level, the previous time), so the simulator
makes a fresh one per market pair with :func:`make_scenario`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable, Protocol

#: Name -> one-line description; the source of truth for docs and validation.
SCENARIOS: dict[str, str] = {
    "cycle": "premium swings smoothly between about -0.3% and +2.2% every ~24 s: "
             "an entry at +1% net fires and exits several times a minute",
    "flat": "premium sits near +0.3% with tiny noise and never reaches 1%: nothing to trade",
    "violent": "premium jumps often between -3% and +6%, prices move fast and books are ~5x thinner",
}


class Scenario(Protocol):
    #: Standard deviation of the log USDT price per sqrt(simulated second).
    price_volatility: float
    #: Multiplier on the USDT value held by each book level.
    depth_scale: float

    def premium(self, t: float, rng: random.Random) -> float:
        """The gross premium (a fraction, 0.01 = 1%) at simulated time ``t``.

        Called once per step with non-decreasing ``t``.
        """


@dataclass
class Cycle:
    """Sine around 0.95% with 1.25% amplitude: the range a bot's entry and
    exit thresholds (+1.15% gross, +0.3%) both sit well inside."""

    period_s: float = 24.0
    center: float = 0.0095
    amplitude: float = 0.0125
    noise: float = 0.0002
    price_volatility: float = 0.0002
    depth_scale: float = 1.0

    def premium(self, t: float, rng: random.Random) -> float:
        wave = math.sin(2.0 * math.pi * t / self.period_s)
        return self.center + self.amplitude * wave + rng.gauss(0.0, self.noise)


@dataclass
class Flat:
    """Mean-reverting noise around 0.3%, clamped so no noise streak can ever
    look like an opportunity (the point of this scenario is "no trades")."""

    center: float = 0.003
    noise: float = 0.0003
    reversion: float = 0.2     # share of the gap closed per step
    low: float = 0.001
    high: float = 0.006
    price_volatility: float = 0.0002
    depth_scale: float = 1.0
    _level: float = field(default=0.003, repr=False)

    def premium(self, t: float, rng: random.Random) -> float:
        pulled = self._level + self.reversion * (self.center - self._level)
        self._level = min(self.high, max(self.low, pulled + rng.gauss(0.0, self.noise)))
        return self._level


@dataclass
class Violent:
    """A level that jumps to a fresh uniform draw at random times.

    Jumps arrive as a Poisson process in simulated time, so changing
    ``updates_per_second`` does not change how often the market jumps.
    """

    jumps_per_second: float = 0.5
    low: float = -0.03
    high: float = 0.06
    noise: float = 0.0005
    price_volatility: float = 0.002
    depth_scale: float = 0.2
    _level: float = field(default=0.01, repr=False)
    _last_t: float | None = field(default=None, repr=False)

    def premium(self, t: float, rng: random.Random) -> float:
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        if rng.random() < 1.0 - math.exp(-self.jumps_per_second * dt):
            self._level = rng.uniform(self.low, self.high)
        else:
            self._level += rng.gauss(0.0, self.noise)
        self._level = min(self.high, max(self.low, self._level))
        return self._level


_FACTORIES: dict[str, Callable[[], Scenario]] = {
    "cycle": Cycle,
    "flat": Flat,
    "violent": Violent,
}


def make_scenario(name: str) -> Scenario:
    """A fresh scenario; unknown names raise ``ValueError`` listing the known ones."""
    factory = _FACTORIES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ValueError(f"unknown simulator scenario {name!r}; "
                         f"known scenarios: {', '.join(sorted(SCENARIOS))}")
    return factory()
