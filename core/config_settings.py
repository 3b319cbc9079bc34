"""The settings a loaded config hands to the rest of arb, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from arb.config_errors import ConfigError
from arb.guard import GuardLimits

MODES = ("paper", "live_readonly", "live_trading")
LIVE_MODES = ("live_readonly", "live_trading")


@dataclass(frozen=True)
class StrategySettings:
    entry_premium_pct: float
    exit_premium_pct: float
    trade_notional: float
    max_open_trades: int
    max_book_age_ms: float
    max_levels: int


@dataclass(frozen=True)
class LegRiskSettings:
    """The ``leg_risk`` section: what to do when one leg of a pair fills and
    the other does not (see :mod:`arb.legrisk`)."""

    policy: str = "unwind"          # "unwind" | "retry"
    max_retries: int = 2            # repair orders sent per unhedged plan, at most
    max_slippage_pct: float = 1.0   # repair limit price: at most this far beyond the best price


@dataclass(frozen=True)
class JournalSettings:
    """The ``journal`` section; ``path`` as written (None: the default location),
    resolved by :func:`arb.journal.journal_path` when a session opens it."""

    enabled: bool = True
    path: str | None = None
    base_dir: str = ""  # the config file's folder: a relative path is read from there


@dataclass(frozen=True)
class MetricsSettings:
    """``monitoring.metrics``: the Prometheus endpoint (see :mod:`arb.metrics`)."""

    enabled: bool | None = None     # None: on in the live modes, off in paper
    host: str = "127.0.0.1"
    port: int = 9464                # 0: any free port
    linger_s: float = 15.0          # serving on after a halted session, for a last scrape


@dataclass(frozen=True)
class Config:
    source: str
    mode: str
    reference_currency: str
    local_exchange: str
    reference_exchange: str
    assets: tuple[str, ...]
    fx_exchange: str
    fx_symbol: str
    fx_assumed_rate: float
    exchanges: Mapping[str, Mapping[str, Any]]
    strategy: StrategySettings
    market_source: str
    market_options: Mapping[str, Any]
    paper_balances: Mapping[str, Mapping[str, float]]
    paper_run_guards: bool
    limits: GuardLimits
    guard_options: Mapping[str, Mapping[str, Any]]
    log_level: str
    log_format: str
    raw: Mapping[str, Any]
    journal: JournalSettings = JournalSettings()
    #: Where the trading day starts, in ms after 00:00 UTC (``session.trading_day_start_utc``).
    day_start_ms: int = 0
    leg_risk: LegRiskSettings = LegRiskSettings()
    metrics: MetricsSettings = MetricsSettings()

    def with_mode(self, mode: str | None) -> Config:
        if mode is None or mode == self.mode:
            return self
        if mode not in MODES:
            raise ConfigError(self.source, [f"mode {mode!r} is not one of {', '.join(MODES)}"])
        return replace(self, mode=mode)

    @property
    def exchange_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.local_exchange, self.reference_exchange, self.fx_exchange)))
