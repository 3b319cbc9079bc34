"""The decision path's fast paths give exactly what the readable paths give.

Each opportunity runs code written for speed: the fused
:meth:`Pricer.open_plan`, the pipeline's per-plan checks, the chain's
``check_plan``, the engine's equity, and frozen objects built by
:func:`arb.models.fast_constructor` rather than their dataclass
``__init__``.  Here each is held, over random books, balances, limits and
rules, to the readable statement of the same thing: the
``Pricer.reference_open`` and ``GuardChain.evaluate`` the modules keep, and
small reference versions of the rest written out below.  "The same" means
equal plans, checks, verdicts, counters and events, float for float.
"""

from __future__ import annotations

import dataclasses
import math
import random
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arb.book import OrderBook
from arb.config import StrategySettings
from arb.engine import Engine
from arb.events import Event, EventBus
from arb.guard import Decision, GuardChain, GuardLimits, OrderCheck, PlanResult, new_check
from arb.models import MarketRules, OrderIntent, Side, fast_constructor, new_intent
from arb.paper_exchange import PaperExchange
from arb.pipeline import OrderPipeline
from arb.plugins import build_guard_chain, load_registry
from arb.portfolio import Portfolio
from arb.specs import Market, PairMarkets
from arb.strategy import Direction, Pair, Plan, Pricer

REGISTRY = load_registry()
PROPERTY = settings(max_examples=300, deadline=None)


def market(exchange: str, asset: str) -> Market:
    spec = REGISTRY.exchange(exchange)
    symbol = spec.symbol_for(asset)
    return Market(exchange, symbol, spec.paper_rules(symbol))


BTC = PairMarkets("BTC", market("upbit", "BTC"), market("binance", "BTC"))
FX_MARKET = Market("upbit", "KRW-USDT", REGISTRY.exchange("upbit").paper_rules("KRW-USDT"))
RULES = {(m.exchange, m.symbol): m.rules for m in (BTC.local, BTC.reference, FX_MARKET)}


def outcome(call, *args):
    """What ``call`` returns, or the type of what it raises."""
    try:
        return call(*args)
    except Exception as exc:  # compared, not hidden: both paths must fail alike
        return type(exc)


# --- frozen objects built without __init__ ------------------------------------------------


def distinct_values(cls) -> dict:
    """A different value for every field of ``cls``, so a field the builder
    forgets or swaps shows."""
    values = {}
    for i, f in enumerate(dataclasses.fields(cls)):
        values[f.name] = Side.SELL if f.name == "side" else ("limit" if f.name == "order_type" else
                                                             (f"v{i}" if f.type == "str" else float(i) + 0.5))
    return values


@pytest.mark.parametrize("cls, build", [(OrderIntent, new_intent), (OrderCheck, new_check)])
def test_builders_make_the_very_object_the_constructor_makes(cls, build):
    values = distinct_values(cls)
    built = build(**values)
    expected = cls(**values)
    assert type(built) is cls
    assert built == expected and hash(built) == hash(expected) and repr(built) == repr(expected)
    assert {f.name: getattr(built, f.name) for f in dataclasses.fields(cls)} == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, dataclasses.fields(cls)[0].name, "changed")
    assert dataclasses.replace(built) == expected


def test_builders_take_defaults_as_the_constructor_does():
    assert new_check("upbit", "KRW-BTC", Side.BUY, 1.0, 2.0, 3.0, 4.0, 5.0) == \
        OrderCheck("upbit", "KRW-BTC", Side.BUY, 1.0, 2.0, 3.0, 4.0, 5.0)
    assert new_intent("upbit", "KRW-BTC", Side.BUY, 1.0, 2.0, 2.0, "id").order_type == "limit"


def test_fast_constructor_refuses_fields_it_cannot_fill_alike():
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        items: list = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="default factory"):
        fast_constructor(WithFactory)


def test_new_intent_refuses_an_unknown_order_type_like_the_constructor():
    values = distinct_values(OrderIntent) | {"order_type": "stop"}
    with pytest.raises(ValueError) as built:
        new_intent(**values)
    with pytest.raises(ValueError) as constructed:
        OrderIntent(**values)
    assert str(built.value) == str(constructed.value)


