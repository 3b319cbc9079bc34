"""The engine end to end: book updates in, hedged trades and PnL out.

Built the way a session builds it: markets and rules from the installed
exchange plugins (``load_registry()`` → ``paper_rules``/``symbol_for``), the
real PaperExchange as gateway, guard chains from ``build_guard_chain``.
Books are made by hand.  FX is Upbit's KRW-USDT book, mid 1,400 unless a
test moves it, so a KRW price of 1,400 × P is P USDT.

Fees: Upbit 0.05%, Binance 0.1%.  Strategy: enter at 1% net, exit at 0.3%
gross, 100 USDT per trade.
"""

from __future__ import annotations

import pytest

import arb
from arb.book import OrderBook
from arb.config import LegRiskSettings, StrategySettings
from arb.engine import Engine
from arb.events import EventBus
from arb.guard import Decision, GuardLimits
from arb.paper_exchange import PaperExchange
from arb.pipeline import OrderPipeline
from arb.plugins import build_guard_chain, load_registry
from arb.portfolio import Portfolio
from arb.specs import GuardRuleSpec, Market, PairMarkets
from arb.strategy import Direction, Pricer

REGISTRY = load_registry()
FX = 1400.0


def market(exchange: str, asset: str) -> Market:
    spec = REGISTRY.exchange(exchange)
    symbol = spec.symbol_for(asset)
    return Market(exchange, symbol, spec.paper_rules(symbol))


def balances():
    return {"upbit": {"KRW": 1_000_000.0, "BTC": 0.01, "ETH": 1.0},
            "binance": {"USDT": 1_000.0, "BTC": 0.01, "ETH": 1.0}}


def limits(**overrides) -> GuardLimits:
    values = dict(enabled=True, dry_run_scale=1.0, allowed_symbols=("KRW-BTC", "BTCUSDT", "KRW-ETH", "ETHUSDT"),
                  min_account_balance=50.0, max_daily_loss=1.0, max_notional_per_trade=200.0)
    values.update(overrides)
    return GuardLimits(**values)


class StaleBalances:
    """A gateway whose balance report is out of date (the exchange holds less)."""

    def __init__(self, inner: PaperExchange, reported):
        self.inner = inner
        self.reported = reported

    def submit(self, legs, now_ms):
        return self.inner.submit(legs, now_ms)

    def free_balances(self, exchange):
        return self.reported[exchange]

    def active_orders(self):
        return 0


class Rig:
    def __init__(self, mode="paper", guard_limits=None, scale=None, assets=("BTC",), registry=REGISTRY,
                 reported_balances=None, exchange_balances=None, leg_risk=None, **strategy):
        values = dict(entry_premium_pct=1.0, exit_premium_pct=0.3, trade_notional=100.0, max_open_trades=1,
                      max_book_age_ms=2000.0, max_levels=10)
        values.update(strategy)
        settings = StrategySettings(**values)
        pairs = [PairMarkets(a, market("upbit", a), market("binance", a)) for a in assets]
        fx = Market("upbit", "KRW-USDT", REGISTRY.exchange("upbit").paper_rules("KRW-USDT"))
        rules = {(m.exchange, m.symbol): m.rules for p in pairs for m in (p.local, p.reference)}
        rules[("upbit", "KRW-USDT")] = fx.rules
        self.events = EventBus()
        self.seen = []
        self.events.subscribe(self.seen.append)
        self.portfolio = Portfolio("KRW", {k: r.quote for k, r in rules.items()})
        self.engine = Engine(pairs, fx, settings, Pricer(settings, "arbtest01"), self.portfolio, self.events,
                             "USDT", leg_risk=leg_risk)
        self.exchange = PaperExchange(exchange_balances or balances(), rules, self.engine.books)
        gateway = self.exchange if reported_balances is None else StaleBalances(self.exchange, reported_balances)
        chain = None
        if guard_limits is not None:
            chain = build_guard_chain(registry, guard_limits, {}, require_essential=mode == "live_trading")
        self.pipeline = OrderPipeline(mode=mode, gateway=gateway, chain=chain, rules=rules, local_quote="KRW",
                                      events=self.events, equity=self.engine.equity,
                                      daily_pnl=self.engine.daily_pnl, dry_run_scale=scale)
        self.engine.attach(self.pipeline)

    # books ---------------------------------------------------------------
    def fx(self, t, mid=FX):
        self.engine.on_book(OrderBook("upbit", "KRW-USDT", [(mid - 1, 1e6)], [(mid + 1, 1e6)], t))

    def ref(self, t, bid=99_990.0, ask=100_000.0, asset="BTC", size=1.0):
        self.engine.on_book(OrderBook("binance", f"{asset}USDT", [(bid, size)], [(ask, size)], t))

    def local(self, t, bid_usdt, ask_usdt, asset="BTC", size=1.0):
        self.engine.on_book(OrderBook("upbit", f"KRW-{asset}", [(FX * bid_usdt, size)], [(FX * ask_usdt, size)],
                                      t))

    def raw_local(self, t, bids, asks):
        self.engine.on_book(OrderBook("upbit", "KRW-BTC", bids, asks, t))

    def quiet_market(self, t=1000.0):
        """FX 1,400; Binance 99,990/100,000; Upbit at par (100,100/100,200): no premium."""
        self.fx(t)
        self.ref(t + 1)
        self.local(t + 2, 100_100, 100_200)

    def kinds(self):
        return [e.kind for e in self.seen]

    def balance(self, exchange):
        return dict(self.exchange.free_balances(exchange))


