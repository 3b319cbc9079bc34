"""Assembling a session from a config and the installed plugins, and running it."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from arb.config import Config, LIVE_MODES
from arb.engine import Engine
from arb.events import Event, EventBus
from arb.guard import GuardChain, GuardChainError
from arb.paper_exchange import PaperExchange
from arb.pipeline import OrderPipeline
from arb.plugins import PluginError, PluginRegistry, build_guard_chain
from arb.portfolio import Portfolio
from arb.specs import Market, MarketSource, PairMarkets, SourceRequest
from arb.strategy import Pricer

log = logging.getLogger("arb.session")


class SessionError(RuntimeError):
    """The session cannot start as configured (a usage problem, exit code 2)."""


@dataclass
class Activity:
    """What the status display and the summary show; fed by the event bus."""

    last_block_reason: str = ""
    last_event: str = ""
    exposures: int = 0

    def __call__(self, event: Event) -> None:
        if event.kind == "plan_blocked":
            veto = event.data["result"].veto
            self.last_block_reason = f"{veto.rule}: {veto.reason}"
        elif event.kind == "plan_skipped":
            self.last_block_reason = event.data["reason"]
        elif event.kind == "leg_exposure":
            self.exposures += 1
        self.last_event = event.kind


@dataclass
class Session:
    config: Config
    mode: str
    engine: Engine
    pipeline: OrderPipeline
    chain: GuardChain | None
    source: MarketSource
    request: SourceRequest
    events: EventBus
    activity: Activity
    session_id: str
    started_monotonic: float = 0.0
    ended_monotonic: float = 0.0
    exit_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stop_event(self) -> threading.Event:
        return self.request.stop

    def run(self, max_runtime_s: float | None = None) -> str:
        """Feed market updates to the engine until something ends the session."""
        self.started_monotonic = time.monotonic()
        deadline = self.started_monotonic + max_runtime_s if max_runtime_s else None
        engine = self.engine
        stop = self.request.stop
        reason = "market data ended"
        log.info("session %s started: mode=%s pairs=%s source=%s", self.session_id, self.mode,
                 ",".join(self.config.assets), self.config.market_source)
        self.events.publish("session_started", 0.0, session_id=self.session_id, mode=self.mode)
        try:
            for book in self.source.events():
                if book is not None:
                    engine.on_book(book)
                if engine.halted:
                    reason = "session_stop"
                    break
                if stop.is_set():
                    reason = "interrupted"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "max_runtime"
                    break
        finally:
            stop.set()
            self.source.close()
            self.ended_monotonic = time.monotonic()
        self.exit_reason = reason
        log.info("session %s ended: %s", self.session_id, engine.halted or reason)
        return reason

    def elapsed_s(self) -> float:
        end = self.ended_monotonic or time.monotonic()
        return end - self.started_monotonic if self.started_monotonic else 0.0


def build_session(config: Config, registry: PluginRegistry, mode: str | None = None) -> Session:
    mode = mode or config.mode
    config = config.with_mode(mode)
    try:
        local_spec = registry.exchange(config.local_exchange)
        ref_spec = registry.exchange(config.reference_exchange)
        fx_spec = registry.exchange(config.fx_exchange)
    except PluginError as exc:
        raise SessionError(str(exc)) from None
    if mode in LIVE_MODES:
        missing = [s.name for s in (local_spec, ref_spec, fx_spec) if s.create_client is None]
        if missing:
            raise SessionError(f"{mode} needs a live client for {', '.join(sorted(set(missing)))}, and the "
                               "installed exchange plugin has none; use --mode paper")

    chain = None
    if mode == "live_trading" or (mode == "paper" and config.paper_run_guards):
        try:
            chain = build_guard_chain(registry, config.limits, config.guard_options,
                                      require_essential=mode == "live_trading")
        except GuardChainError as exc:
            raise SessionError(str(exc)) from None

    def rules_for(spec, symbol):
        rules = spec.paper_rules(symbol)
        fee = config.exchanges.get(spec.name, {}).get("taker_fee")
        if fee is not None:
            from dataclasses import replace
            rules = replace(rules, taker_fee=float(fee))
        return rules

    pairs = []
    for asset in config.assets:
        local_symbol = local_spec.symbol_for(asset)
        ref_symbol = ref_spec.symbol_for(asset)
        pairs.append(PairMarkets(asset,
                                 Market(local_spec.name, local_symbol, rules_for(local_spec, local_symbol)),
                                 Market(ref_spec.name, ref_symbol, rules_for(ref_spec, ref_symbol))))
    fx = Market(fx_spec.name, config.fx_symbol, rules_for(fx_spec, config.fx_symbol))
    rules = {(m.exchange, m.symbol): m.rules for p in pairs for m in (p.local, p.reference)}
    rules[(fx.exchange, fx.symbol)] = fx.rules

    events = EventBus()
    activity = Activity()
    events.subscribe(activity)
    session_id = uuid.uuid4().hex[:8]
    pricer = Pricer(config.strategy, id_prefix=f"arb{session_id}")
    portfolio = Portfolio(local_spec.quote_currency, {k: r.quote for k, r in rules.items()})
    engine = Engine(pairs, fx, config.strategy, pricer, portfolio, events, config.reference_currency)
    gateway = PaperExchange(config.paper_balances, rules, engine.books)
    pipeline = OrderPipeline(mode=mode, gateway=gateway, chain=chain, rules=rules,
                             local_quote=local_spec.quote_currency, events=events,
                             equity=engine.equity, daily_pnl=engine.daily_pnl,
                             dry_run_scale=config.limits.dry_run_scale)
    engine.attach(pipeline)

    request = SourceRequest(tuple(pairs), fx, config.market_options)
    try:
        source_spec = registry.market_source(config.market_source)
        source = source_spec.build(request)
    except PluginError as exc:
        raise SessionError(str(exc)) from None
    except ValueError as exc:
        raise SessionError(f"market source {config.market_source!r}: {exc}") from None
    return Session(config, mode, engine, pipeline, chain, source, request, events, activity, session_id)