def test_a_published_event_is_a_plain_frozen_event():
    bus = EventBus()
    seen = []
    bus.subscribe(seen.append)
    bus.publish("plan_allowed", 12.5, plan="p", result="r")
    (event,) = seen
    assert type(event) is Event and event == Event("plan_allowed", 12.5, {"plan": "p", "result": "r"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.kind = "other"


# --- the pricer: open_plan against reference_open ------------------------------------------
#
# Inputs come from a seeded generator rather than from Hypothesis strategies:
# what tells the paths apart is a quantity landing near an exchange limit
# with enough balance and premium to get there, and Hypothesis' preference
# for zeros and bounds would spend most examples on empty balances.  A
# failure names its seed.
seeds = st.integers(min_value=0, max_value=2**32 - 1)
PAIR = Pair(BTC)  # shared on purpose: its remembered limit prices carry over between examples


def log_uniform(rnd, low: float, high: float) -> float:
    return 10 ** rnd.uniform(math.log10(low), math.log10(high))


def ladder(rnd, top: float, tick: float, direction: int, on_tick: bool) -> list[tuple[float, float]]:
    """Levels from ``top`` outwards (``direction`` -1 for bids, +1 for asks)."""
    levels, price = [], top
    for _ in range(rnd.randint(1, 8)):
        size = rnd.choice((0.0001, 0.0005, 0.001, 0.01)) if rnd.random() < 0.2 else log_uniform(rnd, 1e-7, 3.0)
        levels.append((price if on_tick else price * rnd.uniform(0.9999, 1.0001), size))
        price += direction * rnd.randint(1, 5) * tick
    return levels


def binding_pair(rnd) -> Pair:
    """BTC with exchange rules that decide: the real markets' minimum quantity
    is one lot step and they have no maximum, so those checks never bind.
    Some lot steps drawn are not multiples of each other."""
    def rules(real, max_notional):
        return dataclasses.replace(real, lot_step=rnd.choice((1e-8, 1e-5, 1e-5, 1e-4, 2e-5, 3e-5)),
                                   min_qty=log_uniform(rnd, 1e-6, 1e-2), max_notional=max_notional)

    return Pair(PairMarkets("BTC", Market("upbit", "KRW-BTC", rules(BTC.local.rules, log_uniform(rnd, 1e5, 1e8))),
                            Market("binance", "BTCUSDT", rules(BTC.reference.rules, log_uniform(rnd, 10, 1e4)))))


def pricing_case(rnd):
    """A pair, FX, both books (local some premium dear or cheap), settings and balances."""
    pair = PAIR if rnd.random() < 0.5 else binding_pair(rnd)
    fx = rnd.uniform(1_300.0, 1_500.0)
    usdt = log_uniform(rnd, 100.0, 150_000.0)
    on_tick = rnd.random() < 0.5
    local_rules, ref_rules = BTC.local.rules, BTC.reference.rules
    local_bid = local_rules.round_price(usdt * fx * (1 + rnd.uniform(-0.06, 0.08)), Side.BUY)
    local_tick, ref_tick = local_rules.tick_for(local_bid), ref_rules.tick_for(usdt)
    ref_bid = ref_rules.round_price(usdt, Side.BUY)
    local = OrderBook("upbit", "KRW-BTC", ladder(rnd, local_bid, local_tick, -1, on_tick),
                      ladder(rnd, local_bid + local_tick, local_tick, 1, on_tick), 0.0)
    ref = OrderBook("binance", "BTCUSDT", ladder(rnd, ref_bid, ref_tick, -1, on_tick),
                    ladder(rnd, ref_bid + ref_tick, ref_tick, 1, on_tick), 0.0)
    strategy = StrategySettings(entry_premium_pct=rnd.uniform(-1.0, 3.0), exit_premium_pct=0.3,
                                # near the exchanges' minimums (5,000 KRW, 5 USDT) as well as far above
                                trade_notional=rnd.choice((log_uniform(rnd, 3.0, 3_000.0), rnd.uniform(3.0, 7.0))),
                                max_open_trades=1, max_book_age_ms=2_000.0,
                                max_levels=rnd.randint(1, 10) if rnd.random() < 0.9 else 0)

    def amount(low, high):
        draw = rnd.random()
        return 0.0 if draw < 0.05 else (rnd.uniform(0.0, low) if draw < 0.15 else log_uniform(rnd, low, high))

    free_local = {"BTC": amount(1e-4, 50.0), "KRW": amount(5_000.0, 1e8)}
    free_ref = {"BTC": amount(1e-4, 50.0), "USDT": amount(5.0, 1e5)}
    return pair, fx, local, ref, strategy, free_local, free_ref


def reference_entry_plan(pricer: Pricer, pair: Pair, local: OrderBook, ref: OrderBook, fx: float,
                         free_local: dict, free_ref: dict) -> Plan | None:
    """Pricer.entry_plan as it was written before entry_direction split off."""
    sell_local_top = (local.bids[0][0] / fx) * (1 - pair.fee_local) / (ref.asks[0][0] * (1 + pair.fee_reference)) - 1
    buy_local_top = ref.bids[0][0] * (1 - pair.fee_reference) / ((local.asks[0][0] / fx) * (1 + pair.fee_local)) - 1
    pricer.last_premium[pair.asset] = (local.bids[0][0] / fx) / ref.asks[0][0] - 1
    for top, direction in ((sell_local_top, Direction.SELL_LOCAL), (buy_local_top, Direction.BUY_LOCAL)):
        if top >= pricer.entry:
            return pricer.reference_open(pair, direction, local, ref, fx, free_local, free_ref)
    return None


@settings(max_examples=3_000, deadline=None)
@given(seed=seeds, direction=st.sampled_from(Direction))
def test_open_plan_is_reference_open(seed, direction):
    pair, fx, local, ref, strategy, free_local, free_ref = pricing_case(random.Random(seed))
    fast, readable = Pricer(strategy, "same"), Pricer(strategy, "same")
    plan = outcome(fast.open_plan, pair, direction, local, ref, fx, free_local, free_ref)
    assert plan == outcome(readable.reference_open, pair, direction, local, ref, fx, free_local, free_ref)
    assert fast.skips == readable.skips
    assert fast.client_id() == readable.client_id()  # both used up as many ids


@settings(max_examples=1_000, deadline=None)
@given(seed=seeds)
def test_entry_plan_is_what_it_was(seed):
    pair, fx, local, ref, strategy, free_local, free_ref = pricing_case(random.Random(seed))
    fast, readable = Pricer(strategy, "same"), Pricer(strategy, "same")
    plan = outcome(fast.entry_plan, pair, local, ref, fx, free_local, free_ref)
    assert plan == outcome(reference_entry_plan, readable, pair, local, ref, fx, free_local, free_ref)
    assert fast.last_premium == readable.last_premium and fast.skips == readable.skips


@pytest.mark.parametrize("local_top, ref_top", [(0.0004, 1.0), (0.0004 - 1e-9, 1.0), (1.0, 0.0004),
                                                (1.0, 0.0004 - 1e-9), (0.0004 + 1e-12, 0.0004 - 1e-12)])
@pytest.mark.parametrize("base_free", [1.0, 0.7 - 0.4, 0.0004 - 1e-12])
def test_open_plan_is_reference_open_on_the_edges(local_top, ref_top, base_free):
    """What random books seldom hit: a best level holding exactly, or a hair
    less than, the quantity (40 USDT at 100,000 is 0.0004 BTC), and a balance
    a hair under a step (0.7 - 0.4 = 0.29999999999999993)."""
    fx = 1_400.0
    local = OrderBook("upbit", "KRW-BTC", [(fx * 103_000, local_top), (fx * 102_900, 1.0)],
                      [(fx * 103_100, 1.0)], 0.0)
    ref = OrderBook("binance", "BTCUSDT", [(99_990.0, 1.0)], [(100_000.0, ref_top), (100_010.0, 1.0)], 0.0)
    for notional in (40.0, 1e6):
        strategy = StrategySettings(1.0, 0.3, notional, 1, 2_000.0, 10)
        fast, readable = Pricer(strategy, "same"), Pricer(strategy, "same")
        free = {"BTC": base_free, "KRW": 1e9}
        plan = fast.open_plan(PAIR, Direction.SELL_LOCAL, local, ref, fx, free, {"USDT": 1e9})
        assert plan is not None
        assert plan == readable.reference_open(PAIR, Direction.SELL_LOCAL, local, ref, fx, free, {"USDT": 1e9})


def test_the_pricing_cases_reach_every_outcome(monkeypatch):
    """The cases above are no good unless plans come of them and every check
    that can refuse one does, on either exchange."""
    seen = set()
    violation = MarketRules.violation

    def spy(rules, qty, price):
        problem = violation(rules, qty, price)
        if problem and qty > 0:
            seen.add((rules.exchange, problem.split(" ")[0] if "minimum" not in problem
                      else ("min_qty" if problem.startswith("quantity") else "min_notional")))
        return problem

    monkeypatch.setattr(MarketRules, "violation", spy)
    rnd = random.Random(7)
    for _ in range(3_000):
        pair, fx, local, ref, strategy, free_local, free_ref = pricing_case(rnd)
        pricer = Pricer(strategy, "same")
        direction = rnd.choice(list(Direction))
        if pricer.reference_open(pair, direction, local, ref, fx, free_local, free_ref) is not None:
            seen.add("plan")
        seen.update(pricer.skips)
    assert seen >= {"plan", "insufficient balance", "below minimum", "premium gone at depth"}
    for exchange in ("upbit", "binance"):
        assert seen >= {(exchange, "min_qty"), (exchange, "min_notional"), (exchange, "order"), (exchange, "quantity")}


# --- the chain: check_plan against evaluate -----------------------------------------------


class ScriptedRule:
    """A rule that answers from a script: allow, veto, stop, raise, or junk;
    it counts what it is asked, as a stateful rule (order_rate) does."""

    def __init__(self, order: int, answers: list[str]):
        self.name = f"scripted_{order}"
        self.order = order
        self.answers = answers
        self.asked = 0

    def check(self, order: OrderCheck):
        answer = self.answers[self.asked % len(self.answers)]
        self.asked += 1
        if answer == "raise":
            raise RuntimeError(f"{self.name} broke on {order.symbol}")
        if answer == "junk":
            return "yes"
        if answer == "allow":
            return Decision.allow(self.name)
        return Decision.veto(self.name, f"{answer} from {self.name}", session_stop=answer == "stop")


answers_st = st.lists(st.sampled_from(("allow", "allow", "allow", "veto", "stop", "raise", "junk")),
                      min_size=1, max_size=4)
check_st = st.builds(OrderCheck, exchange=st.sampled_from(("upbit", "binance")),
                     symbol=st.sampled_from(("KRW-BTC", "BTCUSDT")), side=st.sampled_from(Side),
                     quantity=st.floats(min_value=1e-5, max_value=1.0), price=st.floats(min_value=1.0, max_value=1e8),
                     notional=st.floats(min_value=0.0, max_value=100.0),
                     balance=st.floats(min_value=0.0, max_value=500.0),
                     daily_pnl=st.floats(min_value=-50.0, max_value=50.0))


def reference_check_plan(chain: GuardChain, checks) -> tuple[PlanResult, dict]:
    """check_plan's verdict and counters, from evaluate() leg by leg."""
    results = [chain.evaluate(check) for check in checks]
    veto = None
    counts = {"checks": len(results), "allowed": sum(r.allowed for r in results), "blocked": {}}
    for result in results:
        if result.veto is None:
            continue
        counts["blocked"][result.veto.rule] = counts["blocked"].get(result.veto.rule, 0) + 1
        if veto is None or (result.veto.session_stop and not veto.session_stop):
            veto = result.veto
    counts["session_stops"] = int(veto is not None and veto.session_stop)
    return PlanResult(results, veto), counts


@PROPERTY
@given(scripts=st.lists(answers_st, min_size=1, max_size=6), plans=st.lists(st.lists(check_st, min_size=1,
                                                                                     max_size=2), max_size=4))
def test_check_plan_is_evaluate_leg_by_leg(scripts, plans):
    fast = GuardChain(ScriptedRule(10 * (i + 1), answers) for i, answers in enumerate(scripts))
    readable = GuardChain(ScriptedRule(10 * (i + 1), answers) for i, answers in enumerate(scripts))
    for checks in plans:
        before = fast.stats.as_dict()
        result = fast.check_plan(checks)
        expected, counts = reference_check_plan(readable, checks)
        assert result == expected
        after = fast.stats.as_dict()
        blocked = {rule: n - before["blocked_by_rule"].get(rule, 0) for rule, n in after["blocked_by_rule"].items()}
        assert {k: v for k, v in blocked.items() if v} == counts["blocked"]
        assert after["checks"] - before["checks"] == counts["checks"]
        assert after["allowed"] - before["allowed"] == counts["allowed"]
        assert after["session_stops"] - before["session_stops"] == counts["session_stops"]
    assert [r.asked for r in fast.rules] == [r.asked for r in readable.rules]


# --- the pipeline's checks and the engine's equity -----------------------------------------


def reference_checks(pipeline: OrderPipeline, plan: Plan, now_ms: float) -> list[OrderCheck]:
    """OrderPipeline's checks as they were built: one leg at a time, every input asked for per leg."""
    checks = []
    for leg in plan.legs:
        notional = leg.quantity * leg.limit_price
        if pipeline.rules[(leg.exchange, leg.symbol)].quote == pipeline.local_quote:
            notional /= plan.fx_rate
        open_notional = pipeline.open_notional(leg.exchange) if pipeline.open_notional is not None else 0.0
        checks.append(OrderCheck(leg.exchange, leg.symbol, leg.side, leg.quantity, leg.limit_price, notional,
                                 pipeline.equity(leg.exchange), pipeline.daily_pnl(), now_ms,
                                 now_ms - plan.data_ms if plan.data_ms else 0.0, plan.premium_pct, open_notional))
    return checks


def reference_equity(engine: Engine, exchange: str) -> float:
    """Engine equity as it was computed: every holding looked up afresh."""
    fx = engine.fx_rate()
    total = 0.0
    for asset, amount in engine.pipeline.gateway.free_balances(exchange).items():
        if not amount:
            continue
        if asset == engine.reference_currency:
            total += amount
        elif not fx:
            continue
        elif asset == engine.local_quote:
            total += amount / fx
        elif asset in engine._by_asset:
            pair = engine._by_asset[asset]
            chosen = pair.local if pair.local.exchange == exchange else pair.reference
            price = engine._mid((chosen.exchange, chosen.symbol))
            if price is not None:
                total += amount * (price / fx if chosen.rules.quote == engine.local_quote else price)
    return total


class Rig:
    """An engine in live_trading over the real PaperExchange, every optional rule on."""

    def __init__(self, strategy: StrategySettings, limits: GuardLimits, balances: dict, scale: float,
                 readable: bool):
        self.events = EventBus()
        self.seen: list[Event] = []
        self.events.subscribe(self.seen.append)
        self.portfolio = Portfolio("KRW", {k: r.quote for k, r in RULES.items()})
        pricer = Pricer(strategy, "e2e")
        self.engine = Engine([BTC], FX_MARKET, strategy, pricer, self.portfolio, self.events, "USDT")
        self.exchange = PaperExchange({k: dict(v) for k, v in balances.items()}, RULES, self.engine.books)
        options = {"stale_data": {"enabled": True}, "premium_sanity": {"enabled": True, "max_premium_pct": 6.0},
                   "open_exposure": {"enabled": True, "max_open_notional": 150.0},
                   "order_rate": {"enabled": True, "max_orders_per_minute": 6}}
        self.chain = build_guard_chain(REGISTRY, limits, options, require_essential=True)
        self.pipeline = OrderPipeline(mode="live_trading", gateway=self.exchange, chain=self.chain, rules=RULES,
                                      local_quote="KRW", events=self.events, equity=self.engine.equity,
                                      daily_pnl=self.engine.daily_pnl, dry_run_scale=scale)
        self.engine.attach(self.pipeline)
        if readable:
            pricer.open_plan = pricer.reference_open
            self.pipeline._checks = partial(reference_checks, self.pipeline)
            self.engine._compute_equity = partial(reference_equity, self.engine)

    def state(self) -> dict:
        return {"events": [(e.kind, e.ts_ms, e.data) for e in self.seen],
                "balances": (self.exchange.free_balances("upbit"), self.exchange.free_balances("binance")),
                "realized": self.portfolio.realized_pnl, "open": list(self.portfolio.open_trades.values()),
                "skips": self.engine.pricer.skips, "premium": self.engine.pricer.last_premium,
                "guards": self.chain.summary(), "halted": self.engine.halted}


def session_case(rnd):
    """A stream of book updates (FX, Binance and Upbit books in random turns,
    the premium wandering through the entry and exit thresholds, now and then
    a late or crossed book) and the settings, limits, balances and scale it
    meets."""
    updates = []
    t, premium, fx = 0.0, 0.0, 1_400.0
    usdt = rnd.uniform(20_000.0, 120_000.0)
    for _ in range(rnd.randint(5, 60)):
        t += rnd.choice((1.0, 10.0, 250.0, 900.0, 1_500.0))
        premium = min(0.08, max(-0.04, premium + rnd.uniform(-0.02, 0.025)))
        which = rnd.choice(("fx", "ref", "local", "local", "crossed"))
        size = log_uniform(rnd, 1e-5, 3.0)
        if which == "fx":
            fx = rnd.uniform(1_350.0, 1_450.0)
            updates.append(OrderBook("upbit", "KRW-USDT", [(fx - 1, 1e6)], [(fx + 1, 1e6)], t))
        elif which == "ref":
            usdt *= rnd.uniform(0.995, 1.005)
            bid = BTC.reference.rules.round_price(usdt, Side.BUY)
            updates.append(OrderBook("binance", "BTCUSDT", [(bid, size), (bid - 1, 2.0)],
                                     [(bid + 0.01, size), (bid + 1, 2.0)], t))
        else:
            rules = BTC.local.rules
            bid = rules.round_price(usdt * fx * (1 + premium), Side.BUY)
            tick = rules.tick_for(bid)
            ask = bid - tick if which == "crossed" else bid + tick
            updates.append(OrderBook("upbit", "KRW-BTC", [(bid, size), (bid - 5 * tick, 2.0)],
                                     [(ask, size), (ask + 5 * tick, 2.0)], t))
    strategy = StrategySettings(entry_premium_pct=rnd.uniform(-0.5, 3.0), exit_premium_pct=rnd.uniform(-1.0, 1.0),
                                trade_notional=log_uniform(rnd, 3.0, 500.0), max_open_trades=rnd.randint(1, 2),
                                max_book_age_ms=2_000.0, max_levels=rnd.randint(1, 3))
    limits = GuardLimits(enabled=True, dry_run_scale=1.0,
                         allowed_symbols=("KRW-BTC", "BTCUSDT") if rnd.random() < 0.9 else ("KRW-BTC",),
                         min_account_balance=log_uniform(rnd, 1.0, 3_000.0), max_daily_loss=rnd.uniform(0.0, 5.0),
                         max_notional_per_trade=log_uniform(rnd, 10.0, 300.0))
    balances = {"upbit": {"KRW": log_uniform(rnd, 1e3, 3e6), "BTC": log_uniform(rnd, 1e-5, 1.0)},
                "binance": {"USDT": log_uniform(rnd, 1.0, 3_000.0), "BTC": log_uniform(rnd, 1e-5, 1.0)}}
    return updates, strategy, limits, balances, rnd.choice((1.0, 0.5, 0.01))


@settings(max_examples=500, deadline=None)
@given(seed=seeds)
def test_a_session_decides_and_reports_the_same_on_either_path(seed):
    updates, strategy, limits, balances, scale = session_case(random.Random(seed))
    fast = Rig(strategy, limits, balances, scale, readable=False)
    readable = Rig(strategy, limits, balances, scale, readable=True)
    for book in updates:
        fast.engine.on_book(book)
        readable.engine.on_book(book)
    assert fast.state() == readable.state()


def test_the_session_cases_trade_block_and_skip():
    """As for pricing: the sessions must reach the outcomes the paths could
    disagree on."""
    kinds, rules = set(), set()
    rnd = random.Random(11)
    for _ in range(300):
        updates, strategy, limits, balances, scale = session_case(rnd)
        rig = Rig(strategy, limits, balances, scale, readable=False)
        for book in updates:
            rig.engine.on_book(book)
        kinds.update(e.kind for e in rig.seen)
        rules.update(rig.chain.stats.blocked)
    assert kinds >= {"plan_allowed", "plan_blocked", "plan_skipped", "orders_done", "trade_opened", "trade_closed",
                     "leg_unhedged"}
    assert rules >= {"allowed_symbols", "min_account_balance", "max_notional_per_trade", "open_exposure"}


def test_equity_matches_the_reference_with_unknown_and_unpriced_holdings():
    strategy = StrategySettings(1.0, 0.3, 40.0, 1, 2_000.0, 10)
    balances = {"upbit": {"KRW": 1e6, "BTC": 0.01, "DOGE": 5.0, "USDT": 3.0},
                "binance": {"USDT": 100.0, "BTC": 0.02, "ETH": 1.0, "XRP": 0.0}}
    limits = GuardLimits(enabled=True, allowed_symbols=("KRW-BTC", "BTCUSDT"))
    fast = Rig(strategy, limits, balances, 1.0, readable=False)
    readable = Rig(strategy, limits, balances, 1.0, readable=True)
    books = [OrderBook("upbit", "KRW-USDT", [(1_399.0, 1e6)], [(1_401.0, 1e6)], 1.0),
             OrderBook("upbit", "KRW-BTC", [(140_000_000.0, 1.0)], [(140_100_000.0, 1.0)], 2.0),
             OrderBook("binance", "BTCUSDT", [(99_990.0, 1.0)], [(99_990.0, 1.0)], 3.0)]  # crossed: unpriced
    for book in books:
        fast.engine.on_book(book)
        readable.engine.on_book(book)
        for exchange in ("upbit", "binance"):
            value = fast.engine.equity(exchange)
            assert value == readable.engine.equity(exchange) and not math.isnan(value)