# --- a round trip ---------------------------------------------------------------------


def test_premium_opens_a_trade_and_its_reversion_closes_it():
    rig = Rig()
    rig.quiet_market()
    assert rig.exchange.orders_sent == 0

    # Upbit turns 3% dear: bid 103,000 USDT (144,200,000 KRW) vs Binance ask 100,000
    rig.local(1100, 103_000, 103_100)
    assert rig.portfolio.trades_opened == 1
    [trade] = rig.portfolio.open_trades.values()
    assert trade.direction is Direction.SELL_LOCAL
    assert trade.quantity == pytest.approx(0.001)     # 100 USDT / 100,000
    assert rig.exchange.orders_sent == 2 and rig.exchange.orders_filled == 2
    # Upbit: sold 0.001 BTC for 144,200 KRW less 72.1 fee
    assert rig.balance("upbit") == pytest.approx({"KRW": 1_000_000 + 144_200 - 72.1, "BTC": 0.009, "ETH": 1.0})
    # Binance: bought 0.001 BTC for 100 USDT plus 0.1 fee
    assert rig.balance("binance") == pytest.approx({"USDT": 1_000 - 100.1, "BTC": 0.011, "ETH": 1.0})
    # 144,127.9 / 1,400 − 100.1
    assert trade.open_cashflow == pytest.approx(144_127.9 / 1400 - 100.1)
    assert "trade_opened" in rig.kinds()

    # still 3% dear: the open trade is not closed, no second trade (max 1)
    rig.local(1150, 103_000, 103_100)
    assert rig.exchange.orders_sent == 2

    # back at par: buy back on Upbit at the 100,200 ask, sell on Binance at the
    # 99,990 bid: 100,200 / 99,990 − 1 = 0.21% ≤ 0.3%
    rig.local(1200, 100_100, 100_200)
    assert rig.portfolio.trades_closed == 1
    assert rig.portfolio.open_trades == {}
    assert rig.exchange.orders_sent == 4
    # close: −(140,280 + 70.14) KRW / 1,400 + (99.99 − 0.09999) USDT
    expected = (144_127.9 / 1400 - 100.1) + (-140_350.14 / 1400 + 99.89001)
    assert trade.realized_pnl == pytest.approx(expected)
    assert rig.portfolio.realized_pnl == pytest.approx(2.48841)
    assert rig.balance("upbit")["BTC"] == pytest.approx(0.01)
    assert rig.balance("binance")["BTC"] == pytest.approx(0.01)
    assert rig.balance("upbit")["KRW"] == pytest.approx(1_000_000 + 144_127.9 - 140_350.14)
    assert rig.balance("binance")["USDT"] == pytest.approx(1_000 - 100.1 + 99.89001)
    closed = [e for e in rig.seen if e.kind == "trade_closed"]
    assert len(closed) == 1 and closed[0].data["pnl"] == pytest.approx(2.48841)
    assert rig.engine.updates == 6


