"""Leg risk: one leg of a pair fills, the other does not, and the policy repairs it.

Engine-level tests run the real Engine, OrderPipeline and PaperExchange on
hand-made books (FX 1,400 KRW/USDT; Binance 99,990/100,000; Upbit 3% dear at
103,000/103,100 USDT, so the engine sells 0.001 BTC on Upbit and buys 0.001
on Binance).  A gateway wrapper plays the exchange's surprises: less money
than reported, liquidity gone between pricing and matching.  The last tests
run the same engine through LiveGateway against both exchange emulators and
check what the emulators received.

What must not be lost, in every test: the unhedged quantity (it is either
repaired to flat, or still reported per asset and exchange), and no order
beyond the policy's limits.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from rich.console import Console

import arb
from arb.book import OrderBook
from arb.config import ConfigError, LegRiskSettings, StrategySettings, parse_config
from arb.display import print_summary
from arb.engine import Engine
from arb.events import EventBus
from arb.guard import Decision, GuardLimits
from arb.legrisk import OUTCOME_UNKNOWN
from arb.live import LiveGateway
from arb.models import Order, OrderStatus, Side
from arb.paper_exchange import PaperExchange
from arb.pipeline import OrderPipeline
from arb.plugins import build_guard_chain, load_registry
from arb.portfolio import Portfolio
from arb.specs import GuardRuleSpec, Market, PairMarkets
from arb.session import Activity, Session
from arb.strategy import Pricer
from arb.summary import session_summary
from arb_upbit.testing import client_for

from emulated import binance_client_for, binance_posts, premium_exchanges, running, upbit_posts

REGISTRY = load_registry()
FX = 1400.0
BTC_USDT = ("binance", "BTCUSDT")
KRW_BTC = ("upbit", "KRW-BTC")


def market(exchange: str, symbol: str) -> Market:
    return Market(exchange, symbol, REGISTRY.exchange(exchange).paper_rules(symbol))


def balances():
    return {"upbit": {"KRW": 1_000_000.0, "BTC": 0.01},
            "binance": {"USDT": 1_000.0, "BTC": 0.01}}


def permissive(**overrides) -> GuardLimits:
    values = dict(enabled=True, dry_run_scale=1.0, allowed_symbols=("KRW-BTC", "BTCUSDT"),
                  min_account_balance=50.0, max_daily_loss=100.0, max_notional_per_trade=200.0)
    values.update(overrides)
    return GuardLimits(**values)


class Surprises:
    """The paper exchange behind a gateway that reports balances it does not
    hold, and can take liquidity away just before the next orders match."""

    def __init__(self, exchange: PaperExchange, books: dict, reported=None):
        self.exchange = exchange
        self.books = books
        self.reported = reported
        self.sent = []           # every leg that reached the exchange, in order
        self.thin_next = None    # (key, OrderBook) swapped in before the next submit

    def submit(self, legs, now_ms):
        if self.thin_next is not None:
            key, book = self.thin_next
            self.books[key] = book
            self.thin_next = None
        self.sent.extend(legs)
        return self.exchange.submit(legs, now_ms)

    def free_balances(self, exchange):
        if self.reported is not None:
            return self.reported[exchange]
        return self.exchange.free_balances(exchange)

    def active_orders(self):
        return 0


class Rig:
    def __init__(self, *, leg_risk=None, reported=None, real=None, mode="paper", guard_limits=None, scale=None,
                 registry=REGISTRY):
        settings = StrategySettings(entry_premium_pct=1.0, exit_premium_pct=0.3, trade_notional=100.0,
                                    max_open_trades=1, max_book_age_ms=2000.0, max_levels=10)
        pair = PairMarkets("BTC", market(*KRW_BTC), market(*BTC_USDT))
        fx = market("upbit", "KRW-USDT")
        rules = {(m.exchange, m.symbol): m.rules for m in (pair.local, pair.reference, fx)}
        self.events = EventBus()
        self.seen = []
        self.events.subscribe(self.seen.append)
        self.portfolio = Portfolio("KRW", {k: r.quote for k, r in rules.items()})
        self.engine = Engine([pair], fx, settings, Pricer(settings, "arblegrisk"), self.portfolio, self.events,
                             "USDT", leg_risk=leg_risk)
        self.exchange = PaperExchange(real or balances(), rules, self.engine.books)
        self.gateway = Surprises(self.exchange, self.engine.books, reported)
        self.chain = None
        if guard_limits is not None:
            self.chain = build_guard_chain(registry, guard_limits, {}, require_essential=mode == "live_trading")
        self.pipeline = OrderPipeline(mode=mode, gateway=self.gateway, chain=self.chain, rules=rules,
                                      local_quote="KRW", events=self.events, equity=self.engine.equity,
                                      daily_pnl=self.engine.daily_pnl, dry_run_scale=scale)
        self.engine.attach(self.pipeline)

    def fx(self, t):
        self.engine.on_book(OrderBook("upbit", "KRW-USDT", [(FX - 1, 1e6)], [(FX + 1, 1e6)], t))

    def ref(self, t, bid=99_990.0, ask=100_000.0, asks=None):
        self.engine.on_book(OrderBook("binance", "BTCUSDT", [(bid, 1.0)], asks or [(ask, 1.0)], t))

    def local(self, t, bid_usdt, ask_usdt):
        self.engine.on_book(OrderBook("upbit", "KRW-BTC", [(FX * bid_usdt, 1.0)], [(FX * ask_usdt, 1.0)], t))

    def quiet_market(self, t=1000.0):
        self.fx(t)
        self.ref(t + 1)
        self.local(t + 2, 100_100, 100_200)

    def premium(self, t=1100.0):
        """Upbit 3% dear: sell 0.001 BTC on Upbit, buy 0.001 on Binance."""
        self.local(t, 103_000, 103_100)

    def kinds(self):
        return [e.kind for e in self.seen]

    def events_of(self, kind):
        return [e for e in self.seen if e.kind == kind]

    def balance(self, exchange, asset):
        return self.exchange.free_balances(exchange).get(asset, 0.0)

    def summary(self):
        session = Session(parse_config("pairs: [{asset: BTC}]"), "paper", self.engine, self.pipeline, self.chain,
                          None, None, self.events, Activity(), "legrisk")
        return session_summary(session)


def leg_risk_events(kinds):
    return [k for k in kinds if k in ("leg_unhedged", "leg_repair", "exposure_flat", "leg_exposure")]


def sent(rig):
    return [(leg.exchange, leg.side.value, leg.quantity) for leg in rig.gateway.sent]


def short_of_usdt():
    """Binance really holds 50 USDT although 1,000 are reported."""
    real = balances()
    real["binance"]["USDT"] = 50.0
    return dict(reported=balances(), real=real)


# --- config ------------------------------------------------------------------------------


def test_leg_risk_defaults_flatten():
    assert parse_config("pairs: [{asset: BTC}]").leg_risk == LegRiskSettings("unwind", 2, 1.0)
    config = parse_config("pairs: [{asset: BTC}]\nleg_risk: {policy: retry, max_retries: 3, max_slippage_pct: 0.5}")
    assert config.leg_risk == LegRiskSettings("retry", 3, 0.5)


@pytest.mark.parametrize("section, where", [
    ("{policy: hope}", "leg_risk.policy"),
    ("{max_retries: 0}", "leg_risk.max_retries"),
    ("{max_slippage_pct: 0}", "leg_risk.max_slippage_pct"),
    ("{max_slipage_pct: 1}", "leg_risk.max_slipage_pct"),
])
def test_bad_leg_risk_settings_are_refused(section, where):
    with pytest.raises(ConfigError) as caught:
        parse_config(f"pairs: [{{asset: BTC}}]\nleg_risk: {section}")
    assert any(problem.startswith(where) for problem in caught.value.problems), caught.value.problems


# --- unwind ------------------------------------------------------------------------------


def test_unwind_buys_back_the_filled_sell_and_entries_resume():
    rig = Rig(**short_of_usdt())
    rig.quiet_market()
    rig.premium()
    # sell on Upbit filled, buy on Binance refused, then the opposite of the
    # filled leg on the venue that filled it
    assert sent(rig) == [("upbit", "sell", 0.001), ("binance", "buy", 0.001), ("upbit", "buy", 0.001)]
    unwind = rig.gateway.sent[2]
    assert unwind.client_order_id not in {leg.client_order_id for leg in rig.gateway.sent[:2]}
    # limit IOC at most 1% beyond the best ask (103,100 USDT in KRW), on the KRW tick
    assert unwind.limit_price == pytest.approx(FX * 103_100 * 1.01, abs=1000.0)
    assert unwind.limit_price <= FX * 103_100 * 1.01
    assert rig.balance("upbit", "BTC") == pytest.approx(0.01)
    assert rig.engine.exposure() == {} and rig.engine.entries_halted is None
    assert leg_risk_events(rig.kinds()) == ["leg_unhedged", "leg_repair", "exposure_flat"]
    assert rig.portfolio.trades_opened == 0
    # the round trip cost spread and both fees: a realized loss the daily-loss rule sees
    expected = (FX * 103_000 * 0.001 * (1 - 0.0005) - FX * 103_100 * 0.001 * (1 + 0.0005)) / FX
    assert rig.portfolio.realized_pnl == pytest.approx(expected)
    assert rig.engine.daily_pnl() == pytest.approx(expected)

    # money arrives on Binance: the next premium opens a hedged trade
    rig.exchange.free_balances("binance")["USDT"] = 1_000.0
    rig.ref(1200)
    rig.premium(1201)
    assert rig.portfolio.trades_opened == 1
    assert len(rig.gateway.sent) == 5


def test_partial_fill_of_one_leg_unwinds_only_the_unhedged_part():
    rig = Rig()
    rig.quiet_market()
    # Between pricing and matching someone takes Binance's liquidity: only
    # 0.0004 BTC is left at or under the buy's limit.
    rig.gateway.thin_next = (BTC_USDT, OrderBook("binance", "BTCUSDT", [(99_990.0, 1.0)], [(100_000.0, 0.0004)],
                                                 1100.0))
    rig.premium()
    assert sent(rig) == [("upbit", "sell", 0.001), ("binance", "buy", 0.001), ("upbit", "buy", 0.0006)]
    # what is hedged becomes a trade of that size; nothing is left unhedged
    [trade] = rig.portfolio.open_trades.values()
    assert trade.quantity == pytest.approx(0.0004)
    assert rig.engine.exposure() == {} and rig.engine.entries_halted is None
    assert rig.balance("upbit", "BTC") == pytest.approx(0.0096)
    assert rig.balance("binance", "BTC") == pytest.approx(0.0104)
    assert "trade_opened" in rig.kinds() and "exposure_flat" in rig.kinds()


# --- retry -------------------------------------------------------------------------------


def test_retry_fills_the_missing_leg_on_the_second_try():
    rig = Rig(leg_risk=LegRiskSettings(policy="retry", max_retries=2), **short_of_usdt())
    rig.quiet_market()
    rig.premium()
    # the first retry goes out at once and is refused like the original
    assert sent(rig) == [("upbit", "sell", 0.001), ("binance", "buy", 0.001), ("binance", "buy", 0.001)]
    assert rig.engine.exposure() == {"BTC": {"upbit": -0.001}}
    assert "unhedged open of BTC" in rig.engine.entries_halted

    # the money arrives; the next Binance book prices the second retry
    rig.exchange.free_balances("binance")["USDT"] = 1_000.0
    rig.ref(1200, ask=100_050.0)
    assert sent(rig)[3:] == [("binance", "buy", 0.001)]
    ids = [leg.client_order_id for leg in rig.gateway.sent]
    assert len(set(ids)) == 4      # every retry is a new order
    assert rig.gateway.sent[3].limit_price == pytest.approx(100_050.0 * 1.01)
    assert rig.engine.exposure() == {} and rig.engine.entries_halted is None
    [trade] = rig.portfolio.open_trades.values()
    assert trade.quantity == pytest.approx(0.001)
    # the trade's cash flow is what really happened: the buy at 100,050
    assert trade.open_cashflow == pytest.approx(FX * 103_000 * 0.001 * 0.9995 / FX - 100.05 * 1.001)
    assert rig.balance("binance", "BTC") == pytest.approx(0.011)
    flat = rig.events_of("exposure_flat")
    assert len(flat) == 1 and flat[0].data["exposure"] == {}


def test_retry_that_cannot_fill_keeps_entries_halted_and_reports_the_exposure():
    rig = Rig(leg_risk=LegRiskSettings(policy="retry", max_retries=2), **short_of_usdt())
    rig.quiet_market()
    rig.premium()
    rig.ref(1200)                      # second and last retry, refused again
    assert len(rig.gateway.sent) == 4
    [given_up] = rig.events_of("leg_exposure")
    assert given_up.data["exposure"] == {"BTC": {"upbit": -0.001}}
    assert "insufficient USDT" in given_up.data["detail"] and "retry 2/2" in given_up.data["detail"]

    # nothing more goes out: no retry beyond the limit, no new trade
    rig.ref(1300)
    rig.local(1301, 100_100, 100_200)
    rig.premium(1400)
    assert len(rig.gateway.sent) == 4
    assert rig.engine.entries_halted is not None

    summary = rig.summary()
    assert summary["exposure"] == {"BTC": {"upbit": -0.001}}
    assert "unhedged open of BTC" in summary["exposure_detail"]
    console = Console(record=True, width=200)
    print_summary(summary, console)
    text = console.export_text()
    assert "UNHEDGED EXPOSURE" in text and "BTC upbit -0.001" in text


def test_partial_fill_retries_the_remainder_on_fresh_books():
    rig = Rig(leg_risk=LegRiskSettings(policy="retry"))
    rig.quiet_market()
    thin = OrderBook("binance", "BTCUSDT", [(99_990.0, 1.0)], [(100_000.0, 0.0004)], 1100.0)
    rig.gateway.thin_next = (BTC_USDT, thin)
    rig.premium()
    # the immediate retry asks for the missing 0.0006 and gets 0.0004 again
    assert sent(rig) == [("upbit", "sell", 0.001), ("binance", "buy", 0.001), ("binance", "buy", 0.0006)]
    assert rig.engine.exposure() == {"BTC": {"upbit": pytest.approx(-0.0002)}}
    rig.ref(1200)                      # depth is back
    assert sent(rig)[3:] == [("binance", "buy", 0.0002)]
    [trade] = rig.portfolio.open_trades.values()
    assert trade.quantity == pytest.approx(0.001)
    assert rig.engine.entries_halted is None


def test_a_remainder_below_the_exchange_minimum_is_not_sent_and_stays_reported():
    rig = Rig(leg_risk=LegRiskSettings(policy="retry"))
    rig.quiet_market()
    # 0.00096 of 0.001 fills: the missing 0.00004 BTC is 4 USDT, under Binance's 5
    rig.gateway.thin_next = (BTC_USDT, OrderBook("binance", "BTCUSDT", [(99_990.0, 1.0)],
                                                 [(100_000.0, 0.00096)], 1100.0))
    rig.premium()
    assert len(rig.gateway.sent) == 2
    [given_up] = rig.events_of("leg_exposure")
    assert "below binance minimum 5 USDT" in given_up.data["detail"]
    assert rig.engine.exposure() == {"BTC": {"upbit": pytest.approx(-0.00004)}}
    assert "below binance minimum" in rig.engine.entries_halted


def test_retry_completes_a_one_legged_close():
    rig = Rig(leg_risk=LegRiskSettings(policy="retry"))
    rig.quiet_market()
    rig.premium()
    [trade] = rig.portfolio.open_trades.values()
    # the close's Binance sell is refused (the BTC is briefly elsewhere) after
    # the Upbit buy-back filled
    rig.exchange.free_balances("binance")["BTC"] = 0.0
    rig.local(1200, 100_100, 100_200)
    assert rig.engine.exposure() == {"BTC": {"upbit": 0.001}}
    assert trade.id in rig.engine.stuck_trades
    rig.exchange.free_balances("binance")["BTC"] = 0.011
    rig.ref(1300)
    assert sent(rig)[2:] == [("upbit", "buy", 0.001), ("binance", "sell", 0.001), ("binance", "sell", 0.001),
                             ("binance", "sell", 0.001)]
    assert rig.portfolio.trades_closed == 1 and rig.portfolio.open_trades == {}
    assert rig.engine.stuck_trades == set() and rig.engine.exposure() == {}


def test_unwinding_a_partly_closed_trade_leaves_the_rest_open_and_parked():
    rig = Rig()
    rig.quiet_market()
    rig.premium()
    [trade] = rig.portfolio.open_trades.values()
    opening = trade.open_cashflow
    # The close buys back 0.001 on Upbit; Binance's bid has only 0.0004 left
    # when the close's sell arrives.
    rig.gateway.thin_next = (BTC_USDT, OrderBook("binance", "BTCUSDT", [(99_990.0, 0.0004)], [(100_000.0, 1.0)],
                                                 1200.0))
    rig.local(1200, 100_100, 100_200)
    # the unwind sells on Upbit what Binance did not take: 0.0004 is closed, 0.0006 stays a hedged trade
    assert sent(rig)[2:] == [("upbit", "buy", 0.001), ("binance", "sell", 0.001), ("upbit", "sell", 0.0006)]
    assert rig.engine.exposure() == {} and rig.engine.entries_halted is None
    assert trade.quantity == pytest.approx(0.0006) and trade.open_cashflow == pytest.approx(opening * 0.6)
    assert rig.portfolio.trades_closed == 0 and rig.portfolio.realized_pnl != 0.0
    assert rig.balance("upbit", "BTC") == pytest.approx(0.0094)
    assert rig.balance("binance", "BTC") == pytest.approx(0.0106)
    # parked: closing it again would risk another unwind
    assert rig.engine.stuck_trades == {trade.id}
    assert rig.summary()["stuck_trades"] == [trade.id]
    rig.local(1300, 100_100, 100_200)
    assert len(rig.gateway.sent) == 5


def test_entries_stay_blocked_while_exposed_whatever_else_writes_the_halt_reason():
    rig = Rig(leg_risk=LegRiskSettings(policy="retry"), **short_of_usdt())
    rig.quiet_market()
    rig.premium()
    assert rig.engine.exposure()
    # The session lifts its own reason (a carried-over daily-loss stop) by
    # clearing entries_halted; the exposure must still block entries.
    rig.engine.entries_halted = None
    rig.local(1200, 100_100, 100_200)
    rig.premium(1300)
    assert len(rig.gateway.sent) == 3 and rig.portfolio.trades_opened == 0


def test_a_halt_set_by_the_session_survives_the_exposure_going_flat():
    rig = Rig(**short_of_usdt())
    refusal = "daily-loss stop in force for trading day 2026-01-01"
    rig.engine.entries_halted = refusal
    rig.quiet_market()
    # closes still go out under a refusal, entries do not: start from an open trade
    rig.engine.entries_halted = None
    rig.exchange.free_balances("binance")["USDT"] = 1_000.0
    rig.premium()
    rig.engine.entries_halted = refusal
    rig.exchange.free_balances("binance")["BTC"] = 0.0       # the close goes one-legged
    rig.local(1200, 100_100, 100_200)
    assert "exposure_flat" in rig.kinds()                   # unwound
    assert rig.engine.entries_halted == refusal


# --- what is never repaired blindly --------------------------------------------------------


def test_both_legs_refused_is_flat_and_halts_nothing():
    real = balances()
    real["binance"]["USDT"] = 50.0
    real["upbit"]["BTC"] = 0.0
    rig = Rig(reported=balances(), real=real)
    rig.quiet_market()
    rig.premium()
    assert len(rig.gateway.sent) == 2
    assert rig.engine.entries_halted is None and rig.engine.exposure() == {}
    assert "leg_unhedged" not in rig.kinds()


class UnknownOutcome(Surprises):
    """The Binance leg's answer is lost: it may or may not have filled."""

    def submit(self, legs, now_ms):
        orders = super().submit(legs, now_ms)
        return [Order(o.intent, "", OrderStatus.REJECTED, [], f"{OUTCOME_UNKNOWN}: no answer")
                if o.intent.exchange == "binance" else o for o in orders]


