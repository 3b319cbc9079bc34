"""The "simulator" market source: seeded random walks shaped by a scenario.

Model, per step of ``1 / updates_per_second`` simulated seconds:

* each asset's USDT price takes a log-normal step (scenario volatility);
* the KRW/USDT rate drifts slowly and is pulled back towards ``fx_rate``;
* each pair's premium comes from its own scenario instance;
* one fresh book is emitted for the fx market, then for each pair its local
  (KRW) and reference (USDT) market, with local mid = usdt * fx * (1 + premium).

All randomness flows from one ``random.Random(seed)`` created per call of
:meth:`MarketSimulator.events`, so a run can be replayed exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from arb.book import OrderBook
from arb.specs import SourceRequest

from arb_paper.books import make_book
from arb_paper.clock import Pacer
from arb_paper.scenarios import make_scenario

DEFAULT_START_PRICES: dict[str, float] = {"BTC": 95_000.0, "ETH": 3_500.0, "XRP": 2.3, "SOL": 180.0}
FALLBACK_START_PRICE = 10.0
START_MS = 1_767_225_600_000.0  # 2026-01-01T00:00:00Z: fixed, so non-realtime runs are reproducible

# The fx rate wanders ~0.005% per sqrt(second) and reverts over ~a minute:
# enough to matter to the premium maths, far too little to be the signal.
FX_VOLATILITY = 0.00005
FX_REVERSION_PER_S = 1.0 / 60.0


@dataclass(frozen=True)
class SimulatorOptions:
    scenario: str = "cycle"
    seed: int = 7
    updates_per_second: float = 10.0
    realtime: bool = True
    duration_s: float | None = None
    levels: int = 10
    start_prices: Mapping[str, float] | None = None
    fx_rate: float = 1400.0
    start_ms: float = START_MS

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> SimulatorOptions:
        """Defaults for missing keys; ``ValueError`` naming the bad option otherwise.

        Unknown keys are ignored: the config schema already rejects them, and
        third-party cores may pass extra context.
        """
        o = cls(**{k: options[k] for k in cls.__dataclass_fields__ if k in options})
        if not isinstance(o.seed, int) or isinstance(o.seed, bool):
            raise ValueError(f"simulator option seed must be an integer, got {o.seed!r}")
        if not isinstance(o.realtime, bool):
            raise ValueError(f"simulator option realtime must be true or false, got {o.realtime!r}")
        if not isinstance(o.levels, int) or isinstance(o.levels, bool) or o.levels < 1:
            raise ValueError(f"simulator option levels must be an integer >= 1, got {o.levels!r}")
        _positive("updates_per_second", o.updates_per_second)
        _positive("fx_rate", o.fx_rate)
        if o.duration_s is not None:
            _positive("duration_s", o.duration_s)
        if not _is_number(o.start_ms):
            raise ValueError(f"simulator option start_ms must be a number, got {o.start_ms!r}")
        if o.start_prices is not None:
            if not isinstance(o.start_prices, Mapping):
                raise ValueError("simulator option start_prices must map asset -> USDT price")
            for asset, price in o.start_prices.items():
                _positive(f"start_prices.{asset}", price)
        make_scenario(o.scenario)  # unknown names fail here, at build time, not mid-session
        return o

    def start_price(self, asset: str) -> float:
        given = {str(k).upper(): float(v) for k, v in (self.start_prices or {}).items()}
        key = asset.upper()
        return given.get(key, DEFAULT_START_PRICES.get(key, FALLBACK_START_PRICE))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: Any) -> None:
    if not _is_number(value) or value <= 0:
        raise ValueError(f"simulator option {name} must be a positive number, got {value!r}")


class MarketSimulator:
    """Implements :class:`arb.specs.MarketSource`."""

    def __init__(self, request: SourceRequest):
        self._request = request
        self.options = SimulatorOptions.from_mapping(request.options)

    def close(self) -> None:
        self._request.stop.set()

    def events(self) -> Iterator[OrderBook | None]:
        o, req = self.options, self._request
        rng = random.Random(o.seed)
        scenarios = [make_scenario(o.scenario) for _ in req.pairs]
        prices = [o.start_price(p.asset) for p in req.pairs]
        fx = float(o.fx_rate)
        dt = 1.0 / o.updates_per_second
        step_ms = 1000.0 * dt
        steps = None if o.duration_s is None else math.ceil(o.duration_s * o.updates_per_second - 1e-9)
        pacer = Pacer(req.stop, o.realtime)
        book = dict(levels=o.levels, rng=rng)

        k = 0
        while steps is None or k < steps:
            t = k * dt  # multiply, never accumulate: no drift over long runs
            if not pacer.wait_until(t):
                return
            ts = o.start_ms + k * step_ms
            received = pacer.received_ms(ts)
            if k:  # step 0 shows the configured start prices unchanged
                fx = _step_fx(fx, o.fx_rate, dt, rng)
            yield make_book(req.fx, fx, usdt_per_base=1.0, depth_scale=1.0,
                            ts_ms=ts, received_ms=received, **book)
            for i, pair in enumerate(req.pairs):
                scenario = scenarios[i]
                if k:
                    prices[i] *= math.exp(rng.gauss(0.0, scenario.price_volatility * math.sqrt(dt)))
                premium = scenario.premium(t, rng)
                usdt = prices[i]
                yield make_book(pair.local, usdt * fx * (1.0 + premium), usdt_per_base=usdt,
                                depth_scale=scenario.depth_scale, ts_ms=ts, received_ms=received, **book)
                yield make_book(pair.reference, usdt, usdt_per_base=usdt,
                                depth_scale=scenario.depth_scale, ts_ms=ts, received_ms=received, **book)
            k += 1


def _step_fx(fx: float, anchor: float, dt: float, rng: random.Random) -> float:
    pulled = fx + FX_REVERSION_PER_S * dt * (anchor - fx)
    return pulled * math.exp(rng.gauss(0.0, FX_VOLATILITY * math.sqrt(dt)))
