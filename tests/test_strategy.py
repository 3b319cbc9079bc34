"""The pricer: premium in USDT via FX, net of both fees, priced on walked depth.

Markets use the installed plugins' real rules: Upbit KRW-BTC (tick table,
1e-8 volume step, 5,000 KRW minimum, 0.05% taker fee) and Binance BTCUSDT
(0.01 tick, 1e-5 lot step, 5 USDT minimum, 0.1% taker fee).  FX is 1,400 KRW
per USDT throughout, so a local price of 1400 × P KRW is P USDT.
"""

from __future__ import annotations

import re

import pytest

from arb.book import OrderBook
from arb.config import StrategySettings
from arb.models import Side
from arb.plugins import load_registry
from arb.specs import Market, PairMarkets
from arb.strategy import Direction, Pair, Pricer

REGISTRY = load_registry()
FX = 1400.0
FEE_UPBIT = 0.0005
FEE_BINANCE = 0.001


def market(exchange: str, asset: str) -> Market:
    spec = REGISTRY.exchange(exchange)
    symbol = spec.symbol_for(asset)
    return Market(exchange, symbol, spec.paper_rules(symbol))


PAIR = Pair(PairMarkets("BTC", market("upbit", "BTC"), market("binance", "BTC")))


def settings(**overrides) -> StrategySettings:
    values = dict(entry_premium_pct=1.0, exit_premium_pct=0.3, trade_notional=100.0, max_open_trades=1,
                  max_book_age_ms=2000.0, max_levels=10)
    values.update(overrides)
    return StrategySettings(**values)


def pricer(**overrides) -> Pricer:
    return Pricer(settings(**overrides), id_prefix="arb1a2b3c4d")


def krw(usdt: float) -> float:
    return FX * usdt


def local_book(bids, asks) -> OrderBook:
    return OrderBook("upbit", "KRW-BTC", list(bids), list(asks), 1_000.0)


def ref_book(bids, asks) -> OrderBook:
    return OrderBook("binance", "BTCUSDT", list(bids), list(asks), 1_000.0)


RICH = {"BTC": 1.0, "KRW": 1e9, "USDT": 1e6}

# Upbit 3% dear: bid 103,000 USDT-equivalent vs Binance ask 100,000.
DEAR_LOCAL = local_book([(krw(103_000), 1.0)], [(krw(103_100), 1.0)])
REF = ref_book([(99_990.0, 1.0)], [(100_000.0, 1.0)])


# --- direction and premium ------------------------------------------------------------


def test_sell_local_when_upbit_is_dear():
    p = pricer()
    plan = p.entry_plan(PAIR, DEAR_LOCAL, REF, FX, RICH, RICH)
    assert plan is not None
    assert plan.kind == "open"
    assert plan.direction is Direction.SELL_LOCAL
    sell, buy = plan.legs
    assert (sell.exchange, sell.symbol, sell.side) == ("upbit", "KRW-BTC", Side.SELL)
    assert (buy.exchange, buy.symbol, buy.side) == ("binance", "BTCUSDT", Side.BUY)
    # 100 USDT at a 100,000 ask = 0.001 BTC, on both legs
    assert plan.quantity == pytest.approx(0.001)
    assert sell.quantity == buy.quantity == plan.quantity
    assert sell.limit_price == krw(103_000)
    assert buy.limit_price == 100_000.0
    assert plan.premium_pct == pytest.approx(3.0)
    # net of both taker fees, in USDT
    net = 103_000 * (1 - FEE_UPBIT) / (100_000 * (1 + FEE_BINANCE)) - 1
    assert plan.net_premium_pct == pytest.approx(net * 100)
    assert plan.fx_rate == FX
    assert p.last_premium["BTC"] == pytest.approx(0.03)