def test_an_order_of_unknown_outcome_is_never_repaired():
    rig = Rig()
    rig.gateway = UnknownOutcome(rig.exchange, rig.engine.books)
    rig.pipeline.gateway = rig.gateway
    rig.quiet_market()
    rig.premium()
    rig.ref(1200)
    rig.local(1201, 100_100, 100_200)
    # an unwind now could be a second trade, not a repair: a person decides
    assert len(rig.gateway.sent) == 2
    [given_up] = rig.events_of("leg_exposure")
    assert "unknown" in given_up.data["detail"] and "reconcile by hand" in given_up.data["detail"]
    assert rig.engine.entries_halted is not None


# --- live_trading: repairs take the guarded road, unscaled ---------------------------------


def test_live_trading_repair_is_guarded_and_not_scaled():
    rig = Rig(mode="live_trading", guard_limits=permissive(), scale=0.5, **short_of_usdt())
    rig.quiet_market()
    rig.premium()
    # the pair went out at 0.001 × 0.5; the unwind matches what filled, not × 0.5 again
    assert sent(rig) == [("upbit", "sell", 0.0005), ("binance", "buy", 0.0005), ("upbit", "buy", 0.0005)]
    assert rig.chain.stats.checks == 3 and rig.chain.stats.allowed == 3
    assert rig.engine.exposure() == {}


