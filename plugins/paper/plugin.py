"""Registers the built-in paper-mode market sources with arb."""

from __future__ import annotations

from arb import hookimpl
from arb.specs import MarketSourceSpec, SourceRequest

from arb_paper.scenarios import SCENARIOS


# Imported when a source is built: every command loads the plugins, and only
# a paper session needs the simulator or the replay reader.
def simulator(request: SourceRequest):
    from arb_paper.simulator import MarketSimulator

    return MarketSimulator(request)


def replay(request: SourceRequest):
    from arb_paper.replay import ReplaySource

    return ReplaySource(request)


@hookimpl
def arb_register_market_sources(register):
    register(MarketSourceSpec(
        name="simulator",
        build=simulator,
        description="seeded Upbit/Binance book simulator; scenarios: " + ", ".join(sorted(SCENARIOS)),
    ))
    register(MarketSourceSpec(
        name="replay",
        build=replay,
        description="plays back order books recorded as JSON lines (option: path)",
    ))
