"""Markets, books and an engine wired the way a session wires them."""

from __future__ import annotations

from arb.book import OrderBook
from arb.config import StrategySettings
from arb.engine import Engine
from arb.events import EventBus
from arb.guard import GuardLimits
from arb.models import Side
from arb.pipeline import OrderPipeline
from arb.plugins import build_guard_chain, load_registry
from arb.portfolio import Portfolio
from arb.specs import Market, PairMarkets
from arb.strategy import Pricer

FX = 1400.0


def markets(assets=("BTC",)):
    registry = load_registry()
    upbit = registry.exchange("upbit")
    binance = registry.exchange("binance")
    pairs = tuple(
        PairMarkets(a, Market("upbit", upbit.symbol_for(a), upbit.paper_rules(upbit.symbol_for(a))),
                    Market("binance", binance.symbol_for(a), binance.paper_rules(binance.symbol_for(a))))
        for a in assets)
    fx = Market("upbit", "KRW-USDT", upbit.paper_rules("KRW-USDT"))
    return registry, pairs, fx


def ladder(best: float, step: float, qty: float, levels: int, direction: int) -> list[tuple[float, float]]:
    return [(best + direction * i * step, qty) for i in range(levels)]


def books_for(usdt_price: float, premium: float, now_ms: float, pair: PairMarkets, fx_market: Market):
    """fx, local and reference books with the local market ``premium`` dear."""
    local_mid = usdt_price * FX * (1 + premium)
    local_tick = pair.local.rules.tick_for(local_mid)
    local_bid = pair.local.rules.round_price(local_mid, Side.BUY)
    qty = 2_000 / usdt_price
    local = OrderBook("upbit", pair.local.symbol, ladder(local_bid, -local_tick, qty, 10, 1),
                      ladder(local_bid + local_tick, local_tick, qty, 10, 1), now_ms)
    ref_tick = pair.reference.rules.tick_for(usdt_price)
    ref = OrderBook("binance", pair.reference.symbol, ladder(usdt_price, -ref_tick, qty, 10, 1),
                    ladder(usdt_price + ref_tick, ref_tick, qty, 10, 1), now_ms)
    fx = OrderBook("upbit", fx_market.symbol, ladder(FX, -1.0, 50_000.0, 10, 1), ladder(FX + 1, 1.0, 50_000.0, 10, 1),
                   now_ms)
    return fx, local, ref


class CaptureGateway:
    """Records what would be sent and sends nothing, so every update re-decides."""

    def __init__(self, balances):
        self._balances = balances
        self.submitted = 0

    def submit(self, legs, now_ms):
        self.submitted += 1
        return []

    def free_balances(self, exchange):
        return self._balances.setdefault(exchange, {})

    def active_orders(self):
        return 0


def live_engine(assets=("BTC",), *, dry_run_scale=0.5, gateway=None):
    registry, pairs, fx = markets(assets)
    settings = StrategySettings(entry_premium_pct=1.0, exit_premium_pct=0.3, trade_notional=40.0,
                                max_open_trades=1, max_book_age_ms=2000.0, max_levels=10)
    symbols = tuple(m.symbol for p in pairs for m in (p.local, p.reference))
    limits = GuardLimits(enabled=True, dry_run_scale=dry_run_scale, allowed_symbols=symbols,
                         min_account_balance=50.0, max_daily_loss=20.0, max_notional_per_trade=50.0)
    chain = build_guard_chain(registry, limits, {}, require_essential=True)
    rules = {(m.exchange, m.symbol): m.rules for p in pairs for m in (p.local, p.reference)}
    rules[(fx.exchange, fx.symbol)] = fx.rules
    events = EventBus()
    engine = Engine(pairs, fx, settings, Pricer(settings, "bench"), Portfolio("KRW", {k: r.quote for k, r in rules.items()}),
                    events, "USDT")
    balances = {"upbit": {"KRW": 10_000_000.0, **{a: 100.0 for a in assets}},
                "binance": {"USDT": 10_000.0, **{a: 100.0 for a in assets}}}
    gateway = gateway or CaptureGateway(balances)
    pipeline = OrderPipeline(mode="live_trading", gateway=gateway, chain=chain, rules=rules, local_quote="KRW",
                             events=events, equity=engine.equity, daily_pnl=engine.daily_pnl,
                             dry_run_scale=dry_run_scale)
    engine.attach(pipeline)
    return engine, pairs, fx, gateway