class NoUpbitBuys:
    name = "no_upbit_buys"
    order = 60

    def check(self, check):
        if check.exchange == "upbit" and check.side is Side.BUY:
            return Decision.veto(self.name, "desk forbids Upbit buys")
        return Decision.allow(self.name)


class NoUpbitBuysPlugin:
    @arb.hookimpl
    def arb_register_guard_rules(self, register):
        register(GuardRuleSpec("no_upbit_buys", 60, lambda limits, options: NoUpbitBuys()))


def test_a_vetoed_repair_is_not_sent_and_counts_as_an_attempt():
    registry = load_registry(extra=[("no-upbit-buys", NoUpbitBuysPlugin())])
    rig = Rig(mode="live_trading", guard_limits=permissive(), scale=1.0, registry=registry, **short_of_usdt())
    rig.quiet_market()
    rig.premium()
    rig.local(1200, 103_000, 103_100)     # the second attempt, on a fresh Upbit book
    rig.local(1300, 103_000, 103_100)     # nothing after max_retries
    assert len(rig.gateway.sent) == 2
    assert rig.chain.stats.blocked["no_upbit_buys"] == 2
    [given_up] = rig.events_of("leg_exposure")
    assert "desk forbids Upbit buys" in given_up.data["detail"]
    assert rig.engine.exposure() == {"BTC": {"upbit": -0.001}}


