"""Assembling a session from a config and the installed plugins, and running it."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from arb.config import Config, LIVE_MODES
from arb.engine import Engine
from arb.errors import ExchangeError
from arb.events import Event, EventBus
from arb.guard import GuardChain, GuardChainError
from arb.journal import SIMULATED, WALL, Journal, JournalError, journal_path, now_ms
from arb.journal_queries import iso
from arb.live import LiveGateway, LiveMarketSource, ReadOnlyGateway
from arb.models import MarketRules
from arb.paper_exchange import PaperExchange
from arb.pipeline import OrderPipeline
from arb.plugins import PluginError, PluginRegistry, build_guard_chain
from arb.portfolio import Portfolio
from arb.secrets import MissingSecret, exchange_settings, read_secrets
from arb.specs import ExchangeSpec, Market, MarketSource, PairMarkets, SourceRequest
from arb.strategy import Pricer

log = logging.getLogger("arb.session")


PREMIUM_SAMPLE_MS = 1000.0


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
    journal: Journal | None = None
    #: Realized PnL that earlier sessions booked on this trading day (seeded into the portfolio).
    carried_pnl: float = 0.0
    carried_day: str = ""
    #: Why this session opens no trades from its start (a daily-loss stop in force), or "".
    entries_refused: str = ""
    refusal_ends_ms: float = math.inf
    #: Live modes: the exchange clients, what start-up reconciliation settled,
    #: and the unhedged position earlier sessions left (asset -> base quantity).
    clients: dict[str, Any] = field(default_factory=dict)
    reconciliation: Any = None
    inherited_exposure: dict[str, float] = field(default_factory=dict)
    exposure_refusal: str = ""
    _journal_closed: bool = False

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
                 ",".join(self.config.assets),
                 self.config.market_source if self.mode == "paper" else "exchange streams")
        if self.journal is not None:
            self.journal.start_session(self.config.source, self.carried_pnl, self.entries_refused)
        self.events.publish("session_started", 0.0, session_id=self.session_id, mode=self.mode)
        refusal_ends = self.refusal_ends_ms
        next_sample = -math.inf
        try:
            if self.mode in LIVE_MODES and self.journal is not None:
                from arb.startup import settle_start
                settle_start(self)  # before the first book, so before any order
            for book in self.source.events():
                if book is not None:
                    engine.on_book(book)
                    if book.received_ms >= refusal_ends:
                        self._lift_refusal()
                        refusal_ends = math.inf
                    if book.received_ms >= next_sample:
                        # Once a second of session time: the premium series the
                        # journal keeps for reports.
                        next_sample = book.received_ms + PREMIUM_SAMPLE_MS
                        self.events.publish("premium_sample", book.received_ms, premiums=engine.premiums())
                if engine.halted:
                    reason = "session_stop"
                    break
                if stop.is_set():
                    reason = "interrupted"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "max_runtime"
                    break
            else:
                # A source that ends because we asked it to stop was interrupted,
                # not exhausted.
                if stop.is_set():
                    reason = "interrupted"
        except BaseException as exc:
            reason = f"error: {type(exc).__name__}: {exc}"
            raise
        finally:
            stop.set()
            self.source.close()
            self._shutdown_gateway()
            self.ended_monotonic = time.monotonic()
            self.close(reason)
        self.exit_reason = reason
        log.info("session %s ended: %s", self.session_id, engine.halted or reason)
        return reason

    def close(self, exit_reason: str = "") -> None:
        """Journal the session's end with its summary, and close the journal.

        ``run`` does this; an embedder that feeds the engine itself calls it.
        """
        if self.journal is None or self._journal_closed:
            return
        self._journal_closed = True
        from arb.summary import session_summary
        try:
            summary = session_summary(self)
            summary["exit_reason"] = exit_reason or self.exit_reason
        except Exception:  # the record of the end matters more than its details
            log.exception("could not summarize session %s for the journal", self.session_id)
            summary = {}
        self.journal.end_session(exit_reason or self.exit_reason or "closed", summary)
        self.journal.close()

    def close_unstarted(self) -> None:
        """Release what build_session opened, for a session that will not run."""
        self.request.stop.set()
        self.source.close()
        close = getattr(self.pipeline.gateway, "close", None)
        if close is not None:
            close()
        self.close("not started")

    def _lift_refusal(self) -> None:
        self.refusal_ends_ms = math.inf
        if self.engine.entries_halted == self.entries_refused:
            self.engine.entries_halted = None
        log.warning("[ARB_JOURNAL] a new trading day began: the daily-loss stop of %s no longer applies",
                    self.carried_day)

    def _shutdown_gateway(self) -> None:
        gateway = self.pipeline.gateway
        if self.mode == "live_trading" and hasattr(gateway, "cancel_open_orders"):
            cancelled = gateway.cancel_open_orders()
            if cancelled:
                log.warning("cancelled %d open order(s) on shutdown", cancelled)
        close = getattr(gateway, "close", None)
        if close is not None:
            close()

    def elapsed_s(self) -> float:
        end = self.ended_monotonic or time.monotonic()
        return end - self.started_monotonic if self.started_monotonic else 0.0


def build_session(config: Config, registry: PluginRegistry, mode: str | None = None) -> Session:
    mode = mode or config.mode
    config = config.with_mode(mode)
    journal_file = _journal_file(config, mode)
    try:
        specs = {name: registry.exchange(name) for name in config.exchange_names}
    except PluginError as exc:
        raise SessionError(str(exc)) from None
    local_spec = specs[config.local_exchange]
    ref_spec = specs[config.reference_exchange]

    chain = None
    if mode == "live_trading" or (mode == "paper" and config.paper_run_guards):
        try:
            chain = build_guard_chain(registry, config.limits, config.guard_options,
                                      require_essential=mode == "live_trading")
        except GuardChainError as exc:
            raise SessionError(str(exc)) from None

    stop = threading.Event()
    clients = _live_clients(config, specs, mode) if mode in LIVE_MODES else {}
    rules = _market_rules(config, specs, clients)
    pairs = tuple(PairMarkets(asset, _market(local_spec, local_spec.symbol_for(asset), rules),
                              _market(ref_spec, ref_spec.symbol_for(asset), rules))
                  for asset in config.assets)
    fx = _market(specs[config.fx_exchange], config.fx_symbol, rules)

    events = EventBus()
    activity = Activity()
    events.subscribe(activity)
    session_id = uuid.uuid4().hex[:8]
    pricer = Pricer(config.strategy, id_prefix=f"arb{session_id}")
    portfolio = Portfolio(local_spec.quote_currency, {k: r.quote for k, r in rules.items()},
                          day_start_ms=config.day_start_ms)
    engine = Engine(pairs, fx, config.strategy, pricer, portfolio, events, config.reference_currency,
                    leg_risk=config.leg_risk)
    request = SourceRequest(pairs, fx, config.market_options, stop)
    if mode in LIVE_MODES:
        gateway = (LiveGateway if mode == "live_trading" else ReadOnlyGateway)(clients, rules=rules, stop=stop)
        try:
            gateway.refresh_balances()
        except ExchangeError as exc:
            gateway.close()
            raise SessionError(f"cannot read balances: {exc}") from None
        symbols: dict[str, list[str]] = {}
        for market in [fx, *(m for p in pairs for m in (p.local, p.reference))]:
            symbols.setdefault(market.exchange, []).append(market.symbol)
        source = LiveMarketSource(clients, symbols, stop)
    else:
        gateway = PaperExchange(config.paper_balances, rules, engine.books)
        source = _paper_source(config, registry, request)
    pipeline = OrderPipeline(mode=mode, gateway=gateway, chain=chain, rules=rules,
                             local_quote=local_spec.quote_currency, events=events,
                             equity=engine.equity, daily_pnl=engine.daily_pnl,
                             dry_run_scale=config.limits.dry_run_scale)
    engine.attach(pipeline)
    session = Session(config, mode, engine, pipeline, chain, source, request, events, activity, session_id,
                      clients=clients)
    if journal_file is not None:
        try:
            _attach_journal(session, journal_file)
        except JournalError as exc:
            if session.journal is not None:
                session.journal.close()
            session.source.close()
            session._shutdown_gateway()
            raise SessionError(str(exc)) from None
    return session


def _journal_file(config: Config, mode: str) -> Path | None:
    if config.journal.enabled:
        return journal_path(config.journal)
    if mode == "live_trading":
        raise SessionError("live_trading needs the journal (journal.enabled is false): without it a restart "
                           "would forget today's PnL and any daily-loss stop")
    return None


def _wall_clock(config: Config, mode: str) -> bool:
    """Live books are stamped with the wall clock; so are a paper market's played in real time."""
    return mode in LIVE_MODES or config.market_options.get("realtime") is True