def test_buy_local_when_binance_is_dear():
    # Upbit ask 97,000 USDT-equivalent, Binance bid 100,000
    local = local_book([(krw(96_900), 1.0)], [(krw(97_000), 1.0)])
    ref = ref_book([(100_000.0, 1.0)], [(100_010.0, 1.0)])
    plan = pricer().entry_plan(PAIR, local, ref, FX, RICH, RICH)
    assert plan is not None
    assert plan.direction is Direction.BUY_LOCAL
    sell, buy = plan.legs
    assert (sell.exchange, sell.side) == ("binance", Side.SELL)
    assert (buy.exchange, buy.side) == ("upbit", Side.BUY)
    # 100 USDT at 97,000 = 0.00103092..., floored to Binance's 1e-5 step
    assert plan.quantity == pytest.approx(0.00103)
    assert plan.premium_pct == pytest.approx((100_000 / 97_000 - 1) * 100)
    net = 100_000 * (1 - FEE_BINANCE) / (97_000 * (1 + FEE_UPBIT)) - 1
    assert plan.net_premium_pct == pytest.approx(net * 100)


def test_premium_below_entry_after_fees_gives_no_plan():
    # 1.1% gross is 0.95% net of 0.15% fees: below a 1% entry
    local = local_book([(krw(101_100), 1.0)], [(krw(101_200), 1.0)])
    p = pricer()
    assert p.entry_plan(PAIR, local, REF, FX, RICH, RICH) is None
    assert p.skips == {}
    assert p.last_premium["BTC"] == pytest.approx(0.011)


def test_premium_is_measured_in_usdt_through_fx():
    # The same KRW book is 3% dear at 1,400 but at par at 1,442 KRW/USDT.
    p = pricer()
    assert p.entry_plan(PAIR, DEAR_LOCAL, REF, 1442.0, RICH, RICH) is None
    assert p.last_premium["BTC"] == pytest.approx(0.0, abs=1e-12)


def test_thin_top_level_kills_the_plan_at_depth():
    # Top level 0.0002 BTC at 103,000; the rest at 100,500. For 0.001 BTC the
    # average is (0.0002 × 103,000 + 0.0008 × 100,500) / 0.001 = 101,000
    # USDT: 1% gross, 0.85% net — below the 1% entry though the top is 3%.
    local = local_book([(krw(103_000), 0.0002), (krw(100_500), 1.0)], [(krw(103_100), 1.0)])
    p = pricer()
    assert p.entry_plan(PAIR, local, REF, FX, RICH, RICH) is None
    assert p.skips == {"premium gone at depth": 1}


def test_plan_priced_on_walked_depth():
    # 0.0005 @ 103,000 + 0.0005 @ 102,000 → average 102,500, worst 102,000
    local = local_book([(krw(103_000), 0.0005), (krw(102_000), 1.0)], [(krw(103_100), 1.0)])
    plan = pricer().entry_plan(PAIR, local, REF, FX, RICH, RICH)
    assert plan is not None
    sell = plan.legs[0]
    assert sell.limit_price == krw(102_000)          # the worst level touched
    assert sell.expected_price == pytest.approx(krw(102_500))
    assert plan.premium_pct == pytest.approx(2.5)


def test_limit_prices_reach_no_deeper_than_the_quantity_sent():
    # 100.0009 USDT / 100,000 = 0.001000009 BTC before the lot step, 0.001
    # after: the 0.001 at 100,000 covers it, so the buy limit stays there
    # rather than reaching up to the 100,500 level.
    ref = ref_book([(99_990.0, 1.0)], [(100_000.0, 0.001), (100_500.0, 1.0)])
    plan = pricer(trade_notional=100.0009).entry_plan(PAIR, DEAR_LOCAL, ref, FX, RICH, RICH)
    assert plan.quantity == 0.001
    assert plan.legs[1].limit_price == 100_000.0
    assert plan.legs[1].expected_price == pytest.approx(100_000.0)


# --- sizing ---------------------------------------------------------------------------


def test_size_limited_by_trade_notional():
    plan = pricer(trade_notional=50.0).entry_plan(PAIR, DEAR_LOCAL, REF, FX, RICH, RICH)
    assert plan.quantity == pytest.approx(0.0005)


