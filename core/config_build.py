"""Turning a validated config document, defaults filled in, into :class:`Config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arb.config_settings import Config, JournalSettings, LegRiskSettings, MetricsSettings, StrategySettings
from arb.guard import GuardLimits


def build_config(data: dict[str, Any], source: str) -> Config:
    strategy = data["strategy"]
    market = data["market"]
    source_name = market["source"]
    options = market.get(source_name, market["options"]) if source_name in ("simulator", "replay") \
        else market["options"]
    lt = data["live_trading"]
    return Config(
        source=source,
        mode=data["mode"],
        reference_currency=data["reference_currency"],
        local_exchange=data["venues"]["local"],
        reference_exchange=data["venues"]["reference"],
        assets=tuple(p["asset"] for p in data["pairs"]),
        fx_exchange=data["fx"]["exchange"],
        fx_symbol=data["fx"]["symbol"],
        fx_assumed_rate=float(data["fx"]["assumed_rate"]),
        exchanges=data["exchanges"],
        strategy=StrategySettings(
            entry_premium_pct=float(strategy["entry_premium_pct"]),
            exit_premium_pct=float(strategy["exit_premium_pct"]),
            trade_notional=float(strategy["trade_notional"]),
            max_open_trades=int(strategy["max_open_trades"]),
            max_book_age_ms=float(strategy["max_book_age_ms"]),
            max_levels=int(strategy["max_levels"]),
        ),
        market_source=source_name,
        market_options=dict(options),
        paper_balances=data["paper"]["balances"],
        paper_run_guards=bool(data["paper"]["run_guards"]),
        limits=GuardLimits(
            enabled=lt["enabled"],
            dry_run_scale=float(lt["dry_run_scale"]),
            allowed_symbols=tuple(lt["allowed_symbols"]),
            min_account_balance=float(lt["min_account_balance"]),
            max_daily_loss=float(lt["max_daily_loss"]),
            max_notional_per_trade=float(lt["max_notional_per_trade"]),
        ),
        guard_options=data["guards"],
        log_level=data["logging"]["level"],
        log_format=data["logging"]["format"],
        raw=data,
        journal=JournalSettings(enabled=bool(data["journal"]["enabled"]), path=data["journal"]["path"],
                                base_dir=_base_dir(source)),
        day_start_ms=_day_start_ms(data["session"]["trading_day_start_utc"]),
        leg_risk=LegRiskSettings(
            policy=data["leg_risk"]["policy"],
            max_retries=int(data["leg_risk"]["max_retries"]),
            max_slippage_pct=float(data["leg_risk"]["max_slippage_pct"]),
        ),
        metrics=MetricsSettings(**data["monitoring"]["metrics"]),
    )


def _base_dir(source: str) -> str:
    path = Path(source)
    return str(path.resolve().parent) if path.is_file() else ""


def _day_start_ms(text: str) -> int:
    """``"HH:MM"`` (the schema checked the form) → ms after 00:00 UTC."""
    hours, minutes = text.split(":")
    return (int(hours) * 60 + int(minutes)) * 60_000