def _attach_journal(session: Session, path: Path) -> None:
    """Open the journal, subscribe it, and pick up where earlier sessions of
    this trading day left off: their realized PnL, and a daily-loss stop."""
    engine, mode = session.engine, session.mode
    clock = WALL if _wall_clock(session.config, mode) else SIMULATED
    journal = Journal(path, session_id=session.session_id, mode=mode, clock=clock,
                      day_start_ms=session.config.day_start_ms, durable=mode == "live_trading")
    session.journal = journal
    portfolio = engine.portfolio
    journal.realized = lambda: portfolio.realized_pnl

    def halt(reason: str) -> None:
        if engine.halted is None:
            engine.halted = reason

    journal.on_failure = halt
    session.events.subscribe(journal)
    session.pipeline.recorders.append(journal.record_intents)
    gateway = session.pipeline.gateway
    if hasattr(gateway, "on_update"):
        gateway.on_update = journal.order_update
    if clock == SIMULATED:
        return
    carry = journal.carry_over(now_ms())
    session.carried_day = carry.day
    if carry.realized_pnl:
        portfolio.realized_by_day[carry.day] = portfolio.realized_by_day.get(carry.day, 0.0) + carry.realized_pnl
        session.carried_pnl = carry.realized_pnl
        log.info("[ARB_JOURNAL] trading day %s: earlier %s sessions realized %+.4f %s; it counts toward "
                 "max_daily_loss", carry.day, mode, carry.realized_pnl, session.config.reference_currency)
    if carry.stops:
        stop = carry.stops[-1]
        # Closing trades stays allowed: a refused session must still be able to get flat.
        session.entries_refused = (
            f"daily-loss stop in force for trading day {carry.day} (session {stop['session_id']} stopped by "
            f"{stop['rule']}: {stop['reason']}); no new trades until {iso(carry.next_day_ms)} UTC "
            "or `arb journal clear-stop`")
        session.refusal_ends_ms = carry.next_day_ms
        engine.entries_halted = session.entries_refused
        log.warning("[ARB_JOURNAL] %s", session.entries_refused)