def test_size_limited_by_book_depth_within_max_levels():
    # three Binance ask levels of 0.0003; only two may be swept
    ref = ref_book([(99_990.0, 1.0)], [(100_000.0, 0.0003), (100_010.0, 0.0003), (100_020.0, 0.0003)])
    plan = pricer(max_levels=2).entry_plan(PAIR, DEAR_LOCAL, ref, FX, RICH, RICH)
    assert plan.quantity == pytest.approx(0.0006)
    assert plan.legs[1].limit_price == 100_010.0


def test_size_limited_by_base_balance_on_the_sell_venue():
    local_free = {"BTC": 0.00042, "KRW": 1e9}
    plan = pricer().entry_plan(PAIR, DEAR_LOCAL, REF, FX, local_free, RICH)
    assert plan.quantity == pytest.approx(0.00042)


def test_size_never_exceeds_a_noisy_base_balance():
    # 0.7 - 0.4 = 0.29999999999999993 in floats: selling 0.3 would be refused
    local_free = {"BTC": 0.7 - 0.4, "KRW": 1e9}
    plan = pricer(trade_notional=1e6).entry_plan(
        PAIR, DEAR_LOCAL, ref_book([(99_990.0, 1.0)], [(100_000.0, 1.0)]), FX, local_free, RICH)
    assert plan is not None
    assert plan.quantity <= local_free["BTC"]
    assert plan.quantity == pytest.approx(0.29999)


def test_size_limited_by_quote_balance_on_the_buy_venue():
    # 0.001 BTC would cost 100 + 0.1 fee = 100.1 USDT; only 50.05 is free, which
    # buys exactly 0.0005 BTC with its fee.
    ref_free = {"USDT": 50.05, "BTC": 0.0}
    plan = pricer().entry_plan(PAIR, DEAR_LOCAL, REF, FX, RICH, ref_free)
    assert plan is not None
    assert 0.00045 <= plan.quantity <= 0.0005
    assert plan.quantity * 100_000 * (1 + FEE_BINANCE) <= 50.05


def test_buy_local_size_limited_by_krw_balance():
    local = local_book([(krw(96_900), 1.0)], [(krw(97_000), 1.0)])
    ref = ref_book([(100_000.0, 1.0)], [(100_010.0, 1.0)])
    # 70,000 KRW buys at most 70,000 / (135,800,000 × 1.0005) = 0.000515 BTC
    plan = pricer().entry_plan(PAIR, local, ref, FX, {"KRW": 70_000.0}, RICH)
    assert plan is not None
    assert plan.quantity * krw(97_000) * (1 + FEE_UPBIT) <= 70_000.0
    assert 0.00046 <= plan.quantity <= 0.00051


def test_both_legs_use_the_common_lot_step():
    # 12.345678 USDT / 100,000 = 0.00012345678: Upbit would take 8 decimals,
    # Binance only 5, so both legs get 0.00012.
    plan = pricer(trade_notional=12.345678).entry_plan(PAIR, DEAR_LOCAL, REF, FX, RICH, RICH)
    assert plan.quantity == 0.00012
    assert [leg.quantity for leg in plan.legs] == [0.00012, 0.00012]


def test_below_minimum_gives_no_plan_and_is_counted():
    # 4 USDT of BTC is below Binance's 5 USDT minimum
    p = pricer(trade_notional=4.0)
    assert p.entry_plan(PAIR, DEAR_LOCAL, REF, FX, RICH, RICH) is None
    assert p.skips == {"below minimum": 1}


def test_no_balance_gives_no_plan_and_is_counted():
    p = pricer()
    assert p.entry_plan(PAIR, DEAR_LOCAL, REF, FX, {"KRW": 1e9}, RICH) is None
    assert p.entry_plan(PAIR, DEAR_LOCAL, REF, FX, RICH, {"BTC": 1.0}) is None
    assert p.skips == {"insufficient balance": 2}


# --- exit -----------------------------------------------------------------------------


def closing_books(local_ask_usdt: float, ref_bid: float):
    local = local_book([(krw(local_ask_usdt - 100), 1.0)], [(krw(local_ask_usdt), 1.0)])
    ref = ref_book([(ref_bid, 1.0)], [(ref_bid + 10, 1.0)])
    return local, ref