def test_open_exposure_is_valued_in_daily_pnl():
    rig = Rig(leg_risk=LegRiskSettings(policy="retry"), **short_of_usdt())
    rig.quiet_market()
    rig.premium()
    # short 0.001 BTC on Upbit, sold at 103,000: at a 110,000 ask it costs 7 USDT more to buy back
    rig.local(1200, 109_900, 110_000)
    sold = 103_000 * 0.001 * (1 - 0.0005)
    assert rig.engine.daily_pnl() == pytest.approx(sold - 110.0)
    # what is open: 0.001 BTC owed on Upbit, nothing on Binance
    assert rig.engine.open_notional("upbit") == pytest.approx(0.001 * 109_950)
    assert rig.engine.open_notional("binance") == 0.0


# --- against the exchange emulators --------------------------------------------------------


@pytest.fixture
def emulators():
    with running(*premium_exchanges()) as both:
        yield both


def live_engine(upbit, binance, leg_risk=None):
    clients = {"upbit": client_for(upbit), "binance": binance_client_for(binance)}
    rules = {("upbit", s): r for s, r in clients["upbit"].market_rules(["KRW-BTC", "KRW-USDT"]).items()}
    rules.update({("binance", s): r for s, r in clients["binance"].market_rules(["BTCUSDT"]).items()})
    settings = StrategySettings(entry_premium_pct=1.0, exit_premium_pct=0.3, trade_notional=40.0,
                                max_open_trades=1, max_book_age_ms=5000.0, max_levels=10)
    pair = PairMarkets("BTC", Market("upbit", "KRW-BTC", rules[KRW_BTC]),
                       Market("binance", "BTCUSDT", rules[BTC_USDT]))
    fx = Market("upbit", "KRW-USDT", rules[("upbit", "KRW-USDT")])
    events = EventBus()
    seen = []
    events.subscribe(seen.append)
    portfolio = Portfolio("KRW", {k: r.quote for k, r in rules.items()})
    engine = Engine([pair], fx, settings, Pricer(settings, "arblive"), portfolio, events, "USDT",
                    leg_risk=leg_risk)
    gateway = LiveGateway(clients, rules=rules, poll_interval_s=0.01)
    gateway.refresh_balances()
    chain = build_guard_chain(REGISTRY, permissive(dry_run_scale=0.5, max_notional_per_trade=50.0), {},
                              require_essential=True)
    pipeline = OrderPipeline(mode="live_trading", gateway=gateway, chain=chain, rules=rules, local_quote="KRW",
                             events=events, equity=engine.equity, daily_pnl=engine.daily_pnl, dry_run_scale=0.5)
    engine.attach(pipeline)
    return engine, gateway, clients, seen


