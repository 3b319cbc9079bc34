"""Safety properties over random limits, balances, books, PnL and orders.

The chain is the installed five built-in rules (``build_guard_chain`` with
``require_essential=True``), as live trading runs it.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from arb.book import OrderBook, walk
from arb.events import EventBus
from arb.guard import GuardLimits, OrderCheck
from arb.models import OrderIntent, Side
from arb.paper_exchange import PaperExchange
from arb.pipeline import OrderPipeline
from arb.plugins import build_guard_chain, load_registry
from arb.scaling import scale_legs, scaled_quantity
from arb.strategy import Direction, Plan

REGISTRY = load_registry()
BN = ("binance", "BTCUSDT")
UP = ("upbit", "KRW-BTC")
RULES = {BN: REGISTRY.exchange("binance").paper_rules("BTCUSDT"),
         UP: REGISTRY.exchange("upbit").paper_rules("KRW-BTC")}
STEPS = (1e-8, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0)

PROPERTY = settings(max_examples=200, deadline=None)

# Skewed so that every limit passes often enough for approvals to be common:
# each example is either approved or blocked by at least one rule.
money = st.floats(min_value=0.0, max_value=500.0, allow_nan=False)


def sometimes_nan(values):
    """Mostly ``values``, now and then NaN (which every rule must refuse)."""
    return st.one_of(values, values, values, values, values, values, st.just(math.nan))


maybe_nan = sometimes_nan(st.floats(min_value=0.0, max_value=300.0))
limits_st = st.builds(
    GuardLimits,
    enabled=st.sampled_from((True, True, True, False)),
    dry_run_scale=st.just(1.0),
    allowed_symbols=st.sampled_from((("KRW-BTC", "BTCUSDT"), ("KRW-BTC", "BTCUSDT", "ETHUSDT"),
                                     ("BTCUSDT", "KRW-BTC", "KRW-DOGE"), ("KRW-BTC",), ("BTCUSDT",), ())),
    min_account_balance=st.floats(min_value=0.0, max_value=200.0),
    max_daily_loss=st.floats(min_value=0.0, max_value=200.0),
    max_notional_per_trade=money,
)
check_st = st.builds(
    OrderCheck,
    exchange=st.sampled_from(("upbit", "binance")),
    symbol=st.sampled_from(("KRW-BTC", "BTCUSDT", "BTCUSDT", "KRW-BTC", "KRW-DOGE")),
    side=st.sampled_from(Side),
    quantity=st.floats(min_value=1e-8, max_value=10.0),
    price=st.floats(min_value=1.0, max_value=1e8),
    notional=maybe_nan,
    balance=sometimes_nan(st.floats(min_value=0.0, max_value=1_000.0)),
    daily_pnl=sometimes_nan(st.floats(min_value=-100.0, max_value=100.0)),
)


def within_limits(limits: GuardLimits, check: OrderCheck) -> bool:
    return (limits.enabled
            and check.symbol in limits.allowed_symbols
            and check.balance >= limits.min_account_balance
            and check.daily_pnl >= -limits.max_daily_loss
            and check.notional <= limits.max_notional_per_trade)


@PROPERTY
@given(limits=limits_st, legs=st.lists(check_st, min_size=1, max_size=2))
def test_no_approved_plan_breaks_a_limit(limits, legs):
    chain = build_guard_chain(REGISTRY, limits, {}, require_essential=True)
    result = chain.check_plan(legs)
    if result.allowed:
        for leg in legs:
            assert limits.enabled
            assert leg.symbol in limits.allowed_symbols
            assert leg.balance >= limits.min_account_balance
            assert leg.daily_pnl >= -limits.max_daily_loss
            assert leg.notional <= limits.max_notional_per_trade
    # and the five rules refuse nothing that is within every limit
    assert result.allowed == all(within_limits(limits, leg) for leg in legs)
    if result.session_stop:
        assert any(not leg.daily_pnl >= -limits.max_daily_loss for leg in legs)


@PROPERTY
@given(steps=st.integers(min_value=0, max_value=10**9), step=st.sampled_from(STEPS),
       scale=st.floats(min_value=1e-6, max_value=1.0, exclude_min=False))
def test_scaled_quantity_never_exceeds_the_approved_one_and_is_on_the_step(steps, step, scale):
    approved = round(steps * step, 8)          # the planner approves quantities on the lot step
    scaled = scaled_quantity(approved, scale, step)
    assert scaled <= approved
    n = scaled / step
    assert abs(n - round(n)) <= 1e-6
    assert scaled >= approved * scale - step * (1 + 1e-9)     # a floor, not just any smaller number


@PROPERTY
@given(steps=st.integers(min_value=1, max_value=10**7), scale=st.floats(min_value=1e-4, max_value=1.0))
def test_scaled_legs_stay_equal_and_within_the_approved_quantity(steps, scale):
    approved = round(steps * 1e-5, 5)          # Binance BTC's step, the coarser of the two
    legs = (OrderIntent("upbit", "KRW-BTC", Side.SELL, approved, 140_000_000.0, 140_000_000.0, "a"),
            OrderIntent("binance", "BTCUSDT", Side.BUY, approved, 100_000.0, 100_000.0, "b"))
    scaled, problem = scale_legs(legs, scale, [RULES[UP], RULES[BN]])
    if problem is None:
        assert scaled[0].quantity == scaled[1].quantity <= approved
        assert RULES[UP].violation(scaled[0].quantity, 140_000_000.0) is None
        assert RULES[BN].violation(scaled[1].quantity, 100_000.0) is None
    else:
        assert scaled == legs
        assert "not sent" in problem


@PROPERTY
@given(limits=limits_st,
       # from 5 lot steps up: 0.00005 BTC is 5 USDT and 7,000 KRW, so the
       # exchanges' minimums never stop an approved plan
       qty_steps=st.integers(min_value=5, max_value=400),
       fx=st.floats(min_value=1_000.0, max_value=1_600.0),
       upbit_equity=st.floats(min_value=0.0, max_value=1_000.0),
       binance_equity=st.floats(min_value=0.0, max_value=1_000.0),
       daily_pnl=st.floats(min_value=-300.0, max_value=50.0))
def test_a_veto_on_one_leg_means_the_gateway_received_nothing(limits, qty_steps, fx, upbit_equity,
                                                              binance_equity, daily_pnl):
    qty = round(qty_steps * 1e-5, 5)
    local_px = 140_000_000.0
    books = {BN: OrderBook("binance", "BTCUSDT", [(99_990.0, 100.0)], [(100_000.0, 100.0)], 0.0),
             UP: OrderBook("upbit", "KRW-BTC", [(local_px, 100.0)], [(140_100_000.0, 100.0)], 0.0)}
    gateway = PaperExchange({"upbit": {"BTC": 100.0, "KRW": 1e12}, "binance": {"USDT": 1e9, "BTC": 100.0}},
                            RULES, books)
    chain = build_guard_chain(REGISTRY, limits, {}, require_essential=True)
    equity = {"upbit": upbit_equity, "binance": binance_equity}
    pipeline = OrderPipeline(mode="live_trading", gateway=gateway, chain=chain, rules=RULES, local_quote="KRW",
                             events=EventBus(), equity=equity.__getitem__, daily_pnl=lambda: daily_pnl,
                             dry_run_scale=1.0)
    legs = (OrderIntent("upbit", "KRW-BTC", Side.SELL, qty, local_px, local_px, "a"),
            OrderIntent("binance", "BTCUSDT", Side.BUY, qty, 100_000.0, 100_000.0, "b"))
    plan = Plan("open", "BTC", Direction.SELL_LOCAL, qty, legs, 0.0, 0.0, fx)

    orders = pipeline.execute(plan, 0.0)

    # what each leg asks of the limits, worked out independently of the pipeline
    checks = [OrderCheck("upbit", "KRW-BTC", Side.SELL, qty, local_px, qty * local_px / fx, upbit_equity,
                         daily_pnl),
              OrderCheck("binance", "BTCUSDT", Side.BUY, qty, 100_000.0, qty * 100_000.0, binance_equity,
                         daily_pnl)]
    allowed = all(within_limits(limits, c) for c in checks)
    if not allowed:
        assert orders is None
        assert gateway.orders_sent == 0
        assert pipeline.plans_blocked == 1
        assert gateway.free_balances("upbit") == {"BTC": 100.0, "KRW": 1e12}
        assert gateway.free_balances("binance") == {"USDT": 1e9, "BTC": 100.0}
    else:
        assert pipeline.plans_skipped == 0
        assert gateway.orders_sent == 2
        assert [o.intent.client_order_id for o in orders] == ["a", "b"]


@PROPERTY
@given(value=st.floats(min_value=0.0, max_value=1e5), step=st.sampled_from(STEPS))
def test_round_qty_never_rounds_up_beyond_float_noise(value, step):
    rules = RULES[UP].__class__(**{**{f: getattr(RULES[UP], f) for f in RULES[UP].__slots__}, "lot_step": step})
    q = rules.round_qty(value)
    assert q <= value + step * 1e-3
    assert q > value - step
    n = q / step
    assert abs(n - round(n)) <= 1e-6 + n * 1e-15     # doubles resolve ~1e-16 of n


@PROPERTY
@given(price=st.floats(min_value=0.001, max_value=5e8), side=st.sampled_from(Side))
def test_upbit_price_rounding_is_never_worse_and_on_the_tick(price, side):
    rules = RULES[UP]
    rounded = rules.round_price(price, side)
    tick = rules.tick_for(price)
    if side is Side.BUY:
        assert rounded <= price + tick * 1e-3
    else:
        assert rounded >= price - tick * 1e-3
    assert abs(rounded - price) < tick * (1 + 1e-9)


levels_st = st.lists(st.tuples(st.integers(min_value=1, max_value=10**6), st.integers(min_value=1, max_value=10**4)),
                     min_size=1, max_size=8)


@PROPERTY
@given(levels=levels_st, want=st.integers(min_value=1, max_value=10**5))
def test_walk_fills_what_the_depth_allows_between_best_and_worst(levels, want):
    asks = sorted({p: s for p, s in levels}.items())
    book = [(p / 100.0, s / 1000.0) for p, s in asks]
    qty = want / 1000.0
    w = walk(book, qty)
    total = sum(s for _, s in book)
    assert w.quantity <= qty * (1 + 1e-12)
    assert abs(w.quantity - min(qty, total)) <= 1e-9 * max(1.0, qty)
    assert book[0][0] * (1 - 1e-12) <= w.avg_price <= w.worst_price * (1 + 1e-12)
    # the worst level touched is the first whose cumulative size reaches qty
    cumulative = 0.0
    needed = book[-1][0]
    for price, size in book:
        cumulative += size
        if cumulative >= qty * (1 - 1e-12):
            needed = price
            break
    assert w.worst_price == needed
