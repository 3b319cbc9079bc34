"""Registers the built-in paper-mode market sources with arb."""

from __future__ import annotations

from arb import hookimpl
from arb.specs import MarketSourceSpec

from arb_paper.replay import ReplaySource
from arb_paper.scenarios import SCENARIOS
from arb_paper.simulator import MarketSimulator


@hookimpl
def arb_register_market_sources(register):
    register(MarketSourceSpec(
        name="simulator",
        build=MarketSimulator,
        description="seeded Upbit/Binance book simulator; scenarios: " + ", ".join(sorted(SCENARIOS)),
    ))
    register(MarketSourceSpec(
        name="replay",
        build=ReplaySource,
        description="plays back order books recorded as JSON lines (option: path)",
    ))
