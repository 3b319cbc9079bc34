"""The collector behind ``/metrics``: reads one session's state when Prometheus asks.

It runs on the HTTP server's thread while the session trades, so it reads
only what is safe to read from there.  It never calls the engine's caching
valuations (``equity``, ``unrealized_pnl``, ``daily_pnl``) nor
``Portfolio.realized_today``: they write caches the session thread reads
for its guard checks.  It copies dicts before walking them, and a section
that still trips over a change made mid-read is read again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from prometheus_client.core import InfoMetricFamily
from prometheus_client.registry import Collector

from arb import __version__
from arb.config import LIVE_MODES
from arb.metrics_families import counter, gauge
from arb.metrics_orders import OrderEvents
from arb.portfolio import trading_day

if TYPE_CHECKING:
    from arb.session import Session

log = logging.getLogger("arb.metrics")

DIRECTIONS = ("sell_local", "buy_local")


def wall_clock(session: Session) -> bool:
    """Live books are stamped with the wall clock; so are a paper market's played in real time."""
    return session.mode in LIVE_MODES or session.config.market_options.get("realtime") is True


class SessionCollector(Collector):
    """Everything ``/metrics`` shows about one session."""

    def __init__(self, session: Session):
        self.session = session
        self.wall_clock = wall_clock(session)
        self.orders = OrderEvents(session.config.exchange_names, self.wall_clock)
        session.events.subscribe(self.orders)
        self.collect_errors = 0
        self._sections: tuple[Callable[[], Iterable[Any]], ...] = (
            self._health, self._market_data, self._premiums, self._guard, self._order_flow, self._money,
            self._rate_limits)

    def collect(self) -> Iterator[Any]:
        for section in self._sections:
            yield from self._read(section)
        yield counter("arb_metrics_collect_errors_total", "Metric sections that failed to read (logged).",
                      self.collect_errors)

    def _read(self, section: Callable[[], Iterable[Any]]) -> list[Any]:
        for attempt in (1, 2, 3):
            try:
                return list(section())
            except RuntimeError:
                if attempt < 3:
                    continue  # a dict changed size under us: the session moved on; read again
                log.exception("metrics: reading %s failed; left out of this scrape", section.__name__)
            except Exception:
                log.exception("metrics: reading %s failed; left out of this scrape", section.__name__)
            break
        self.collect_errors += 1
        return []

    def _now_ms(self) -> float:
        return time.time() * 1000.0 if self.wall_clock else self.session.engine.now_ms

    # --- sections ------------------------------------------------------------------

    def _health(self) -> Iterator[Any]:
        s = self.session
        engine = s.engine
        yield gauge("arb_up", "1 while the arb process serves metrics.", 1)
        info = InfoMetricFamily("arb_session", "The session this process runs.")
        info.add_metric([], {"version": __version__, "mode": s.mode, "session_id": s.session_id})
        yield info
        running = bool(s.started_monotonic) and not s.ended_monotonic
        yield gauge("arb_session_running", "1 while the session trades (or would): started and not ended.",
                    int(running))
        yield gauge("arb_session_uptime_seconds", "How long the session has run (ran, once ended).", s.elapsed_s())
        yield gauge("arb_session_halted", "1 once the session is halted for any reason (no order of any kind).",
                    int(engine.halted is not None))
        yield gauge("arb_session_stopped_by_guard", "1 once a guard rule stopped the session (max_daily_loss).",
                    int(bool(s.pipeline.stop_reason)))
        yield gauge("arb_daily_loss_stop_in_force", "1 while an earlier session's daily-loss stop refuses new "
                    "trades today (from the journal).", int(bool(getattr(s, "entries_refused", ""))))
        yield counter("arb_engine_busy_seconds_total", "Time the engine spent on book updates (decision path).",
                      engine.busy_ns / 1e9)

    def _market_data(self) -> Iterator[Any]:
        engine = self.session.engine
        books = dict(engine.books)
        per_market = dict(getattr(engine, "book_updates", None) or {})
        markets = list(dict.fromkeys([*engine.index, *per_market]))
        yield counter("arb_book_updates_total", "Order book updates the engine received, per market.",
                      labels=("exchange", "symbol"),
                      samples=[((ex, sym), per_market.get((ex, sym), 0)) for ex, sym in markets])
        now = self._now_ms()
        yield gauge("arb_book_age_seconds", "Age of the newest book of each market (since we received it).",
                    labels=("exchange", "symbol"),
                    samples=[(key, max(0.0, now - book.received_ms) / 1000.0) for key, book in books.items()])
        yield counter("arb_evaluations_skipped_total", "Pair evaluations that priced no plan, by reason.",
                      labels=("reason",), samples=[((r,), n) for r, n in sorted(dict(engine.pricer.skips).items())])
        source = self.session.source
        status = source.status() if callable(getattr(source, "status", None)) else {}
        yield gauge("arb_websocket_connected", "1 while the exchange's market data stream is connected.",
                    labels=("exchange",), samples=[((ex,), int(bool(st["connected"]))) for ex, st in status.items()])
        yield counter("arb_websocket_reconnects_total", "Reconnects of the exchange's market data stream.",
                      labels=("exchange",), samples=[((ex,), st["reconnects"]) for ex, st in status.items()])
        live = hasattr(source, "disconnects")
        yield counter("arb_websocket_disconnects_total", "Market data streams lost (any exchange).",
                      samples=[((), source.disconnects)] if live else ())
        yield counter("arb_rest_fallback_snapshots_total", "Books fetched over REST while a stream was down.",
                      samples=[((), source.rest_snapshots)] if live else ())

    def _premiums(self) -> Iterator[Any]:
        engine = self.session.engine
        strategy = self.session.config.strategy
        books = dict(engine.books)
        fx_book = books.get(engine.fx_key)
        fx = fx_book.mid if _usable(fx_book) else 0.0
        gross, net = [], []
        for pair in engine.pairs:
            local, ref = books.get(pair.local_key), books.get(pair.reference_key)
            if not fx or not _usable(local) or not _usable(ref):
                continue
            # The pricer's top-of-book figures: gross, and net of both taker fees
            # (what entry_premium_pct is compared with).
            local_bid, local_ask = local.bids[0][0] / fx, local.asks[0][0] / fx
            ref_bid, ref_ask = ref.bids[0][0], ref.asks[0][0]
            fl, fr = pair.fee_local, pair.fee_reference
            gross += [((pair.asset, "sell_local"), local_bid / ref_ask - 1),
                      ((pair.asset, "buy_local"), ref_bid / local_ask - 1)]
            net += [((pair.asset, "sell_local"), local_bid * (1 - fl) / (ref_ask * (1 + fr)) - 1),
                    ((pair.asset, "buy_local"), ref_bid * (1 - fr) / (local_ask * (1 + fl)) - 1)]
        yield gauge("arb_premium_ratio", "Premium at the top of the books, before fees (0.01 = 1 %). "
                    "sell_local: local bid over reference ask; buy_local: reference bid over local ask.",
                    labels=("asset", "direction"), samples=gross)
        yield gauge("arb_premium_net_ratio", "Premium at the top of the books after both taker fees.",
                    labels=("asset", "direction"), samples=net)
        yield gauge("arb_strategy_entry_premium_ratio", "strategy.entry_premium_pct as a ratio (net premium).",
                    strategy.entry_premium_pct / 100.0)
        yield gauge("arb_strategy_exit_premium_ratio", "strategy.exit_premium_pct as a ratio.",
                    strategy.exit_premium_pct / 100.0)

    def _guard(self) -> Iterator[Any]:
        chain, pipeline = self.session.chain, self.session.pipeline
        yield gauge("arb_guard_active", "1 when the guard chain judges this session's orders.", int(chain is not None))
        stats = chain.stats if chain is not None else None
        blocked = dict(stats.blocked) if stats is not None else {}
        yield counter("arb_guard_checks_total", "Order legs the guard chain judged, by outcome.",
                      labels=("outcome",),
                      samples=[(("allowed",), stats.allowed if stats else 0),
                               (("blocked",), sum(blocked.values()))])
        rules = list(dict.fromkeys([*(chain.names if chain is not None else ()), *blocked]))
        yield counter("arb_guard_blocks_total", "Order legs vetoed, by the rule that decided.",
                      labels=("rule",), samples=[((rule,), blocked.get(rule, 0)) for rule in rules])
        yield counter("arb_guard_session_stops_total", "Vetoes that stopped the session.",
                      stats.session_stops if stats else 0)
        yield counter("arb_plans_blocked_total", "Plans not sent because a guard vetoed a leg.", pipeline.plans_blocked)
        yield counter("arb_plans_skipped_total", "Plans not sent because dry_run_scale left a leg too small.",
                      pipeline.plans_skipped)
        yield counter("arb_shadow_trades_total", "Plans live_readonly logged instead of sending.",
                      pipeline.shadow_trades)

    def _order_flow(self) -> Iterator[Any]:
        orders = self.orders
        portfolio = self.session.engine.portfolio
        yield counter("arb_orders_sent_total", "Order legs handed to the gateway.", labels=("exchange",),
                      samples=[((ex,), n) for ex, n in dict(orders.sent).items()])
        yield counter("arb_orders_total", "Order legs by final status: filled, partially_filled, cancelled, "
                      "rejected (by the exchange or refused locally), open (left for reconciliation).",
                      labels=("exchange", "status"), samples=list(dict(orders.outcomes).items()))
        yield orders.round_trip.family("arb_order_round_trip_seconds",
                                       "Legs handed to the gateway until every leg is final (legs go out together).")
        yield orders.tick_to_order.family("arb_tick_to_order_seconds",
                                          "Receipt of the book that triggered a plan until its orders are "
                                          "handed to the gateway (wall-clock sessions only).")
        yield gauge("arb_active_orders", "Orders sent and not yet final.",
                    self.session.pipeline.gateway.active_orders())
        yield counter("arb_trades_opened_total", "Hedged pairs opened.", portfolio.trades_opened)
        yield counter("arb_trades_closed_total", "Hedged pairs closed.", portfolio.trades_closed)
        yield gauge("arb_open_trades", "Hedged pairs open now.", len(portfolio.open_trades))

    def _money(self) -> Iterator[Any]:
        s = self.session
        engine, limits = s.engine, s.config.limits
        portfolio = engine.portfolio
        unrealized = engine.unrealized_pnl_uncached()
        day = trading_day(self._now_ms(), portfolio.day_start_ms)
        today = portfolio.realized_by_day.get(day, 0.0) + unrealized
        yield gauge("arb_pnl_realized_usdt", "Realized PnL of this session, reference currency.",
                    portfolio.realized_pnl)
        yield gauge("arb_pnl_unrealized_usdt", "What open trades and unhedged legs would realize now.", unrealized)
        yield gauge("arb_pnl_today_usdt", "Today's realized (earlier sessions included) plus unrealized PnL: "
                    "what max_daily_loss judges.", today)
        yield gauge("arb_limit_max_daily_loss_usdt", "live_trading.max_daily_loss.", limits.max_daily_loss)
        yield gauge("arb_limit_max_notional_per_trade_usdt", "live_trading.max_notional_per_trade.",
                    limits.max_notional_per_trade)
        yield gauge("arb_limit_min_account_balance_usdt", "live_trading.min_account_balance.",
                    limits.min_account_balance)
        gateway = s.pipeline.gateway
        balances = []
        for exchange, assets in _assets_by_exchange(s.pipeline.rules).items():
            free = dict(gateway.free_balances(exchange))
            balances += [((exchange, asset), free.get(asset, 0.0)) for asset in assets]
        yield gauge("arb_balance", "Free balance per exchange and asset, in the asset's units (traded assets only).",
                    labels=("exchange", "asset"), samples=balances)
        open_notional = getattr(engine, "open_notional", None)
        yield gauge("arb_open_notional_usdt", "Value open on each exchange: open trades' legs and unhedged legs.",
                    labels=("exchange",),
                    samples=[((ex,), open_notional(ex)) for ex in s.config.exchange_names] if open_notional else ())
        unhedged = {(pair.asset, market.exchange): 0.0 for pair in engine.pairs
                    for market in (pair.local, pair.reference)}
        exposure = engine.exposure() if callable(getattr(engine, "exposure", None)) else {}
        for asset, per_exchange in exposure.items():
            for exchange, qty in per_exchange.items():
                unhedged[(asset, exchange)] = qty
        yield gauge("arb_leg_exposure_quantity", "Unhedged quantity per asset and exchange: + held, - owed "
                    "(0 when flat).", labels=("asset", "exchange"), samples=list(unhedged.items()))
        yield gauge("arb_leg_exposures_open", "Unhedged plans not yet flat.", len(getattr(engine, "exposures", ())))
        inherited = dict(getattr(s, "inherited_exposure", None) or {})
        yield gauge("arb_inherited_exposure_quantity", "Unhedged base quantity earlier live_trading sessions left "
                    "(from the journal): no trade opens until an operator clears it (0 when flat).",
                    labels=("asset",), samples=[((pair.asset,), inherited.get(pair.asset, 0.0))
                                                for pair in engine.pairs])
        yield counter("arb_leg_unhedged_total", "Plans that came back one-legged.", self.orders.unhedged)
        yield gauge("arb_stuck_trades", "Trades whose close went out one-legged: they wait for a person.",
                    len(engine.stuck_trades))
        yield gauge("arb_entries_halted", "1 while no new trade may open (exposure, ban, daily-loss stop).",
                    int(bool(engine.entries_halted) or engine.entries_blocked))

    def _rate_limits(self) -> Iterator[Any]:
        gateway = self.session.pipeline.gateway
        banned_by_gateway = dict(getattr(gateway, "banned", None) or {})
        used, limit, remaining, ratio, ban_left = [], [], [], [], []
        limiters = {name: _limiter(client) for name, client in _clients(self.session).items()}
        for exchange, limiter in limiters.items():
            if limiter is None:
                continue
            for bucket, view in limiter.headroom().items():
                labels = (exchange, bucket)
                used.append((labels, view["used"]))
                limit.append((labels, view["limit"]))
                remaining.append((labels, view["remaining"]))
                ratio.append((labels, view["remaining"] / view["limit"] if view["limit"] else 0.0))
            ban_left.append(((exchange,), limiter.banned_for_s()))
        bucket_labels = ("exchange", "bucket")
        yield gauge("arb_ratelimit_used", "Requests (Upbit, per group) or weight and orders (Binance) used in the "
                    "current window.", labels=bucket_labels, samples=used)
        yield gauge("arb_ratelimit_limit", "The window's limit this client paces itself to.",
                    labels=bucket_labels, samples=limit)
        yield gauge("arb_ratelimit_remaining", "What may go now without waiting (Upbit: Remaining-Req less what "
                    "was sent since).", labels=bucket_labels, samples=remaining)
        yield gauge("arb_ratelimit_headroom_ratio", "remaining / limit: 0 means requests now wait.",
                    labels=bucket_labels, samples=ratio)
        yield gauge("arb_ratelimit_ban_remaining_seconds", "How long an HTTP 418 ban still lasts.",
                    labels=("exchange",), samples=ban_left)
        bans = dict(ban_left)
        yield gauge("arb_exchange_banned", "1 while the exchange bans us (HTTP 418) or refuses our orders after one.",
                    labels=("exchange",),
                    samples=[((ex,), int(ex in banned_by_gateway or bans.get((ex,), 0.0) > 0))
                             for ex in self.session.config.exchange_names])


def _usable(book: Any) -> bool:
    return book is not None and bool(book.bids) and bool(book.asks) and book.bids[0][0] < book.asks[0][0]


def _assets_by_exchange(rules: Mapping[tuple[str, str], Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for (exchange, _symbol), rule in rules.items():
        assets = out.setdefault(exchange, [])
        for asset in (rule.base, rule.quote):
            if asset not in assets:
                assets.append(asset)
    return out


def _clients(session: Session) -> dict[str, Any]:
    # The live gateway holds the session's exchange clients (the session keeps
    # no list of its own); the paper exchange has none.
    return dict(getattr(session.pipeline.gateway, "clients", None) or {})


def _limiter(client: Any) -> Any:
    # Optional in ExchangeClient: a third-party client without one just shows no headroom.
    limiter = getattr(client, "limiter", None)
    if callable(getattr(limiter, "headroom", None)) and callable(getattr(limiter, "banned_for_s", None)):
        return limiter
    return None

