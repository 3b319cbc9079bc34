"""Checks that span several keys, made on the built :class:`Config`: each
value is valid alone, but together they would make a config that cannot work."""

from __future__ import annotations

from typing import Mapping

from arb.config_errors import where
from arb.config_settings import Config


def semantic_problems(config: Config, lines: Mapping[str, int]) -> list[str]:
    problems = []
    s = config.strategy
    if s.exit_premium_pct >= s.entry_premium_pct:
        problems.append(f"{where('strategy.exit_premium_pct', lines)}: must be below entry_premium_pct "
                        f"({s.exit_premium_pct} >= {s.entry_premium_pct}), or every trade would close at once")
    if len(set(config.assets)) != len(config.assets):
        dup = sorted({a for a in config.assets if config.assets.count(a) > 1})
        problems.append(f"{where('pairs', lines)}: asset(s) listed twice: {', '.join(dup)}")
    if config.local_exchange == config.reference_exchange:
        problems.append(f"{where('venues', lines)}: local and reference must be different exchanges")
    if config.market_source == "replay" and "replay" not in config.raw["market"]:
        problems.append(f"{where('market.source', lines)}: source replay needs a market.replay.path")
    return problems