def test_buy_local_when_binance_is_dear():
    rig = Rig()
    rig.quiet_market()
    # Binance bid 103,000 vs Upbit ask 100,200
    rig.ref(1100, bid=103_000.0, ask=103_010.0)
    [trade] = rig.portfolio.open_trades.values()
    assert trade.direction is Direction.BUY_LOCAL
    # 100 USDT at 100,200 = 0.000998..., floored to 0.00099
    assert trade.quantity == pytest.approx(0.00099)
    assert rig.balance("binance")["BTC"] == pytest.approx(0.01 - 0.00099)
    assert rig.balance("upbit")["BTC"] == pytest.approx(0.01 + 0.00099)


def test_no_trade_before_every_book_is_known():
    rig = Rig()
    rig.ref(1000)
    rig.local(1001, 103_000, 103_100)      # no FX yet
    assert rig.exchange.orders_sent == 0
    rig.fx(1002)
    assert rig.portfolio.trades_opened == 1


# --- books that must not be traded ---------------------------------------------------


def test_stale_books_never_trade():
    rig = Rig()
    rig.fx(0)
    rig.ref(0)
    # the premium arrives 5 s after the other books: FX and Binance are stale
    rig.local(5000, 103_000, 103_100)
    assert rig.exchange.orders_sent == 0
    assert rig.engine.pricer.skips == {"stale book": 1}
    rig.fx(5001)                       # Binance still 5 s old
    assert rig.exchange.orders_sent == 0
    assert rig.engine.pricer.skips == {"stale book": 2}
    rig.ref(5002)                      # everything fresh: now it trades
    assert rig.exchange.orders_sent == 2


def test_book_exactly_max_age_old_is_still_usable():
    rig = Rig()
    rig.fx(0)
    rig.ref(0)
    rig.local(2000, 103_000, 103_100)
    assert rig.exchange.orders_sent == 2


def test_crossed_book_never_trades():
    rig = Rig()
    rig.quiet_market()
    before = rig.balance("upbit")
    # best bid above best ask on Upbit (a broken feed), with a huge "premium"
    rig.raw_local(1100, [(FX * 105_000, 1.0)], [(FX * 104_000, 1.0)])
    assert rig.exchange.orders_sent == 0
    assert rig.engine.pricer.skips == {"crossed book": 1}
    assert rig.balance("upbit") == before


def test_empty_book_never_trades():
    rig = Rig()
    rig.quiet_market()
    rig.raw_local(1100, [(FX * 103_000, 1.0)], [])
    rig.ref(1101, bid=103_000.0, ask=103_010.0)
    assert rig.exchange.orders_sent == 0
    assert rig.engine.pricer.skips == {"empty book": 2}


def test_crossed_fx_book_never_trades():
    rig = Rig()
    rig.quiet_market()
    rig.engine.on_book(OrderBook("upbit", "KRW-USDT", [(1300.0, 1e6)], [(1290.0, 1e6)], 1100))
    rig.local(1101, 103_000, 103_100)
    assert rig.exchange.orders_sent == 0
    assert rig.engine.pricer.skips == {"crossed book": 2}


# --- session stop ---------------------------------------------------------------------