def feed(engine, clients):
    for name, symbol in (("upbit", "KRW-USDT"), ("binance", "BTCUSDT"), ("upbit", "KRW-BTC")):
        engine.on_book(clients[name].order_book(symbol))


def drain(binance, asset):
    with binance.lock:
        binance.market.balances[asset] = [Decimal(0), Decimal(0)]


def test_emulators_binance_refuses_the_buy_and_the_unwind_buys_back_on_upbit(emulators):
    upbit, binance = emulators
    engine, gateway, clients, seen = live_engine(upbit, binance)
    # The account is emptied behind our back: our balance cache still says 2,000 USDT.
    drain(binance, "USDT")
    try:
        feed(engine, clients)
    finally:
        gateway.close()
    posts = upbit_posts(upbit)
    # 40 USDT / 95,000 → 0.00042 on the coarser lot step, × dry_run_scale 0.5 = 0.00021
    assert [(p["side"], p["volume"], p["ord_type"], p["time_in_force"]) for p in posts] == [
        ("ask", "0.00021000", "limit", "ioc"), ("bid", "0.00021000", "limit", "ioc")]
    # the unwind: at most 1% over the best ask (135,661,000), on Upbit's 1,000 KRW tick
    assert int(posts[1]["price"]) == 137_017_000
    assert posts[0]["identifier"] != posts[1]["identifier"]
    [refused] = binance_posts(binance)
    assert (refused["side"], refused["quantity"]) == ("BUY", "0.00021")
    assert binance.market.orders == []            # refused: -2010, nothing was placed
    for post in posts:
        [order] = upbit.orders_with_identifier(post["identifier"])
        assert order["state"] == "done" and order["executed_volume"] == "0.00021"
    assert upbit.balance("BTC")[0] == pytest.approx(0.05)
    assert engine.exposure() == {} and engine.entries_halted is None
    assert leg_risk_events([e.kind for e in seen]) == ["leg_unhedged", "leg_repair", "exposure_flat"]
    assert engine.portfolio.realized_pnl < 0      # spread and two Upbit fees, booked


def test_emulators_retry_sends_the_binance_leg_again_once_money_is_back(emulators):
    upbit, binance = emulators
    engine, gateway, clients, seen = live_engine(upbit, binance, LegRiskSettings(policy="retry", max_retries=2))
    drain(binance, "USDT")
    try:
        feed(engine, clients)
        assert len(binance.requests_to("POST", "/api/v3/order")) == 2    # the order, one retry at once
        with binance.lock:
            binance.market.balances["USDT"] = [Decimal("2000"), Decimal(0)]
        engine.on_book(clients["binance"].order_book("BTCUSDT"))
    finally:
        gateway.close()
    posts = binance_posts(binance)
    assert len(posts) == 3 and all((p["side"], p["quantity"]) == ("BUY", "0.00021") for p in posts)
    client_ids = [p["newClientOrderId"] for p in posts]
    assert len(set(client_ids)) == 3
    [placed] = binance.market.orders
    assert placed.client_id == client_ids[2] and placed.status == "FILLED"
    assert len(upbit.requests_to("POST", "/v1/orders")) == 1
    [trade] = engine.portfolio.open_trades.values()
    assert trade.quantity == pytest.approx(0.00021)
    assert engine.exposure() == {} and engine.entries_halted is None