def test_exit_waits_while_the_premium_is_above_the_exit_threshold():
    # buy back on Upbit at 100,400 vs sell on Binance at 100,000: 0.4% > 0.3%
    local, ref = closing_books(100_400, 100_000)
    assert pricer().exit_plan(PAIR, 7, Direction.SELL_LOCAL, 0.001, local, ref, FX) is None


def test_exit_when_the_premium_falls_to_the_exit_threshold():
    # 100,200 / 100,000 - 1 = 0.2% ≤ 0.3%
    local, ref = closing_books(100_200, 100_000)
    plan = pricer().exit_plan(PAIR, 7, Direction.SELL_LOCAL, 0.001, local, ref, FX)
    assert plan is not None
    assert plan.kind == "close" and plan.trade_id == 7
    buy, sell = plan.legs
    assert (buy.exchange, buy.side, buy.quantity) == ("upbit", Side.BUY, 0.001)
    assert (sell.exchange, sell.side, sell.quantity) == ("binance", Side.SELL, 0.001)
    assert buy.limit_price == krw(100_200)
    assert sell.limit_price == 100_000.0
    assert plan.premium_pct == pytest.approx(0.2)


def test_exit_of_a_buy_local_trade():
    # opened buying Upbit (Binance dear); closes by buying back Binance at its
    # ask and selling Upbit at its bid: 100,100 / 100,000 - 1 = 0.1%
    local = local_book([(krw(100_000), 1.0)], [(krw(100_100), 1.0)])
    ref = ref_book([(100_090.0, 1.0)], [(100_100.0, 1.0)])
    plan = pricer().exit_plan(PAIR, 3, Direction.BUY_LOCAL, 0.002, local, ref, FX)
    assert plan is not None
    buy, sell = plan.legs
    assert (buy.exchange, buy.side) == ("binance", Side.BUY)
    assert (sell.exchange, sell.side) == ("upbit", Side.SELL)
    assert plan.premium_pct == pytest.approx(0.1)
    # and not while Binance is still 1% dear
    ref_dear = ref_book([(100_990.0, 1.0)], [(101_000.0, 1.0)])
    assert pricer().exit_plan(PAIR, 3, Direction.BUY_LOCAL, 0.002, local, ref_dear, FX) is None


def test_exit_needs_depth_for_the_whole_quantity():
    local = local_book([(krw(100_000), 1.0)], [(krw(100_100), 0.0005)])
    ref = ref_book([(100_000.0, 1.0)], [(100_010.0, 1.0)])
    p = pricer()
    assert p.exit_plan(PAIR, 1, Direction.SELL_LOCAL, 0.001, local, ref, FX) is None
    assert p.skips == {"insufficient depth to close": 1}


def test_exit_on_depth_that_is_exactly_enough():
    # two levels of 0.0001 and 0.0003 sum to 0.0004 (with float noise)
    local = local_book([(krw(100_000), 1.0)], [(krw(100_100), 0.0001), (krw(100_150), 0.0003)])
    ref = ref_book([(100_000.0, 1.0)], [(100_010.0, 1.0)])
    plan = pricer().exit_plan(PAIR, 1, Direction.SELL_LOCAL, 0.0004, local, ref, FX)
    assert plan is not None
    assert plan.legs[0].limit_price == krw(100_150)


# --- client order ids -----------------------------------------------------------------


def test_client_order_ids_are_unique_short_and_safe():
    p = Pricer(settings(), id_prefix="arb" + "f" * 8)
    ids = [p.client_id() for _ in range(5000)]
    plan = p.entry_plan(PAIR, DEAR_LOCAL, REF, FX, RICH, RICH)
    ids += [leg.client_order_id for leg in plan.legs]
    assert len(set(ids)) == len(ids)
    for cid in ids:
        assert len(cid) <= 36
        assert re.fullmatch(r"[A-Za-z0-9-]+", cid)


@pytest.mark.parametrize("prefix", ["", "arb_1", "arb 1", "x" * 30])
def test_unusable_id_prefix_is_refused(prefix):
    with pytest.raises(ValueError):
        Pricer(settings(), id_prefix=prefix)