def test_daily_loss_session_stop_halts_the_engine():
    rig = Rig(mode="live_trading", guard_limits=limits(max_daily_loss=1.0), scale=1.0, max_open_trades=2)
    rig.quiet_market()
    rig.local(1100, 103_000, 103_100)
    assert rig.portfolio.trades_opened == 1
    assert rig.exchange.orders_sent == 2

    # Upbit jumps 10%: the open trade would now cost 0.001 × 110,100 × 1.0005 =
    # 110.155 USDT to buy back and bring 99.89 on Binance: unrealized
    # 2.8485 − 10.265 = −7.42, past the 1 USDT limit.  The new 9.8% premium
    # asks for a second trade; the guard refuses and stops the session.
    rig.local(1200, 110_000, 110_100)
    assert rig.engine.daily_pnl() == pytest.approx(2.8485 - 110.1 * 1.0005 + 99.89001)
    assert rig.exchange.orders_sent == 2
    assert rig.engine.halted is not None and "max_daily_loss" in rig.engine.halted
    assert rig.pipeline.stop_reason == rig.engine.halted
    assert "session_stop" in rig.kinds()

    # later updates send nothing, not even the close the reversion asks for
    rig.local(1300, 100_100, 100_200)
    rig.ref(1301, bid=103_000.0, ask=103_010.0)
    assert rig.exchange.orders_sent == 2
    assert rig.portfolio.trades_closed == 0
    assert rig.engine.updates == 7


class StopOnBtcRule:
    """A third-party rule asking for a session stop on any KRW-BTC order."""

    name = "stop_on_btc"
    order = 60

    def check(self, check):
        if check.symbol == "KRW-BTC":
            return Decision.veto(self.name, "BTC halted by desk", session_stop=True)
        return Decision.allow(self.name)


class StopOnBtcPlugin:
    @arb.hookimpl
    def arb_register_guard_rules(self, register):
        register(GuardRuleSpec("stop_on_btc", 60, lambda limits, options: StopOnBtcRule()))


def test_session_stop_halts_the_other_pairs_of_the_same_update():
    registry = load_registry(extra=[("stop-on-btc", StopOnBtcPlugin())])
    rig = Rig(mode="live_trading", guard_limits=limits(max_daily_loss=1000.0), scale=1.0, assets=("BTC", "ETH"),
              registry=registry)
    rig.fx(1000)
    rig.ref(1001)
    rig.ref(1002, bid=2_999.0, ask=3_000.0, asset="ETH", size=10.0)
    rig.local(1003, 100_100, 100_200)
    rig.local(1004, 3_003, 3_004, asset="ETH", size=10.0)
    assert rig.exchange.orders_sent == 0
    # KRW weakens to 1,350: both KRW books are now ~3.7% dear in USDT.  BTC is
    # evaluated first and its plan stops the session; ETH must not trade.
    rig.fx(1100, mid=1350.0)
    assert rig.engine.halted is not None and "stop_on_btc" in rig.engine.halted
    assert rig.exchange.orders_sent == 0
    assert rig.balance("binance") == balances()["binance"]


# --- unhedged results -----------------------------------------------------------------


def test_unhedged_open_halts_new_entries():
    # The strategy is told Binance holds 1,000 USDT; it really holds 50, so the
    # Binance buy is rejected after the Upbit sell has filled.  The retry
    # policy sends the buy again at once; it is refused again.
    reported = balances()
    real = balances()
    real["binance"]["USDT"] = 50.0
    rig = Rig(reported_balances=reported, exchange_balances=real, leg_risk=LegRiskSettings(policy="retry"))
    rig.quiet_market()
    rig.local(1100, 103_000, 103_100)
    assert rig.exchange.orders_sent == 3
    assert rig.exchange.orders_rejected == 2
    assert rig.portfolio.trades_opened == 0
    assert rig.engine.entries_halted is not None
    assert "unhedged open of BTC" in rig.engine.entries_halted
    assert "insufficient USDT" in rig.engine.entries_halted
    assert "leg_unhedged" in rig.kinds()
    assert rig.engine.exposure() == {"BTC": {"upbit": -0.001}}
    assert rig.engine.halted is None

    # a fresh premium would open a trade, but entries stay halted (and the
    # retry waits for a fresh Binance book, which these updates are not)
    rig.local(1200, 100_100, 100_200)
    rig.local(1300, 104_000, 104_100)
    assert rig.exchange.orders_sent == 3