def _live_clients(config: Config, specs: dict[str, ExchangeSpec], mode: str) -> dict[str, Any]:
    missing = sorted(name for name, spec in specs.items() if spec.create_client is None)
    if missing:
        raise SessionError(f"{mode} needs a live client for {', '.join(missing)}, and the installed "
                           "exchange plugin has none; use --mode paper")
    clients = {}
    for name, spec in specs.items():
        settings = exchange_settings(spec.default_settings, config.exchanges.get(name, {}))
        try:
            secrets = read_secrets(name, settings, required=True)
        except MissingSecret as exc:
            raise SessionError(str(exc)) from None
        clients[name] = spec.create_client(settings, secrets)
    return clients


def _market_rules(config: Config, specs: dict[str, ExchangeSpec],
                  clients: dict[str, Any]) -> dict[tuple[str, str], MarketRules]:
    wanted: dict[str, list[str]] = {}
    for asset in config.assets:
        for name in (config.local_exchange, config.reference_exchange):
            wanted.setdefault(name, []).append(specs[name].symbol_for(asset))
    wanted.setdefault(config.fx_exchange, []).append(config.fx_symbol)
    rules: dict[tuple[str, str], MarketRules] = {}
    for name, symbols in wanted.items():
        if name in clients:
            try:
                fetched = clients[name].market_rules(symbols)
            except ExchangeError as exc:
                raise SessionError(f"cannot read {name} market rules: {exc}") from None
        else:
            fetched = {symbol: specs[name].paper_rules(symbol) for symbol in symbols}
        fee = config.exchanges.get(name, {}).get("taker_fee")
        for symbol in symbols:
            if symbol not in fetched:
                raise SessionError(f"{name} does not list {symbol}")
            rule = fetched[symbol]
            rules[(name, symbol)] = replace(rule, taker_fee=float(fee)) if fee is not None else rule
    return rules


def _market(spec: ExchangeSpec, symbol: str, rules: dict[tuple[str, str], MarketRules]) -> Market:
    return Market(spec.name, symbol, rules[(spec.name, symbol)])


def _paper_source(config: Config, registry: PluginRegistry, request: SourceRequest) -> MarketSource:
    try:
        return registry.market_source(config.market_source).build(request)
    except PluginError as exc:
        raise SessionError(str(exc)) from None
    except ValueError as exc:
        raise SessionError(f"market source {config.market_source!r}: {exc}") from None