# --- live modes -----------------------------------------------------------------------


def test_live_trading_with_dry_run_scale_opens_and_closes_the_scaled_trade():
    # the guards approve 0.001 BTC; half of it is sent
    rig = Rig(mode="live_trading", guard_limits=limits(), scale=0.5)
    rig.quiet_market()
    rig.local(1100, 103_000, 103_100)
    assert rig.engine.entries_halted is None
    [trade] = rig.portfolio.open_trades.values()
    assert trade.quantity == pytest.approx(0.0005)
    assert rig.balance("upbit")["BTC"] == pytest.approx(0.0095)
    assert rig.balance("binance")["BTC"] == pytest.approx(0.0105)

    rig.local(1200, 100_100, 100_200)
    assert rig.portfolio.trades_closed == 1
    assert rig.balance("upbit")["BTC"] == pytest.approx(0.01)
    # half the full-size round trip's 2.48841 USDT
    assert rig.portfolio.realized_pnl == pytest.approx(2.48841 / 2)


def test_live_trading_blocked_by_default_limits_sends_nothing():
    rig = Rig(mode="live_trading", guard_limits=GuardLimits(), scale=0.01)
    rig.quiet_market()
    rig.local(1100, 103_000, 103_100)
    assert rig.exchange.orders_sent == 0
    assert rig.pipeline.plans_blocked == 1
    assert rig.pipeline.last_block_reason == "enabled: live_trading.enabled=False"
    assert rig.engine.halted is None


def test_live_readonly_counts_a_shadow_trade_and_sends_nothing():
    rig = Rig(mode="live_readonly")
    rig.quiet_market()
    rig.local(1100, 103_000, 103_100)
    assert rig.exchange.orders_sent == 0
    assert rig.pipeline.shadow_trades == 1
    assert rig.portfolio.trades_opened == 0
    assert rig.balance("upbit") == balances()["upbit"]


# --- valuations the guards judge ------------------------------------------------------


def test_equity_in_usdt_at_book_mids():
    rig = Rig()
    rig.quiet_market()
    # Upbit: 1,000,000 KRW / 1,400 + 0.01 BTC × 100,150 (mid) ; ETH has no book
    assert rig.engine.equity("upbit") == pytest.approx(1_000_000 / 1400 + 0.01 * 100_150)
    # Binance: 1,000 USDT + 0.01 × 99,995
    assert rig.engine.equity("binance") == pytest.approx(1_000 + 0.01 * 99_995)
    assert rig.engine.fx_rate() == 1400.0
    assert rig.engine.premiums()["BTC"] == pytest.approx((100_100 / 100_000 - 1) * 100)


def test_an_unwound_close_is_not_closed_again():
    rig = Rig()
    rig.quiet_market()
    rig.local(1100, 103_000, 103_100)
    [trade] = rig.portfolio.open_trades.values()
    # The BTC bought on Binance is gone (withdrawn by hand): the close's
    # Binance sell is rejected after the Upbit buy-back has filled.  The
    # unwind sells the bought-back BTC on Upbit again: the trade is hedged
    # as before.
    rig.exchange.free_balances("binance")["BTC"] = 0.0
    rig.local(1200, 100_100, 100_200)
    assert rig.exchange.orders_sent == 5
    assert rig.exchange.orders_rejected == 1
    assert rig.engine.entries_halted is None and rig.engine.exposure() == {}
    assert rig.portfolio.trades_closed == 0
    assert trade.id in rig.portfolio.open_trades and trade.quantity == pytest.approx(0.001)
    # Closing again would fail the same way and pay for another unwind each
    # time: the trade waits for a person instead.
    assert trade.id in rig.engine.stuck_trades
    rig.local(1300, 100_100, 100_200)
    rig.local(1400, 100_000, 100_150)
    assert rig.exchange.orders_sent == 5
    assert rig.balance("upbit")["BTC"] == pytest.approx(0.009)
